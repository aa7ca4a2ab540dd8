"""Read PLINK 2 genotypes (.pgen/.pvar/.psam) as ALT dosages, block by block.

Decoding is plink2's own ``pgenlib`` (PyPI, optional: ``pip install 'glimix-cli[pgen]'``):
stored dosages where the file has them, hard calls otherwise. The ``.pvar`` (or a
zstd-compressed ``.pvar.zst``, read with ``zstandard``) and ``.psam`` are parsed here.

Allele convention
-----------------
**ALT** is counted, as plink2 ``--glm`` does: ``variants["a1"]`` is ALT (``effect_allele``)
and ``a2`` REF. (For a .pgen made from a .bed, ALT is the .bim's column 5, the allele glimix
counts in a .bed too, so the two runs agree.) Records with several ALT alleles are kept in
the variant table (``multiallelic`` True) and decoded as NaN columns, never read.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from glimix_cli.errors import GlimixError, InputError

__all__ = ["Pgen", "open_pgen", "require_pgen"]


def require_pgen() -> None:
    """Raise a one-line :class:`GlimixError` when the optional ``pgenlib`` is missing."""
    try:
        import pgenlib  # noqa: F401
    except ImportError:
        raise GlimixError("--pgen needs plink2's reader: pip install 'glimix-cli[pgen]'") \
            from None


@dataclass(eq=False)
class Pgen:
    """An opened PLINK 2 fileset. Attribute names follow :class:`~glimix_cli.io.plink.Bfile`
    (``bed`` the .pgen, ``bim`` the .pvar, ``fam`` the .psam); ``variants`` and ``samples``
    have its columns, with ``a1`` = ALT (counted), ``a2`` = REF, and ``multiallelic``."""

    bed: Path
    bim: Path
    fam: Path
    variants: pd.DataFrame
    samples: pd.DataFrame
    kind: str = "pgen"
    _reader: Any = field(default=None, repr=False)

    @property
    def n_samples(self) -> int:
        return len(self.samples)

    @property
    def n_variants(self) -> int:
        return len(self.variants)

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_reader"] = None  # re-opened where it lands
        d.pop("_lock", None)
        return d

    def _locked(self) -> threading.Lock:
        """One reader per object, not thread-safe: a Dask worker's threads share it."""
        lock = self.__dict__.get("_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_lock", threading.Lock())
        return lock

    def _open(self) -> Any:
        if self._reader is None:
            self._reader = _pgen_reader(self.bed, self.n_samples, self.variants)
        return self._reader

    def read(self, start: int, stop: int, sample_index: ArrayLike | None = None
             ) -> NDArray[np.float64]:
        """ALT dosages of variants ``start:stop``, shape (n_selected, stop - start),
        Fortran order; NaN for a missing call and for multi-allelic records."""
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.n_variants:
            raise IndexError(f"{self.bed.name}: variant range {start}:{stop} outside "
                             f"0:{self.n_variants}")
        idx = None if sample_index is None else np.asarray(sample_index, dtype=np.intp)
        buf = np.empty((stop - start, self.n_samples), dtype=np.float64)
        if stop > start:
            try:
                with self._locked():
                    self._open().read_dosages_range(start, stop, buf)
            except RuntimeError as exc:
                raise InputError(f"{self.bed}: variants {start + 1}-{stop} cannot be decoded "
                                 f"({' '.join(str(exc).split())}) - the file is damaged or "
                                 "truncated; re-create it with plink2 --make-pgen") from None
        buf[buf < 0] = np.nan  # pgenlib writes -9 for a missing dosage
        multi = self.variants["multiallelic"].to_numpy()[start:stop]
        if multi.any():
            buf[multi] = np.nan
        if idx is not None:
            buf = np.take(buf, idx, axis=1)
        return buf.T


def _pgen_reader(path: Path, n_samples: int, variants: pd.DataFrame) -> Any:
    import pgenlib

    counts = variants["n_alleles"].to_numpy()
    kw: dict[str, Any] = {"raw_sample_ct": n_samples}
    if (counts != 2).any():
        offsets = np.zeros(counts.size + 1, dtype=np.uintp)
        np.cumsum(counts, out=offsets[1:])
        kw["allele_idx_offsets"] = offsets
    try:
        return pgenlib.PgenReader(os.fsencode(path), **kw)
    except RuntimeError as exc:
        raise InputError(f"{path}: not a readable .pgen ({' '.join(str(exc).split())}) - "
                         "re-create it with plink2 --make-pgen") from None


