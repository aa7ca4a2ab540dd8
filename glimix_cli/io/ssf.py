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
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glimix_cli.errors import InputError
from glimix_cli.io.results import COLUMNS, META_SUFFIX, atomic_text_writer

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
SSF_FILE_TYPE = "GWAS-SSF v1.0"
#: Row count below which the GWAS Catalog validator fails a file (its ``--min-rows`` default).
CATALOG_MIN_ROWS = 100_000
NA = "#NA"

_AUTOSOMES = frozenset(range(1, 23))
_NAMED = {"X": 23, "Y": 24, "XY": 23, "MT": 25, "M": 25}
# PLINK 1 numeric codes above 22: 23 = X, 24 = Y, 25 = XY (pseudo-autosomal), 26 = MT.
_PLINK_NUMERIC = {23: 23, 24: 24, 25: 23, 26: 25}
_CHR_PREFIX = re.compile(r"^chr", re.IGNORECASE)
_ID_OK = r"[A-Za-z0-9_]+"
_RSID = r"rs[0-9]+"
_NUCLEOTIDES = r"[ACGT]+"
_LINKS = {"normal": "identity", "bernoulli": "logit", "probit": "probit",
          "binomial": "logit", "poisson": "log"}


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


# ------------------------------------------------------------------------------------------
# metadata


def to_yaml(mapping: dict[str, Any]) -> str:
    """Serialise a metadata mapping as block-style YAML (no PyYAML needed).

    Strings are double-quoted with JSON escapes (valid YAML), dates written as ISO dates,
    ``None`` values left out. Values may be scalars, lists of scalars or lists of mappings.

    >>> print(to_yaml({"a": "x: y", "b": [1, 2], "c": [{"d": True, "e": None}]}), end="")
    a: "x: y"
    b:
      - 1
      - 2
    c:
      - d: true
    """
    lines: list[str] = []
    _yaml_mapping(mapping, 0, lines)
    return "".join(line + "\n" for line in lines)


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, _dt.date):
        return value.isoformat()
    return json.dumps(str(value), ensure_ascii=False)


def _yaml_mapping(mapping: dict[str, Any], indent: int, lines: list[str],
                  first_prefix: str | None = None) -> None:
    pad = " " * indent
    first = True
    for key, value in mapping.items():
        if value is None:
            continue
        lead = first_prefix if (first and first_prefix is not None) else pad
        first = False
        if isinstance(value, dict):
            lines.append(f"{lead}{key}:")
            _yaml_mapping(value, indent + 2, lines)
        elif isinstance(value, list | tuple):
            if not value:
                lines.append(f"{lead}{key}: []")
                continue
            lines.append(f"{lead}{key}:")
            for item in value:
                if isinstance(item, dict):
                    _yaml_mapping(item, indent + 4, lines, first_prefix=f"{pad}  - ")
                else:
                    lines.append(f"{pad}  - {_yaml_scalar(item)}")
        else:
            lines.append(f"{lead}{key}: {_yaml_scalar(value)}")


def read_null_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``PREFIX.null.json`` from ``glimix fit --out PREFIX``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"{p}: not found - pass the PREFIX.null.json written by "
                         "`glimix fit --out PREFIX`") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON ({exc.msg}) - rerun glimix fit") from None
    if not isinstance(data, dict) or "null" not in data or "inputs" not in data:
        raise InputError(f"{p}: not a glimix null-model file (no 'null' section) - pass the "
                         "PREFIX.null.json written by `glimix fit --out PREFIX`")
    return data


def _check_null_matches(results: Path, null: dict[str, Any], null_path: Path) -> None:
    side = Path(f"{results}{META_SUFFIX}")
    if not side.exists():
        return
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError:
        return
    lik, n = meta.get("likelihood"), meta.get("samples")
    if lik is not None and lik != null["null"].get("likelihood"):
        raise InputError(f"{null_path}: fitted with the {null['null'].get('likelihood')} "
                         f"likelihood but {results} was scanned with {lik} - pass the "
                         "null.json of this scan")
    if n is not None and int(n) != int(null["null"].get("n", -1)):
        raise InputError(f"{null_path}: fitted on {null['null'].get('n')} samples but "
                         f"{results} was scanned on {n} - pass the null.json of this scan")


