"""Step 4: test one block of variants against the null model.

A :class:`ScanContext` is everything a block needs (small enough to ship to a Dask worker
once); :func:`scan_block` reads, QCs and tests one block and returns its columns as arrays
with the rows formatted once, by :func:`glimix_cli.io.results.format_rows`. Which blocks
run where (here, a chunk of an array job, a resumed run, Dask) is :mod:`.run`'s business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import InputError
from glimix_cli.io.genotypes import GenotypeSpec, has_dosages
from glimix_cli.io.plink import iter_blocks
from glimix_cli.io.results import format_rows
from glimix_cli.model.glm import fit_null as glm_fit_null
from glimix_cli.model.glm import fit_variants as glm_fit_variants
from glimix_cli.model.scanner import FastScanner
from glimix_cli.model.spa import SPANull, glm_score, spa_pvalues
from glimix_cli.model.stats import chi2_1_logsf
from glimix_cli.pipeline.null import NullModel
from glimix_cli.pipeline.qc import block_qc, dosage_info
from glimix_cli.registry import (
    BINARY_LIKELIHOODS,
    BINARY_LINKS,
    RESOLVED_TESTS,
    SPA_LIKELIHOODS,
    TESTS,
)

F = NDArray[np.float64]
#: Score-test p-value below which the GLM route refits a variant by maximum likelihood
#: for its effect size and standard error (REGENIE applies Firth below the same p).
GLM_REFIT_P = 0.05


def resolve_test(test: str, likelihood: str) -> str:
    """The test a scan runs: ``spa`` or ``surrogate``.

    ``auto`` is the saddlepoint test for Bernoulli and probit traits (calibrated down to 1%
    cases, docs/calibrated-test.md) and the surrogate LRT otherwise; ``spa`` needs a
    binary or binomial likelihood.
    """
    if test not in TESTS:
        raise InputError(f"--test {test}: unknown; use one of {', '.join(TESTS)}")
    if test == "auto":
        return "spa" if likelihood in BINARY_LIKELIHOODS else "surrogate"
    if test == "spa" and likelihood not in SPA_LIKELIHOODS:
        raise InputError(f"--test spa: the saddlepoint test needs a binary or binomial trait "
                         f"(-l {', '.join(SPA_LIKELIHOODS)}); got -l {likelihood} - use "
                         "--test surrogate or auto")
    return test


@dataclass
class ScanContext:
    """Everything one variant block needs, small enough to ship once to a worker.

    ``geno`` is re-opened by whoever computes a block (workers read their genotypes
    straight from the shared files: .bed, .bgen or .pgen); ``scanner`` holds the whitening
    factor (GLMM route); ``test`` is ``surrogate`` or ``spa`` (then ``spa`` holds the null
    quantities). ``route`` is ``glmm`` or ``glm`` (a 0/1 trait without identified kinship
    variance: the GLM score test from ``spa``, and maximum-likelihood refits from
    ``glm_null``).
    ``case_status`` (0/1 traits) gives the per-variant case/control counts and allele
    frequencies.
    """

    geno: GenotypeSpec | str  # a str is a PLINK 1 prefix or .bed path
    sample_index: NDArray[np.intp]
    scanner: FastScanner | None
    maf: float
    mac: float
    max_missing: float
    _bfile: Any = None
    test: str = "surrogate"
    spa: SPANull | None = None
    route: str = "glmm"
    #: GLM route: (link, covariates-only beta, its log-likelihood)
    glm_null: tuple[str, F, float] | None = None
    case_status: F | None = None
    #: dosage inputs: variants whose INFO (MaCH R^2) is below this get status low_info
    min_info: float = 0.0
    #: the samples (``sample_index``, ``spa``, ``case_status``) are in the scanner's
    #: ``row_order`` (a sparse kinship's families), so blocks are read in it
    ordered: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.geno, str):
            self.geno = GenotypeSpec("bed", self.geno)
        if self.test not in RESOLVED_TESTS:
            raise ValueError(f"ScanContext.test must be one of {RESOLVED_TESTS}; got "
                             f"{self.test!r}")
        if self.test == "spa" and self.spa is None:
            raise ValueError("ScanContext: test='spa' needs the null model's SPANull")
        if self.route == "glm" and (self.spa is None or self.glm_null is None):
            raise ValueError("ScanContext: route='glm' needs the SPANull and the GLM null")
        if self.route == "glmm" and self.scanner is None:
            raise ValueError("ScanContext: route='glmm' needs the surrogate scanner")

    def bfile(self) -> Any:
        """The opened genotypes (a Bfile, Bgen or Pgen), opened here on first use."""
        if self._bfile is None:
            assert isinstance(self.geno, GenotypeSpec)
            self._bfile = self.geno.open()
        return self._bfile

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_bfile"] = None
        return d


class BlockContexts:
    """The scan context of every block of a run: one shared by all blocks, or (``--loco``)
    one per chromosome, made by ``make(key)`` when its first block is wanted and dropped
    (``drop(key)``) after its last, so at most a window's worth are held at a time.

    ``keys[b]`` names block ``b``'s context (its chromosome; "" for the shared one).
    """

    def __init__(self, keys: list[str], make: Callable[[str], ScanContext],
                 drop: Callable[[str], None] | None = None):
        self.keys = list(keys)
        self._make = make
        self._drop = drop
        self._live: dict[str, ScanContext] = {}
        self._last = {k: b for b, k in enumerate(self.keys)}

    @classmethod
    def single(cls, ctx: ScanContext, n_blocks: int) -> BlockContexts:
        return cls([""] * n_blocks, lambda key: ctx)

    def key(self, b: int) -> str:
        return self.keys[b]

    def get(self, b: int) -> ScanContext:
        k = self.keys[b]
        if k not in self._live:
            self._live[k] = self._make(k)
        return self._live[k]

    def done(self, b: int) -> bool:
        """Block ``b`` is written; True (and its context dropped) if it was its key's last."""
        k = self.keys[b]
        if self._last[k] != b:
            return False
        self._live.pop(k, None)
        if self._drop is not None:
            self._drop(k)
        return True


