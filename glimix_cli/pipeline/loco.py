"""Leave-one-chromosome-out (``--loco``): per chromosome ``c`` the kinship from the other
chromosomes' variants, the null model refitted on it (warm-started from the whole-genome
fit), and the scan of ``c``'s variants against that model.

A variant tested against a kinship built partly from itself and its LD neighbours is
partly absorbed by the random effect (proximal contamination): power is lost and the
statistics deflate. SAIGE, REGENIE and BOLT-LMM leave the tested chromosome out by default.

A sparse family kinship needs no LOCO (as in fastGWA): its entries are the close
relatives' IBD sharing, not a polygenic fit of the genome, so one variant contributes
nothing measurable to it; ``--loco`` is then ignored with a note. A 0/1 trait whose null
is the GLM (kinship variance not identified) has no kinship term to leave anything out of.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import InputError
from glimix_cli.io.plink import Bfile
from glimix_cli.kinship import bfile_fingerprint, load_kinship_cache
from glimix_cli.kinship.cache import (
    cache_kind,
    load_loco_chromosome,
    loco_chromosomes,
    save_loco_kinship_cache,
)
from glimix_cli.kinship.loco import LocoGRM, loco_grm
from glimix_cli.kinship.sparse import is_sparse_kinship_file
from glimix_cli.model.linalg import QSType, economic_qs
from glimix_cli.pipeline.config import InputConfig
from glimix_cli.pipeline.inputs import Inputs
from glimix_cli.pipeline.kinship import (
    Kinship,
    _dense,
    _kinship_variants,
    build_kinship,
    check_dense_memory,
    kinship_options,
)
from glimix_cli.pipeline.null import NullModel, fit_null_arrays
from glimix_cli.pipeline.progress import Reporter

SPARSE_NOTE = ("--loco is not used with a sparse family kinship: it holds the close "
               "relatives' sharing, to which one variant adds nothing measurable (as in "
               "fastGWA), so every chromosome is tested against the same kinship")


@dataclass(eq=False)
class LocoKinship:
    """The leave-one-chromosome-out kinships of the analysed samples.

    ``chrom_counts`` gives the kinship variants of each chromosome that has any; a
    chromosome without (e.g. one excluded from the kinship) uses the whole-genome kinship.
    ``make(chrom)`` builds the :class:`Kinship` leaving ``chrom`` out.
    """

    chrom_counts: dict[str, int]
    n_variants: int
    make: Callable[[str], Kinship]
    whole: Kinship | None = None

    def kinship(self, chrom: str) -> Kinship:
        if self.chrom_counts.get(str(chrom), 0) == 0:
            assert self.whole is not None
            return self.whole
        return self.make(str(chrom))


def precheck_loco(cfg: InputConfig) -> None:
    """Refuse, before any work, a ``--loco`` run whose kinship has no chromosomes."""
    if cfg.loco and cfg.kinship is not None and not is_sparse_kinship_file(cfg.kinship):
        raise InputError(f"{cfg.kinship}: --loco builds one kinship per left-out chromosome "
                         "from the genotypes; a precomputed kinship matrix has no chromosomes "
                         "- drop --loco or --kinship")


def build_loco_kinship(cfg: InputConfig, inputs: Inputs, rep: Reporter) -> Kinship:
    """The whole-genome kinship with its LOCO kinships attached (``Kinship.loco``); for a
    sparse kinship, the kinship alone and a note."""
    precheck_loco(cfg)
    cache = cfg.kinship_cache
    use_cache = cache is not None and Path(cache).exists()
    if (inputs.kinship_table is not None or cfg.sparse_cutoff is not None
            or (use_cache and cache_kind(cache) == "sparse")):
        kin = build_kinship(cfg, inputs, rep)
        rep.warn(SPARSE_NOTE)
        return kin
    if use_cache:
        return _cached(cfg, inputs, rep)
    bfile, idx = inputs.kin_source, inputs.kin_index
    check_dense_memory(inputs.match.n)
    variants = _kinship_variants(cfg.kinship_extract, bfile)
    m = bfile.n_variants if variants is None else variants.size
    rep.start("kinship", m)
    res = loco_grm(bfile, idx, variants, cfg.kinship_maf,
                   progress=lambda done, total: rep.update("kinship", done))
    rep.finish("kinship")
    rep.info(f"kinship: GRM of {inputs.match.n:,} samples from {res.n_variants_used:,} "
             f"variants ({res.n_skipped_monomorphic:,} monomorphic"
             + (f", {res.n_skipped_maf:,} under MAF {cfg.kinship_maf}" if res.n_skipped_maf
                else "")
             + f"), and the {len(res.chrom_counts)} kinships leaving one chromosome out")
    kin = Kinship(res.whole(), None, "GRM", res.n_variants_used)
    kin.loco = _from_grm(res, kin)
    return kin


def _from_grm(res: LocoGRM, whole: Kinship) -> LocoKinship:
    def make(chrom: str) -> Kinship:
        return Kinship(res.minus(chrom), None, f"GRM without chromosome {chrom}",
                       res.n_variants_used - res.chrom_counts[chrom])

    # the parts live (in memory or TMPDIR) as long as the closure that reads them
    return LocoKinship(dict(res.chrom_counts), res.n_variants_used, make, whole)


def _cached(cfg: InputConfig, inputs: Inputs, rep: Reporter) -> Kinship:
    """The whole-genome and LOCO kinships from a cache of ``glimix kinship --loco``."""
    cache = cfg.kinship_cache
    assert cache is not None
    bfile, idx = inputs.kin_source, inputs.kin_index
    counts = loco_chromosomes(cache)
    if counts is None:
        raise InputError(f"{cache}: holds no per-chromosome kinships, --loco needs them - "
                         "rebuild it with `glimix kinship --loco`, or drop --loco")
    check_dense_memory(inputs.match.n)
    s = bfile.samples
    fid, iid = s["fid"].to_numpy(), s["iid"].to_numpy()
    QS = load_kinship_cache(cache, bfile_fingerprint(bfile, kinship_options(cfg)), fid, iid)
    rep.info(f"kinship: cache {cache} (rank {QS[1].size}; {len(counts)} kinships leaving "
             "one chromosome out)")
    # (the cache's own rows in its order: with --kinship-bfile idx may permute them)
    full = bool(np.array_equal(idx, np.arange(bfile.n_samples)))
    whole = Kinship(_dense(QS) if full else _dense(QS, idx), QS if full else None, str(cache))

    def make(chrom: str) -> Kinship:
        Qc = load_loco_chromosome(cache, chrom)
        src = f"{cache}, chromosome {chrom} left out"
        if full:
            return Kinship(_dense(Qc), Qc, src)
        return Kinship(_dense(Qc, idx), None, src)

    whole.loco = LocoKinship(counts, sum(counts.values()), make, whole)
    return whole


def save_loco_cache(bfile: Bfile, variants: NDArray[np.intp] | None, cfg: InputConfig,
                    out: Path, rep: Reporter) -> dict[str, Any]:
    """``glimix kinship --loco``: the whole-genome decomposition and that of every kinship
    leaving one chromosome out, in one cache."""
    m = bfile.n_variants if variants is None else variants.size
    rep.start("kinship", m)
    res = loco_grm(bfile, None, variants, cfg.kinship_maf,
                   progress=lambda done, total: rep.update("kinship", done))
    rep.finish("kinship")
    QS = economic_qs(res.whole())
    chroms = list(res.chrom_counts)
    rep.start("eigen", len(chroms))

    def each() -> Iterator[tuple[str, int, QSType]]:
        for k, c in enumerate(chroms):
            yield c, res.chrom_counts[c], economic_qs(res.minus(c))
            rep.update("eigen", k + 1)

    s = bfile.samples
    save_loco_kinship_cache(out, QS, each(), s["fid"].to_numpy(), s["iid"].to_numpy(),
                            bfile_fingerprint(bfile, kinship_options(cfg)))
    rep.finish("eigen")
    res.close()
    return {"n_samples": bfile.n_samples, "n_variants_used": res.n_variants_used,
            "rank": int(QS[1].size), "monomorphic": res.n_skipped_monomorphic,
            "skipped_maf": res.n_skipped_maf, "loco": dict(res.chrom_counts)}


# --------------------------------------------------------------------------------------
# per-chromosome null models


@dataclass
class LocoFit:
    """What a LOCO run reports of one chromosome's null model."""

    chrom: str
    n_variants_left_out: int
    v0: float
    v1: float
    status: str
    seconds: float
    refitted: bool


