"""``glimix report``: one self-contained HTML page about a scan.

The page holds the run's inputs and software versions, the sample counts at each filtering
step, the null model, QC counts by status, lambda_GC, the Manhattan and QQ plots (embedded
as base64 PNG, so the file can be mailed or archived alone) and a table of the top
variants. Every string that comes from a file is HTML-escaped; the page loads nothing from
the network.
"""

from __future__ import annotations

import base64
import json
import math
import os
import platform
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from glimix_cli.errors import InputError
from glimix_cli.io.atomic import check_output
from glimix_cli.io.results import META_SUFFIX, format_pvalues
from glimix_cli.report import write_bytes_atomic
from glimix_cli.report.data import GENOME_WIDE, SUGGESTIVE, ScanTable, read_scan_table

NULL_FORMAT = 1


# ----------------------------------------------------------------------------------------
# inputs


def load_null_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and minimally validate ``PREFIX.null.json`` written by ``glimix fit``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: not found - run `glimix fit ... --out PREFIX` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = getattr(exc, "msg", str(exc))
        raise InputError(f"{p}: not valid JSON ({msg}) - pass PREFIX.null.json from "
                         "glimix fit") from None
    if not isinstance(data, dict) or not isinstance(data.get("null"), dict):
        raise InputError(f"{p}: not a glimix null-model file (no 'null' section) - pass "
                         "PREFIX.null.json from glimix fit")
    if data.get("format") != NULL_FORMAT:
        raise InputError(f"{p}: null-model format {data.get('format')!r}, this glimix reads "
                         f"{NULL_FORMAT} - rerun glimix fit")
    return data


def _read_sidecar(results: Path) -> dict[str, Any] | None:
    p = Path(f"{results}{META_SUFFIX}")
    if not p.is_file():
        return None
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) else None


def check_pairing(results: Path, meta: dict[str, Any] | None, null: dict[str, Any] | None,
                  null_path: Path | None) -> None:
    """Refuse a null JSON that visibly belongs to another scan (likelihood or sample count)."""
    if meta is None or null is None:
        return
    f = null["null"]
    if "likelihood" in meta and "likelihood" in f and meta["likelihood"] != f["likelihood"]:
        raise InputError(f"{null_path}: a {f['likelihood']} null model, but {results} is a "
                         f"{meta['likelihood']} scan - pass the null JSON of this scan")
    if "samples" in meta and "n" in f and int(meta["samples"]) != int(f["n"]):
        raise InputError(f"{null_path}: fitted on {f['n']} samples, but {results} was scanned "
                         f"on {meta['samples']} - pass the null JSON of this scan")


# ----------------------------------------------------------------------------------------
# formatting


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "NA"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _e(x)
    if not math.isfinite(v):
        return "NA"
    return f"{v:.{digits}g}"


def _int(x: Any) -> str:
    try:
        return f"{int(x):,}"
    except (TypeError, ValueError):
        return _e(x)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "",
           numeric: Sequence[bool] | None = None) -> str:
    """An HTML table; cells are given already escaped/formatted."""
    numeric = numeric or [False] * len(headers)
    head = "".join(f'<th class="{"num" if n else ""}">{_e(h)}</th>'
                   for h, n in zip(headers, numeric, strict=True))
    body = "\n".join("<tr>" + "".join(f'<td class="{"num" if n else ""}">{c}</td>'
                                      for c, n in zip(r, numeric, strict=True)) + "</tr>"
                     for r in rows)
    return (f'<table class="{cls}"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            "</tbody></table>")


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    """Key/value table; keys are escaped here, values must be escaped by the caller."""
    body = "\n".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>\n{body}\n</tbody></table>'


def _img(png: bytes, alt: str, cls: str) -> str:
    b64 = base64.b64encode(png).decode("ascii")
    return f'<img class="{cls}" alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _file_desc(fp: Any) -> str:
    if not isinstance(fp, dict):
        return "none" if fp is None else _e(fp)
    # fingerprints name the file (``name``; ``bed_name`` for genotypes), not its folder
    name = fp.get("path") or fp.get("name") or fp.get("bed_name") or "?"
    parts = [f"<code>{_e(name)}</code>"]
    if "size" in fp:
        parts.append(f"{_int(fp['size'])} bytes")
    if "sha256" in fp:
        parts.append(f"sha256 <code>{_e(str(fp['sha256'])[:16])}…</code>")
    return ", ".join(parts)


# ----------------------------------------------------------------------------------------
# sections


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}">\n<h2>{_e(title)}</h2>\n{body}\n</section>'