def _case_control_counts(null: dict[str, Any]) -> tuple[tuple[int, int] | None, str]:
    """(cases, controls) of the analysed samples, as ``glimix fit`` stores them."""
    cc = null.get("case_control")
    if isinstance(cc, dict) and "cases" in cc and "controls" in cc:
        return (int(cc["cases"]), int(cc["controls"])), ""
    return None, ("case/control counts not written: the null JSON has none (written by an "
                  "older glimix) - rerun glimix fit")


def _covariate_names(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        base = str(name).split("=", 1)[0]
        if base != "intercept" and base not in out:
            out.append(base)
    return out


#: What each value of the results' ``test`` column means, for the metadata.
_TEST_TEXT = {
    "surrogate_lrt": "the likelihood-ratio test of the heterogeneous-Normal surrogate with "
                     "the null's variance components held fixed (surrogate_lrt)",
    "spa": "the saddlepoint approximation of the score's null distribution (spa, where "
           "|z| > 2)",
    "score": "the score test of the covariates-only GLM (score)",
}


def _author_notes(null: dict[str, Any] | None, likelihood: str | None,
                  software: str, tests: Counter[str] | None = None) -> str:
    parts = [f"Association scan with {software}: generalised linear mixed model."]
    if likelihood:
        link = _LINKS.get(likelihood, "?")
        how = "restricted-ML linear mixed model" if likelihood == "normal" else \
            "expectation propagation"
        parts.append(f"Likelihood {likelihood} with {link} link, fitted by {how}.")
        parts.append(f"Effect statistic: beta = change of the linear predictor ({link} "
                     "scale) per copy of effect_allele, with its standard error; "
                     "effect_allele is the first allele of the PLINK .bim (column 5).")
    else:
        parts.append("Effect statistic: beta = per-copy effect of effect_allele on the "
                     "linear predictor, with its standard error; effect_allele is the "
                     "first allele of the PLINK .bim (column 5).")
    f0 = (null or {}).get("null", {})
    glm_route = f0.get("route") == "glm"
    if glm_route:
        parts.append(f"Null model: the {_LINKS.get(likelihood or '', '?')} GLM on the "
                     f"covariates (kinship variance not identified: {f0.get('route_reason')});"
                     " beta and its standard error are the per-variant maximum-likelihood "
                     "estimate and Wald SE where p < 0.05 (as plink2 --glm), the one-step "
                     "score estimate elsewhere.")
    used = {t: c for t, c in (tests or Counter()).items() if t in _TEST_TEXT and c}
    if used:
        total = sum(used.values())
        said = "; ".join(f"{c:,} of {total:,} rows by {_TEST_TEXT[t]}"
                         for t, c in sorted(used.items(), key=lambda kv: -kv[1]))
        parts.append(f"P-values: {said}.")
    else:
        parts.append("P-values: likelihood-ratio test against the null model with fixed "
                     "variance components.")
    parts.append("P-values are computed on the log scale; values below 1e-300 are written "
                 "exactly in scientific notation, never rounded to 0.")
    if null is not None:
        kin = null.get("kinship") or {}
        if not glm_route:
            nv = kin.get("n_variants")
            src = f"kinship {kin.get('source', 'GRM')}" + (
                f" from {nv} variants" if nv is not None else "")
            if f0.get("h2_liability") is not None:
                h2 = f"liability h2 = {f0['h2_liability']:.3g}"
            else:
                h2 = f"latent h2 = {f0.get('h2_latent', float('nan')):.3g}"
            parts.append(f"Random effect: {src}; v0 = {f0.get('v0', float('nan')):.4g}, "
                         f"v1 = {f0.get('v1', float('nan')):.4g}, {h2}; null fit "
                         f"{f0.get('status', '?')}.")
        if null.get("trait_coding"):
            parts.append(f"Trait coding: {null['trait_coding']}.")
    parts.append("Rows with a glimix status other than ok (monomorphic, low minor-allele "
                 "count, collinear, ...) are not included; n is the per-variant number of "
                 "samples with a genotype call.")
    return " ".join(parts)


def _metadata(out: Path, md5: str, summary_rows: int, is_sorted: bool,
              null: dict[str, Any] | None, scan_meta: dict[str, Any] | None,
              max_n: int | None, genome_assembly: str, trait: str | None,
              ancestry: Sequence[str], genotyping_technology: Sequence[str],
              today: _dt.date, tests: Counter[str] | None = None
              ) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    likelihood = None
    sample_size = None
    if null is not None:
        likelihood = null["null"].get("likelihood")
        sample_size = int(null["null"]["n"])
        version = (null.get("software") or {}).get("glimix")
        trait = trait or null["inputs"].get("pheno_name")
    else:
        version = None
    if scan_meta is not None:
        likelihood = likelihood or scan_meta.get("likelihood")
        if sample_size is None and scan_meta.get("samples") is not None:
            sample_size = int(scan_meta["samples"])
    if sample_size is None and max_n is not None:
        sample_size = max_n
    if version is None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as _v

        try:
            version = _v("glimix-cli")
        except PackageNotFoundError:  # pragma: no cover - source tree without metadata
            version = "unknown"
    software = f"glimix {version}"
    sample: dict[str, Any] = {"sample_size": sample_size,
                              "sample_ancestry_category": list(ancestry) or ["NR"]}
    if likelihood in ("bernoulli", "probit"):
        sample["case_control_study"] = True
        counts, why = _case_control_counts(null) if null is not None else (
            None, "case/control counts not written: pass --null PREFIX.null.json")
        if counts is None:
            notes.append(why)
        else:
            sample["case_count"], sample["control_count"] = counts
    elif likelihood is not None:
        sample["case_control_study"] = False
    if genome_assembly == "NR":
        notes.append("genome_assembly is NR - pass --genome-assembly GRCh38 (or GRCh37) "
                     "so the Catalog can place the variants")
    if not ancestry:
        notes.append("sample_ancestry_category is NR - pass --ancestry (e.g. European)")
    if not trait:
        notes.append("trait_description is NR - pass --trait or --null")
    if summary_rows < CATALOG_MIN_ROWS:
        notes.append(f"{summary_rows:,} rows: the GWAS Catalog validator requires at least "
                     f"{CATALOG_MIN_ROWS:,} by default (check with `gwas-ssf validate "
                     f"--min-rows {max(summary_rows, 1)}`)")
    meta: dict[str, Any] = {
        "date_metadata_last_modified": today,
        "author_notes": _author_notes(null, likelihood, software, tests),
        "trait_description": [trait or "NR"],
        "genome_assembly": genome_assembly,
        "coordinate_system": "1-based",
        "genotyping_technology": list(genotyping_technology),
        "samples": [sample],
        "data_file_name": out.name,
        "file_type": SSF_FILE_TYPE,
        "data_file_md5sum": md5,
        "analysis_software": software,
        "adjusted_covariates": (_covariate_names(null["null"].get("covariates", []))
                                if null is not None else None) or None,
        "is_harmonised": False,
        "is_sorted": is_sorted,
    }
    return meta, notes


# ------------------------------------------------------------------------------------------
# data


def _examples(counter: Counter[str], limit: int = 5) -> str:
    items = counter.most_common()
    text = ", ".join(f"{v!r} ({c:,})" for v, c in items[:limit])
    if len(items) > limit:
        text += f", ... {len(items) - limit} more"
    return text


def _check_out_name(out: Path) -> None:
    if not (out.name.endswith(".tsv") or out.name.endswith(".tsv.gz")):
        raise InputError(f"{out}: GWAS-SSF files must be named .tsv or .tsv.gz - choose "
                         "--out NAME.tsv.gz")


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
    import pandas as pd

    results = Path(results)
    out = Path(out)
    _check_out_name(out)
    if not results.is_file():
        raise InputError(f"{results}: file not found")
    if out.resolve() == results.resolve():
        raise InputError(f"{out}: would overwrite the input - choose another --out")
    null_data = read_null_json(null) if null is not None else None
    if null_data is not None:
        _check_null_matches(results, null_data, Path(null))  # type: ignore[arg-type]
    scan_meta = None
    side = Path(f"{results}{META_SUFFIX}")
    if side.exists():
        try:
            scan_meta = json.loads(side.read_text())
        except json.JSONDecodeError:
            scan_meta = None

    try:
        head = pd.read_csv(results, sep="\t", nrows=0)
    except (pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"{results}: not a readable glimix results TSV ({exc})") from None
    missing = [c for c in COLUMNS if c not in head.columns]
    if missing:
        raise InputError(f"{results}: not a glimix results file (missing columns "
                         f"{', '.join(missing)}) - pass the output of glimix scan or merge")

    left_out: Counter[str] = Counter()
    bad_chrom: Counter[str] = Counter()
    bad_allele: Counter[str] = Counter()
    bad_pos: Counter[str] = Counter()
    bad_eaf: Counter[str] = Counter()
    renamed: Counter[str] = Counter()
    per_chrom: Counter[int] = Counter()
    rows_read = rows_written = ids_rewritten = rsids = 0
    tests: Counter[str] = Counter()
    max_n: int | None = None
    is_sorted = True
    last_key = -1
    chrom_cache: dict[str, int | None] = {}

    reader = pd.read_csv(results, sep="\t", dtype=str, keep_default_na=False,
                         na_filter=False, chunksize=chunksize, usecols=list(COLUMNS))
    with atomic_text_writer(out) as fh:
        fh.write("\t".join(SSF_COLUMNS) + "\n")
        for df in reader:
            rows_read += len(df)
            status = df["status"]
            ok = status == "ok"
            for s, c in status[~ok].value_counts().items():
                left_out[str(s)] += int(c)
            df = df[ok]
            na = df[list(MANDATORY)].isin(["NA", ""]).any(axis=1)
            if na.any():
                left_out["missing value"] += int(na.sum())
                df = df[~na]
            if df.empty:
                continue
            names = df["chromosome"]
            for name in names.unique():
                if name not in chrom_cache:
                    chrom_cache[name] = ssf_chromosome(name)
            code = names.map(chrom_cache)
            unmapped = code.isna()
            if unmapped.any():
                bad_chrom.update(names[unmapped].tolist())
            ea = df["effect_allele"].str.upper()
            oa = df["other_allele"].str.upper()
            for allele in (ea, oa):
                bad = ~allele.str.fullmatch(_NUCLEOTIDES)
                if bad.any():
                    bad_allele.update(allele[bad].tolist())
            pos = df["base_pair_location"]
            bad = ~pos.str.fullmatch(r"[0-9]+")
            if bad.any():
                bad_pos.update(pos[bad].tolist())
            eaf = pd.to_numeric(df["effect_allele_frequency"], errors="coerce")
            bad = ~((eaf >= 0) & (eaf <= 1))
            if bad.any():
                bad_eaf.update(df["effect_allele_frequency"][bad].tolist())
            if bad_chrom or bad_allele or bad_pos or bad_eaf:
                continue  # keep scanning to report every problem, write nothing more
            code = code.astype("int64")
            code_txt = code.astype(str)
            changed = names != code_txt
            if changed.any():
                for (nm, cd), c in pd.DataFrame({"n": names[changed], "c": code[changed]}) \
                        .value_counts().items():
                    renamed[f"{nm} -> {cd}"] += int(c)
            for cd, c in code.value_counts().items():
                per_chrom[int(cd)] += int(c)
            key = code.to_numpy() * 10**10 + pos.astype("int64").to_numpy()
            if is_sorted and (key[0] < last_key or (len(key) > 1 and (key[1:] < key[:-1]).any())):
                is_sorted = False
            last_key = int(key[-1])
            vid = df["variant_id"]
            fits = vid.str.fullmatch(_ID_OK)
            new_id = vid.where(fits, code_txt + "_" + pos + "_" + oa + "_" + ea)
            ids_rewritten += int((~fits).sum())
            is_rs = vid.str.fullmatch(_RSID)
            rsids += int(is_rs.sum())
            n = df["n"].where(df["n"] != "NA", NA)
            nn = pd.to_numeric(df["n"], errors="coerce")
            if nn.notna().any():
                m = int(nn.max())
                max_n = m if max_n is None else max(max_n, m)
            table = pd.DataFrame({
                "chromosome": code_txt, "base_pair_location": pos,
                "effect_allele": ea, "other_allele": oa, "beta": df["beta"],
                "standard_error": df["standard_error"],
                "effect_allele_frequency": df["effect_allele_frequency"],
                "p_value": df["p_value"], "variant_id": new_id,
                "rsid": vid.where(is_rs, NA), "n": n,
            })
            table.to_csv(fh, sep="\t", header=False, index=False, quoting=csv.QUOTE_NONE,
                         lineterminator="\n")
            rows_written += len(table)
            tests.update(df["test"].tolist())
        problems = []
        if bad_chrom:
            problems.append(f"chromosome names {_examples(bad_chrom)} (GWAS-SSF codes human "
                            "chromosomes only: 1-22, X=23, Y=24, MT=25)")
        if bad_allele:
            problems.append(f"alleles {_examples(bad_allele)} (GWAS-SSF alleles are "
                            "nucleotide strings of A, C, G, T)")
        if bad_pos:
            problems.append(f"base-pair positions {_examples(bad_pos)} (must be integers "
                            ">= 0)")
        if bad_eaf:
            problems.append(f"effect-allele frequencies {_examples(bad_eaf)} (must lie in "
                            "[0, 1])")
        if problems:
            n_bad = sum(bad_chrom.values()) + sum(bad_allele.values()) + \
                sum(bad_pos.values()) + sum(bad_eaf.values())
            raise InputError(f"{results}: cannot be expressed in GWAS-SSF (human genomes with "
                             f"nucleotide alleles) - {'; '.join(problems)}; {n_bad:,} values "
                             "in all. Exclude those variants (glimix scan --extract) or "
                             "recode the .bim; nothing was written")
        if rows_written == 0:
            raise InputError(f"{results}: no row with status ok among {rows_read:,} - nothing "
                             "to export")
        present = set(per_chrom)
        absent = sorted(_AUTOSOMES - present)
        if absent and present != {23} and not allow_missing_autosomes:
            raise InputError(f"{results}: autosomes {_ranges(absent)} are missing and the "
                             "GWAS Catalog requires all of 1-22 - export the merged scan of "
                             "every chromosome (glimix merge), or pass "
                             "--allow-missing-autosomes to write it anyway")

    md5 = hashlib.md5(out.read_bytes(), usedforsecurity=False).hexdigest()
    meta, notes = _metadata(out, md5, rows_written, is_sorted, null_data, scan_meta, max_n,
                            genome_assembly, trait, ancestry, genotyping_technology,
                            today or _dt.date.today(), tests)
    if absent and present != {23}:
        notes.append(f"autosomes {_ranges(absent)} absent: the Catalog validator will "
                     "reject this file")
    meta_file = metadata_path(out)
    with atomic_text_writer(meta_file) as fh:
        fh.write("# GWAS-SSF metadata, written by glimix export-ssf\n")
        fh.write(to_yaml(meta))
    return SsfExport(out=out, meta=meta_file, rows_read=rows_read, rows_written=rows_written,
                     left_out=dict(left_out), ids_rewritten=ids_rewritten, rsids=rsids,
                     chromosomes=dict(sorted(per_chrom.items())),
                     renamed_chromosomes=dict(renamed), is_sorted=is_sorted, notes=notes)


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
