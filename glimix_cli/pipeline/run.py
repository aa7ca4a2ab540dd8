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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import InputError
from glimix_cli.io.atomic import check_output
from glimix_cli.io.genotypes import GenotypeSpec, has_dosages
from glimix_cli.io.plink import Bfile, block_size_for_budget
from glimix_cli.io.results import merge_results, results_header, write_meta
from glimix_cli.pipeline.chunks import chunk_range, split_blocks
from glimix_cli.pipeline.config import InputConfig, ScanConfig
from glimix_cli.pipeline.inputs import Inputs, file_fingerprint, load_inputs
from glimix_cli.pipeline.kinship import Kinship, build_kinship, kinship_options
from glimix_cli.pipeline.loco import LocoNulls, build_loco_kinship, precheck_loco
from glimix_cli.pipeline.multi import (
    MultiContext,
    sample_groups,
    scan_block_multi,
    share_rotation,
)
from glimix_cli.pipeline.null import NullModel, fit_null
from glimix_cli.pipeline.null_file import (
    loco_json,
    null_from_json,
    null_json,
    rebuild_null,
    stored_loco,
    write_null_json,
)
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
    BlockContexts,
    BlockResult,
    resolve_test,
    scan_block,
    scan_context,
)
from glimix_cli.pipeline.summary import ScanTally
from glimix_cli.registry import BINARY_LINKS

__all__ = ["FitOutcome", "InputConfig", "Reporter", "ScanConfig", "ScanSummary",
           "run_export_ssf", "run_fit", "run_fit_traits", "run_merge", "run_scan",
           "run_scan_traits"]


@dataclass
class FitOutcome:
    inputs: Inputs
    kinship: Kinship
    null: NullModel
    null_path: Path | None
    #: --loco: the per-chromosome v0/v1 ranges and fit times (LocoNulls.summary)
    loco: dict[str, Any] | None = None


def _kinship(cfg: InputConfig, inputs: Inputs, rep: Reporter) -> Kinship:
    return build_loco_kinship(cfg, inputs, rep) if cfg.loco else build_kinship(cfg, inputs, rep)


def run_fit(cfg: InputConfig, out_prefix: Path | None, rep: Reporter) -> FitOutcome:
    """``glimix fit``: the null model, written to ``OUT_PREFIX.null.json`` when given
    (with ``--loco``, also the model of every left-out chromosome)."""
    return run_fit_traits([cfg], [out_prefix], rep)[0]


def run_fit_traits(cfgs: list[InputConfig], out_prefixes: list[Path | None],
                   rep: Reporter) -> list[FitOutcome]:
    """:func:`run_fit` for several traits: a kinship per group of traits on the same
    samples, a null model (and ``PREFIX.null.json``) per trait."""
    for out_prefix in out_prefixes:
        if out_prefix is not None:
            check_output(Path(f"{out_prefix}.null.json"), "--out")
    precheck_loco(cfgs[0])
    inputs = [load_inputs(c, rep) for c in cfgs]
    kins = _group_kinships(cfgs, inputs, rep)
    done = []
    for cfg, x, kin, out_prefix in zip(cfgs, inputs, kins, out_prefixes, strict=True):
        null = fit_null(x, kin, cfg.likelihood, rep)
        nulls = LocoNulls(x, kin, null, cfg.likelihood, cfg.loco_fit)
        loco = None
        if nulls.active:
            chroms = list(kin.loco.chrom_counts)
            rep.start("loco", len(chroms))
            for k, c in enumerate(chroms):
                model = nulls.null(c)
                # keep the facts and EP sites the file stores, not the n x n whitening factor
                model.scanner = None
                model.spa = None
                rep.update("loco", k + 1)
            rep.finish("loco")
            loco = loco_json(nulls.models)
        path = None
        if out_prefix is not None:
            path = Path(f"{out_prefix}.null.json")
            write_null_json(path, null_json(x, kin, null, cfg, loco))
        done.append(FitOutcome(x, kin, null, path, nulls.summary()))
    return done


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
    loco: dict[str, Any] | None = None


