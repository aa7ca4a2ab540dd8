"""Orchestration: inputs -> samples -> kinship -> null model -> streamed scan -> TSV.

Nothing here prints. Progress and messages go through a :class:`Reporter` (the CLI gives
a rich one; tests and workers use the silent default).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import chi2

from glimix_cli.errors import ConvergenceError, InputError
from glimix_cli.io.atomic import check_output
from glimix_cli.io.plink import Bfile, block_size_for_budget, iter_blocks, open_bfile
from glimix_cli.io.results import atomic_text_writer, format_rows, results_header, write_meta
from glimix_cli.io.samples import SampleMatch, match_samples
from glimix_cli.io.tables import DEFAULT_MISSING, Design, design_matrix, load_covariates, load_trait
from glimix_cli.kinship import (
    bfile_fingerprint,
    kinship_qs,
    load_kinship_cache,
    read_kinship_matrix,
    save_kinship_cache,
)
from glimix_cli.model.glm import fit_null as glm_fit_null
from glimix_cli.model.glm import fit_variants as glm_fit_variants
from glimix_cli.model.glmm import GLMMExpFam, GLMMNormal
from glimix_cli.model.linalg import QSType, economic_qs
from glimix_cli.model.lmm import LMM
from glimix_cli.model.scanner import FastScanner
from glimix_cli.model.spa import SPA_LIKELIHOODS, SPANull, glm_score, spa_null, spa_pvalues
from glimix_cli.model.stats import chi2_1_logsf, genomic_inflation
from glimix_cli.pipeline.qc import block_qc, select_variants
from glimix_cli.pipeline.resume import (
    RunIdentity,
    null_hash,
    open_partial,
    parse_rows,
    partial_paths,
    precheck_resume,
)

F = NDArray[np.float64]
LIKELIHOODS = ("normal", "bernoulli", "probit", "binomial", "poisson")
#: Variance of the standard logistic distribution: the residual of a logit liability.
LOGIT_VARIANCE = math.pi**2 / 3
NULL_FORMAT = 1
#: Integration points per EP site in the pipeline. The sinh-mapped trapezoid converges
#: geometrically: 256 points match 1,000 to all printed digits (tests/model) at 1/4 the cost.
EP_N_INT = 256
#: Upper bound of v0 for Bernoulli/probit null fits (see fit_null_arrays).
BINARY_MAX_V0 = 30.0
#: Lower bound of v0 for Bernoulli/probit null fits.
SCALE_LOWER = 1e-8
#: Level of the likelihood-ratio test of ``v0 = 0`` (boundary mixture 1/2 chi2_0 + 1/2
#: chi2_1) at which a 0/1 trait's kinship variance counts as identified (see
#: ``binary_route``).
V0_TEST_LEVEL = 0.05
#: GRM entry above which two samples count as relatives (third degree or closer: KING's
#: kinship-coefficient boundary 0.0442, times 2).
RELATIVE_GRM = 0.088
#: Fraction of samples with a relative from which a cohort counts as related (see
#: ``binary_route``).
RELATED_FRACTION = 0.05
#: Score-test p-value below which the GLM route refits a variant by maximum likelihood
#: for its effect size and standard error (REGENIE applies Firth below the same p).
GLM_REFIT_P = 0.05
BINARY_LINKS = {"bernoulli": "logit", "probit": "probit"}


class Reporter:
    """Silent progress sink; the CLI overrides these methods."""

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def start(self, task: str, total: int | None) -> None:
        pass

    def update(self, task: str, completed: int) -> None:
        pass

    def finish(self, task: str) -> None:
        pass


# ----------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class InputConfig:
    bfile: Path
    pheno: Path
    pheno_name: str
    likelihood: str = "normal"
    trials_name: str | None = None
    covar: Path | None = None
    covar_names: tuple[str, ...] = ()
    covar_cat: tuple[str, ...] = ()
    missing_codes: tuple[str, ...] = tuple(DEFAULT_MISSING)
    kinship: Path | None = None  # precomputed matrix (text)
    kinship_cache: Path | None = None  # .npz from `glimix kinship`
    kinship_extract: Path | None = None
    kinship_maf: float = 0.0


@dataclass(frozen=True)
class ScanConfig:
    chrom: str | None = None
    from_bp: int | None = None
    to_bp: int | None = None
    extract: Path | None = None
    maf: float = 0.0
    mac: float = 5.0
    max_missing: float = 1.0
    chunk: tuple[int, int] = (1, 1)
    block_size: int | None = None
    null: Path | None = None
    #: p-value test: "auto" (saddlepoint for bernoulli/probit, else surrogate), "spa",
    #: "surrogate" (see resolve_test)
    test: str = "auto"
    #: continue OUT.partial of an interrupted run of the same scan (see pipeline/resume.py)
    resume: bool = False
    #: Dask: scheduler address, scheduler file, or N local worker processes (at most one)
    dask_scheduler: str | None = None
    dask_scheduler_file: Path | None = None
    dask_local: int | None = None

    @property
    def uses_dask(self) -> bool:
        return (self.dask_scheduler is not None or self.dask_scheduler_file is not None
                or self.dask_local is not None)


# ----------------------------------------------------------------------------------------
# inputs


@dataclass
class Inputs:
    bfile: Bfile
    match: SampleMatch
    y: F
    trials: F | None
    design: Design
    trait_coding: str
    fingerprint: dict[str, Any]


def file_fingerprint(path: Path | None, hash_limit: int = 64 << 20) -> dict[str, Any] | None:
    """Size, mtime and (for files up to 64 MiB) the SHA-256 of a file."""
    if path is None:
        return None
    p = Path(path)
    st = p.stat()
    fp: dict[str, Any] = {"name": p.name, "size": st.st_size, "mtime": int(st.st_mtime)}
    if st.st_size <= hash_limit:
        fp["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return fp


def load_inputs(cfg: InputConfig, rep: Reporter) -> Inputs:
    if cfg.likelihood not in LIKELIHOODS:
        raise InputError(f"--likelihood {cfg.likelihood}: unknown; use one of "
                         f"{', '.join(LIKELIHOODS)}")
    if cfg.trials_name and cfg.trials_name == cfg.pheno_name:
        raise InputError(f"{cfg.pheno}: --trials-name {cfg.trials_name} is also the trait column "
                         "- give the successes in --pheno-name and the trials in another column")
    if cfg.likelihood == "binomial" and not cfg.trials_name:
        raise InputError(f"{cfg.pheno}: the binomial likelihood needs the number of trials - "
                         "add --trials-name COLUMN")
    bfile = open_bfile(cfg.bfile)
    rep.info(f"genotypes: {bfile.n_samples:,} samples x {bfile.n_variants:,} variants "
             f"({bfile.bed})")
    trait = load_trait(cfg.pheno, cfg.pheno_name, cfg.likelihood, cfg.trials_name,
                       cfg.missing_codes)
    if trait.coding:
        rep.info(f"trait {cfg.pheno_name}: {trait.coding}")
    cov = None
    if cfg.covar is not None:
        cov = load_covariates(cfg.covar, list(cfg.covar_names) or None, cfg.covar_cat,
                              cfg.missing_codes, exclude=[cfg.pheno_name])
        if cov.left_out:
            rep.info(f"covariates: every column of {cfg.covar} but {', '.join(cov.left_out)} "
                     "(the trait)")
    kin_ids = None
    kin_matrix = None
    if cfg.kinship is not None:
        kin_matrix, kin_ids = read_kinship_matrix(cfg.kinship, bfile.samples)
    match = match_samples(bfile.samples, trait, cov, kin_ids)
    y = np.asarray(trait.y, dtype=np.float64)[match.trait_index]
    trials = None if trait.trials is None else np.asarray(trait.trials)[match.trait_index]
    if cov is not None:
        table = cov.table.iloc[match.cov_index].reset_index(drop=True)
        n_cols = table.shape[1]
        if n_cols + 1 >= match.n:
            raise InputError(f"{cfg.covar}: {n_cols} covariates (and the intercept) for "
                             f"{match.n} analysed samples - a model needs more samples than "
                             "covariates; name fewer with --covar-name or add samples")
        design = design_matrix(table, cov.cat_columns)
    else:
        design = design_matrix(_empty_table(match.n), ())
    if design.X.shape[1] >= match.n - 1:
        raise InputError(f"{cfg.covar}: {design.X.shape[1]} design columns (intercept, "
                         f"covariates and category indicators) for {match.n} analysed samples "
                         "- a model needs more samples than covariates; name fewer with "
                         "--covar-name or add samples")
    for name, why in design.dropped:
        rep.warn(f"covariate {name} dropped: {why} in the analysed samples")
    _check_trait_variation(y, cfg, match.n)
    fp = {
        "bfile": bfile_fingerprint(bfile, {}),
        "pheno": file_fingerprint(cfg.pheno),
        "covar": file_fingerprint(cfg.covar),
        "kinship": file_fingerprint(cfg.kinship),
        "pheno_name": cfg.pheno_name,
        "likelihood": cfg.likelihood,
        "trials_name": cfg.trials_name,
        "covar_names": list(cfg.covar_names),
        "covar_cat": list(cfg.covar_cat),
        "missing_codes": list(cfg.missing_codes),
    }
    inputs = Inputs(bfile, match, y, trials, design, trait.coding, fp)
    inputs._kinship_matrix = kin_matrix  # type: ignore[attr-defined]
    return inputs


def _empty_table(n: int):
    import pandas as pd

    return pd.DataFrame(index=range(n))


def _check_trait_variation(y: F, cfg: InputConfig, n: int) -> None:
    if n < 3:
        raise InputError(f"{cfg.pheno}: only {n} samples remain after matching - need at least 3")
    if np.all(y == y[0]) and cfg.likelihood in ("normal", "bernoulli", "probit"):
        raise InputError(f"{cfg.pheno}: trait {cfg.pheno_name} has the single value {y[0]:g} "
                         "in all analysed samples - nothing to model; check the coding")


# ----------------------------------------------------------------------------------------
# kinship


@dataclass
class Kinship:
    K: F  # analysed samples x analysed samples
    QS: QSType | None  # eigendecomposition of K, when already known
    source: str
    n_variants: int | None = None

    def qs(self) -> QSType:
        if self.QS is None:
            self.QS = economic_qs(self.K)
        return self.QS


def kinship_options(cfg: InputConfig, bfile: Bfile) -> dict[str, Any]:
    extract = None
    if cfg.kinship_extract is not None:
        extract = file_fingerprint(cfg.kinship_extract)
    return {"kinship_extract": extract, "maf_min": cfg.kinship_maf}


def _kinship_variants(cfg: InputConfig, bfile: Bfile) -> NDArray[np.intp] | None:
    if cfg.kinship_extract is None:
        return None
    sel = select_variants(bfile.variants, extract=cfg.kinship_extract)
    if sel.indices.size == 0:
        raise InputError(f"{cfg.kinship_extract}: none of its {sel.n_extract_ids} ids are in "
                         f"{bfile.bim} - check the variant ids")
    return sel.indices


def build_kinship(cfg: InputConfig, inputs: Inputs, rep: Reporter) -> Kinship:
    bfile, match = inputs.bfile, inputs.match
    idx = match.geno_index
    kin_matrix = getattr(inputs, "_kinship_matrix", None)
    if kin_matrix is not None:
        assert match.kinship_index is not None
        k = match.kinship_index
        rep.info(f"kinship: precomputed matrix {cfg.kinship}")
        return Kinship(np.ascontiguousarray(kin_matrix[np.ix_(k, k)]), None, str(cfg.kinship))
    if cfg.kinship_cache is not None and Path(cfg.kinship_cache).exists():
        fp = bfile_fingerprint(bfile, kinship_options(cfg, bfile))
        s = bfile.samples
        QS = load_kinship_cache(cfg.kinship_cache, fp, s["fid"].to_numpy(),
                                s["iid"].to_numpy())
        (Q0, _), S0 = QS
        rep.info(f"kinship: cache {cfg.kinship_cache} (rank {S0.size})")
        if idx.size == bfile.n_samples:
            K = (Q0 * S0) @ Q0.T
            return Kinship((K + K.T) / 2, QS, str(cfg.kinship_cache))
        Qs = Q0[idx]
        K = (Qs * S0) @ Qs.T
        return Kinship((K + K.T) / 2, None, str(cfg.kinship_cache))
    variants = _kinship_variants(cfg, bfile)
    m = bfile.n_variants if variants is None else variants.size
    rep.start("kinship", m)
    # eigendecomposition deferred (Kinship.qs): only the Normal fit needs it, the EP fit of
    # the other likelihoods works on K itself (saves an n^3 eigh: 25-60 s at n = 5,000)
    res = kinship_qs(bfile, idx, variants, cfg.kinship_maf,
                     progress=lambda done, total: rep.update("kinship", done), eigen=False)
    rep.finish("kinship")
    rep.info(f"kinship: GRM of {match.n:,} samples from {res.n_variants_used:,} variants "
             f"({res.n_skipped_monomorphic:,} monomorphic"
             + (f", {res.n_skipped_maf:,} under MAF {cfg.kinship_maf}" if res.n_skipped_maf else "")
             + ")")
    if res.n_variants_used == 0:
        raise InputError(f"{bfile.bed}: no polymorphic variant left for the kinship matrix - "
                         "check --kinship-extract / --kinship-maf")
    QS = res.QS
    if res.K is not None:
        K = res.K
    else:
        assert QS is not None
        (Q0, _), S0 = QS
        K = (Q0 * S0) @ Q0.T
        K = (K + K.T) / 2
    return Kinship(K, QS, "GRM", res.n_variants_used)


# ----------------------------------------------------------------------------------------
# null model


@dataclass
class NullModel:
    likelihood: str
    n: int
    covariates: list[str]
    beta: list[float]
    beta_se: list[float]
    v0: float
    v1: float
    scale: float
    delta: float
    h2_latent: float
    h2_liability: float | None
    lml: float
    status: str
    message: str
    iterations: int
    evaluations: int
    ep_sweeps: int
    seconds: float
    eta: list[float] = field(default_factory=list)
    tau: list[float] = field(default_factory=list)
    scanner: FastScanner | None = None
    #: Null quantities of the saddlepoint test (binary and binomial traits).
    spa: SPANull | None = None
    #: ``glmm`` (the EP null and its surrogate scan) or ``glm`` (a 0/1 trait whose kinship
    #: variance is not identified: the covariates-only GLM, see ``binary_route``)
    route: str = "glmm"
    #: 0/1 traits: the GLMM's maximum-likelihood v0, its likelihood-ratio statistic and
    #: p-value against v0 = 0 (mixture 1/2 chi2_0 + 1/2 chi2_1), and why the route was
    #: chosen
    v0_ml: float | None = None
    v0_lrt: float | None = None
    v0_p: float | None = None
    route_reason: str | None = None

    def facts(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__
             if k not in ("scanner", "spa", "eta", "tau")}
        return d


def _start_beta(y: F, trials: F | None, names: list[str], p: int, likelihood: str) -> F:
    beta = np.zeros(p)
    if not names or names[0] != "intercept":
        return beta
    if likelihood in ("bernoulli", "binomial", "probit"):
        tot = trials.sum() if trials is not None else y.size
        p = float(np.clip(y.sum() / tot, 1e-3, 1 - 1e-3))
        if likelihood == "probit":
            from scipy.special import ndtri

            beta[0] = float(ndtri(p))
        else:
            beta[0] = math.log(p / (1 - p))
    elif likelihood == "poisson":
        beta[0] = math.log(max(float(y.mean()), 1e-3))
    return beta


def fit_null(inputs: Inputs, kin: Kinship, likelihood: str, rep: Reporter) -> NullModel:
    rep.start("null", None)
    try:
        return fit_null_arrays(inputs.y, inputs.trials, inputs.design.X, inputs.design.names,
                               kin, likelihood)
    finally:
        rep.finish("null")


def fit_null_arrays(y: F, trials: F | None, X: F, names: list[str], kin: Kinship,
                    likelihood: str, binary_null: str = "auto") -> NullModel:
    """Fit the null model of one trait and build its fixed-covariance scanner.

    ``binary_null`` (0/1 traits): ``auto`` chooses between the GLMM and the GLM by
    :func:`binary_route`; ``glmm`` or ``glm`` forces one (for validation studies).
    """
    if binary_null not in ("auto", "glmm", "glm"):
        raise ValueError(f"binary_null must be auto, glmm or glm; got {binary_null!r}")
    t0 = time.perf_counter()
    n = y.size
    try:
        if likelihood == "normal":
            # REML for the variance ratio: the standardised GRM is singular along the
            # intercept direction, where ML would push delta to 0 (log|V| -> -inf).
            lmm = LMM(y, X, kin.qs(), restricted=True)
            lmm.fit()
            # the scanner's covariance (1 - delta) K + delta I, from the K already in memory
            # (LMM.get_fast_scanner would rebuild it from Q0 S0 Q0^T: 2 n^3 more flops)
            C = (1.0 - lmm.delta) * kin.K
            C[np.diag_indices(n)] += lmm.delta
            scanner = FastScanner.from_covariance(y, X, C)
            del C
            v0, v1 = lmm.v0, lmm.v1
            res = NullModel(
                likelihood, n, names, lmm.beta.tolist(), lmm.beta_se.tolist(), v0, v1,
                lmm.scale, lmm.delta, _ratio(v0, v0 + v1), None, lmm.lml(), "converged",
                "REML: delta by grid + bounded Brent", 0, 0, 0,
                time.perf_counter() - t0, scanner=scanner)
            return res
        spec: Any = ("binomial", trials) if likelihood == "binomial" else likelihood
        glmm = GLMMExpFam(y, spec, X, K=kin.K, n_int=EP_N_INT)
        glmm.beta = _start_beta(y, trials, names, X.shape[1], likelihood)
        if likelihood in BINARY_LINKS:
            # v1 is not identifiable for a 0/1 trait: an iid latent term only rescales the
            # link (exactly so for probit). Fix it at zero; the link supplies the residual.
            glmm.delta = 0.0
            glmm.fix("delta")
            # With K close to I (unrelated samples) v0 K acts like iid latent noise, which a
            # 0/1 trait cannot tell from the link's own scale: the likelihood is flat as v0
            # grows. Cap v0 where the liability heritability reaches 0.90 (logit) / 0.97
            # (probit); a fit that runs to the cap has no identified v0 (binary_route).
            glmm.scale_bounds = (SCALE_LOWER, BINARY_MAX_V0)
        glmm.fit(verbose=False)
        info = glmm.fit_info
        assert info is not None
        if likelihood in BINARY_LINKS:
            glm_beta, glm_ll, _ = glm_fit_null(y, X, BINARY_LINKS[likelihood])
            route, lrt, p_v0, reason = binary_route(glmm.v0, glmm.lml(), glm_ll,
                                                    related_fraction(kin.K))
            if binary_null != "auto":
                route, reason = binary_null, f"{binary_null} route chosen by the caller"
            if route == "glm":
                return _glm_null(y, X, names, likelihood, glm_beta, glm_ll, glmm.v0, lrt, p_v0,
                                 reason, time.perf_counter() - t0, info)
        normal = glmm.to_normal()
        scanner = normal.get_fixed_scale_scanner()
        se = np.sqrt(np.diag(normal.beta_covariance()))
        v0, v1 = glmm.v0, glmm.v1
        link_var = {"bernoulli": LOGIT_VARIANCE, "binomial": LOGIT_VARIANCE,
                    "probit": 1.0}.get(likelihood)
        h2_liab = None if link_var is None else _ratio(v0, v0 + v1 + link_var)
        site = glmm.site
        spa = None
        if likelihood in SPA_LIKELIHOODS:
            spa = spa_null(glmm.posteriori_mean(), X, likelihood, trials, y)
        res = NullModel(
            likelihood, n, names, glmm.beta.tolist(), se.tolist(), v0, v1, glmm.scale,
            glmm.delta, _ratio(v0, v0 + v1), h2_liab, glmm.lml(), info.status,
            info.message + (f" (at bound: {', '.join(info.at_bound)})" if info.at_bound else ""),
            info.iterations, info.evaluations, info.ep_sweeps, time.perf_counter() - t0,
            eta=site.eta.tolist(), tau=site.tau.tolist(), scanner=scanner, spa=spa)
        if likelihood in BINARY_LINKS:
            res.v0_ml, res.v0_lrt, res.v0_p, res.route_reason = glmm.v0, lrt, p_v0, reason
        return res
    except ConvergenceError as exc:
        raise ConvergenceError(f"null model ({likelihood}, n={n}): {exc}") from None


def related_fraction(K: F, threshold: float = RELATIVE_GRM) -> float:
    """Fraction of samples with at least one relative (an off-diagonal GRM entry above
    ``threshold``) among the analysed samples."""
    n = K.shape[0]
    if n < 2:
        return 0.0
    off = K > threshold
    off[np.diag_indices(n)] = False
    return float(np.mean(off.any(axis=1)))


def binary_route(v0: float, lml: float, glm_loglik: float, related: float = 0.0,
                 level: float = V0_TEST_LEVEL) -> tuple[str, float, float, str]:
    """Whether a 0/1 trait's null is the GLMM (``glmm``) or the plain GLM (``glm``).

    Relatives carry the information about ``v0`` of a 0/1 trait, and the relatedness the
    tests must allow for. So:

    * ``v0`` at its lower bound: the GLM (the two coincide);
    * a related cohort (at least :data:`RELATED_FRACTION` of the samples have a relative,
      ``related``): the GLMM. Ignoring relatives there inflates the tests even where the
      likelihood-ratio test of ``v0`` does not reject (measured on the families of
      example_data: lambda 1.07-1.29 with the GLM, 0.98-1.03 with the GLMM);
    * otherwise (K close to I apart from a few pairs) the GLMM only where the data
      identify ``v0``: an interior maximum whose likelihood-ratio test of ``v0 = 0``
      (statistic ``2 (lml - glm_loglik)``, null law 1/2 chi2_0 + 1/2 chi2_1) rejects at
      ``level``. A fit that runs to :data:`BINARY_MAX_V0` is on the flat ridge where
      ``v0 K`` and the link's own noise cannot be told apart, and its tests overfit.

    The GLM null is SAIGE's with tau = 0, plink2's, REGENIE's without step 1. Returns
    ``(route, lrt, p, reason)``.
    """
    lrt = max(2.0 * (lml - glm_loglik), 0.0)
    p = float(0.5 * chi2.sf(lrt, 1)) if lrt > 0 else 1.0
    if v0 <= SCALE_LOWER * 10:
        return "glm", lrt, p, f"v0 at its lower bound ({v0:.2g})"
    if related >= RELATED_FRACTION:
        return "glmm", lrt, p, (f"{related:.0%} of the samples have a relative (GRM > "
                                f"{RELATIVE_GRM:g})")
    if v0 >= BINARY_MAX_V0 * (1 - 1e-6):
        return "glm", lrt, p, (f"v0 ran to its cap {BINARY_MAX_V0:g}, where the likelihood "
                               f"is flat in v0, as in unrelated samples ({related:.0%} of "
                               "the samples have a relative)")
    if p >= level:
        return "glm", lrt, p, (f"likelihood-ratio test of v0 = 0: p = {p:.2g} >= {level:g} "
                               f"(v0 = {v0:.3g}; {related:.0%} of the samples have a "
                               "relative)")
    return "glmm", lrt, p, f"likelihood-ratio test of v0 = 0: p = {p:.2g} < {level:g}"


def _glm_null(y: F, X: F, names: list[str], likelihood: str, beta: F, loglik: float,
              v0_ml: float, lrt: float, p_v0: float, reason: str, seconds: float,
              info: Any) -> NullModel:
    """The covariates-only GLM as the null model of a 0/1 trait (``route = "glm"``)."""
    spa = spa_null(X @ beta, X, likelihood, None, y)
    w = spa.c ** 2 * spa.mu * (1.0 - spa.mu)
    se = np.sqrt(np.diag(np.linalg.pinv(X.T @ (w[:, None] * X), hermitian=True)))
    link = BINARY_LINKS[likelihood]
    return NullModel(
        likelihood, y.size, names, np.asarray(beta).tolist(), se.tolist(), 0.0, 0.0, 0.0, 0.0,
        0.0, 0.0, float(loglik), "converged",
        f"{link} GLM by Fisher scoring (kinship variance not identified: {reason})",
        info.iterations, info.evaluations, info.ep_sweeps, seconds, spa=spa, route="glm",
        v0_ml=float(v0_ml), v0_lrt=float(lrt), v0_p=float(p_v0), route_reason=reason)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def null_json(inputs: Inputs, kin: Kinship, null: NullModel, cfg: InputConfig) -> dict[str, Any]:
    import numpy
    import scipy

    from glimix_cli import __version__

    return {
        "format": NULL_FORMAT,
        "software": {"glimix": __version__, "numpy": numpy.__version__,
                     "scipy": scipy.__version__, "python": platform.python_version()},
        "inputs": inputs.fingerprint,
        "kinship": {"source": kin.source, "n_variants": kin.n_variants,
                    "options": kinship_options(cfg, inputs.bfile)},
        "samples": {"counts": dict(inputs.match.counts),
                    "fid": [str(f) for f in inputs.match.fid],
                    "iid": [str(i) for i in inputs.match.iid]},
        "trait_coding": inputs.trait_coding,
        "covariates_dropped": [list(d) for d in inputs.design.dropped],
        # 0/1 traits: the analysed cases and controls (for GWAS-SSF metadata and reports)
        "case_control": ({"cases": int(np.sum(inputs.y > 0.5)),
                          "controls": int(np.sum(inputs.y <= 0.5))}
                         if null.likelihood in BINARY_LINKS else None),
        "null": null.facts(),
        "sites": {"eta": null.eta, "tau": null.tau},
    }


def write_null_json(path: Path, payload: dict[str, Any]) -> None:
    with atomic_text_writer(path) as fh:
        json.dump(payload, fh, indent=1)
        fh.write("\n")


def null_from_json(path: Path, inputs: Inputs, kin: Kinship, cfg: InputConfig) -> NullModel:
    """Rebuild the null model (and its scanner) from ``PREFIX.null.json`` without refitting."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not found - run `glimix fit ... --out PREFIX` first") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}) - rerun glimix fit") from None
    if data.get("format") != NULL_FORMAT or "null" not in data:
        raise InputError(f"{path}: not a glimix null-model file - rerun glimix fit")
    rebuild = "rerun `glimix fit` with these inputs, or drop --null"
    for key in ("pheno", "covar", "pheno_name", "likelihood", "trials_name", "covar_names",
                "covar_cat", "missing_codes", "kinship"):
        if data["inputs"].get(key) != inputs.fingerprint.get(key):
            raise InputError(f"{path}: fitted with a different {key.replace('_', '-')} than "
                             f"this run - {rebuild}")
    if data["inputs"]["bfile"] != inputs.fingerprint["bfile"]:
        raise InputError(f"{path}: fitted on other genotype files - {rebuild}")
    if data["kinship"]["options"] != kinship_options(cfg, inputs.bfile):
        raise InputError(f"{path}: fitted with other kinship options - {rebuild}")
    if data["samples"]["iid"] != [str(i) for i in inputs.match.iid] or data["samples"]["fid"] != [
        str(f) for f in inputs.match.fid
    ]:
        raise InputError(f"{path}: fitted on other samples - {rebuild}")
    f = data["null"]
    X = inputs.design.X
    spa = None
    if f["covariates"] != inputs.design.names:
        raise InputError(f"{path}: fitted with other covariates - {rebuild}")
    if f.get("route", "glmm") == "glm":
        beta = np.asarray(f["beta"], dtype=np.float64)
        fields = {k: f[k] for k in NullModel.__dataclass_fields__ if k in f}
        null = NullModel(**fields)
        null.spa = spa_null(X @ beta, X, f["likelihood"], None, inputs.y)
        return null
    if f["likelihood"] == "normal":
        delta = float(f["delta"])
        n = X.shape[0]
        C = (1 - delta) * kin.K
        C[np.diag_indices(n)] += delta
        scanner = FastScanner.from_covariance(inputs.y, X, C)
    else:
        normal = GLMMNormal(np.asarray(data["sites"]["eta"]), np.asarray(data["sites"]["tau"]),
                            X, K=kin.K)
        normal.beta = f["beta"]
        normal.scale = float(f["scale"])
        normal.delta = float(f["delta"])
        scanner = normal.get_fixed_scale_scanner()
        if f["likelihood"] in SPA_LIKELIHOODS:
            # the EP posterior mean is the Gaussian conditional mean given the stored sites
            spa = spa_null(normal.posteriori_mean(), X, f["likelihood"], inputs.trials,
                           inputs.y)
    fields = {k: f[k] for k in NullModel.__dataclass_fields__ if k in f}
    null = NullModel(**fields)
    null.scanner = scanner
    null.spa = spa
    return null


