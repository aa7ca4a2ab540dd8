"""Per-variant results: the TSV layout, an atomic writer, and the chunk merger.

Columns (GWAS-SSF names; the first eight in the order GWAS-SSF fixes):

    chromosome  base_pair_location  effect_allele  other_allele  beta  standard_error
    effect_allele_frequency  p_value  variant_id  n  lrt_chisq  neg_log10_p_value  status
    test  p_value_surrogate
    [0/1 traits:] n_cases  n_controls  effect_allele_frequency_cases
    effect_allele_frequency_controls
    [BGEN / .pgen dosages:] info

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
#: Extra column of dosage inputs (BGEN, .pgen), last: the imputation INFO (MaCH R^2, see
#: ``pipeline.qc.dosage_info``).
INFO_COLUMNS = ("info",)
HEADERS = (HEADER, BINARY_HEADER, "\t".join(COLUMNS + INFO_COLUMNS) + "\n",
           "\t".join(COLUMNS + BINARY_COLUMNS + INFO_COLUMNS) + "\n")


def results_header(binary: bool, info: bool = False) -> str:
    """The header line of a results file (with the case/control columns for 0/1 traits,
    then the ``info`` column for dosage inputs)."""
    return HEADERS[int(binary) + 2 * int(info)]
META_SUFFIX = ".meta.json"


def _fmt(x: NDArray[np.float64], digits: int = 6) -> list[str]:
    """``%.{digits}g`` of every value, ``NA`` for NaN and infinities."""
    x = np.asarray(x, dtype=np.float64)
    out = list(map(f"%.{digits}g".__mod__, x.tolist()))
    for i in np.flatnonzero(~np.isfinite(x)).tolist():
        out[i] = "NA"
    return out


def format_pvalues(neg_log10_p: NDArray[np.float64]) -> list[str]:
    """P-values as text from their -log10, exact below the float64 range (e.g. 3.1e-412)."""
    v = np.asarray(neg_log10_p, dtype=np.float64)
    finite = np.isfinite(v)
    small = finite & (v < 300)
    # 10.0 ** (-v) in numpy is the C pow() that Python's float ** calls: the same bits
    with np.errstate(over="ignore"):
        p = np.where(small, np.power(10.0, -np.where(small, v, 0.0)), np.nan)
    out = list(map("%.4g".__mod__, p.tolist()))
    for i in np.flatnonzero(~small).tolist():
        if not finite[i]:
            out[i] = "NA"
            continue
        e = int(np.floor(-v[i]))
        mant = 10.0 ** (-float(v[i]) - e)
        if mant >= 9.9995:  # rounding carried into the exponent
            mant, e = mant / 10, e + 1
        out[i] = f"{mant:.4g}e{e:+d}".replace("e+", "e")
    return out


def _text(values: Sequence[Any] | NDArray) -> list[str]:
    return list(map(str, np.asarray(values, dtype=object).tolist()))


def _ints(values: Sequence[Any] | NDArray) -> list[str]:
    return list(map(str, np.asarray(values).astype(np.int64).tolist()))


def format_rows(cols: dict[str, Sequence[Any] | NDArray]) -> str:
    """Format one block of results (dict of equal-length columns) as TSV lines.

    The columns are formatted whole (no per-value numpy call) and zipped into lines: about
    1 us per row at 15 columns.
    """
    n = len(cols["variant_id"])
    nlp = np.asarray(cols["neg_log10_p_value"], dtype=float)
    nlp_s = cols.get("neg_log10_p_value_surrogate")
    text = [
        _text(cols["chromosome"]),
        _ints(cols["base_pair_location"]),
        _text(cols["effect_allele"]),
        _text(cols["other_allele"]),
        _fmt(cols["beta"]),
        _fmt(cols["standard_error"]),
        _fmt(cols["effect_allele_frequency"]),
        p := format_pvalues(nlp),
        _text(cols["variant_id"]),
        _ints(cols["n"]),
        _fmt(cols["lrt_chisq"]),
        _fmt(nlp, 5),
        _text(cols["status"]),
        # optional (older callers): the test behind p_value, the surrogate's own p-value
        (_text(cols["test"]) if "test" in cols else ["NA"] * n),
        p if nlp_s is None or np.array_equal(nlp_s, nlp, equal_nan=True)
        else format_pvalues(np.asarray(nlp_s, dtype=float)),
    ]
    if "n_cases" in cols:
        text += [_fmt(cols[c]) for c in BINARY_COLUMNS]
    if "info" in cols:
        text.append(_fmt(cols["info"]))
    if not n:
        return ""
    return "\n".join(map("\t".join, zip(*text, strict=True))) + "\n"


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
