"""Save and load a kinship eigendecomposition (``.npz``, no pickle).

A dense cache holds ``Q0`` (n, k), ``S0`` (k,), ``n``, the sample keys ``fid``/``iid`` (str
arrays; ``has_fid`` False when matched on IID alone), a ``fingerprint`` (a JSON string in a
one-element str array) of the genotypes and options it was built from, and
``format_version``. ``Q1`` is not stored: the models use ``I - Q0 Q0^T`` instead.

A sparse cache (``glimix kinship --sparse-cutoff``) has ``kind = "sparse"`` and, instead of
``Q0``/``S0``, the upper triangle of the sparse GRM (diagonal included) as ``row``, ``col``,
``val``, plus an ``info`` JSON string (cutoff, screening).

A LOCO cache (``glimix kinship --loco``) is a dense cache that also holds, for every
chromosome ``c`` with kinship variants, the decomposition of the kinship leaving it out
(``loco.Q0.<k>``, ``loco.S0.<k>``), the chromosomes ``loco_chroms`` and their variant counts
``loco_counts``; the dense loaders skip those arrays.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from glimix_cli.errors import InputError
from glimix_cli.io.atomic import atomic_binary
from glimix_cli.io.plink import Bfile
from glimix_cli.model.linalg import QSType

__all__ = ["FORMAT_VERSION", "bfile_fingerprint", "cache_kind", "load_kinship_cache",
           "load_loco_chromosome", "load_sparse_kinship_cache", "loco_chromosomes",
           "read_sparse_part", "save_kinship_cache", "save_loco_kinship_cache",
           "save_sparse_kinship_cache"]

FORMAT_VERSION = 1
#: Name prefix of the per-chromosome arrays of a LOCO cache (``loco.Q0.<k>``, ``loco.S0.<k>``).
_LOCO_PREFIX = "loco."
_REBUILD = "rebuild it with `glimix kinship ... --out FILE.npz`"


def _normalise(fp: dict[str, Any]) -> dict[str, Any]:
    """Round-trip through JSON so tuples/lists and int/float compare as stored."""
    return json.loads(json.dumps(fp, sort_keys=True))


def bfile_fingerprint(bfile: Bfile, options: dict[str, Any]) -> dict[str, Any]:
    """Identify the genotypes and options a kinship matrix was built from.

    Parameters
    ----------
    bfile : Bfile
    options : dict
        JSON-serialisable build options (e.g. ``{"maf_min": 0.01, "chrom": null}``).

    Returns
    -------
    dict
        ``bed``/``bim``/``fam`` file names, sizes (bytes) and mtimes (ns), ``n_variants``,
        ``n_samples`` and ``options``.
    """
    fp: dict[str, Any] = {}
    for kind, p in (("bed", bfile.bed), ("bim", bfile.bim), ("fam", bfile.fam)):
        st = Path(p).stat()
        fp[f"{kind}_name"] = Path(p).name
        fp[f"{kind}_size"] = int(st.st_size)
        fp[f"{kind}_mtime_ns"] = int(st.st_mtime_ns)
    fp["n_variants"] = bfile.n_variants
    fp["n_samples"] = bfile.n_samples
    fp["options"] = options
    return _normalise(fp)


def save_kinship_cache(
    path: str | os.PathLike[str],
    QS: QSType,
    fid: ArrayLike | None,
    iid: ArrayLike,
    fingerprint: dict[str, Any],
) -> None:
    """Write ``QS`` and its sample keys to ``path`` atomically (temp file + rename).

    Parameters
    ----------
    path : str or Path
        Destination ``.npz``.
    QS : ((Q0, Q1), S0)
        ``Q0`` (n, k) and ``S0`` (k,); ``Q1`` is ignored.
    fid : array_like of str, shape (n,), or None
    iid : array_like of str, shape (n,)
        Keys of the rows of ``Q0``, in order.
    fingerprint : dict
        JSON-serialisable; compared on load.
    """
    path = Path(path)
    (Q0, _), S0 = QS
    Q0 = np.asarray(Q0, dtype=np.float64)
    S0 = np.asarray(S0, dtype=np.float64).ravel()
    iid_arr = np.asarray([str(i) for i in iid], dtype=str)
    n = iid_arr.size
    if Q0.ndim != 2 or Q0.shape[0] != n or S0.size != Q0.shape[1]:
        raise ValueError(f"QS shapes Q0 {Q0.shape}, S0 {S0.shape} do not match {n} samples")
    _write(path, {"Q0": Q0, "S0": S0}, fid, iid_arr, fingerprint)


def _write(path: Path, arrays: dict[str, Any], fid: ArrayLike | None, iid_arr: Any,
           fingerprint: dict[str, Any],
           extra: Callable[[zipfile.ZipFile], None] | None = None) -> None:
    has_fid = fid is not None
    fid_arr = np.asarray([str(f) for f in fid], dtype=str) if has_fid else np.array([], str)
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        **arrays,
        "n": np.array(iid_arr.size),
        "has_fid": np.array(has_fid),
        "fid": fid_arr,
        "iid": iid_arr,
        "fingerprint": np.array([json.dumps(_normalise(fingerprint), sort_keys=True)]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_binary(path) as fh:
        if extra is None:
            np.savez(fh, **arrays)
            return
        with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in arrays.items():
                _zip_array(zf, name, arr)
            extra(zf)


def save_loco_kinship_cache(path: str | os.PathLike[str], QS: QSType,
                            loco: Iterator[tuple[str, int, QSType]], fid: ArrayLike | None,
                            iid: ArrayLike, fingerprint: dict[str, Any]) -> list[str]:
    """A dense cache (the whole-genome ``QS``) plus the eigendecomposition of every
    leave-one-chromosome-out kinship, ``loco`` yielding ``(chromosome, m_c, QS_-c)``.

    The per-chromosome arrays are written into the ``.npz`` one at a time (the cache of
    22 chromosomes is 22 n x n matrices: never all in memory). Returns the chromosomes.
    """
    (Q0, _), S0 = QS
    iid_arr = np.asarray([str(i) for i in iid], dtype=str)
    chroms: list[str] = []
    counts: list[int] = []

    def extra(zf: zipfile.ZipFile) -> None:
        for k, (chrom, m_c, ((Qc, _), Sc)) in enumerate(loco):
            _zip_array(zf, f"{_LOCO_PREFIX}Q0.{k}", np.asarray(Qc, dtype=np.float64))
            _zip_array(zf, f"{_LOCO_PREFIX}S0.{k}", np.asarray(Sc, dtype=np.float64).ravel())
            chroms.append(str(chrom))
            counts.append(int(m_c))
        _zip_array(zf, "loco_chroms", np.asarray(chroms, dtype=str))
        _zip_array(zf, "loco_counts", np.asarray(counts, dtype=np.int64))

    _write(Path(path), {"Q0": np.asarray(Q0, dtype=np.float64),
                        "S0": np.asarray(S0, dtype=np.float64).ravel()},
           fid, iid_arr, fingerprint, extra)
    return chroms


def _zip_array(zf: zipfile.ZipFile, name: str, arr: Any) -> None:
    with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
        np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def loco_chromosomes(path: str | os.PathLike[str]) -> dict[str, int] | None:
    """``{chromosome: m_c}`` of a LOCO cache (None for a cache without LOCO kinships)."""
    data = _read(Path(path))
    if "loco_chroms" not in data:
        return None
    return {str(c): int(m) for c, m in zip(data["loco_chroms"], data["loco_counts"],
                                           strict=True)}


def load_loco_chromosome(path: str | os.PathLike[str], chrom: str) -> QSType:
    """The decomposition of ``K_-chrom`` stored in a LOCO cache (its samples and
    fingerprint checked by :func:`load_kinship_cache` before)."""
    chroms = loco_chromosomes(path)
    if chroms is None or str(chrom) not in chroms:
        raise InputError(f"{path}: holds no kinship leaving chromosome {chrom} out - "
                         "rebuild it with `glimix kinship --loco`")
    k = list(chroms).index(str(chrom))
    with np.load(path, allow_pickle=False) as z:
        Q0 = z[f"{_LOCO_PREFIX}Q0.{k}"]
        S0 = z[f"{_LOCO_PREFIX}S0.{k}"]
    return (Q0, np.empty((Q0.shape[0], 0))), S0


def save_sparse_kinship_cache(path: str | os.PathLike[str], K: Any, fid: ArrayLike | None,
                              iid: ArrayLike, fingerprint: dict[str, Any],
                              info: dict[str, Any]) -> None:
    """Write a sparse kinship (``scipy.sparse``, n x n, symmetric) and its sample keys to
    ``path`` atomically; ``info`` (JSON-serialisable) describes how it was built."""
    from scipy import sparse

    iid_arr = np.asarray([str(i) for i in iid], dtype=str)
    if K.shape != (iid_arr.size, iid_arr.size):
        raise ValueError(f"K of shape {K.shape} does not match {iid_arr.size} samples")
    U = sparse.triu(K, 0).tocoo()
    _write(Path(path), {"kind": np.array("sparse"), "row": U.row.astype(np.int64),
                        "col": U.col.astype(np.int64), "val": U.data.astype(np.float64),
                        "info": np.array([json.dumps(info, sort_keys=True)])},
           fid, iid_arr, fingerprint)


def cache_kind(path: str | os.PathLike[str]) -> str:
    """``dense`` or ``sparse``: what a kinship cache holds (InputError when unreadable)."""
    return str(_read(Path(path)).get("kind", "dense"))


def load_kinship_cache(
    path: str | os.PathLike[str],
    fingerprint_expected: dict[str, Any] | None,
    fid: ArrayLike | None,
    iid: ArrayLike,
) -> QSType:
    """Load a cached ``QS`` if it was built for these samples and inputs.

    Parameters
    ----------
    path : str or Path
    fingerprint_expected : dict or None
        From :func:`bfile_fingerprint`; None skips the check (e.g. a cache given
        explicitly by the user).
    fid : array_like of str, shape (n,), or None
    iid : array_like of str, shape (n,)
        The analysed samples, in the order the model uses.

    Returns
    -------
    QS : ((Q0, Q1), S0)
        ``Q1`` has zero columns.

    Raises
    ------
    InputError
        Unreadable file, other samples (or order), or a different fingerprint; the message
        says what differs and how to rebuild.
    """
    data = _load_checked(Path(path), fingerprint_expected, fid, iid, "dense")
    Q0 = data["Q0"]
    return (Q0, np.empty((Q0.shape[0], 0))), data["S0"]


def load_sparse_kinship_cache(path: str | os.PathLike[str],
                              fingerprint_expected: dict[str, Any] | None, fid: ArrayLike | None,
                              iid: ArrayLike) -> tuple[Any, dict[str, Any]]:
    """A sparse kinship cache (CSR, n x n) checked like :func:`load_kinship_cache`, and its
    build ``info``."""
    from scipy import sparse

    data = _load_checked(Path(path), fingerprint_expected, fid, iid, "sparse")
    n = int(data["n"])
    U = sparse.coo_matrix((data["val"], (data["row"], data["col"])), shape=(n, n)).tocsr()
    off = sparse.triu(U, 1)
    return (U + off.T).tocsr(), json.loads(str(data["info"][0]))


def read_sparse_part(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A sparse cache as stored, unchecked (for ``glimix kinship --merge-parts``): ``K``
    (CSR, symmetric), ``fid`` (or None), ``iid``, ``fingerprint`` and ``info``."""
    from scipy import sparse

    path = Path(path)
    data = _read(path)
    if str(data.get("kind", "dense")) != "sparse":
        raise InputError(f"{path}: not a sparse kinship part - give the files written by "
                         "`glimix kinship --sparse-cutoff X --part I/N`")
    n = int(data["n"])
    U = sparse.coo_matrix((data["val"], (data["row"], data["col"])), shape=(n, n)).tocsr()
    return {"K": (U + sparse.triu(U, 1).T).tocsr(),
            "fid": data["fid"].tolist() if bool(data["has_fid"]) else None,
            "iid": data["iid"].tolist(),
            "fingerprint": json.loads(str(data["fingerprint"][0])),
            "info": json.loads(str(data["info"][0]))}