# ----------------------------------------------------------------------------------------
# commands


@dataclass
class FitOutcome:
    inputs: Inputs
    kinship: Kinship
    null: NullModel
    null_path: Path | None


def run_fit(cfg: InputConfig, out_prefix: Path | None, rep: Reporter) -> FitOutcome:
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


def run_kinship(bfile_path: Path, extract: Path | None, maf: float, out: Path,
                rep: Reporter) -> dict[str, Any]:
    check_output(out)
    bfile = open_bfile(bfile_path)
    cfg = InputConfig(bfile=bfile_path, pheno=Path("."), pheno_name="", kinship_extract=extract,
                      kinship_maf=maf)
    variants = _kinship_variants(cfg, bfile)
    m = bfile.n_variants if variants is None else variants.size
    rep.start("kinship", m)
    res = kinship_qs(bfile, None, variants, maf,
                     progress=lambda done, total: rep.update("kinship", done))
    rep.finish("kinship")
    if res.n_variants_used == 0 or res.QS is None:
        raise InputError(f"{bfile.bed}: no polymorphic variant left for the kinship matrix - "
                         "check --kinship-extract / --maf")
    fp = bfile_fingerprint(bfile, kinship_options(cfg, bfile))
    s = bfile.samples
    save_kinship_cache(out, res.QS, s["fid"].to_numpy(), s["iid"].to_numpy(), fp)
    return {"n_samples": bfile.n_samples, "n_variants_used": res.n_variants_used,
            "rank": int(res.QS[1].size), "monomorphic": res.n_skipped_monomorphic,
            "skipped_maf": res.n_skipped_maf}


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


