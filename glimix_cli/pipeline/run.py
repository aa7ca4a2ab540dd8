"""The ``fit`` and ``scan`` commands end to end: inputs -> kinship -> null model ->
blocks of variants tested here or on Dask -> ``OUT.partial`` and its ledger -> the TSV.

Nothing here prints. Progress and messages go through a :class:`Reporter` (the CLI gives
a rich one; tests and workers use the silent default). The steps live in their own
modules: :mod:`.inputs`, :mod:`.kinship`, :mod:`.null` (and :mod:`.null_file`),
:mod:`.scan`; :mod:`.chunks`, :mod:`.resume` and :mod:`.distributed` are the execution
back-ends.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import InputError
from glimix_cli.io.atomic import check_output
from glimix_cli.io.plink import Bfile, block_size_for_budget
from glimix_cli.io.results import merge_results, results_header, write_meta
from glimix_cli.pipeline.chunks import chunk_range, split_blocks
from glimix_cli.pipeline.config import InputConfig, ScanConfig
from glimix_cli.pipeline.inputs import Inputs, file_fingerprint, load_inputs
from glimix_cli.pipeline.kinship import Kinship, build_kinship, kinship_options
from glimix_cli.pipeline.null import NullModel, fit_null
from glimix_cli.pipeline.null_file import null_from_json, null_json, write_null_json
from glimix_cli.pipeline.progress import Reporter
from glimix_cli.pipeline.qc import chromosome_notes, select_variants
from glimix_cli.pipeline.resume import (
    RunIdentity,
    null_hash,
    open_partial,
    parse_rows,
    partial_paths,
    precheck_resume,
)
from glimix_cli.pipeline.scan import (
    BlockResult,
    ScanContext,
    resolve_test,
    scan_block,
    scan_context,
)
from glimix_cli.pipeline.summary import ScanTally

__all__ = ["FitOutcome", "InputConfig", "Reporter", "ScanConfig", "ScanSummary",
           "run_export_ssf", "run_fit", "run_merge", "run_scan"]


@dataclass
class FitOutcome:
    inputs: Inputs
    kinship: Kinship
    null: NullModel
    null_path: Path | None


def run_fit(cfg: InputConfig, out_prefix: Path | None, rep: Reporter) -> FitOutcome:
    """``glimix fit``: the null model, written to ``OUT_PREFIX.null.json`` when given."""
    if out_prefix is not None:
        check_output(Path(f"{out_prefix}.null.json"), "--out")
    inputs = load_inputs(cfg, rep)
    kin = build_kinship(cfg, inputs, rep)
    null = fit_null(inputs, kin, cfg.likelihood, rep)
    path = None
    if out_prefix is not None:
        path = Path(f"{out_prefix}.null.json")
        write_null_json(path, null_json(inputs, kin, null, cfg))
    return FitOutcome(inputs, kin, null, path)


@dataclass
class ScanSummary:
    out: Path
    n_variants: int
    status_counts: dict[str, int]
    lambda_gc: float
    lambda_gc_common: float
    top: list[dict[str, Any]]
    seconds: float
    null: NullModel
    inputs: Inputs
    n_imputed: int


def run_scan(cfg: InputConfig, scfg: ScanConfig, out: Path, rep: Reporter) -> ScanSummary:
    """Scan every selected variant of ``cfg`` and write ``out`` (plus its meta sidecar).

    Blocks run in this process, or on a Dask cluster when ``scfg`` names one (connected
    before anything else, so a wrong address fails fast). Rows go through
    ``OUT.partial`` and its ledger (:mod:`glimix_cli.pipeline.resume`), so a killed run can
    be continued with ``scfg.resume``; the result is byte-identical in every mode.
    """
    if not scfg.uses_dask:
        return _run_scan(cfg, scfg, out, rep, None)
    from glimix_cli.pipeline.distributed import dask_client

    with dask_client(scfg.dask_scheduler, scfg.dask_scheduler_file, scfg.dask_local) as client:
        return _run_scan(cfg, scfg, out, rep, client)


@dataclass
class _Plan:
    """The variants of this run (its chunk of the selection), their blocks, the test, and
    the identity a resumed run must match."""

    n_selected: int
    start: int
    stop: int
    block_size: int
    blocks: list[NDArray[np.intp]]
    test: str
    run_hash: str

    @property
    def n_rows(self) -> int:
        return self.stop - self.start


def _plan(cfg: InputConfig, scfg: ScanConfig, inputs: Inputs, rep: Reporter) -> _Plan:
    bfile = inputs.bfile
    sel = select_variants(bfile.variants, scfg.chrom, scfg.from_bp, scfg.to_bp, scfg.extract,
                          scfg.exclude)
    if sel.n_extract_not_found:
        rep.warn(f"{scfg.extract}: {sel.n_extract_not_found:,} of {sel.n_extract_ids:,} ids not "
                 f"in {bfile.bim} (e.g. {', '.join(sel.extract_not_found_examples[:3])})")
    if sel.n_excluded:
        rep.info(f"--exclude {scfg.exclude}: {sel.n_excluded:,} selected variants left out")
    if sel.indices.size == 0:
        raise InputError(f"{bfile.bim}: no variant matches the selection (--chr/--from-bp/"
                         "--to-bp/--extract/--exclude) - check the chromosome names and ranges")
    for level, message in chromosome_notes(bfile.variants, sel.indices, bfile.samples["sex"]):
        (rep.warn if level == "warn" else rep.info)(message)
    start, stop = chunk_range(sel.indices.size, *scfg.chunk)
    bs = scfg.block_size or min(block_size_for_budget(inputs.match.n, 256), 4096)
    test = resolve_test(scfg.test, cfg.likelihood)
    run_fp = {
        "inputs": inputs.fingerprint,
        "kinship": kinship_options(cfg),
        "selection": [int(sel.indices[0]), int(sel.indices[-1]), int(sel.indices.size),
                      file_fingerprint(scfg.exclude)],
        "qc": [scfg.maf, scfg.mac, scfg.max_missing],
        "null": scfg.null is not None,
        "test": test,
    }
    run_hash = hashlib.sha256(json.dumps(run_fp, sort_keys=True, default=str).encode()).hexdigest()
    return _Plan(int(sel.indices.size), start, stop, bs,
                 split_blocks(sel.indices[start:stop], bs), test, run_hash)


def _identity(plan: _Plan, scfg: ScanConfig, null_digest: str) -> RunIdentity:
    return RunIdentity(plan.run_hash, scfg.chunk, plan.block_size, len(plan.blocks), plan.n_rows,
                       null_digest)


def _run_scan(cfg: InputConfig, scfg: ScanConfig, out: Path, rep: Reporter,
              client: Any) -> ScanSummary:
    t0 = time.perf_counter()
    check_output(out)
    inputs = load_inputs(cfg, rep)
    bfile = inputs.bfile
    if client is not None:
        from glimix_cli.pipeline.distributed import check_workers

        where = ("local cluster" if scfg.dask_local is not None
                 else scfg.dask_scheduler or scfg.dask_scheduler_file)
        cl = check_workers(client, str(bfile.bed), rep.info)
        rep.info(f"dask: {cl['workers']} workers, {cl['threads']} threads ({where})")
    plan = _plan(cfg, scfg, inputs, rep)
    # before the kinship and the null fit: a --resume that would be refused, or a stale
    # partial file that this run replaces
    if scfg.resume:
        precheck_resume(out, _identity(plan, scfg, ""))
    elif partial_paths(out)[0].exists():
        rep.warn(f"{partial_paths(out)[0]}: an unfinished earlier run; it is replaced (rerun "
                 "with --resume to continue it instead)")
    kin = build_kinship(cfg, inputs, rep)
    if scfg.null is not None:
        null = null_from_json(scfg.null, inputs, kin, cfg)
        rep.info(f"null model: reused {scfg.null}")
    else:
        null = fit_null(inputs, kin, cfg.likelihood, rep)
    assert null.scanner is not None or null.route == "glm"
    ctx = scan_context(str(bfile.bed), inputs.match.geno_index, inputs.y, null, plan.test,
                       scfg.maf, scfg.mac, scfg.max_missing, bfile)
    tally = _write_blocks(ctx, plan, _identity(plan, scfg, null_hash(null.facts())), out,
                          scfg.resume, client, bfile, rep)
    i, k = scfg.chunk
    write_meta(out, {
        "glimix_scan": 1,
        "run_fingerprint": plan.run_hash,
        "chunk": {"i": i, "n": k},
        "variants": {"selected": plan.n_selected, "start": plan.start, "stop": plan.stop},
        "n_rows": plan.n_rows,
        "likelihood": cfg.likelihood,
        "samples": inputs.match.n,
    })
    lam, lam_common = tally.lambda_gc()
    return ScanSummary(out, plan.n_rows, dict(tally.counts), lam, lam_common, tally.top_hits(),
                       time.perf_counter() - t0, null, inputs, tally.n_imputed)


def _write_blocks(ctx: ScanContext, plan: _Plan, ident: RunIdentity, out: Path, resume: bool,
                  client: Any, bfile: Bfile, rep: Reporter) -> ScanTally:
    """Test the blocks not yet in ``OUT.partial`` (all, unless resumed) and append them in
    order; on success the partial file becomes ``out``."""
    blocks = plan.blocks
    tally = ScanTally(bfile.variants)
    rep.start("scan", plan.n_rows)
    writer = open_partial(out, ident, resume, results_header(ctx.case_status is not None))
    try:
        if writer.blocks_done:
            _add_resumed(tally, blocks, writer)
            rep.info(f"resumed {writer.partial}: {writer.rows_done:,} variants in "
                     f"{writer.blocks_done:,} of {len(blocks):,} blocks already done")
            rep.update("scan", writer.rows_done)
        for b, r in _block_results(ctx, blocks, writer.blocks_done, client, bfile):
            writer.write_block(r.text, r.n, r.n_imputed)
            tally.add(blocks[b], r)
            rep.update("scan", writer.rows_done)
    except BaseException:
        writer.abandon()
        raise
    writer.finish()
    rep.finish("scan")
    return tally


def _block_results(ctx: ScanContext, blocks: list[NDArray[np.intp]], start: int, client: Any,
                   bfile: Bfile) -> Iterator[tuple[int, BlockResult]]:
    """``(b, scan_block(ctx, blocks[b]))`` for b >= start, in order: here or on Dask."""
    if client is None:
        for b in range(start, len(blocks)):
            yield b, scan_block(ctx, blocks[b])
        return
    from glimix_cli.pipeline.distributed import iter_blocks_dask

    v = bfile.variants

    def describe(b: int) -> str:
        lo, hi = int(blocks[b][0]), int(blocks[b][-1])
        return (f"block {b + 1}/{len(blocks)} (variants {v['variant_id'].iat[lo]} at "
                f"{v['chrom'].iat[lo]}:{v['pos'].iat[lo]} to {v['variant_id'].iat[hi]} at "
                f"{v['chrom'].iat[hi]}:{v['pos'].iat[hi]}, .bim rows {lo + 1}-{hi + 1})")

    yield from iter_blocks_dask(client, scan_block, ctx, blocks, start, describe=describe)


def _add_resumed(tally: ScanTally, blocks: list[NDArray[np.intp]], writer: Any) -> None:
    """Feed the tally the blocks already in a resumed partial file (parsed back)."""
    lines = writer.resumed_text.splitlines(keepends=True)
    row = 0
    for b in range(writer.blocks_done):
        idx = blocks[b]
        text = "".join(lines[row:row + idx.size])
        row += idx.size
        c = parse_rows(text)
        tally.add(idx, BlockResult(text, idx.size, c["status"], c["lrt"], c["maf"], c["nlp"],
                                   c["beta"], c["se"], 0))
    tally.n_imputed += writer.n_imputed


def run_merge(out: Path, parts: list[Path]) -> dict[str, Any]:
    """``glimix merge``: join the outputs of one ``--chunk 1/N ... N/N`` run, after checking
    that they are complete, consistent and in order (see ``io.results.merge_results``)."""
    return merge_results(out, [str(p) for p in parts])


def run_export_ssf(results: Path, out: Path, **options: Any) -> Any:
    """``glimix export-ssf``: a scan's results as GWAS-SSF with its metadata (the options
    of ``io.ssf.export_ssf``)."""
    from glimix_cli.io.ssf import export_ssf

    return export_ssf(results, out, **options)