def _inputs_section(null: dict[str, Any] | None, results: Path, n_rows: int,
                    meta: dict[str, Any] | None) -> str:
    rows: list[tuple[str, str]] = [("results", f"<code>{_e(results)}</code>, {_int(n_rows)} rows")]
    if meta is not None:
        chunk = meta.get("chunk") or {}
        merged = chunk.get("merged_from")
        desc = [f"{_e(meta.get('likelihood', '?'))} scan of {_int(meta.get('samples', '?'))} "
                "samples"]
        if merged:
            desc.append(f"merged from {_int(len(merged))} chunks")
        elif chunk and chunk.get("n", 1) != 1:
            desc.append(f"chunk {_int(chunk.get('i'))}/{_int(chunk.get('n'))}")
        rows.append(("scan (sidecar)", ", ".join(desc)))
    if null is not None:
        inp = null.get("inputs") or {}
        bf = inp.get("bfile") or {}
        rows.append(("genotypes", f"<code>{_e(bf.get('bed_name', '?'))}</code>: "
                     f"{_int(bf.get('n_samples', '?'))} samples × "
                     f"{_int(bf.get('n_variants', '?'))} variants"))
        rows.append(("phenotype", f"{_file_desc(inp.get('pheno'))}; column "
                     f"<code>{_e(inp.get('pheno_name', '?'))}</code>"
                     + (f", coded {_e(null['trait_coding'])}" if null.get("trait_coding")
                        else "")))
        lik = _e(inp.get("likelihood", null["null"].get("likelihood", "?")))
        if inp.get("trials_name"):
            lik += f" (trials: <code>{_e(inp['trials_name'])}</code>)"
        rows.append(("likelihood", lik))
        cov = _file_desc(inp.get("covar"))
        if inp.get("covar"):
            names = inp.get("covar_names") or []
            cov += "; columns " + (", ".join(f"<code>{_e(n)}</code>" for n in names)
                                   if names else "all")
            if inp.get("covar_cat"):
                cov += "; categorical " + ", ".join(f"<code>{_e(n)}</code>"
                                                     for n in inp["covar_cat"])
        rows.append(("covariates", cov))
        dropped = null.get("covariates_dropped") or []
        if dropped:
            rows.append(("covariates dropped", "; ".join(
                f"<code>{_e(d[0])}</code>: {_e(d[1])}" if isinstance(d, list) and len(d) == 2
                else _e(d) for d in dropped)))
        kin = null.get("kinship") or {}
        kdesc = _e(kin.get("source", "?"))
        if kin.get("n_variants"):
            kdesc += f" from {_int(kin['n_variants'])} variants"
        opts = kin.get("options") or {}
        if opts.get("maf_min"):
            kdesc += f", MAF ≥ {_num(opts['maf_min'])}"
        if opts.get("kinship_extract"):
            kdesc += f", variants from {_file_desc(opts['kinship_extract'])}"
        rows.append(("kinship", kdesc))
        if inp.get("kinship"):
            rows.append(("kinship matrix", _file_desc(inp["kinship"])))
        codes = inp.get("missing_codes")
        if codes is not None:
            rows.append(("missing codes", " ".join(f"<code>{_e(c) if c else '&quot;&quot;'}"
                                                   "</code>" for c in codes)))
    else:
        rows.append(("null model file", "not given (pass <code>--null PREFIX.null.json</code> "
                     "from <code>glimix fit</code> to show inputs, samples and the null model)"))
    sw = (null or {}).get("software") or {}
    fit_sw = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sw.items()) or "unknown"
    rows.append(("software (fit)", fit_sw))
    rows.append(("software (report)", ", ".join(f"{k} {_e(v)}" for k, v in _versions().items())))
    return _section("inputs", "Inputs and versions", _kv(rows))


def _versions() -> dict[str, str]:
    import matplotlib
    import pandas

    from glimix_cli import __version__

    return {"glimix": __version__, "numpy": np.__version__, "pandas": pandas.__version__,
            "matplotlib": matplotlib.__version__, "python": platform.python_version()}


def _samples_section(null: dict[str, Any] | None) -> str:
    counts = ((null or {}).get("samples") or {}).get("counts") or {}
    if not counts:
        return _section("samples", "Samples", "<p>No sample counts (no null-model file).</p>")
    rows = []
    prev = None
    for step, k in counts.items():
        rows.append([_e(step), _int(k), "" if prev is None else _int(int(prev) - int(k))])
        prev = k
    return _section("samples", "Samples at each filtering step",
                    _table(["step", "kept", "dropped"], rows, numeric=[False, True, True]))