def chunk_range(n: int, i: int, k: int) -> tuple[int, int]:
    """Bounds of chunk ``i`` (1-based) of ``n`` items split into ``k`` contiguous, near-equal
    chunks."""
    if not (1 <= i <= k):
        raise InputError(f"--chunk {i}/{k}: I must be between 1 and N")
    base, extra = divmod(n, k)
    start = (i - 1) * base + min(i - 1, extra)
    stop = start + base + (1 if i <= extra else 0)
    return start, stop


TESTS = ("auto", "spa", "surrogate")


def resolve_test(test: str, likelihood: str) -> str:
    """The test a scan runs: ``spa`` or ``surrogate``.

    ``auto`` is the saddlepoint test for Bernoulli and probit traits (calibrated down to 1%
    cases, docs/calibrated-test.md) and the surrogate LRT otherwise; ``spa`` needs a
    binary or binomial likelihood.
    """
    if test not in TESTS:
        raise InputError(f"--test {test}: unknown; use one of {', '.join(TESTS)}")
    if test == "auto":
        return "spa" if likelihood in ("bernoulli", "probit") else "surrogate"
    if test == "spa" and likelihood not in SPA_LIKELIHOODS:
        raise InputError(f"--test spa: the saddlepoint test needs a binary or binomial trait "
                         f"(-l {', '.join(SPA_LIKELIHOODS)}); got -l {likelihood} - use "
                         "--test surrogate or auto")
    return test