def run_scan(cfg: InputConfig, scfg: ScanConfig, out: Path, rep: Reporter) -> ScanSummary:
    """Scan every selected variant of ``cfg`` and write ``out`` (plus its meta sidecar).

    Blocks run in this process, or on a Dask cluster when ``scfg`` names one (connected
    before anything else, so a wrong address fails fast). Rows go through
    ``OUT.partial`` and its ledger (:mod:`glimix_cli.pipeline.resume`), so a killed run can
    be continued with ``scfg.resume``; the result is byte-identical in every mode.
    """
    return run_scan_traits([cfg], scfg, [out], rep)[0]


def run_scan_traits(cfgs: list[InputConfig], scfg: ScanConfig, outs: list[Path],
                    rep: Reporter, nulls: list[Path | None] | None = None
                    ) -> list[ScanSummary]:
    """:func:`run_scan` for several traits of one genotype set in one pass
    (:mod:`.multi`): ``cfgs[t]`` differ only in the trait, ``outs[t]`` is trait t's output
    and ``nulls[t]`` its ``--null`` file (``scfg.null`` for a single trait)."""
    if nulls is None:
        nulls = [scfg.null] * len(cfgs)
    if not scfg.uses_dask:
        return _run_scan(cfgs, scfg, outs, nulls, rep, None)
    from glimix_cli.pipeline.distributed import dask_client

    with dask_client(scfg.dask_scheduler, scfg.dask_scheduler_file, scfg.dask_local) as client:
        return _run_scan(cfgs, scfg, outs, nulls, rep, client)


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
    #: each block's chromosome (--loco: a block never spans two), else ""
    keys: list[str]
    #: 0/1 trait: the rows have case/control counts
    case_columns: bool = False
    #: dosage input (BGEN, .pgen): the rows have an info column
    info_column: bool = False

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
        "qc": [scfg.maf, scfg.mac, scfg.max_missing] + ([scfg.min_info] if scfg.min_info else []),
        "null": scfg.null is not None,
        "test": test,
    }
    if cfg.loco:
        run_fp["loco_fit"] = cfg.loco_fit
    run_hash = hashlib.sha256(json.dumps(run_fp, sort_keys=True, default=str).encode()).hexdigest()
    mine = sel.indices[start:stop]
    case_columns = cfg.likelihood in BINARY_LINKS
    info = has_dosages(bfile)
    if not cfg.loco:
        blocks = split_blocks(mine, bs)
        return _Plan(int(sel.indices.size), start, stop, bs, blocks, test, run_hash,
                     [""] * len(blocks), case_columns, info)
    # --loco: blocks within one chromosome (each is tested against that chromosome's model)
    chrom = bfile.variants["chrom"].to_numpy().astype(str)[mine]
    cut = np.flatnonzero(chrom[1:] != chrom[:-1]) + 1
    blocks, keys = [], []
    for run in np.split(np.arange(mine.size), cut):
        for blk in split_blocks(mine[run], bs):
            blocks.append(blk)
            keys.append(str(chrom[run[0]]))
    return _Plan(int(sel.indices.size), start, stop, bs, blocks, test, run_hash, keys,
                 case_columns, info)


def _identity(plan: _Plan, scfg: ScanConfig, null_digest: str) -> RunIdentity:
    return RunIdentity(plan.run_hash, scfg.chunk, plan.block_size, len(plan.blocks), plan.n_rows,
                       null_digest)