@dataclass(eq=False)
class LocoNulls:
    """The null model of each left-out chromosome, fitted on demand (or rebuilt from a
    ``glimix fit --loco`` file's stored models, ``stored``)."""

    inputs: Inputs
    kin: Kinship
    whole: NullModel
    likelihood: str
    #: ``fixed``: the whole genome's variance components, effects and EP sites refitted
    #: (SAIGE's LOCO models); ``full``: everything refitted
    fit: str = "fixed"
    stored: dict[str, Any] | None = None
    #: rebuild(entry, kinship) -> NullModel, for stored models (set with ``stored``)
    rebuild: Callable[[dict[str, Any], Kinship], NullModel] | None = None
    reports: dict[str, LocoFit] = field(default_factory=dict)
    models: dict[str, NullModel] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """False where every chromosome uses the whole-genome null (the GLM route)."""
        return self.kin.loco is not None and self.whole.route == "glmm"

    def null(self, chrom: str) -> NullModel:
        """The null model for testing the variants of ``chrom``."""
        chrom = str(chrom)
        if not self.active:
            return self.whole
        loco: LocoKinship = self.kin.loco
        m_c = loco.chrom_counts.get(chrom, 0)
        if m_c == 0:
            self.reports.setdefault(chrom, LocoFit(chrom, 0, self.whole.v0, self.whole.v1,
                                                   self.whole.status, 0.0, False))
            return self.whole
        if chrom in self.models:
            return self.models[chrom]
        t0 = time.perf_counter()
        kin_c = loco.kinship(chrom)
        if self.stored is not None:
            if chrom not in self.stored:
                raise InputError(f"the --null file has no model leaving chromosome {chrom} "
                                 "out - rerun `glimix fit --loco` on these genotypes")
            assert self.rebuild is not None
            null = self.rebuild(self.stored[chrom], kin_c)
        else:
            x = self.inputs
            null = fit_null_arrays(x.y, x.trials, x.design.X, x.design.names, kin_c,
                                   self.likelihood, binary_null="glmm", start=self.whole,
                                   fixed_variance=self.fit == "fixed")
        self.reports[chrom] = LocoFit(chrom, m_c, null.v0, null.v1, null.status,
                                      time.perf_counter() - t0, self.stored is None)
        self.models[chrom] = null
        return null

    def drop(self, chrom: str) -> None:
        """Free a chromosome's scanner (its blocks are done); its report stays."""
        self.models.pop(str(chrom), None)

    def summary(self) -> dict[str, Any] | None:
        """Per-chromosome v0/v1 ranges and fit times, for the run summary (None without
        LOCO)."""
        if self.kin.loco is None:
            return None
        if not self.active:
            return {"chromosomes": 0, "note": "the null model is the GLM: no kinship term, "
                    "every chromosome uses it"}
        fits = list(self.reports.values())
        if not fits:
            return {"chromosomes": 0}
        v0 = [f.v0 for f in fits]
        v1 = [f.v1 for f in fits]
        secs = [f.seconds for f in fits if f.refitted]
        return {"chromosomes": len(fits), "v0": [min(v0), max(v0)], "v1": [min(v1), max(v1)],
                "refitted": len(secs), "seconds": [min(secs), max(secs)] if secs else None,
                "seconds_total": float(np.sum(secs)) if secs else 0.0,
                "not_converged": sorted(f.chrom for f in fits
                                        if f.status not in ("converged", "at_bound"))}