@dataclass
class ScanContext:
    """Everything one variant block needs, small enough to ship once to a worker.

    ``bfile_path`` is re-opened by whoever computes a block (workers read their genotypes
    straight from the shared PLINK files); ``scanner`` holds the whitening factor (GLMM
    route); ``test`` is ``surrogate`` or ``spa`` (then ``spa`` holds the null quantities).
    ``route`` is ``glmm`` or ``glm`` (a 0/1 trait without identified kinship variance: the
    GLM score test from ``spa``, and maximum-likelihood refits from ``glm_null``).
    ``case_status`` (0/1 traits) gives the per-variant case/control counts and allele
    frequencies.
    """

    bfile_path: str
    sample_index: NDArray[np.intp]
    scanner: FastScanner | None
    maf: float
    mac: float
    max_missing: float
    _bfile: Bfile | None = None
    test: str = "surrogate"
    spa: SPANull | None = None
    route: str = "glmm"
    #: GLM route: (link, covariates-only beta, its log-likelihood)
    glm_null: tuple[str, F, float] | None = None
    case_status: F | None = None

    def __post_init__(self) -> None:
        if self.test not in ("surrogate", "spa"):
            raise ValueError(f"ScanContext.test must be surrogate or spa; got {self.test!r}")
        if self.test == "spa" and self.spa is None:
            raise ValueError("ScanContext: test='spa' needs the null model's SPANull")
        if self.route == "glm" and (self.spa is None or self.glm_null is None):
            raise ValueError("ScanContext: route='glm' needs the SPANull and the GLM null")
        if self.route == "glmm" and self.scanner is None:
            raise ValueError("ScanContext: route='glmm' needs the surrogate scanner")

    def bfile(self) -> Bfile:
        if self._bfile is None:
            self._bfile = open_bfile(self.bfile_path)
        return self._bfile

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_bfile"] = None
        return d