@dataclass
class BlockResult:
    """One tested block: its rows as text (formatted once, by ``io.results.format_rows``)
    and the columns the run's summary needs, as arrays."""

    text: str
    n: int
    status: NDArray[np.object_]
    lrt: F
    maf: F
    nlp: F
    beta: F
    se: F
    n_imputed: int


def scan_block(ctx: ScanContext, idx: NDArray[np.intp]) -> BlockResult:
    """Read, QC and test one block of variants (.bim rows ``idx``); format its rows."""
    bfile = ctx.bfile()
    (_, block), = iter_blocks(bfile, idx, max(idx.size, 1), ctx.sample_index)
    counts = None if ctx.case_status is None else case_control_counts(block, ctx.case_status)
    qc = qc_block(ctx, bfile, idx, block)
    return block_rows(ctx, bfile, idx, block, qc, counts)


def qc_block(ctx: ScanContext, bfile: Any, idx: NDArray[np.intp], block: F
             ) -> tuple[Any, F | None]:
    """``block_qc`` (missing calls imputed in place) and, for dosages, the info filter and
    column: the QC of ``block`` that every trait scanned on these samples shares."""
    qc = block_qc(block, ctx.maf, ctx.mac, ctx.max_missing)
    info = None
    if has_dosages(bfile):
        info = dosage_info(block, qc, bfile.variants["multiallelic"].to_numpy()[idx],
                           ctx.min_info)
    return qc, info