def _null_section(null: dict[str, Any] | None) -> str:
    if null is None:
        return _section("null", "Null model", "<p>No null-model file given.</p>")
    f = null["null"]
    names = f.get("covariates") or []
    beta = f.get("beta") or []
    se = f.get("beta_se") or []
    eff = _table(["covariate", "effect", "SE", "95% CI (± 1.96 SE)"],
                 [[f"<code>{_e(n)}</code>", _num(b), _num(s),
                   f"{_num(b - 1.96 * s)} … {_num(b + 1.96 * s)}"
                   if _finite(b) and _finite(s) else "NA"]
                  for n, b, s in zip(names, beta, se, strict=False)],
                 numeric=[False, True, True, True])
    status = _e(f.get("status", "?"))
    if f.get("status") != "converged":
        status = f'<span class="warn">{status}</span>'
    if f.get("evaluations"):
        opt = (f"{status}: {_int(f.get('iterations', 0))} iterations, "
               f"{_int(f.get('evaluations', 0))} evaluations")
    else:  # a closed-form / grid search that counts nothing (the Normal LMM)
        opt = f"{status}: {_e(f.get('message', ''))}"
    if f.get("ep_sweeps"):
        opt += f", {_int(f['ep_sweeps'])} EP sweeps"
    par = [("likelihood", _e(f.get("likelihood", "?"))),
           ("samples", _int(f.get("n", "?"))),
           ("v0 (kinship variance)", _num(f.get("v0"))),
           ("v1 (iid latent variance)", _num(f.get("v1"))),
           ("latent heritability v0/(v0+v1)", _num(f.get("h2_latent"), 3))]
    if f.get("h2_liability") is not None:
        par.append(("liability heritability (link variance added)",
                    _num(f.get("h2_liability"), 3)))
    par += [("log marginal likelihood", _num(f.get("lml"), 10)),
            ("optimiser", opt)]
    if f.get("message") and f.get("evaluations"):  # (otherwise it is in the row above)
        par.append(("optimiser message", _e(f["message"])))
    if f.get("seconds") is not None:
        par.append(("fit time", f"{_num(f['seconds'], 3)} s"))
    return _section("null", "Null model", f'<div class="cols"><div>{_kv(par)}</div>'
                    f"<div>{eff}</div></div>")


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _qc_block(counts: dict[str, int], n_rows: int, lam: float, n_ok: int,
              n_gw: int, n_sugg: int) -> str:
    rows = [[f"<code>{_e(k)}</code>", _int(v), f"{100 * v / n_rows:.2f}%" if n_rows else ""]
            for k, v in counts.items()]
    rows.append(["<b>total</b>", f"<b>{_int(n_rows)}</b>", ""])
    tab = _table(["status", "variants", "share"], rows, numeric=[False, True, True])
    facts = _kv([
        ("λ_GC", f"<b>{_num(lam)}</b> = median χ²₁ / 0.4549 over {_int(n_ok)} variants "
         "with status ok"),
        ("p < 5e-8 (genome-wide)", _int(n_gw)),
        ("p < 1e-5 (suggestive)", _int(n_sugg)),
    ])
    return (f'<div class="side"><h3>Variant QC and inflation</h3>{tab}{facts}'
            '<p class="note">Plotted: variants with status <code>ok</code>. Red line: '
            "genome-wide significance (p = 5e-8); dashed: suggestive (p = 1e-5). QQ band: "
            "pointwise 95% interval of uniform order statistics. Points at −log10 p ≤ 3 are "
            "thinned on a sub-pixel grid; every point above is drawn.</p></div>")


def _top_section(top: Any, k: int) -> str:
    if top.empty:
        return _section("top", f"Top {k} variants", "<p>No variant with status ok.</p>")
    pv = format_pvalues(top["neg_log10_p_value"].to_numpy(dtype=np.float64))
    rows = []
    for i, r in enumerate(top.itertuples(index=False)):
        rows.append([str(i + 1), f"<code>{_e(r.variant_id)}</code>", _e(r.chromosome),
                     _int(r.base_pair_location), _e(r.effect_allele), _e(r.other_allele),
                     _num(r.effect_allele_frequency, 3), _num(r.beta), _num(r.standard_error),
                     _e(pv[i]), _num(r.neg_log10_p_value, 4), _int(r.n)])
    headers = ["#", "variant", "chr", "position", "effect allele", "other allele", "EAF",
               "beta", "SE", "p", "−log10 p", "n"]
    numeric = [True, False, False, True, False, False, True, True, True, True, True, True]
    return _section("top", f"Top {len(top)} variants (status ok)",
                    _table(headers, rows, "top", numeric))


CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#1c2833;
background:#fbfcfc;font-size:14px;line-height:1.4}
main{max-width:1150px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #d5dbdb;padding-bottom:3px}
.sub{color:#566573;margin:0 0 12px}
.tiles{display:flex;gap:12px;flex-wrap:wrap}
.tile{background:#fff;border:1px solid #d5dbdb;border-radius:6px;padding:8px 14px;min-width:130px}
.tile .v{font-size:20px;font-weight:600}.tile .k{color:#566573;font-size:12px}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #eaeded;padding:3px 10px;text-align:left;vertical-align:top}
thead th{border-bottom:2px solid #aab7b8}
table.kv th{font-weight:500;color:#566573;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.top tbody tr:nth-child(odd){background:#f4f6f7}
.cols{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start;margin-top:12px}
.side{flex:1;min-width:320px}.side table{margin-bottom:10px}
h3{font-size:15px;margin:4px 0 8px}.note{color:#566573;font-size:12px}
img.manhattan{width:100%;height:auto;border:1px solid #eaeded;background:#fff}
img.qq{width:460px;max-width:100%;height:auto;border:1px solid #eaeded;background:#fff}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.warn{color:#b03a2e;font-weight:600}
footer{color:#808b96;font-size:12px;margin-top:32px}
"""


def render_report(*, title: str, results: Path, table: ScanTable,
                  null: dict[str, Any] | None, meta: dict[str, Any] | None,
                  manhattan_png: bytes, qq_png: bytes, lam: float, top_k: int = 20) -> str:
    """The report page as a string (every file-derived string escaped)."""
    n_gw = int(np.sum(table.nlp >= GENOME_WIDE))
    n_sugg = int(np.sum(table.nlp >= SUGGESTIVE))
    top = table.top.head(top_k)
    best = (f"{_e(top['variant_id'].iloc[0])} (p = "
            f"{_e(format_pvalues(top['neg_log10_p_value'].to_numpy()[:1])[0])})"
            if len(top) else "none")
    n_final = ((null or {}).get("samples") or {}).get("counts", {}).get("final")
    if n_final is None and null is not None:
        n_final = null["null"].get("n")
    tiles = [("variants tested (ok)", _int(table.n_ok)), ("λ<sub>GC</sub>", _num(lam, 4)),
             ("p &lt; 5e-8", _int(n_gw)), ("samples", _int(n_final) if n_final is not None
                                           else "NA"),
             ("top hit", best)]
    tiles_html = '<div class="tiles">' + "".join(
        f'<div class="tile"><div class="v">{v}</div><div class="k">{k}</div></div>'
        for k, v in tiles) + "</div>"
    lik = null["null"].get("likelihood") if null else (meta or {}).get("likelihood")
    sub = f"<code>{_e(results.name)}</code>" + (f" · {_e(lik)} likelihood" if lik else "")
    plots = (_img(manhattan_png, "Manhattan plot", "manhattan")
             + f'<div class="cols">{_img(qq_png, "QQ plot", "qq")}'
             + _qc_block(table.status_counts, table.n_rows, lam, table.n_ok, n_gw, n_sugg)
             + "</div>")
    from glimix_cli import __version__

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>glimix report: {_e(title)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>glimix report: {_e(title)}</h1>",
        f'<p class="sub">{sub}</p>',
        tiles_html,
        _section("plots", "Manhattan, QQ and variant QC", plots),
        _top_section(top, top_k),
        _null_section(null),
        _samples_section(null),
        _inputs_section(null, results, table.n_rows, meta),
        f"<footer>Written by glimix {_e(__version__)} (<code>glimix report</code>).</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def run_report(results: str | os.PathLike[str], out: str | os.PathLike[str],
               null_path: str | os.PathLike[str] | None = None, *, top: int = 20,
               title: str | None = None) -> dict[str, Any]:
    """``glimix report``: read the results (and null JSON), draw the plots, write the page."""
    from glimix_cli.report.plots import plot_table, require_matplotlib

    check_output(Path(out), "--out")  # before anything is read
    require_matplotlib("glimix report")
    rpath = Path(results)
    null = load_null_json(null_path) if null_path is not None else None
    meta = _read_sidecar(rpath)
    check_pairing(rpath, meta, null, Path(null_path) if null_path is not None else None)
    table = read_scan_table(rpath, top=top)
    name = title if title is not None else str((meta or {}).get("trait") or rpath.name)
    ps = plot_table(table, str(rpath), name, command="glimix report")
    warnings = []
    if null is None:
        warnings.append("no --null given: the page has no inputs, sample counts or null model")
    page = render_report(title=name, results=rpath, table=table, null=null, meta=meta,
                         manhattan_png=ps.manhattan, qq_png=ps.qq, lam=ps.lambda_gc, top_k=top)
    path = write_bytes_atomic(out, page.encode("utf-8"))
    return {"out": path, "lambda_gc": ps.lambda_gc, "n_rows": table.n_rows,
            "n_ok": table.n_ok,
            "warnings": warnings}
