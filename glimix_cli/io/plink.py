"""Read PLINK 1 binary genotypes (.bed/.bim/.fam) block by block.

Allele convention
-----------------
glimix counts the **first** .bim allele (column 5, PLINK's "A1"). ``Bfile.variants["a1"]`` is
that counted (effect) allele and ``a2`` (column 6) the other one. A dosage of 2 means
homozygous for ``a1`` (.bed code 00); pinned by a test on hand-written bytes.

The .bim and .fam files are parsed here with pandas; the .bed is decoded here too, by a
256-entry lookup table from each byte to its four samples' dosages (numpy only): 4.8 ns per
genotype against 9.8 for pandas-plink's C kernel plus the float64 copy it needs
(benchmarks/bench_readers.py), and no pandas-plink import (0.5-1 s) in every run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from glimix_cli.errors import InputError

__all__ = [
    "BED_MAGIC",
    "Bfile",
    "block_size_for_budget",
    "iter_blocks",
    "open_bfile",
]

#: First three bytes of a variant-major PLINK 1 .bed file.
BED_MAGIC = bytes([0x6C, 0x1B, 0x01])

_BIM_COLUMNS = ["chrom", "variant_id", "cm", "pos", "a1", "a2"]
_FAM_COLUMNS = ["fid", "iid", "father", "mother", "sex", "pheno"]

#: Index gaps up to this many variants are decoded and discarded rather than split into
#: separate reads in :func:`iter_blocks`.
_MAX_GAP = 16


@dataclass(frozen=True, eq=False)
class Bfile:
    """An opened PLINK 1 fileset: parsed .bim/.fam, and a reader for .bed blocks.

    Attributes
    ----------
    bed, bim, fam : Path
        The three files.
    variants : DataFrame, shape (n_variants, 6)
        Columns ``chrom`` (str), ``variant_id`` (str), ``cm`` (float64), ``pos`` (int64),
        ``a1`` (str, .bim column 5, the counted / effect allele), ``a2`` (str, column 6).
    samples : DataFrame, shape (n_samples, 6)
        Columns ``fid``, ``iid``, ``father``, ``mother``, ``sex``, ``pheno``, all str.
    """

    bed: Path
    bim: Path
    fam: Path
    variants: pd.DataFrame
    samples: pd.DataFrame

    @property
    def n_samples(self) -> int:
        """Number of samples (rows of the .fam)."""
        return len(self.samples)

    @property
    def n_variants(self) -> int:
        """Number of variants (rows of the .bim)."""
        return len(self.variants)

    def read(
        self, start: int, stop: int, sample_index: ArrayLike | None = None
    ) -> NDArray[np.float64]:
        """Decode the contiguous variants ``start:stop``.

        Parameters
        ----------
        start, stop : int
            Variant range, ``0 <= start <= stop <= n_variants`` (.bim order).
        sample_index : array_like of int, shape (n_selected,), optional
            Rows of the .fam to return, in this order. All samples when None.

        Returns
        -------
        G : ndarray of float64, shape (n_selected, stop - start), Fortran order
            Dosage of allele ``a1`` (0, 1, 2); NaN for a missing call.
        """
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.n_variants:
            raise IndexError(
                f"{self.bed.name}: variant range {start}:{stop} outside 0:{self.n_variants}"
            )
        idx = _check_sample_index(sample_index, self.n_samples)
        n_out = self.n_samples if idx is None else len(idx)
        if stop == start or n_out == 0:
            return np.empty((n_out, stop - start), dtype=np.float64, order="F")
        return _decode(self.bed, self.n_samples, start, stop, idx).T


def open_bfile(path: str | os.PathLike[str]) -> Bfile:
    """Open a PLINK 1 binary fileset and check that its three files agree.

    Parameters
    ----------
    path : str or Path
        A prefix (``data/cohort``) or any one of ``cohort.bed``, ``cohort.bim``,
        ``cohort.fam``.

    Returns
    -------
    Bfile

    Raises
    ------
    InputError
        A file is missing, the .bim does not have 6 columns, the .fam has fewer than 6,
        the .bed has wrong magic bytes or a size that does not match .bim x .fam.

    Notes
    -----
    A .fam with more than 6 columns (GEMMA stores phenotypes there) is accepted; only the
    first 6 are read.
    """
    text = os.fspath(path)
    prefix = text[:-4] if text.lower().endswith((".bed", ".bim", ".fam")) else text
    bed, bim, fam = (Path(prefix + ext) for ext in (".bed", ".bim", ".fam"))
    missing = [p.name for p in (bed, bim, fam) if not p.is_file()]
    if missing:
        raise InputError(
            f"{prefix}: PLINK file(s) not found: {', '.join(missing)} - pass the prefix "
            f"shared by .bed/.bim/.fam (e.g. --bfile data/cohort)"
        )
    variants = _read_bim(bim)
    samples = _read_fam(fam)
    _check_bed(bed, len(variants), len(samples))
    return Bfile(bed=bed, bim=bim, fam=fam, variants=variants, samples=samples)


def iter_blocks(
    bfile: Bfile,
    variant_indices: ArrayLike,
    block_size: int,
    sample_index: ArrayLike | None = None,
) -> Iterator[tuple[NDArray[np.intp], NDArray[np.float64]]]:
    """Stream genotype blocks for an arbitrary list of variants.

    Parameters
    ----------
    bfile : Bfile
    variant_indices : array_like of int, shape (m,)
        Variants (.bim rows) in the order wanted; need not be sorted or unique.
    block_size : int
        Variants per yielded block (the last one may be smaller).
    sample_index : array_like of int, optional
        Rows of the .fam to return, as in :meth:`Bfile.read`.

    Yields
    ------
    indices : ndarray of intp, shape (b,)
        The next ``b <= block_size`` entries of ``variant_indices``.
    block : ndarray of float64, shape (n_selected, b), Fortran order
        A1 dosages with NaN for missing, columns in the order of ``indices``.

    Notes
    -----
    Each block is read as a few contiguous .bed spans (gaps of up to 16 variants are decoded
    and dropped), so memory stays at O(n_samples * block_size).
    """
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1; got {block_size}")
    block_size = int(block_size)
    vidx = np.asarray(variant_indices, dtype=np.intp).ravel()
    if vidx.size and (vidx.min() < 0 or vidx.max() >= bfile.n_variants):
        raise IndexError(
            f"{bfile.bim.name}: variant indices must lie in 0:{bfile.n_variants}; "
            f"got range {vidx.min()}..{vidx.max()}"
        )
    sidx = _check_sample_index(sample_index, bfile.n_samples)
    n_out = bfile.n_samples if sidx is None else len(sidx)
    for lo in range(0, vidx.size, block_size):
        chunk = vidx[lo : lo + block_size]
        if chunk.size and chunk[-1] - chunk[0] == chunk.size - 1 and np.all(np.diff(chunk) == 1):
            # a contiguous run in order (the usual scan block): the read is the block
            yield chunk, bfile.read(int(chunk[0]), int(chunk[-1]) + 1, sidx)
            continue
        out = np.empty((n_out, chunk.size), dtype=np.float64, order="F")
        uniq = np.unique(chunk)
        # split the sorted unique indices into spans separated by gaps > _MAX_GAP
        breaks = np.flatnonzero(np.diff(uniq) > _MAX_GAP + 1) + 1
        for span in np.split(uniq, breaks):
            start, stop = int(span[0]), int(span[-1]) + 1
            G = bfile.read(start, stop, sidx)
            sel = (chunk >= start) & (chunk < stop)
            out[:, sel] = G[:, chunk[sel] - start]
        yield chunk, out


def block_size_for_budget(n_samples: int, memory_mb: float = 256) -> int:
    """Number of variants per block that fits a memory budget.

    Parameters
    ----------
    n_samples : int
        Samples in each block (rows).
    memory_mb : float
        Budget in MiB for one block and its working copies.

    Returns
    -------
    int
        ``max(1, floor(memory_mb * 2**20 / (32 * n_samples)))``.

    Notes
    -----
    32 bytes per genotype covers the float32 decode buffer (4), the float64 block (8) and
    two float64 working copies made downstream (standardising, residualising).

    Examples
    --------
    >>> block_size_for_budget(10_000, memory_mb=256)
    838
    >>> block_size_for_budget(10**9, memory_mb=1)
    1
    """
    if n_samples < 0 or memory_mb <= 0:
        raise ValueError("n_samples must be >= 0 and memory_mb > 0")
    return max(1, int(memory_mb * 2**20 // (32 * max(int(n_samples), 1))))


# --------------------------------------------------------------------------------------
# parsing


def _read_table_nohdr(path: Path, kind: str) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path, sep=r"\s+", header=None, dtype=str, na_filter=False, comment=None
        )
    except pd.errors.EmptyDataError:
        raise InputError(
            f"{path}: empty {kind} file - a PLINK fileset needs at least one "
            f"{'variant' if kind == '.bim' else 'sample'}"
        ) from None
    except pd.errors.ParserError as exc:
        raise InputError(
            f"{path}: {kind} rows have different numbers of columns ({_one_line(exc)}) "
            f"- every row needs the same fields"
        ) from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _read_bim(path: Path) -> pd.DataFrame:
    df = _read_table_nohdr(path, ".bim")
    _check_no_blank(df, path, ".bim")
    if df.shape[1] != 6:
        raise InputError(
            f"{path}: .bim must have 6 columns (chrom, id, cM, bp, A1, A2); found "
            f"{df.shape[1]} - is this a PLINK 2 .pvar or a file with a header?"
        )
    df.columns = _BIM_COLUMNS
    out = pd.DataFrame(
        {
            "chrom": df["chrom"].astype(str),
            "variant_id": df["variant_id"].astype(str),
            "cm": _to_number(df["cm"], path, "cM (column 3)", float),
            "pos": _to_number(df["pos"], path, "bp position (column 4)", np.int64),
            "a1": df["a1"].astype(str),
            "a2": df["a2"].astype(str),
        }
    )
    return out


def _read_fam(path: Path) -> pd.DataFrame:
    df = _read_table_nohdr(path, ".fam")
    _check_no_blank(df, path, ".fam")
    if df.shape[1] < 6:
        raise InputError(
            f"{path}: .fam must have at least 6 columns (FID, IID, father, mother, sex, "
            f"phenotype); found {df.shape[1]} - check the file is a PLINK 1 .fam"
        )
    df = df.iloc[:, :6].copy()
    df.columns = _FAM_COLUMNS
    return df.astype(str).reset_index(drop=True)


def _check_no_blank(df: pd.DataFrame, path: Path, kind: str) -> None:
    # a short line leaves its last fields empty: the last column shows every such line
    last = df.iloc[:, -1]
    blank = ((last == "") | last.isna()).to_frame()
    if blank.to_numpy().any():
        row = int(np.flatnonzero(blank.to_numpy().any(axis=1))[0])
        raise InputError(
            f"{path}: line {row + 1} has fewer fields than the others - every {kind} row "
            f"needs the same number of columns"
        )


def _to_number(col: pd.Series, path: Path, what: str, dtype: type) -> pd.Series:
    try:  # the usual file: plain numbers, converted by numpy (3x faster than to_numeric)
        fast = col.to_numpy(dtype=object).astype(dtype)
        if dtype is np.int64 or np.isfinite(fast).all():
            return pd.Series(fast, index=col.index)
    except (ValueError, TypeError, OverflowError):
        pass  # below: the same rule, with the offending values named
    values = pd.to_numeric(col, errors="coerce")
    bad = values.isna()
    if dtype is np.int64 and not bad.any():
        bad = values != np.round(values)
    if bad.any():
        examples = ", ".join(repr(v) for v in pd.unique(col[bad])[:3])
        raise InputError(
            f"{path}: {what} must be {'an integer' if dtype is np.int64 else 'a number'}; "
            f"found {examples} - check the file is a PLINK 1 .bim"
        )
    return values.astype(dtype)


def _check_bed(path: Path, n_variants: int, n_samples: int) -> None:
    with open(path, "rb") as fh:
        magic = fh.read(3)
    if magic != BED_MAGIC:
        found = " ".join(f"0x{b:02x}" for b in magic) or "nothing"
        hint = (
            "this is a sample-major .bed (very old PLINK); re-export with plink --make-bed"
            if magic[:2] == BED_MAGIC[:2]
            else "this is not a PLINK 1 .bed file"
        )
        raise InputError(
            f"{path}: .bed must start with magic bytes 0x6c 0x1b 0x01 (variant-major); "
            f"found {found} - {hint}"
        )
    expected = 3 + n_variants * ((n_samples + 3) // 4)
    size = path.stat().st_size
    if size != expected:
        raise InputError(
            f"{path}: .bed has {size} bytes, expected {expected} = 3 + {n_variants} variants "
            f"x ceil({n_samples} samples / 4) - the .bed does not match its .bim/.fam "
            f"(truncated or from another fileset)"
        )


def _check_sample_index(sample_index: ArrayLike | None, n: int) -> NDArray[np.intp] | None:
    if sample_index is None:
        return None
    idx = np.asarray(sample_index, dtype=np.intp).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"sample_index must lie in 0:{n}; got range {idx.min()}..{idx.max()}")
    return idx


# --------------------------------------------------------------------------------------
# decoding


#: .bed 2-bit codes -> dosage of the first .bim allele: 00 hom A1, 01 missing, 10 het, 11 hom A2
_CODES = np.array([2.0, np.nan, 1.0, 0.0])
#: every byte -> its four samples' dosages (sample 4k+j in bits 2j, 2j+1), shape (256, 4)
_BYTE_LUT = _CODES[(np.arange(256)[:, None] >> (2 * np.arange(4))) & 3]


def _decode(bed: Path, n_samples: int, start: int, stop: int,
            sample_index: NDArray[np.intp] | None) -> NDArray[np.float64]:
    """A1 dosages of variants ``start:stop``, shape (stop - start, n_selected), C order
    (so its transpose is the Fortran-ordered block the scan wants, without a copy)."""
    nb = (n_samples + 3) // 4
    with open(bed, "rb") as fh:
        fh.seek(3 + start * nb)
        raw = np.fromfile(fh, dtype=np.uint8, count=(stop - start) * nb)
    raw = raw.reshape(stop - start, nb)
    if sample_index is not None:  # gather each sample's byte, then its 2 bits
        codes = np.take(raw, sample_index // 4, axis=1)
        codes >>= (2 * (sample_index % 4)).astype(np.uint8)
        codes &= 3
        return _CODES[codes]
    G = _BYTE_LUT[raw].reshape(stop - start, 4 * nb)
    if 4 * nb != n_samples:  # drop the padding of the last byte
        return np.ascontiguousarray(G[:, :n_samples])
    return G