def block_rows(ctx: ScanContext, bfile: Any, idx: NDArray[np.intp], block: F,
               qc_info: tuple[Any, F | None], counts: dict[str, F] | None,
               whitened: F | None = None) -> BlockResult:
    """Test the QC'd ``block`` (.bim rows ``idx``) against ``ctx``'s null model and format
    its rows; ``counts`` are the case/control columns (0/1 traits, from the block before
    imputation); ``whitened``: the block already whitened by the scanner (a rotation
    shared by several traits)."""
    qc, info = qc_info
    b = idx.size
    v = bfile.variants
    stats = _test_columns(ctx, block, qc, whitened)
    lrt, log_p = stats["lrt_chisq"], stats.pop("log_p")
    nlp_surrogate = -chi2_1_logsf(lrt) / np.log(10)
    nlp = np.where(np.isfinite(log_p), -log_p / np.log(10), nlp_surrogate)
    rows = {
        "chromosome": v["chrom"].to_numpy()[idx],
        "base_pair_location": v["pos"].to_numpy()[idx],
        "effect_allele": v["a1"].to_numpy()[idx],
        "other_allele": v["a2"].to_numpy()[idx],
        "beta": stats["beta"],
        "standard_error": stats["se"],
        "effect_allele_frequency": qc.eaf,
        "neg_log10_p_value": nlp,
        "variant_id": v["variant_id"].to_numpy()[idx],
        "n": qc.n_obs,
        "lrt_chisq": lrt,
        "status": stats["status"],
        "test": stats["test"],
        "neg_log10_p_value_surrogate": nlp_surrogate,
    }
    if counts is not None:
        rows.update(counts)
    if info is not None:
        rows["info"] = info
    return BlockResult(format_rows(rows), b, stats["status"], lrt, qc.maf, nlp, stats["beta"],
                       stats["se"], qc.n_imputed)


def _test_columns(ctx: ScanContext, block: F, qc: Any, whitened: F | None = None
                  ) -> dict[str, Any]:
    """beta, se, the 1-df statistic, the log p-value (NaN where the statistic's chi2 gives
    it), status and test name of every column of ``block`` (QC'd by ``qc``; ``whitened``:
    the same block already whitened by the scanner)."""
    b = block.shape[1]
    beta = np.full(b, np.nan)
    se = np.full(b, np.nan)
    lrt = np.full(b, np.nan)
    status = qc.status.astype(object)
    ok = np.flatnonzero(qc.ok)
    log_p = np.full(b, np.nan)
    test = np.full(b, "NA", dtype=object)
    if ok.size:
        M = block[:, ok] if ok.size < b else block
        if ctx.route == "glm":
            r = _glm_block(ctx, M)
            normal_name = "score"
        else:
            assert ctx.scanner is not None
            if whitened is not None:
                W = whitened[:, ok] if ok.size < b else whitened
                r = ctx.scanner.fast_scan(W, whitened=True)
            else:
                r = ctx.scanner.fast_scan(M, ordered=ctx.ordered)
            normal_name = "surrogate_lrt"
        beta[ok] = r["effsizes1"]
        se[ok] = r["effsizes1_se"]
        lrt[ok] = r["lrt"]
        status[ok[r["collinear"]]] = "collinear"
        test[ok[~r["collinear"]]] = normal_name
        if ctx.test == "spa":
            assert ctx.spa is not None
            good = np.flatnonzero(~r["collinear"])
            z = r["z"][good] if "z" in r else r["effsizes1"][good] / r["effsizes1_se"][good]
            lp, used = spa_pvalues(ctx.spa, M[:, good], z)
            log_p[ok[good]] = lp
            test[ok[good[used]]] = "spa"
        if ctx.route == "glm":
            _glm_refit(ctx, M, ok, log_p, lrt, beta, se)
    return {"beta": beta, "se": se, "lrt_chisq": lrt, "log_p": log_p, "status": status,
            "test": test}