def _read(path: Path) -> dict[str, Any]:
    """The arrays of a cache, except the per-chromosome decompositions of a LOCO cache
    (read one at a time by :func:`load_loco_chromosome`)."""
    if not path.is_file():
        raise InputError(f"{path}: kinship cache not found - {_REBUILD}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files if not k.startswith(_LOCO_PREFIX)}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(
            f"{path}: not a glimix kinship cache ({' '.join(str(exc).split())}) - {_REBUILD}"
        ) from None


def _load_checked(path: Path, fingerprint_expected: dict[str, Any] | None,
                  fid: ArrayLike | None, iid: ArrayLike, kind: str) -> dict[str, Any]:
    data = _read(path)
    stored_kind = str(data.get("kind", "dense"))
    if stored_kind != kind:
        raise InputError(f"{path}: holds a {stored_kind} kinship, a {kind} one was expected - "
                         f"{_REBUILD}")
    arrays = ("row", "col", "val", "info") if kind == "sparse" else ("Q0", "S0")
    required = {"format_version", *arrays, "n", "has_fid", "fid", "iid", "fingerprint"}
    lacking = sorted(required - set(data))
    if lacking:
        raise InputError(
            f"{path}: not a glimix kinship cache (missing {', '.join(lacking)}) - {_REBUILD}"
        )
    if int(data["format_version"]) != FORMAT_VERSION:
        raise InputError(
            f"{path}: kinship cache format {int(data['format_version'])}, this glimix reads "
            f"format {FORMAT_VERSION} - {_REBUILD}"
        )
    want_iid = np.asarray([str(i) for i in iid], dtype=str)
    want = _key_strings(None if fid is None else [str(f) for f in fid], want_iid)
    stored = _key_strings(
        data["fid"].tolist() if bool(data["has_fid"]) else None, data["iid"]
    )
    if stored != want:
        if len(stored) != len(want):
            what = f"built for {len(stored)} samples, this run analyses {len(want)}"
        elif set(stored) == set(want):
            what = "same samples in a different order"
        else:
            pos = next(i for i, (a, b) in enumerate(zip(stored, want, strict=True)) if a != b)
            what = f"sample {pos + 1} is {stored[pos]} in the cache, {want[pos]} in this run"
        raise InputError(f"{path}: kinship cache does not match the samples ({what}) - {_REBUILD}")
    if fingerprint_expected is not None:
        got = json.loads(str(data["fingerprint"][0]))
        exp = _normalise(fingerprint_expected)
        diffs = _diff(got, exp)
        if diffs:
            shown = "; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else "")
            raise InputError(
                f"{path}: kinship cache was built from other inputs ({shown}) - {_REBUILD}"
            )
    return data


def _key_strings(fid: list[str] | None, iid: Any) -> list[str]:
    if fid is None:
        return [str(i) for i in iid]
    return [f"{f}:{i}" for f, i in zip(fid, iid, strict=True)]


def _diff(got: Any, exp: Any, prefix: str = "") -> list[str]:
    if isinstance(got, dict) and isinstance(exp, dict):
        out: list[str] = []
        for key in sorted(set(got) | set(exp)):
            name = f"{prefix}{key}"
            if key not in got:
                out.append(f"{name} not in cache")
            elif key not in exp:
                out.append(f"{name} only in cache")
            else:
                out += _diff(got[key], exp[key], f"{name}.")
        return out
    if got != exp:
        return [f"{prefix.rstrip('.')}: cache {got!r}, now {exp!r}"]
    return []