def _run_scan(cfgs: list[InputConfig], scfg: ScanConfig, outs: list[Path],
              null_paths: list[Path | None], rep: Reporter, client: Any) -> list[ScanSummary]:
    t0 = time.perf_counter()
    for out in outs:
        check_output(out)
    cfg = cfgs[0]
    precheck_loco(cfg)
    if scfg.min_info > 0 and cfg.geno_format == "bed":
        raise InputError(f"--min-info {scfg.min_info:g}: {cfg.bfile} holds hard calls (no "
                         "imputation quality) - --min-info filters --bgen/--pgen dosages; drop it")
    inputs = [load_inputs(c, rep) for c in cfgs]
    bfile = inputs[0].bfile
    geno = GenotypeSpec(cfg.geno_format, str(cfg.bfile),
                        None if cfg.sample is None else str(cfg.sample))
    if client is not None:
        from glimix_cli.pipeline.distributed import check_workers

        where = ("local cluster" if scfg.dask_local is not None
                 else scfg.dask_scheduler or scfg.dask_scheduler_file)
        cl = check_workers(client, str(bfile.bed), rep.info)
        rep.info(f"dask: {cl['workers']} workers, {cl['threads']} threads ({where})")
    if len(cfgs) > 1 and scfg.block_size is None:  # one block layout for every trait
        union = np.unique(np.concatenate([x.match.geno_index for x in inputs]))
        scfg = replace(scfg, block_size=min(block_size_for_budget(union.size, 256), 4096))
    plans = [_plan(c, scfg, x, rep if t == 0 else Reporter())
             for t, (c, x) in enumerate(zip(cfgs, inputs, strict=True))]
    # before the kinship and the null fit: a --resume that would be refused, or a stale
    # partial file that this run replaces
    for out, plan in zip(outs, plans, strict=True):
        if scfg.resume:
            precheck_resume(out, _identity(plan, scfg, ""))
        elif partial_paths(out)[0].exists():
            rep.warn(f"{partial_paths(out)[0]}: an unfinished earlier run; it is replaced "
                     "(rerun with --resume to continue it instead)")
    kins = _group_kinships(cfgs, inputs, rep)
    models = []
    for c, x, kin, null_path in zip(cfgs, inputs, kins, null_paths, strict=True):
        if null_path is not None:
            models.append(null_from_json(null_path, x, kin, c))
            rep.info(f"null model: reused {null_path}")
        else:
            models.append(fit_null(x, kin, c.likelihood, rep))
        assert models[-1].scanner is not None or models[-1].route == "glm"
    locos = [_loco_nulls(null_path, x, kin, m, c, rep) for c, x, kin, m, null_path
             in zip(cfgs, inputs, kins, models, null_paths, strict=True)]
    rotations = {}
    if len(cfgs) > 1 and not cfg.loco:
        for g, members in enumerate(sample_groups([x.match.geno_index for x in inputs])):
            shared = share_rotation(models, [x.y for x in inputs],
                                    [x.design.X for x in inputs], kins[members[0]], members)
            if shared is not None:
                rotations[g] = shared

    def context(key: str) -> Any:
        ctxs = [scan_context(geno, x.match.geno_index, x.y,
                             (lo.null(key) if key else m), plan.test, scfg.maf, scfg.mac,
                             scfg.max_missing, bfile, scfg.min_info)
                for x, m, lo, plan in zip(inputs, models, locos, plans, strict=True)]
        return ctxs[0] if len(ctxs) == 1 else MultiContext.build(geno, ctxs, rotations)

    def drop(key: str) -> None:
        for lo in locos:
            lo.drop(key)

    plan = plans[0]
    contexts = (BlockContexts(plan.keys, context, drop) if locos[0].active
                else BlockContexts.single(context(""), len(plan.blocks)))
    idents = [_identity(p, scfg, null_hash(m.facts())) for p, m in zip(plans, models,
                                                                         strict=True)]
    tallies = _write_blocks(contexts, plans, idents, outs, scfg.resume, client, bfile, rep)
    i, k = scfg.chunk
    done = []
    for c, x, out, p, m, lo, tally in zip(cfgs, inputs, outs, plans, models, locos, tallies,
                                          strict=True):
        write_meta(out, {
            "glimix_scan": 1,
            "run_fingerprint": p.run_hash,
            "chunk": {"i": i, "n": k},
            "variants": {"selected": p.n_selected, "start": p.start, "stop": p.stop},
            "n_rows": p.n_rows,
            "likelihood": c.likelihood,
            "trait": c.pheno_name,
            "samples": x.match.n,
        })
        lam, lam_common = tally.lambda_gc()
        done.append(ScanSummary(out, p.n_rows, dict(tally.counts), lam, lam_common,
                                tally.top_hits(), time.perf_counter() - t0, m, x,
                                tally.n_imputed, lo.summary()))
    return done


def _group_kinships(cfgs: list[InputConfig], inputs: list[Inputs], rep: Reporter
                    ) -> list[Kinship]:
    """Each trait's kinship: one per group of traits on the same samples (the GRM of the
    analysed samples, as a single-trait run builds it)."""
    kins: list[Kinship | None] = [None] * len(cfgs)
    for members in sample_groups([x.match.geno_index for x in inputs]):
        kin = _kinship(cfgs[members[0]], inputs[members[0]], rep)
        for t in members:
            kins[t] = kin
    return kins  # type: ignore[return-value]