@dataclass
class BlockResult:
    """Formatted rows of one block plus what the summary needs."""

    text: str
    n: int
    status: list[str]
    lrt: F
    maf: F
    nlp: F
    n_imputed: int


def scan_block(ctx: ScanContext, idx: NDArray[np.intp]) -> BlockResult:
    """Read, QC and test one block of variants (.bim rows ``idx``); format its rows."""
    bfile = ctx.bfile()
    (_, block), = iter_blocks(bfile, idx, max(idx.size, 1), ctx.sample_index)
    counts = None if ctx.case_status is None else case_control_counts(block, ctx.case_status)
    qc = block_qc(block, ctx.maf, ctx.mac, ctx.max_missing)
    b = idx.size
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
            r = ctx.scanner.fast_scan(M)
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
    nlp_surrogate = -chi2_1_logsf(lrt) / np.log(10)
    nlp = np.where(np.isfinite(log_p), -log_p / np.log(10), nlp_surrogate)
    v = bfile.variants
    rows = {
        "chromosome": v["chrom"].to_numpy()[idx],
        "base_pair_location": v["pos"].to_numpy()[idx],
        "effect_allele": v["a1"].to_numpy()[idx],
        "other_allele": v["a2"].to_numpy()[idx],
        "beta": beta,
        "standard_error": se,
        "effect_allele_frequency": qc.eaf,
        "neg_log10_p_value": nlp,
        "variant_id": v["variant_id"].to_numpy()[idx],
        "n": qc.n_obs,
        "lrt_chisq": lrt,
        "status": status,
        "test": test,
        "neg_log10_p_value_surrogate": nlp_surrogate,
    }
    if counts is not None:
        rows.update(counts)
    return BlockResult(format_rows(rows), b, status.tolist(), lrt, qc.maf, nlp, qc.n_imputed)


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


