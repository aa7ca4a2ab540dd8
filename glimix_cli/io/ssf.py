"""Export glimix results as GWAS-SSF, the GWAS Catalog's summary-statistics format.

A GWAS-SSF submission is two files: the data table ``NAME.tsv.gz`` and its metadata
``NAME.tsv.gz-meta.yaml``. The rules below are those the Catalog's validator
(``gwas-ssf validate`` from gwas-sumstats-tools 1.0.x) enforces:

- the first eight columns are exactly ``chromosome base_pair_location effect_allele
  other_allele beta standard_error effect_allele_frequency p_value``; glimix then adds the
  optional ``variant_id``, ``rsid`` and ``n``;
- ``chromosome`` is an integer 1-25 (X = 23, Y = 24, MT = 25) and a file must hold every
  autosome 1-22 (or be X only);
- alleles are nucleotide strings (``[ACGT]+``), ``effect_allele_frequency`` lies in [0, 1],
  and no mandatory value is missing;
- ``p_value`` is split at ``e``/``E`` and the mantissa must be > 0, so glimix's exact text
  for p-values below the float64 range (``3.1e-412``) is accepted as it is; nothing is
  rounded to 0 and no ``neg_log_10_p_value`` column is needed;
- ``variant_id`` matches ``^[A-Za-z0-9_]+$`` and ``rsid`` matches ``^rs[0-9]+$``.

Conversions (all counted in :class:`SsfExport`):

- rows whose ``status`` is not ``ok`` (monomorphic, low_mac, collinear, ...) are left out;
- chromosome names: ``chr`` prefixes dropped, X/Y/MT (and M) mapped to 23/24/25, and PLINK's
  numeric codes read as PLINK defines them: 23 = X, 24 = Y, 25 = XY, 26 = MT. XY (the
  pseudo-autosomal region, positions in X coordinates) becomes 23, because GWAS-SSF has no
  code for it and PLINK stores it on X coordinates; 26 becomes 25 (MT);
- alleles are upper-cased;
- a ``variant_id`` that does not fit the validator's pattern is rewritten to the GWAS-SSF form
  ``<chromosome>_<base_pair_location>_<other_allele>_<effect_allele>``; an id that is an rs
  number is also written to ``rsid`` (``#NA`` otherwise).

Anything GWAS-SSF cannot express (chromosome names outside the human set, non-nucleotide
alleles such as Illumina A/B, negative positions) raises :class:`~glimix_cli.errors.InputError`
listing every offending value; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glimix_cli.errors import InputError
from glimix_cli.io.results import COLUMNS, atomic_text_writer
from glimix_cli.io.ssf_meta import (
    build_metadata,
    check_null_matches,
    read_null_json,
    read_scan_meta,
    to_yaml,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MANDATORY",
    "SSF_COLUMNS",
    "SsfExport",
    "export_ssf",
    "metadata_path",
    "ssf_chromosome",
    "to_yaml",
]

#: The eight mandatory GWAS-SSF columns, in the order the validator requires.
MANDATORY = COLUMNS[:8]
#: Every column glimix writes: the mandatory ones, then optional GWAS-SSF fields.
SSF_COLUMNS = (*MANDATORY, "variant_id", "rsid", "n")
NA = "#NA"

_AUTOSOMES = frozenset(range(1, 23))
_NAMED = {"X": 23, "Y": 24, "XY": 23, "MT": 25, "M": 25}
# PLINK 1 numeric codes above 22: 23 = X, 24 = Y, 25 = XY (pseudo-autosomal), 26 = MT.
_PLINK_NUMERIC = {23: 23, 24: 24, 25: 23, 26: 25}
_CHR_PREFIX = re.compile(r"^chr", re.IGNORECASE)
_ID_OK = r"[A-Za-z0-9_]+"
_RSID = r"rs[0-9]+"
_NUCLEOTIDES = r"[ACGT]+"


def ssf_chromosome(name: str) -> int | None:
    """GWAS-SSF chromosome code (1-25) of a .bim chromosome name, or None if it has none.

    >>> [ssf_chromosome(c) for c in ("1", "chr7", "X", "chrMT", "23", "25", "26", "2L")]
    [1, 7, 23, 25, 23, 23, 25, None]
    """
    text = _CHR_PREFIX.sub("", str(name).strip()).upper()
    if text.isdigit():
        code = int(text)
        if 1 <= code <= 22:
            return code
        return _PLINK_NUMERIC.get(code)
    return _NAMED.get(text)


def metadata_path(out: str | os.PathLike[str]) -> Path:
    """The metadata file GWAS-SSF expects beside ``out``: ``<out>-meta.yaml``."""
    return Path(f"{out}-meta.yaml")


@dataclass(frozen=True)
class SsfExport:
    """What :func:`export_ssf` wrote and what it changed.

    Attributes
    ----------
    out, meta : Path
        The data file and its ``-meta.yaml``.
    rows_read, rows_written : int
    left_out : dict of str to int
        Rows not written, by reason: the glimix ``status`` (``monomorphic``, ``low_mac``,
        ...) or ``missing value`` for an ``ok`` row with an ``NA`` statistic.
    ids_rewritten : int
        ``variant_id`` values rewritten to ``<chr>_<pos>_<other>_<effect>``.
    rsids : int
        Rows whose original id is an rs number (written to ``rsid``).
    chromosomes : dict of int to int
        Rows written per GWAS-SSF chromosome code.
    renamed_chromosomes : dict of str to int
        Rows per chromosome name that was recoded, keyed ``"X -> 23"``.
    is_sorted : bool
        Whether the rows are in (chromosome, position) order.
    notes : list of str
        Things the Catalog will ask about (genome assembly not given, fewer rows than its
        minimum, case counts unavailable, ...).
    """

    out: Path
    meta: Path
    rows_read: int
    rows_written: int
    left_out: dict[str, int]
    ids_rewritten: int
    rsids: int
    chromosomes: dict[int, int]
    renamed_chromosomes: dict[str, int]
    is_sorted: bool
    notes: list[str] = field(default_factory=list)


def export_ssf(
    results: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    null: str | os.PathLike[str] | None = None,
    genome_assembly: str = "NR",
    trait: str | None = None,
    ancestry: Sequence[str] = (),
    genotyping_technology: Sequence[str] = ("Genome-wide genotyping array",),
    allow_missing_autosomes: bool = False,
    chunksize: int = 250_000,
    today: _dt.date | None = None,
) -> SsfExport:
    """Convert a glimix results TSV into a GWAS-SSF file and its ``-meta.yaml``.

    Parameters
    ----------
    results : path
        A ``glimix scan`` or ``glimix merge`` output (``.tsv`` or ``.tsv.gz``).
    out : path
        GWAS-SSF data file, ``NAME.tsv`` or ``NAME.tsv.gz``; the metadata goes to
        ``NAME.tsv.gz-meta.yaml``. Both are written atomically.
    null : path, optional
        ``PREFIX.null.json`` of the scan: trait, sample size, case/control counts,
        covariates and model notes for the metadata.
    genome_assembly, trait, ancestry, genotyping_technology
        Metadata glimix cannot know (``NR`` = not reported when not given).
    allow_missing_autosomes : bool
        Write a file lacking some of autosomes 1-22 (the Catalog will reject it).
    chunksize : int
        Rows per block read.
    today : date, optional
        ``date_metadata_last_modified`` (default: today).

    Returns
    -------
    SsfExport
    """
    results = Path(results)
    out = Path(out)
    null_data, scan_meta = _read_inputs(results, out, null)
    t, missing = _write_data(results, out, chunksize, allow_missing_autosomes)
    md5 = hashlib.md5(out.read_bytes(), usedforsecurity=False).hexdigest()
    meta, notes = build_metadata(out, md5, t.rows_written, t.is_sorted, null_data, scan_meta,
                                 t.max_n, genome_assembly, trait, ancestry,
                                 genotyping_technology, today or _dt.date.today(), t.tests)
    if missing:
        notes.append(f"autosomes {_ranges(missing)} absent: the Catalog validator will "
                     "reject this file")
    meta_file = metadata_path(out)
    with atomic_text_writer(meta_file) as fh:
        fh.write("# GWAS-SSF metadata, written by glimix export-ssf\n")
        fh.write(to_yaml(meta))
    return SsfExport(out=out, meta=meta_file, rows_read=t.rows_read,
                     rows_written=t.rows_written, left_out=dict(t.left_out),
                     ids_rewritten=t.ids_rewritten, rsids=t.rsids,
                     chromosomes=dict(sorted(t.per_chrom.items())),
                     renamed_chromosomes=dict(t.renamed), is_sorted=t.is_sorted, notes=notes)


# ------------------------------------------------------------------------------------------
# inputs


def _check_out_name(out: Path) -> None:
    if not (out.name.endswith(".tsv") or out.name.endswith(".tsv.gz")):
        raise InputError(f"{out}: GWAS-SSF files must be named .tsv or .tsv.gz - choose "
                         "--out NAME.tsv.gz")


def _read_inputs(results: Path, out: Path, null: str | os.PathLike[str] | None
                 ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Check the paths and the results header; return the null JSON and the scan's sidecar
    (each None when absent)."""
    import pandas as pd

    _check_out_name(out)
    if not results.is_file():
        raise InputError(f"{results}: file not found")
    if out.resolve() == results.resolve():
        raise InputError(f"{out}: would overwrite the input - choose another --out")
    scan_meta = read_scan_meta(results)
    null_data = read_null_json(null) if null is not None else None
    if null_data is not None:
        check_null_matches(results, scan_meta, null_data, Path(null))  # type: ignore[arg-type]
    try:
        head = pd.read_csv(results, sep="\t", nrows=0)
    except (pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{results}: not a readable glimix results TSV ({exc})") from None
    missing = [c for c in COLUMNS if c not in head.columns]
    if missing:
        raise InputError(f"{results}: not a glimix results file (missing columns "
                         f"{', '.join(missing)}) - pass the output of glimix scan or merge")
    return null_data, scan_meta


# ------------------------------------------------------------------------------------------
# data


@dataclass
class _Tally:
    """What the blocks read so far held: rows read, written and left out, the values
    GWAS-SSF cannot express, and what the metadata reports."""

    rows_read: int = 0
    rows_written: int = 0
    ids_rewritten: int = 0
    rsids: int = 0
    max_n: int | None = None
    is_sorted: bool = True
    last_key: int = -1
    left_out: Counter[str] = field(default_factory=Counter)
    bad_chrom: Counter[str] = field(default_factory=Counter)
    bad_allele: Counter[str] = field(default_factory=Counter)
    bad_pos: Counter[str] = field(default_factory=Counter)
    bad_eaf: Counter[str] = field(default_factory=Counter)
    renamed: Counter[str] = field(default_factory=Counter)
    per_chrom: Counter[int] = field(default_factory=Counter)
    tests: Counter[str] = field(default_factory=Counter)
    chrom_cache: dict[str, int | None] = field(default_factory=dict)

    def has_problems(self) -> bool:
        return bool(self.bad_chrom or self.bad_allele or self.bad_pos or self.bad_eaf)


def _write_data(results: Path, out: Path, chunksize: int, allow_missing_autosomes: bool
                ) -> tuple[_Tally, list[int]]:
    """Write the GWAS-SSF data file block by block; return the tally and the autosomes
    missing from it (raises, writing nothing, when the file cannot be made)."""
    import pandas as pd

    t = _Tally()
    reader = pd.read_csv(results, sep="\t", dtype=str, keep_default_na=False,
                         na_filter=False, chunksize=chunksize, usecols=list(COLUMNS))
    with atomic_text_writer(out) as fh:
        fh.write("\t".join(SSF_COLUMNS) + "\n")
        for df in reader:
            table = _convert_block(df, t)
            if table is None:
                continue
            table.to_csv(fh, sep="\t", header=False, index=False, quoting=csv.QUOTE_NONE,
                         lineterminator="\n")
            t.rows_written += len(table)
        missing = _check_complete(results, t, allow_missing_autosomes)
    return t, missing


def _convert_block(df: pd.DataFrame, t: _Tally) -> pd.DataFrame | None:
    """One block of results as GWAS-SSF rows, or None when it has none to write."""
    t.rows_read += len(df)
    status = df["status"]
    ok = status == "ok"
    for s, c in status[~ok].value_counts().items():
        t.left_out[str(s)] += int(c)
    df = df[ok]
    na = df[list(MANDATORY)].isin(["NA", ""]).any(axis=1)
    if na.any():
        t.left_out["missing value"] += int(na.sum())
        df = df[~na]
    if df.empty:
        return None
    code, ea, oa = _check_block(df, t)
    if t.has_problems():
        return None  # keep scanning to report every problem, write nothing more
    return _ssf_rows(df, code, ea, oa, t)


def _check_block(df: pd.DataFrame, t: _Tally) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Count the values GWAS-SSF cannot express; return the chromosome codes (NaN where
    the name has none) and the upper-cased effect and other alleles."""
    import pandas as pd

    names = df["chromosome"]
    for name in names.unique():
        if name not in t.chrom_cache:
            t.chrom_cache[name] = ssf_chromosome(name)
    code = names.map(t.chrom_cache)
    unmapped = code.isna()
    if unmapped.any():
        t.bad_chrom.update(names[unmapped].tolist())
    ea = df["effect_allele"].str.upper()
    oa = df["other_allele"].str.upper()
    for allele in (ea, oa):
        bad = ~allele.str.fullmatch(_NUCLEOTIDES)
        if bad.any():
            t.bad_allele.update(allele[bad].tolist())
    pos = df["base_pair_location"]
    bad = ~pos.str.fullmatch(r"[0-9]+")
    if bad.any():
        t.bad_pos.update(pos[bad].tolist())
    eaf = pd.to_numeric(df["effect_allele_frequency"], errors="coerce")
    bad = ~((eaf >= 0) & (eaf <= 1))
    if bad.any():
        t.bad_eaf.update(df["effect_allele_frequency"][bad].tolist())
    return code, ea, oa


def _ssf_rows(df: pd.DataFrame, code: pd.Series, ea: pd.Series, oa: pd.Series, t: _Tally
              ) -> pd.DataFrame:
    """The GWAS-SSF table of a checked block: recoded chromosomes, upper-case alleles,
    rewritten ids and the rsid column; updates the tally."""
    import pandas as pd

    names = df["chromosome"]
    pos = df["base_pair_location"]
    code = code.astype("int64")
    code_txt = code.astype(str)
    changed = names != code_txt
    if changed.any():
        for (nm, cd), c in pd.DataFrame({"n": names[changed], "c": code[changed]}) \
                .value_counts().items():
            t.renamed[f"{nm} -> {cd}"] += int(c)
    for cd, c in code.value_counts().items():
        t.per_chrom[int(cd)] += int(c)
    key = code.to_numpy() * 10**10 + pos.astype("int64").to_numpy()
    if t.is_sorted and (key[0] < t.last_key or (len(key) > 1 and (key[1:] < key[:-1]).any())):
        t.is_sorted = False
    t.last_key = int(key[-1])
    vid = df["variant_id"]
    fits = vid.str.fullmatch(_ID_OK)
    new_id = vid.where(fits, code_txt + "_" + pos + "_" + oa + "_" + ea)
    t.ids_rewritten += int((~fits).sum())
    is_rs = vid.str.fullmatch(_RSID)
    t.rsids += int(is_rs.sum())
    n = df["n"].where(df["n"] != "NA", NA)
    nn = pd.to_numeric(df["n"], errors="coerce")
    if nn.notna().any():
        m = int(nn.max())
        t.max_n = m if t.max_n is None else max(t.max_n, m)
    t.tests.update(df["test"].tolist())
    return pd.DataFrame({
        "chromosome": code_txt, "base_pair_location": pos,
        "effect_allele": ea, "other_allele": oa, "beta": df["beta"],
        "standard_error": df["standard_error"],
        "effect_allele_frequency": df["effect_allele_frequency"],
        "p_value": df["p_value"], "variant_id": new_id,
        "rsid": vid.where(is_rs, NA), "n": n,
    })


def _check_complete(results: Path, t: _Tally, allow_missing_autosomes: bool) -> list[int]:
    """Raise if some values cannot be expressed, no row was written, or autosomes are
    missing (unless allowed); return the missing autosomes (none for an X-only file)."""
    problems = []
    if t.bad_chrom:
        problems.append(f"chromosome names {_examples(t.bad_chrom)} (GWAS-SSF codes human "
                        "chromosomes only: 1-22, X=23, Y=24, MT=25)")
    if t.bad_allele:
        problems.append(f"alleles {_examples(t.bad_allele)} (GWAS-SSF alleles are "
                        "nucleotide strings of A, C, G, T)")
    if t.bad_pos:
        problems.append(f"base-pair positions {_examples(t.bad_pos)} (must be integers "
                        ">= 0)")
    if t.bad_eaf:
        problems.append(f"effect-allele frequencies {_examples(t.bad_eaf)} (must lie in "
                        "[0, 1])")
    if problems:
        n_bad = sum(t.bad_chrom.values()) + sum(t.bad_allele.values()) + \
            sum(t.bad_pos.values()) + sum(t.bad_eaf.values())
        raise InputError(f"{results}: cannot be expressed in GWAS-SSF (human genomes with "
                         f"nucleotide alleles) - {'; '.join(problems)}; {n_bad:,} values "
                         "in all. Exclude those variants (glimix scan --extract) or "
                         "recode the .bim; nothing was written")
    if t.rows_written == 0:
        raise InputError(f"{results}: no row with status ok among {t.rows_read:,} - nothing "
                         "to export")
    present = set(t.per_chrom)
    absent = sorted(_AUTOSOMES - present) if present != {23} else []
    if absent and not allow_missing_autosomes:
        raise InputError(f"{results}: autosomes {_ranges(absent)} are missing and the "
                         "GWAS Catalog requires all of 1-22 - export the merged scan of "
                         "every chromosome (glimix merge), or pass "
                         "--allow-missing-autosomes to write it anyway")
    return absent


def _examples(counter: Counter[str], limit: int = 5) -> str:
    items = counter.most_common()
    text = ", ".join(f"{v!r} ({c:,})" for v, c in items[:limit])
    if len(items) > limit:
        text += f", ... {len(items) - limit} more"
    return text


def _ranges(values: Sequence[int]) -> str:
    """Compact integer ranges: [1, 2, 3, 5] -> '1-3, 5'."""
    out: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(out)