def _loco_nulls(null_path: Path | None, inputs: Inputs, kin: Kinship, null: NullModel,
                cfg: InputConfig, rep: Reporter) -> LocoNulls:
    """The per-chromosome null models of a ``--loco`` scan: fitted as their blocks come,
    or rebuilt from the models stored by ``glimix fit --loco`` (``--null``)."""
    nulls = LocoNulls(inputs, kin, null, cfg.likelihood, cfg.loco_fit)
    if kin.loco is not None and null.route == "glm":
        rep.info("--loco: the null model is the GLM (kinship variance not identified), which "
                 "has no kinship term - every chromosome is tested against it")
    if nulls.active and null_path is not None:
        stored = stored_loco(null_path)
        if stored is None:
            raise InputError(f"{null_path}: fitted without --loco - rerun `glimix fit --loco`")
        nulls.stored = stored
        nulls.rebuild = lambda entry, k: rebuild_null(entry["null"], entry["sites"], inputs, k)
    return nulls


def _write_blocks(contexts: BlockContexts, plans: list[_Plan], idents: list[RunIdentity],
                  outs: list[Path], resume: bool, client: Any, bfile: Bfile,
                  rep: Reporter) -> list[ScanTally]:
    """Test the blocks not yet in each trait's ``OUT.partial`` (all, unless resumed) and
    append them in order; on success each partial file becomes its ``out``."""
    blocks = plans[0].blocks
    tallies = [ScanTally(bfile.variants) for _ in plans]
    rep.start("scan", plans[0].n_rows)
    writers: list[Any] = []
    try:
        for p, ident, out in zip(plans, idents, outs, strict=True):
            writers.append(open_partial(out, ident, resume,
                                        results_header(p.case_columns, p.info_column)))
        done0 = [w.blocks_done for w in writers]
        for w, tally in zip(writers, tallies, strict=True):
            if w.blocks_done:
                _add_resumed(tally, blocks, w)
                rep.info(f"resumed {w.partial}: {w.rows_done:,} variants in "
                         f"{w.blocks_done:,} of {len(blocks):,} blocks already done")
        start = min(done0)
        rows = sum(blk.size for blk in blocks[:start])
        if start:
            rep.update("scan", rows)
        for b, r in _block_results(contexts, blocks, start, client, bfile):
            results = r if isinstance(r, list) else [r]
            for t, res in enumerate(results):
                if b >= done0[t]:
                    writers[t].write_block(res.text, res.n, res.n_imputed)
                    tallies[t].add(blocks[b], res)
            rows += blocks[b].size
            rep.update("scan", rows)
    except BaseException:
        for w in writers:
            w.abandon()
        raise
    for w in writers:
        w.finish()
    rep.finish("scan")
    return tallies


def _scan_any(ctx: Any, idx: NDArray[np.intp]) -> BlockResult | list[BlockResult]:
    """One block for one trait (a ScanContext) or for several (a MultiContext)."""
    if isinstance(ctx, MultiContext):
        return scan_block_multi(ctx, idx)
    return scan_block(ctx, idx)


def _block_results(contexts: BlockContexts, blocks: list[NDArray[np.intp]], start: int,
                   client: Any, bfile: Bfile
                   ) -> Iterator[tuple[int, BlockResult | list[BlockResult]]]:
    """``(b, scan of blocks[b])`` for b >= start, in order: here or on Dask."""
    if client is None:
        for b in range(start, len(blocks)):
            r = _scan_any(contexts.get(b), blocks[b])
            contexts.done(b)
            yield b, r
        return
    from glimix_cli.pipeline.distributed import iter_blocks_dask

    v = bfile.variants

    def describe(b: int) -> str:
        lo, hi = int(blocks[b][0]), int(blocks[b][-1])
        return (f"block {b + 1}/{len(blocks)} (variants {v['variant_id'].iat[lo]} at "
                f"{v['chrom'].iat[lo]}:{v['pos'].iat[lo]} to {v['variant_id'].iat[hi]} at "
                f"{v['chrom'].iat[hi]}:{v['pos'].iat[hi]}, .bim rows {lo + 1}-{hi + 1})")

    # the module's function itself (not a wrapper that looks it up on the worker)
    multi = start < len(blocks) and isinstance(contexts.get(start), MultiContext)
    fn = scan_block_multi if multi else scan_block
    yield from iter_blocks_dask(client, fn, contexts, blocks, start, describe=describe)


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
