"""The GWAS-SSF metadata file ``NAME.tsv.gz-meta.yaml`` that :func:`.ssf.export_ssf` writes.

Its sources (the ``PREFIX.null.json`` of ``glimix fit`` and the scan's ``.meta.json``
sidecar), the fields the GWAS Catalog asks for, the free-text ``author_notes`` describing
the model, and a small block-style YAML writer (no PyYAML needed).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from glimix_cli.errors import InputError
from glimix_cli.io.results import META_SUFFIX
from glimix_cli.registry import BINARY_LIKELIHOODS, LINKS

__all__ = [
    "CATALOG_MIN_ROWS",
    "SSF_FILE_TYPE",
    "build_metadata",
    "check_null_matches",
    "read_null_json",
    "read_scan_meta",
    "to_yaml",
]

SSF_FILE_TYPE = "GWAS-SSF v1.0"
#: Row count below which the GWAS Catalog validator fails a file (its ``--min-rows`` default).
CATALOG_MIN_ROWS = 100_000


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


def read_scan_meta(results: Path) -> dict[str, Any] | None:
    """The ``.meta.json`` sidecar of a results file, or None if it is absent or not JSON."""
    side = Path(f"{results}{META_SUFFIX}")
    if not side.exists():
        return None
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError:
        return None


def check_null_matches(results: Path, scan_meta: dict[str, Any] | None,
                       null: dict[str, Any], null_path: Path) -> None:
    """``InputError`` if the null JSON is not that of the scan (likelihood, sample count)."""
    if scan_meta is None:
        return
    lik, n = scan_meta.get("likelihood"), scan_meta.get("samples")
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
        link = LINKS.get(likelihood, "?")
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
        parts.append(f"Null model: the {LINKS.get(likelihood or '', '?')} GLM on the "
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


def build_metadata(out: Path, md5: str, summary_rows: int, is_sorted: bool,
                   null: dict[str, Any] | None, scan_meta: dict[str, Any] | None,
                   max_n: int | None, genome_assembly: str, trait: str | None,
                   ancestry: Sequence[str], genotyping_technology: Sequence[str],
                   today: _dt.date, tests: Counter[str] | None = None
                   ) -> tuple[dict[str, Any], list[str]]:
    """The metadata mapping (for :func:`to_yaml`) and the notes on what it lacks."""
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
    if likelihood in BINARY_LIKELIHOODS:
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