class _Summary:
    """Accumulates status counts, lambda_GC inputs and the top hits over blocks."""

    def __init__(self, variants) -> None:
        self.counts: Counter[str] = Counter()
        self.chisq: list[F] = []
        self.common: list[F] = []
        self.top: list[tuple[float, int]] = []
        self.n_imputed = 0
        self.variants = variants

    def add(self, idx: NDArray[np.intp], r: BlockResult) -> None:
        st = np.asarray(r.status, dtype=object)
        self.counts.update(r.status)
        good = st == "ok"
        self.chisq.append(r.lrt[good])
        self.common.append(r.lrt[good & (r.maf >= 0.05)])
        self.n_imputed += r.n_imputed
        for j in np.flatnonzero(good):
            if len(self.top) < 5 or r.nlp[j] > self.top[-1][0]:
                self.top.append((float(r.nlp[j]), int(idx[j])))
                self.top.sort(key=lambda t: -t[0])
                del self.top[5:]

    def top_hits(self, results_rows: dict[int, tuple[float, float]]) -> list[dict[str, Any]]:
        v = self.variants
        out = []
        for nlp, i in self.top:
            beta, se = results_rows.get(i, (float("nan"), float("nan")))
            out.append({"variant_id": str(v["variant_id"].iat[i]),
                        "chromosome": str(v["chrom"].iat[i]),
                        "base_pair_location": int(v["pos"].iat[i]),
                        "beta": beta, "se": se, "neg_log10_p": nlp})
        return out


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
    sel = select_variants(bfile.variants, scfg.chrom, scfg.from_bp, scfg.to_bp, scfg.extract)
    if sel.n_extract_not_found:
        rep.warn(f"{scfg.extract}: {sel.n_extract_not_found:,} of {sel.n_extract_ids:,} ids not "
                 f"in {bfile.bim} (e.g. {', '.join(sel.extract_not_found_examples[:3])})")
    if sel.indices.size == 0:
        raise InputError(f"{bfile.bim}: no variant matches the selection (--chrom/--from-bp/"
                         "--to-bp/--extract) - check the chromosome names and ranges")
    i, k = scfg.chunk
    start, stop = chunk_range(sel.indices.size, i, k)
    indices = sel.indices[start:stop]
    n = inputs.match.n
    bs = scfg.block_size or min(block_size_for_budget(n, 256), 4096)
    test = resolve_test(scfg.test, cfg.likelihood)
    run_fp = {
        "inputs": inputs.fingerprint,
        "kinship": kinship_options(cfg, bfile),
        "selection": [int(sel.indices[0]), int(sel.indices[-1]), int(sel.indices.size)],
        "qc": [scfg.maf, scfg.mac, scfg.max_missing],
        "null": scfg.null is not None,
        "test": test,
    }
    run_hash = hashlib.sha256(json.dumps(run_fp, sort_keys=True, default=str).encode()).hexdigest()
    n_blocks = -(-int(indices.size) // bs)
    # before the kinship and the null fit: a --resume that would be refused, or a stale
    # partial file that this run replaces
    early = RunIdentity(run_hash, (i, k), bs, n_blocks, int(indices.size), "")
    if scfg.resume:
        precheck_resume(out, early)
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
    ctx = scan_context(str(bfile.bed), inputs.match.geno_index, inputs.y, null, test,
                       scfg.maf, scfg.mac, scfg.max_missing, bfile)
    summary = _Summary(bfile.variants)
    top_rows: dict[int, tuple[float, float]] = {}
    blocks = [indices[lo:lo + bs] for lo in range(0, indices.size, bs)]
    ident = RunIdentity(run_hash, (i, k), bs, len(blocks), int(indices.size),
                        null_hash(null.facts()))
    assert len(blocks) == n_blocks
    rep.start("scan", int(indices.size))
    writer = open_partial(out, ident, scfg.resume, results_header(ctx.case_status is not None))
    try:
        if writer.blocks_done:
            _add_resumed(summary, top_rows, blocks, writer)
            rep.info(f"resumed {writer.partial}: {writer.rows_done:,} variants in "
                     f"{writer.blocks_done:,} of {len(blocks):,} blocks already done")
            rep.update("scan", writer.rows_done)
        for b, r in _block_results(ctx, blocks, writer.blocks_done, client, bfile):
            writer.write_block(r.text, r.n, r.n_imputed)
            summary.add(blocks[b], r)
            _remember_top(top_rows, summary, blocks[b], r)
            rep.update("scan", writer.rows_done)
    except BaseException:
        writer.abandon()
        raise
    writer.finish()
    rep.finish("scan")
    meta = {
        "glimix_scan": 1,
        "run_fingerprint": run_hash,
        "chunk": {"i": i, "n": k},
        "variants": {"selected": int(sel.indices.size), "start": start, "stop": stop},
        "n_rows": int(indices.size),
        "likelihood": cfg.likelihood,
        "samples": n,
    }
    write_meta(out, meta)
    all_c = np.concatenate(summary.chisq) if summary.chisq else np.empty(0)
    com_c = np.concatenate(summary.common) if summary.common else np.empty(0)
    return ScanSummary(out, int(indices.size), dict(summary.counts), genomic_inflation(all_c),
                       genomic_inflation(com_c), summary.top_hits(top_rows),
                       time.perf_counter() - t0, null, inputs, summary.n_imputed)


def scan_context(bed: str, geno_index: NDArray[np.intp], y: F, null: NullModel,
                 test: str, maf: float = 0.0, mac: float = 5.0, max_missing: float = 1.0,
                 bfile: Bfile | None = None) -> ScanContext:
    """The per-block context of a scan of trait ``y`` with this null model."""
    glm = None
    if null.route == "glm":
        glm = (BINARY_LINKS[null.likelihood], np.asarray(null.beta, dtype=np.float64), null.lml)
    case = np.asarray(y, dtype=np.float64) if null.likelihood in BINARY_LINKS else None
    return ScanContext(bed, geno_index, null.scanner, maf, mac, max_missing, bfile, test,
                       null.spa, null.route, glm, case)


def _block_results(ctx: ScanContext, blocks: list[NDArray[np.intp]], start: int, client: Any,
                   bfile: Bfile):
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


def _add_resumed(summary: _Summary, top_rows: dict[int, tuple[float, float]],
                 blocks: list[NDArray[np.intp]], writer: Any) -> None:
    """Feed the summary the blocks already in a resumed partial file (parsed back)."""
    lines = writer.resumed_text.splitlines(keepends=True)
    row = 0
    for b in range(writer.blocks_done):
        idx = blocks[b]
        text = "".join(lines[row:row + idx.size])
        row += idx.size
        c = parse_rows(text)
        r = BlockResult(text, idx.size, c["status"].tolist(), c["lrt"], c["maf"], c["nlp"], 0)
        summary.add(idx, r)
        _remember_top(top_rows, summary, idx, r)
    summary.n_imputed += writer.n_imputed


def _remember_top(top_rows: dict[int, tuple[float, float]], summary: _Summary,
                  idx: NDArray[np.intp], r: BlockResult) -> None:
    """Keep beta/SE of the current top hits (parsed back from the block's rows)."""
    wanted = {i for _, i in summary.top}
    pos = {int(v): j for j, v in enumerate(idx)}
    lines = None
    for i in wanted:
        if i in pos and i not in top_rows:
            if lines is None:
                lines = r.text.splitlines()
            f = lines[pos[i]].split("\t")
            top_rows[i] = (float(f[4]), float(f[5]))
    for i in list(top_rows):
        if i not in wanted:
            del top_rows[i]


def default_threads() -> int:
    return os.cpu_count() or 1
