"""Per-variant results: the TSV layout, an atomic writer, and the chunk merger.

Columns (GWAS-SSF names; the first eight in the order GWAS-SSF fixes):

    chromosome  base_pair_location  effect_allele  other_allele  beta  standard_error
    effect_allele_frequency  p_value  variant_id  n  lrt_chisq  neg_log10_p_value  status
    test  p_value_surrogate
    [0/1 traits:] n_cases  n_controls  effect_allele_frequency_cases
    effect_allele_frequency_controls

``test`` names what produced ``p_value`` (``surrogate_lrt``, ``score`` or ``spa``);
``p_value_surrogate`` is the Normal-theory p-value of that statistic,
``chi2_1.sf(lrt_chisq)`` (the surrogate LRT, or the GLM score test of a 0/1 trait whose
kinship variance is not identified).

Every output ``FILE`` gets a sidecar ``FILE.meta.json`` describing the run: chunk I/N, the
selected variant range, a fingerprint (hash) of the inputs, selection and options, the
likelihood and the sample count. ``merge_results`` checks the chunks by the fingerprint and
the chunk numbers (and each file's header); ``export_ssf`` reads likelihood and samples.
Outputs are written to a temporary file in the target directory and renamed at the end,
so an interrupted run never leaves a file that looks finished. ``.gz`` outputs are
compressed with a fixed header (no name, mtime 0) so equal content gives equal bytes.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import InputError
from glimix_cli.io.atomic import atomic_binary

COLUMNS = (
    "chromosome",
    "base_pair_location",
    "effect_allele",
    "other_allele",
    "beta",
    "standard_error",
    "effect_allele_frequency",
    "p_value",
    "variant_id",
    "n",
    "lrt_chisq",
    "neg_log10_p_value",
    "status",
    "test",
    "p_value_surrogate",
)
HEADER = "\t".join(COLUMNS) + "\n"
#: Extra columns of 0/1 traits (after the others): non-missing cases and controls per
#: variant and the effect-allele frequency among each (REGENIE's N_CASES, N_CONTROLS,
#: A1FREQ_CASES, A1FREQ_CONTROLS).
BINARY_COLUMNS = ("n_cases", "n_controls", "effect_allele_frequency_cases",
                  "effect_allele_frequency_controls")
BINARY_HEADER = "\t".join(COLUMNS + BINARY_COLUMNS) + "\n"
HEADERS = (HEADER, BINARY_HEADER)


def results_header(binary: bool) -> str:
    """The header line of a results file (with the case/control columns for 0/1 traits)."""
    return BINARY_HEADER if binary else HEADER
META_SUFFIX = ".meta.json"


def _fmt(x: NDArray[np.float64], digits: int = 6) -> list[str]:
    return ["NA" if not np.isfinite(v) else f"{v:.{digits}g}" for v in x.tolist()]


def format_pvalues(neg_log10_p: NDArray[np.float64]) -> list[str]:
    """P-values as text from their -log10, exact below the float64 range (e.g. 3.1e-412)."""
    out = []
    for v in neg_log10_p.tolist():
        if not np.isfinite(v):
            out.append("NA")
            continue
        if v < 300:
            out.append(f"{10.0 ** (-v):.4g}")
            continue
        e = int(np.floor(-v))
        mant = 10.0 ** (-v - e)
        if mant >= 9.9995:  # rounding carried into the exponent
            mant, e = mant / 10, e + 1
        out.append(f"{mant:.4g}e{e:+d}".replace("e+", "e"))
    return out


def format_rows(cols: dict[str, Sequence[Any] | NDArray]) -> str:
    """Format one block of results (dict of equal-length columns) as TSV lines."""
    n = len(cols["variant_id"])
    text = {
        "chromosome": [str(c) for c in cols["chromosome"]],
        "base_pair_location": [str(int(p)) for p in cols["base_pair_location"]],
        "effect_allele": [str(a) for a in cols["effect_allele"]],
        "other_allele": [str(a) for a in cols["other_allele"]],
        "beta": _fmt(np.asarray(cols["beta"], dtype=float)),
        "standard_error": _fmt(np.asarray(cols["standard_error"], dtype=float)),
        "effect_allele_frequency": _fmt(np.asarray(cols["effect_allele_frequency"], dtype=float)),
        "p_value": format_pvalues(np.asarray(cols["neg_log10_p_value"], dtype=float)),
        "variant_id": [str(v) for v in cols["variant_id"]],
        "n": [str(int(v)) for v in cols["n"]],
        "lrt_chisq": _fmt(np.asarray(cols["lrt_chisq"], dtype=float)),
        "neg_log10_p_value": _fmt(np.asarray(cols["neg_log10_p_value"], dtype=float), 5),
        "status": [str(s) for s in cols["status"]],
        # optional (older callers): the test behind p_value, the surrogate's own p-value
        "test": ([str(t) for t in cols["test"]] if "test" in cols else ["NA"] * n),
        "p_value_surrogate": format_pvalues(np.asarray(
            cols.get("neg_log10_p_value_surrogate", cols["neg_log10_p_value"]), dtype=float)),
    }
    names = COLUMNS
    if "n_cases" in cols:
        names = COLUMNS + BINARY_COLUMNS
        text["n_cases"] = _fmt(np.asarray(cols["n_cases"], dtype=float))
        text["n_controls"] = _fmt(np.asarray(cols["n_controls"], dtype=float))
        for c in BINARY_COLUMNS[2:]:
            text[c] = _fmt(np.asarray(cols[c], dtype=float))
    lines = ["\t".join(text[c][i] for c in names) for i in range(n)]
    return "".join(line + "\n" for line in lines)


def _open_text_out(fh: IO[bytes], gz: bool) -> IO[str]:
    if gz:
        raw: IO[bytes] = gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0,
                                       compresslevel=6)
    else:
        raw = fh
    return io.TextIOWrapper(raw, encoding="utf-8", newline="\n")


@contextmanager
def atomic_text_writer(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """Write text to ``path`` through a temporary file renamed on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    ``.gz`` names are gzip-compressed deterministically.
    """
    with atomic_binary(path) as fh:
        out = _open_text_out(fh, Path(path).name.endswith(".gz"))
        yield out
        out.flush()
        out.close()


def write_meta(path: str | os.PathLike[str], meta: dict[str, Any]) -> None:
    with atomic_text_writer(f"{path}{META_SUFFIX}") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
        fh.write("\n")


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(f"{path}{META_SUFFIX}")
    if not p.exists():
        raise InputError(f"{path}: no {p.name} beside it - merge needs the sidecar that "
                         "`glimix scan --chunk I/N` writes next to each output")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON ({exc.msg}) - rerun that chunk") from None


def _open_text_in(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


def read_results(path: str | os.PathLike[str]):
    """Read a results TSV (plain or .gz) into a pandas DataFrame."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    df = pd.read_csv(p, sep="\t", dtype={"chromosome": str, "variant_id": str,
                                         "effect_allele": str, "other_allele": str,
                                         "p_value": str},
                     keep_default_na=False, na_values=["NA"])
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{p}: not a glimix results file (missing columns "
                         f"{', '.join(missing)})")
    return df


