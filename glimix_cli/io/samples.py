"""Match samples across genotypes, phenotype, covariates and kinship.

Samples are keyed by (FID, IID). A table without an FID column is matched on IID alone,
which requires the IIDs of the .fam to be unique. Every drop is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glimix_cli.errors import InputError, SampleMatchError

__all__ = ["SampleMatch", "match_samples", "read_sample_list", "sample_keys", "select_samples"]


@dataclass(frozen=True, eq=False)
class SampleMatch:
    """Result of :func:`match_samples`: the analysed samples, in .fam order.

    Attributes
    ----------
    geno_index : ndarray of intp, shape (n,)
        Rows of the .fam (increasing).
    trait_index : ndarray of intp, shape (n,)
        Rows of the trait table for the same samples.
    cov_index : ndarray of intp, shape (n,), or None
        Rows of the covariate table (None without covariates).
    kinship_index : ndarray of intp, shape (n,), or None
        Positions in the kinship IDs (None without kinship IDs).
    fid, iid : ndarray of object (str), shape (n,)
        Keys of the analysed samples (from the .fam).
    counts : dict of str to int
        Samples remaining after each step, in order: ``in genotypes``, ``with phenotype``,
        ``phenotype non-missing``, ``with covariates`` (only when covariates are given;
        complete rows), ``with kinship`` (only when kinship IDs are given), ``final``.
    """

    geno_index: NDArray[np.intp]
    trait_index: NDArray[np.intp]
    cov_index: NDArray[np.intp] | None
    kinship_index: NDArray[np.intp] | None
    fid: NDArray
    iid: NDArray
    counts: dict[str, int]

    @property
    def n(self) -> int:
        """Number of analysed samples."""
        return int(self.geno_index.size)


def sample_keys(obj: Any) -> tuple[NDArray | None, NDArray]:
    """Return ``(fid or None, iid)`` arrays of object (str) from a keyed source.

    Parameters
    ----------
    obj : DataFrame with ``iid`` (and optionally ``fid``) columns, an object with ``fid``
        and ``iid`` attributes, a ``(fid, iid)`` tuple, or a sequence of IIDs.
    """
    if isinstance(obj, pd.DataFrame):
        fid = obj["fid"].to_numpy(dtype=object) if "fid" in obj.columns else None
        iid = obj["iid"].to_numpy(dtype=object)
    elif hasattr(obj, "iid"):
        fid, iid = getattr(obj, "fid", None), obj.iid
    elif isinstance(obj, tuple) and len(obj) == 2:
        fid, iid = obj
    else:
        fid, iid = None, obj
    iid = np.array([str(i) for i in iid], dtype=object)
    if fid is not None:
        fid_arr = np.asarray(fid, dtype=object)
        if fid_arr.size and all(f is None or (isinstance(f, float) and np.isnan(f))
                                for f in fid_arr):
            fid = None
        else:
            fid = np.array([str(f) for f in fid_arr], dtype=object)
            if fid.shape != iid.shape:
                raise ValueError("fid and iid must have the same length")
    return fid, iid


def _key_list(fid: NDArray | None, iid: NDArray) -> list:
    if fid is None:
        return list(iid)
    return list(zip(fid, iid, strict=True))


def _fmt(key: object) -> str:
    return ":".join(key) if isinstance(key, tuple) else str(key)


def _index_of(keys: Sequence, source: str, key_name: str) -> dict:
    lookup: dict = {}
    dups: list = []
    for i, k in enumerate(keys):
        if k in lookup:
            dups.append(k)
        lookup[k] = i
    if dups:
        shown = list(dict.fromkeys(dups))
        raise SampleMatchError(
            f"{source}: {len(shown)} duplicated sample key(s) ({key_name}), e.g. "
            f"{', '.join(_fmt(k) for k in shown[:3])} - each sample must appear once"
        )
    return lookup


def read_sample_list(path: Any, option: str) -> tuple[NDArray | None, NDArray]:
    """Sample IDs of a plink2 ``--keep``/``--remove`` file: ``(fid or None, iid)``.

    As plink2: a header line starting ``#FID``, ``FID``, ``#IID`` or ``IID`` names the
    columns; without one, a single column is IIDs and two or more are FID and IID (further
    columns ignored). Blank lines are skipped.
    """
    from pathlib import Path

    p = Path(path)
    raw = p.read_bytes()
    if b"\0" in raw[:4096]:
        raise InputError(f"{p}: a binary file, not a list of sample IDs - {option} takes a "
                         "text file with FID IID (or IID) per line")
    rows = [line.split() for line in raw.decode("utf-8", errors="replace").splitlines()
            if line.strip()]
    if not rows:
        raise InputError(f"{p}: no sample ID in the file - {option} takes FID IID (or IID) "
                         "per line")
    head = [c.lstrip("#").upper() for c in rows[0]]
    if head[0] in ("FID", "IID"):
        if "IID" not in head:
            raise InputError(f"{p}: the header names no IID column - {option} needs one")
        j, f = head.index("IID"), head.index("FID") if "FID" in head else None
        rows = rows[1:]
    elif all(len(r) == 1 for r in rows):
        j, f = 0, None
    else:
        j, f = 1, 0
    short = [k + 1 + (1 if head[0] in ("FID", "IID") else 0) for k, r in enumerate(rows)
             if len(r) <= max(j, f or 0)]
    if short:
        raise InputError(f"{p}: line {short[0]} has too few columns - {option} takes FID IID "
                         "(or IID) per line")
    iid = np.array([r[j] for r in rows], dtype=object)
    fid = None if f is None else np.array([r[f] for r in rows], dtype=object)
    return fid, iid


def select_samples(genotype_samples_df: pd.DataFrame, keep: Any | None = None,
                   remove: Any | None = None) -> list[tuple[str, NDArray[np.bool_]]]:
    """The .fam rows ``--keep`` and ``--remove`` leave, as ``(step, mask)`` pairs for
    :func:`match_samples` (``--keep`` first, then ``--remove``, as plink2). IDs that are
    not in the .fam are ignored, as plink2 does; a list without FIDs matches on IID."""
    gfid, giid = sample_keys(genotype_samples_df)
    steps = []
    for option, path, inside in (("--keep", keep, True), ("--remove", remove, False)):
        if path is None:
            continue
        fid, iid = read_sample_list(path, option)
        if fid is None:
            if len(set(giid.tolist())) < giid.size:
                raise SampleMatchError(f"{path}: has no FID column, so samples are matched "
                                       "on IID, but IIDs repeat in the genotypes .fam - add "
                                       "the FID column")
            listed = np.isin(giid, iid)
        else:
            wanted = set(zip(fid.tolist(), iid.tolist(), strict=True))
            listed = np.array([k in wanted for k in zip(gfid.tolist(), giid.tolist(),
                                                         strict=True)], dtype=bool)
        steps.append((f"after {option}", listed if inside else ~listed))
    return steps


def _selection(n: int, selected: Sequence[tuple[str, NDArray[np.bool_]]],
               counts: dict[str, int]) -> NDArray[np.bool_]:
    """The .fam rows the ``--keep``/``--remove`` steps leave (each counted)."""
    keep = np.ones(n, dtype=bool)
    for step, mask in selected:
        keep &= mask
        counts[step] = int(keep.sum())
        if not keep.any():
            raise SampleMatchError(f"no genotyped sample is left {step} - check the IDs in "
                                   "the list against the .fam (FID IID)")
    return keep


def match_samples(
    genotype_samples_df: pd.DataFrame,
    trait: Any,
    covariates: Any | None = None,
    kinship_ids: Any | None = None,
    selected: Sequence[tuple[str, NDArray[np.bool_]]] = (),
) -> SampleMatch:
    """Find the samples present and complete in every source.

    Parameters
    ----------
    genotype_samples_df : DataFrame
        The .fam table (``Bfile.samples``), columns ``fid``, ``iid``.
    trait : Trait
        From :func:`glimix_cli.io.tables.load_trait` (needs ``fid``, ``iid``, ``y`` and
        ``observed`` or ``y`` with NaN for missing, optional ``source``).
    covariates : Covariates, optional
        From :func:`glimix_cli.io.tables.load_covariates` (needs ``fid``, ``iid``,
        ``complete`` or ``table``).
    kinship_ids : DataFrame or (fid, iid) or sequence of IIDs, optional
        Sample keys of a precomputed kinship matrix, in its row order.
    selected : sequence of (step, mask over the .fam rows)
        Sample selections applied first (:func:`select_samples`), each counted.

    Returns
    -------
    SampleMatch

    Raises
    ------
    SampleMatchError
        Duplicated keys in a source; a source without FID while .fam IIDs repeat; no
        sample in common; no sample left after dropping missing values.
    """
    gfid, giid = sample_keys(genotype_samples_df)
    if gfid is None:
        raise ValueError("genotype_samples_df needs a fid column")
    n_geno = giid.size
    counts: dict[str, int] = {"in genotypes": n_geno}
    gkeys_full = _key_list(gfid, giid)
    _index_of(gkeys_full, "genotypes (.fam)", "FID IID")
    keep = _selection(n_geno, selected, counts)

    def locate(obj: Any, source: str) -> NDArray[np.intp]:
        fid, iid = sample_keys(obj)
        if fid is None:
            seen: dict[str, str] = {}
            for f, i in zip(gfid, giid, strict=True):
                if i in seen:
                    raise SampleMatchError(
                        f"{source}: has no FID column, so samples are matched on IID, but "
                        f"IID '{i}' appears twice in the genotypes .fam (FIDs {seen[i]} and "
                        f"{f}) - add an FID column to {source}"
                    )
                seen[i] = f
        lookup = _index_of(_key_list(fid, iid), source, "IID" if fid is None else "FID IID")
        gkeys = list(giid) if fid is None else gkeys_full
        pos = np.array([lookup.get(k, -1) for k in gkeys], dtype=np.intp)
        if not (pos >= 0).any():
            other = _key_list(fid, iid)
            how = "IID" if fid is None else "FID+IID"
            raise SampleMatchError(
                f"{source}: {len(other)} samples, genotypes: {n_geno} samples, 0 in common - "
                f"IDs are matched on {how} (e.g. genotypes "
                f"{', '.join(_fmt(k) for k in gkeys[:2])}; {source} "
                f"{', '.join(_fmt(k) for k in other[:2]) or '(none)'}); check the ID columns"
                + ("" if fid is None else " and the FID column")
            )
        return pos

    tsrc = getattr(trait, "source", "") or "phenotype"
    tpos = locate(trait, tsrc)
    keep &= tpos >= 0
    counts["with phenotype"] = int(keep.sum())
    observed = getattr(trait, "observed", None)
    if observed is None:
        observed = ~np.isnan(np.asarray(trait.y, dtype=np.float64))
    observed = np.asarray(observed, dtype=bool)
    keep &= np.where(tpos >= 0, observed[np.maximum(tpos, 0)], False)
    counts["phenotype non-missing"] = int(keep.sum())

    cpos = None
    if covariates is not None:
        csrc = getattr(covariates, "source", "") or "covariates"
        cpos = locate(covariates, csrc)
        complete = getattr(covariates, "complete", None)
        if complete is None:
            complete = ~covariates.table.isna().any(axis=1).to_numpy()
        complete = np.asarray(complete, dtype=bool)
        keep &= np.where(cpos >= 0, complete[np.maximum(cpos, 0)], False)
        counts["with covariates"] = int(keep.sum())

    kpos = None
    if kinship_ids is not None:
        kpos = locate(kinship_ids, "kinship")
        keep &= kpos >= 0
        counts["with kinship"] = int(keep.sum())

    counts["final"] = int(keep.sum())
    if counts["final"] == 0:
        steps = ", ".join(f"{k}: {v}" for k, v in counts.items())
        raise SampleMatchError(
            f"no sample is complete in every input ({steps}) - check missing-value tokens "
            f"(--missing) and which samples each file covers"
        )
    gidx = np.flatnonzero(keep).astype(np.intp)
    return SampleMatch(
        geno_index=gidx,
        trait_index=tpos[gidx],
        cov_index=None if cpos is None else cpos[gidx],
        kinship_index=None if kpos is None else kpos[gidx],
        fid=gfid[gidx],
        iid=giid[gidx],
        counts=counts,
    )
