"""Read BGEN 1.1-1.3 genotypes (zlib or zstd, any bit depth) as dosages, block by block.

The decoding is the ``bgen`` package's (PyPI, optional: ``pip install 'glimix-cli[bgen]'``),
picked over ``cbgen``, ``bgen-reader`` and ``bgen-limix`` by ``benchmarks/bench_readers.py``
(benchmarks/README.md): the fastest per core, maintained, wheels for Python 3.11-3.13 and
numpy 1.x. This module parses the sample file, checks the file before any heavy work and
turns genotype probabilities into dosages.

Allele convention
-----------------
The **second** allele of each BGEN record is counted (as REGENIE and SAIGE report it):
``variants["a1"]`` is the second allele (``effect_allele`` in the results) and ``a2`` the
first. The dosage of a sample is its expected count of that allele,
``P(het) + 2 P(hom second)`` (unphased) or the sum of its two haplotypes' probabilities of
the second allele (phased). A sample whose probabilities are missing is NaN (mean-imputed
by the scan). plink2 ``--export bgen-1.2`` lists ALT *first* unless given ``ref-first``, so
a default plink2 export counts REF: ``effect_allele`` says which it is.

Records with more than two alleles are kept in the variant table (``multiallelic`` True,
``a1`` the comma-joined non-first alleles) and decoded as NaN columns, never read.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from glimix_cli.errors import GlimixError, InputError

__all__ = ["Bgen", "open_bgen", "require_bgen"]

_NUMERIC_CHROM = r"^0+(?=[0-9])"


def require_bgen() -> None:
    """Raise a one-line :class:`GlimixError` when the optional ``bgen`` reader is missing."""
    try:
        import bgen  # noqa: F401
    except ImportError:
        raise GlimixError("--bgen needs the bgen reader: pip install 'glimix-cli[bgen]'") from None


@dataclass(eq=False)
class Bgen:
    """An opened BGEN file: its variant and sample tables, and a block reader.

    The attribute names follow :class:`glimix_cli.io.plink.Bfile`, so the pipeline handles
    every genotype source alike: ``bed`` is the genotype file (the .bgen), ``bim`` where the
    variants are listed (the .bgen, or its .bgi index), ``fam`` where the samples are (the
    .sample, else the .bgen).

    Attributes
    ----------
    variants : DataFrame, shape (n_variants, 7)
        ``chrom``, ``variant_id`` (the rsid, else the BGEN variant id), ``cm`` (0),
        ``pos``, ``a1`` (the counted, second allele), ``a2`` (the first), ``multiallelic``.
    samples : DataFrame, shape (n_samples, 6)
        ``fid``, ``iid``, ``father``, ``mother``, ``sex``, ``pheno`` (str, .fam-like).
    """

    bed: Path
    bim: Path
    fam: Path
    variants: pd.DataFrame
    samples: pd.DataFrame
    kind: str = "bgen"
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
            from bgen import BgenReader

            self._reader = BgenReader(str(self.bed), delay_parsing=False)
        return self._reader

    def read(self, start: int, stop: int, sample_index: ArrayLike | None = None
             ) -> NDArray[np.float64]:
        """Dosages of the second allele of variants ``start:stop``.

        Returns
        -------
        G : ndarray of float64, shape (n_selected, stop - start), Fortran order
            Expected allele counts in [0, 2]; NaN for a missing sample and for every
            sample of a multi-allelic record.
        """
        start, stop = int(start), int(stop)
        if not 0 <= start <= stop <= self.n_variants:
            raise IndexError(f"{self.bed.name}: variant range {start}:{stop} outside "
                             f"0:{self.n_variants}")
        idx = None if sample_index is None else np.asarray(sample_index, dtype=np.intp)
        n_out = self.n_samples if idx is None else idx.size
        out = np.empty((n_out, stop - start), dtype=np.float64, order="F")
        multi = self.variants["multiallelic"].to_numpy()
        with self._locked():
            self._decode_into(out, start, stop, idx, multi)
        return out

    def _decode_into(self, out: NDArray[np.float64], start: int, stop: int,
                     idx: NDArray[np.intp] | None, multi: NDArray[np.bool_]) -> None:
        reader = self._open()
        for j, v in enumerate(range(start, stop)):
            if multi[v]:
                out[:, j] = np.nan
                continue
            try:
                var = reader[v]
                p = var.probabilities
                phased = p.shape[1] != 3 and var.is_phased  # (3 columns: unphased diploid)
            except (ValueError, IndexError, RuntimeError) as exc:
                raise InputError(f"{self.bed}: variant {v + 1} "
                                 f"({self.variants['variant_id'].iat[v]}) cannot be decoded "
                                 f"({' '.join(str(exc).split())}) - the file is damaged or "
                                 "truncated; re-create or re-download it") from None
            d = _dosage(p, phased, self.bed, v)
            # (the dosage of every sample, then the selected ones: gathering the (n, 3)
            # probabilities first cost 3x the whole decode at n = 5,000)
            out[:, j] = d if idx is None else d[idx]


def _dosage(p: NDArray[np.float32], phased: bool, path: Path, v: int) -> NDArray[np.float64]:
    """Expected count of the second allele from one record's probabilities (n, k), in
    float64 (the float32 probabilities are exact in it)."""
    if not phased and p.shape[1] == 3:
        d = np.multiply(p[:, 2], 2.0, dtype=np.float64)
        d += p[:, 1]
        return d
    if phased and p.shape[1] == 4:
        d = p[:, 1].astype(np.float64)
        d += p[:, 3]
        return d
    raise InputError(f"{path}: variant {v + 1} has {p.shape[1]} probabilities per sample "
                     f"({'phased' if phased else 'unphased'}) - glimix reads diploid "
                     "biallelic records only; convert haploid calls to diploid first")


def open_bgen(path: str | os.PathLike[str], sample: str | os.PathLike[str] | None = None
              ) -> Bgen:
    """Open a BGEN file, its samples and its variant table; check it is complete.

    Parameters
    ----------
    path : str or Path
        The ``.bgen``; a ``.bgen.bgi`` index beside it (bgenix) is used for the variant
        table when present (no pass over the file).
    sample : str or Path, optional
        An Oxford ``.sample`` file (ID_1 = FID, ID_2 = IID). Without it the IDs stored in
        the .bgen are used (FID 0, as plink2 writes them).

    Raises
    ------
    InputError
        Missing file, a truncated .bgen, a .sample that does not match the .bgen, no
        sample IDs anywhere.
    """
    require_bgen()
    from bgen import BgenReader

    bgen_path = Path(path)
    if not bgen_path.is_file():
        raise InputError(f"{bgen_path}: BGEN file not found - check --bgen")
    try:
        reader = BgenReader(str(bgen_path), delay_parsing=True)
        header = reader.header
        stored = list(reader.samples) if header.has_sample_ids else None
    except (ValueError, RuntimeError, OSError) as exc:
        raise InputError(f"{bgen_path}: not a readable BGEN file ({' '.join(str(exc).split())})"
                         " - check the file is a complete .bgen (version 1.1-1.3)") from None
    n = int(header.nsamples)
    samples, fam = _samples(bgen_path, sample, stored, n)
    bgi = Path(f"{bgen_path}.bgi")
    if bgi.is_file():
        variants = _variants_from_bgi(bgi, bgen_path, int(header.nvariants))
        where = bgi
    else:
        variants = _variants_from_file(reader, bgen_path, int(header.nvariants))
        where = bgen_path
    reader.close()
    return Bgen(bed=bgen_path, bim=where, fam=fam, variants=variants, samples=samples)


def _samples(path: Path, sample: str | os.PathLike[str] | None, stored: list[str] | None,
             n: int) -> tuple[pd.DataFrame, Path]:
    if sample is None:
        if stored is None:
            raise InputError(f"{path}: stores no sample IDs - give the matching Oxford "
                             "sample file with --sample FILE.sample")
        iid = np.array(stored, dtype=object)
        return _fam_like(np.full(n, "0", dtype=object), iid, None), path
    sp = Path(sample)
    if not sp.is_file():
        raise InputError(f"{sp}: sample file not found - check --sample")
    fid, iid, sex = read_sample_file(sp)
    if iid.size != n:
        raise InputError(f"{sp}: {iid.size:,} samples, but {path.name} holds {n:,} - the "
                         ".sample must list the .bgen's samples in its order; use the "
                         ".sample written with this .bgen")
    if stored is not None:
        # the .bgen stores IID, or FID_IID as plink2 --export bgen writes it
        have = np.asarray(stored, dtype=object)
        joined = np.array([f"{f}_{i}" for f, i in zip(fid, iid, strict=True)], dtype=object)
        bad = np.flatnonzero((have != iid) & (have != joined))
        if bad.size:
            i = int(bad[0])
            raise InputError(f"{sp}: sample {i + 1} is {fid[i]!r} {iid[i]!r} but {path.name} "
                             f"stores {stored[i]!r} there ({bad.size:,} differ) - the .sample "
                             "does not match the .bgen; use the .sample written with it")
    return _fam_like(fid, iid, sex), sp


def read_sample_file(path: Path) -> tuple[NDArray, NDArray, NDArray | None]:
    """``(fid, iid, sex or None)`` of an Oxford .sample file (version 1 or 2)."""
    try:
        df = pd.read_csv(path, sep=r"\s+", dtype=str, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not an Oxford .sample file ({' '.join(str(exc).split())}) "
                         "- two header lines (ID_1 ID_2 missing ...; 0 0 0 ...), then one "
                         "line per sample") from None
    cols = [c.lower() for c in df.columns]
    if len(cols) < 2 or cols[0] != "id_1" or cols[1] != "id_2" or df.empty:
        raise InputError(f"{path}: the header must start with ID_1 ID_2 (found "
                         f"{' '.join(df.columns[:3])}) - not an Oxford .sample file")
    types = df.iloc[0]
    if (types.iloc[:2] != "0").any():
        raise InputError(f"{path}: the second line must give the column types (0 0 ...); "
                         f"found {' '.join(types.iloc[:3])} - not an Oxford .sample file")
    body = df.iloc[1:]
    fid = body.iloc[:, 0].to_numpy(dtype=object)
    iid = body.iloc[:, 1].to_numpy(dtype=object)
    sex = None
    if "sex" in cols:
        sex = body.iloc[:, cols.index("sex")].to_numpy(dtype=object)
    return fid, iid, sex


def _fam_like(fid: NDArray, iid: NDArray, sex: NDArray | None) -> pd.DataFrame:
    n = iid.size
    sx = (np.full(n, "0", dtype=object) if sex is None
          else np.where(np.isin(sex, ["1", "2"]), sex, "0"))
    return pd.DataFrame({"fid": fid.astype(str), "iid": iid.astype(str), "father": "0",
                         "mother": "0", "sex": sx.astype(str), "pheno": "-9"})


def _table(chrom: list[str], pos: list[int], rsid: list[str], varid: list[str],
           alleles: list[list[str]]) -> pd.DataFrame:
    ids = [r if r not in ("", ".") else (v if v not in ("", ".") else f"{c}:{p}")
           for r, v, c, p in zip(rsid, varid, chrom, pos, strict=True)]
    multi = np.array([len(a) != 2 for a in alleles], dtype=bool)
    return pd.DataFrame({
        "chrom": pd.Series(chrom, dtype=str).str.replace(_NUMERIC_CHROM, "", regex=True),
        "variant_id": pd.Series(ids, dtype=str),
        "cm": np.zeros(len(pos)),
        "pos": np.asarray(pos, dtype=np.int64),
        "a1": [",".join(a[1:]) for a in alleles],
        "a2": [a[0] if a else "" for a in alleles],
        "multiallelic": multi,
    })


def _truncated(path: Path, detail: str) -> InputError:
    return InputError(f"{path}: truncated BGEN file ({detail}) - the copy is incomplete; "
                      "re-create or re-download it")


def _variants_from_file(reader: Any, path: Path, n_variants: int) -> pd.DataFrame:
    """One pass over the variant headers (the probability blocks are skipped)."""
    chrom: list[str] = []
    pos: list[int] = []
    rsid: list[str] = []
    varid: list[str] = []
    alleles: list[list[str]] = []
    end = 0
    it: Iterator[Any] = iter(reader)
    while True:
        try:
            v = next(it)
        except StopIteration:
            break
        except (ValueError, IndexError, RuntimeError) as exc:
            raise _truncated(path, " ".join(str(exc).split())) from None
        chrom.append(v.chrom)
        pos.append(v.pos)
        rsid.append(v.rsid)
        varid.append(v.varid)
        alleles.append(list(v.alleles))
        end = int(v.next_variant_offset)
    size = path.stat().st_size
    if len(pos) != n_variants or end > size:
        raise _truncated(path, f"the header lists {n_variants:,} variants; {len(pos):,} "
                               f"found, the last ending at byte {end:,} of {size:,}")
    return _table(chrom, pos, rsid, varid, alleles)


def _variants_from_bgi(bgi: Path, path: Path, n_variants: int) -> pd.DataFrame:
    try:
        with sqlite3.connect(f"file:{bgi}?mode=ro", uri=True) as con:
            rows = con.execute(
                "SELECT chromosome, position, rsid, number_of_alleles, allele1, allele2, "
                "file_start_position, size_in_bytes FROM Variant "
                "ORDER BY file_start_position").fetchall()
    except sqlite3.Error as exc:
        raise InputError(f"{bgi}: not a bgenix index ({exc}) - rebuild it with "
                         f"`bgenix -g {path.name} -index` or delete it") from None
    if len(rows) != n_variants:
        raise InputError(f"{bgi}: indexes {len(rows):,} variants, {path.name} has "
                         f"{n_variants:,} - the index is stale; rebuild it with "
                         f"`bgenix -g {path.name} -index -clobber`")
    size = path.stat().st_size
    if rows and int(rows[-1][6]) + int(rows[-1][7]) > size:
        raise _truncated(path, f"its index places the last variant at bytes "
                               f"{rows[-1][6]:,}-{int(rows[-1][6]) + int(rows[-1][7]):,}, "
                               f"the file has {size:,}")
    # bgenix stores the first two alleles: a record with more is read for the others
    alleles = [[a1, a2][:int(k)] for _, _, _, k, a1, a2, _, _ in rows]
    multi = [i for i, r in enumerate(rows) if int(r[3]) > 2]
    if multi:
        from bgen import BgenReader

        with BgenReader(str(path), delay_parsing=True) as reader:
            for i in multi:
                alleles[i] = list(reader[i].alleles)
    return _table([str(r[0]) for r in rows], [int(r[1]) for r in rows],
                  [str(r[2]) for r in rows], [""] * len(rows), alleles)