def open_pgen(prefix: str | os.PathLike[str]) -> Pgen:
    """Open ``PREFIX.pgen`` with its ``.pvar`` (or ``.pvar.zst``) and ``.psam``, and check
    that the three agree (variant and sample counts) before anything is decoded."""
    require_pgen()
    text = os.fspath(prefix)
    for ext in (".pgen", ".pvar", ".psam", ".pvar.zst"):
        if text.endswith(ext):
            text = text[: -len(ext)]
    pgen, psam = Path(text + ".pgen"), Path(text + ".psam")
    pvar = Path(text + ".pvar")
    if not pvar.is_file() and Path(text + ".pvar.zst").is_file():
        pvar = Path(text + ".pvar.zst")
    missing = [p.name for p in (pgen, pvar, psam) if not p.is_file()]
    if missing:
        raise InputError(f"{text}: PLINK 2 file(s) not found: {', '.join(missing)} - pass the "
                         "prefix shared by .pgen/.pvar/.psam (e.g. --pgen data/imputed)")
    variants = read_pvar(pvar)
    samples = read_psam(psam)
    reader = _pgen_reader(pgen, len(samples), variants)
    n_var, n_sam = int(reader.get_variant_ct()), int(reader.get_raw_sample_ct())
    if n_var != len(variants):
        raise InputError(f"{pvar}: {len(variants):,} variants, but {pgen.name} holds "
                         f"{n_var:,} - the .pvar does not match the .pgen (a line missing or "
                         "added?); use the .pvar written with this .pgen")
    if n_sam != len(samples):
        raise InputError(f"{psam}: {len(samples):,} samples, but {pgen.name} holds {n_sam:,} "
                         "- use the .psam written with this .pgen")
    return Pgen(bed=pgen, bim=pvar, fam=psam, variants=variants, samples=samples,
                _reader=reader)


def _text(path: Path) -> str:
    raw = path.read_bytes()
    if path.name.endswith(".zst"):
        try:
            import zstandard
        except ImportError:
            raise GlimixError(f"{path}: a zstd-compressed .pvar needs zstandard: pip install "
                              "'glimix-cli[pgen]'") from None
        try:
            raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
        except zstandard.ZstdError as exc:
            raise InputError(f"{path}: not a valid zstd file ({exc}) - re-create it with "
                             "plink2") from None
    return raw.decode("utf-8", errors="replace")


def _header_table(path: Path, required: tuple[str, ...], what: str,
                  fallback: list[str]) -> pd.DataFrame:
    """A plink2 text table: ``##`` lines skipped, the ``#`` line names the columns (without
    one, the PLINK 1 layout ``fallback``)."""
    lines = _text(path).splitlines()
    k = 0
    while k < len(lines) and lines[k].startswith("##"):
        k += 1
    if k < len(lines) and lines[k].startswith("#"):
        names, first = lines[k][1:].split(), k + 1
    else:
        names, first = fallback, k
    rows = [b.split() for b in lines[first:]]
    bad = [i for i, r in enumerate(rows) if len(r) != len(names)]
    if bad:
        i = bad[0]
        raise InputError(f"{path}: line {first + 1 + i} has "
                         f"{len(rows[i])} fields, the header {len(names)} - every {what} line "
                         "needs the same columns")
    df = pd.DataFrame(rows, columns=names, dtype=str)
    absent = [c for c in required if c not in df.columns]
    if absent:
        raise InputError(f"{path}: no {', '.join(absent)} column (found {' '.join(names)}) - "
                         f"not a plink2 {what}")
    return df


def read_pvar(path: Path) -> pd.DataFrame:
    """The variant table of a .pvar: chrom, variant_id, cm, pos, a1 (ALT), a2 (REF),
    multiallelic, n_alleles."""
    df = _header_table(path, ("CHROM", "POS", "ID", "REF", "ALT"), ".pvar",
                       ["CHROM", "ID", "CM", "POS", "ALT", "REF"])
    if df.empty:
        raise InputError(f"{path}: no variant - a .pvar lists at least one")
    pos = pd.to_numeric(df["POS"], errors="coerce")
    if pos.isna().any():
        raise InputError(f"{path}: POS must be an integer; found "
                         f"{df['POS'][pos.isna()].iat[0]!r} - check the file is a .pvar")
    alt = df["ALT"].astype(str)
    n_alt = alt.str.count(",") + 1
    cm = pd.to_numeric(df["CM"], errors="coerce").fillna(0.0) if "CM" in df else 0.0
    return pd.DataFrame({
        "chrom": df["CHROM"].astype(str), "variant_id": df["ID"].astype(str),
        "cm": np.broadcast_to(np.asarray(cm, dtype=float), (len(df),)).copy(),
        "pos": pos.astype(np.int64), "a1": alt, "a2": df["REF"].astype(str),
        "multiallelic": (n_alt > 1).to_numpy(), "n_alleles": (n_alt + 1).to_numpy(np.uint32),
    })


def read_psam(path: Path) -> pd.DataFrame:
    """The samples of a .psam (``#FID IID ...`` or ``#IID ...``; no header: a .fam) as
    .fam-like columns; FID "0" where the file has none (as plink2 writes the .fam)."""
    df = _header_table(path, ("IID",), ".psam",
                       ["FID", "IID", "PAT", "MAT", "SEX", "PHENO1"])
    if df.empty:
        raise InputError(f"{path}: no sample - a .psam lists at least one")
    n = len(df)

    def col(name: str, default: str) -> NDArray:
        return (df[name].to_numpy(dtype=object) if name in df
                else np.full(n, default, dtype=object))

    sex = col("SEX", "0")
    return pd.DataFrame({"fid": col("FID", "0"), "iid": col("IID", ""),
                         "father": col("PAT", "0"), "mother": col("MAT", "0"),
                         "sex": np.where(np.isin(sex, ["1", "2"]), sex, "0"),
                         "pheno": "-9"}).astype(str)