def case_control_counts(block: F, case: F) -> dict[str, F]:
    """Per variant: non-missing cases and controls, and the effect-allele frequency in
    each (``block`` holds A1 dosages with NaN for missing calls, before imputation)."""
    obs = ~np.isnan(block)
    g = np.where(obs, block, 0.0)
    is_case = case > 0.5
    n_cases = obs[is_case].sum(axis=0).astype(np.float64)
    n_controls = obs[~is_case].sum(axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f_cases = g[is_case].sum(axis=0) / (2.0 * n_cases)
        f_controls = g[~is_case].sum(axis=0) / (2.0 * n_controls)
    return {"n_cases": n_cases, "n_controls": n_controls,
            "effect_allele_frequency_cases": f_cases,
            "effect_allele_frequency_controls": f_controls}


def _glm_block(ctx: ScanContext, M: F) -> dict[str, Any]:
    """GLM route: the expected-information score test of every column (O(n p) each)."""
    assert ctx.spa is not None
    S, V = glm_score(ctx.spa, M)
    # a genotype in the span of the covariates has (up to rounding) no variance left
    scale = np.einsum("ij,ij->j", M - M.mean(axis=0), M - M.mean(axis=0))
    w_mean = float(np.mean(ctx.spa.c ** 2 * ctx.spa.mu * (1 - ctx.spa.mu)))
    collinear = ~(V > 1e-9 * scale * w_mean)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(collinear, np.nan, S / np.sqrt(V))
        beta = np.where(collinear, np.nan, S / V)
        se = np.where(collinear, np.nan, 1.0 / np.sqrt(V))
    return {"effsizes1": beta, "effsizes1_se": se, "lrt": z * z, "z": z,
            "collinear": collinear}


def _glm_refit(ctx: ScanContext, M: F, ok: NDArray[np.intp], log_p: F, lrt: F, beta: F,
               se: F) -> None:
    """GLM route: maximum-likelihood effect and Wald SE for the variants whose p-value is
    below :data:`GLM_REFIT_P` (plink2's estimates; where separation stops the logistic
    fit, Firth's penalised one, as plink2's ``firth-fallback``). In place."""
    assert ctx.glm_null is not None and ctx.spa is not None and ctx.spa.y is not None
    link, beta0, ll0 = ctx.glm_null
    lp = np.where(np.isfinite(log_p[ok]), log_p[ok], chi2_1_logsf(lrt[ok]))
    sel = np.flatnonzero(np.isfinite(lp) & (lp < np.log(GLM_REFIT_P)))
    if not sel.size:
        return
    y, X = ctx.spa.y, ctx.spa.X
    fit = glm_fit_variants(y, X, M[:, sel], link, null_loglik=ll0, null_beta=beta0)
    done = fit.converged & np.isfinite(fit.se) & (np.abs(fit.beta) < 15)
    if link == "logit" and not done.all():
        rest = np.flatnonzero(~done)
        fb, fll, _ = glm_fit_null(y, X, link, firth=True)
        ff = glm_fit_variants(y, X, M[:, sel[rest]], link, firth=True, null_loglik=fll,
                              null_beta=fb)
        fine = ff.converged & np.isfinite(ff.se)
        beta[ok[sel[rest[fine]]]] = ff.beta[fine]
        se[ok[sel[rest[fine]]]] = ff.se[fine]
    beta[ok[sel[done]]] = fit.beta[done]
    se[ok[sel[done]]] = fit.se[done]


def scan_context(geno: GenotypeSpec | str, geno_index: NDArray[np.intp], y: F, null: NullModel,
                 test: str, maf: float = 0.0, mac: float = 5.0, max_missing: float = 1.0,
                 bfile: Any = None, min_info: float = 0.0) -> ScanContext:
    """The per-block context of a scan of trait ``y`` with this null model."""
    glm = None
    if null.route == "glm":
        glm = (BINARY_LINKS[null.likelihood], np.asarray(null.beta, dtype=np.float64), null.lml)
    case = np.asarray(y, dtype=np.float64) if null.likelihood in BINARY_LINKS else None
    spa = null.spa
    order = None if null.scanner is None else null.scanner.row_order
    if order is not None:
        # read the genotypes in the whitener's (family) order: the reader takes any sample
        # order at no cost, the whitener's reordering pass costs more than the rest
        geno_index = np.asarray(geno_index)[order]
        spa = None if spa is None else spa.permuted(order)
        case = None if case is None else case[order]
    return ScanContext(geno, geno_index, null.scanner, maf, mac, max_missing, bfile, test,
                       spa, null.route, glm, case, min_info, ordered=order is not None)