def merge_results(out: str | os.PathLike[str], parts: Sequence[str | os.PathLike[str]]) -> dict:
    """Concatenate chunk outputs after checking they form one complete run.

    Checks: every part has a sidecar from the same run (same inputs and selection), the
    chunk numbers are exactly 1..N with the same N, no duplicates, the header matches.
    The merged file equals the output of the same scan without ``--chunk`` byte for byte.
    """
    if not parts:
        raise InputError("merge: no chunk files given - pass CHUNK1.tsv ... CHUNKN.tsv")
    metas = []
    for p in parts:
        if not Path(p).exists():
            raise InputError(f"{p}: file not found")
        metas.append((Path(p), read_meta(p)))
    ref = metas[0][1]
    keys = ("run_fingerprint",)
    for p, m in metas[1:]:
        for k in keys:
            if m.get(k) != ref.get(k):
                raise InputError(f"{p}: comes from a different run than {metas[0][0]} "
                                 f"({k} differs) - merge chunks of one scan only")
    ns = {m["chunk"]["n"] for _, m in metas}
    if len(ns) != 1:
        raise InputError(f"merge: chunks disagree on N ({sorted(ns)}) - merge one --chunk I/N set")
    n = ns.pop()
    seen: dict[int, Path] = {}
    for p, m in metas:
        i = int(m["chunk"]["i"])
        if i in seen:
            raise InputError(f"{p}: chunk {i}/{n} given twice (also {seen[i]}) - each chunk "
                             "once")
        seen[i] = p
    absent = [i for i in range(1, n + 1) if i not in seen]
    if absent:
        raise InputError(f"merge: chunk(s) {', '.join(map(str, absent))} of {n} missing - run "
                         "them before merging")
    ordered = [seen[i] for i in range(1, n + 1)]
    total = 0
    with atomic_text_writer(out) as fh:
        first = None
        for p in ordered:
            with _open_text_in(p) as src:
                header = src.readline()
                if header not in HEADERS or (first is not None and header != first):
                    raise InputError(f"{p}: header differs from glimix's ({header.strip()[:60]}"
                                     "...) - was it written by another version?")
                if first is None:
                    first = header
                    fh.write(header)
                for line in src:
                    fh.write(line)
                    total += 1
    merged = dict(ref)
    merged["chunk"] = {"i": 1, "n": 1, "merged_from": [str(p) for p in ordered]}
    merged["n_rows"] = total
    write_meta(out, merged)
    return {"chunks": n, "rows": total}
