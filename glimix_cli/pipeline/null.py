"""Step 3: the null model of one trait: the closed-form LMM (Normal), the EP GLMM (the
other likelihoods), or for a 0/1 trait whose kinship variance is not identified the plain
GLM (``binary_route``); and the fixed-covariance scanner the scan whitens with."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import issparse
from scipy.special import chdtrc  # chi2.sf without importing scipy.stats (0.3-0.8 s)

from glimix_cli.errors import ConvergenceError
from glimix_cli.model.blocks import BlockKinship
from glimix_cli.model.glm import fit_null as glm_fit_null
from glimix_cli.model.glmm import GLMMExpFam
from glimix_cli.model.lmm import LMM
from glimix_cli.model.scanner import FastScanner
from glimix_cli.model.spa import SPANull, spa_null
from glimix_cli.pipeline.inputs import Inputs
from glimix_cli.pipeline.kinship import Kinship
from glimix_cli.pipeline.progress import Reporter
from glimix_cli.registry import BINARY_LINKS, SPA_LIKELIHOODS

F = NDArray[np.float64]
#: Variance of the standard logistic distribution: the residual of a logit liability.
LOGIT_VARIANCE = math.pi**2 / 3
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
                    likelihood: str, binary_null: str = "auto",
                    start: NullModel | None = None, fixed_variance: bool = False
                    ) -> NullModel:
    """Fit the null model of one trait and build its fixed-covariance scanner.

    ``binary_null`` (0/1 traits): ``auto`` chooses between the GLMM and the GLM by
    :func:`binary_route`; ``glmm`` or ``glm`` forces one (for validation studies).
    ``start``: a fit of the same trait on a similar kinship (LOCO: the whole genome's),
    whose parameters and EP sites start this one. ``fixed_variance`` (with ``start``):
    keep its variance components (``v0``, and ``delta``: the Normal model's variance
    ratio) and refit only the fixed effects and the EP sites on this kinship, as SAIGE's
    leave-one-chromosome-out models do.
    """
    if binary_null not in ("auto", "glmm", "glm"):
        raise ValueError(f"binary_null must be auto, glmm or glm; got {binary_null!r}")
    if fixed_variance and start is None:
        raise ValueError("fixed_variance needs the start model whose variances to keep")
    t0 = time.perf_counter()
    try:
        if likelihood == "normal":
            if fixed_variance:
                assert start is not None
                return _normal_at_delta(y, X, names, kin, start.delta, t0)
            return _fit_normal(y, X, names, kin, t0)
        return _fit_ep(y, trials, X, names, kin, likelihood, binary_null, t0, start,
                       fixed_variance)
    except ConvergenceError as exc:
        raise ConvergenceError(f"null model ({likelihood}, n={y.size}): {exc}") from None


def _fit_normal(y: F, X: F, names: list[str], kin: Kinship, t0: float) -> NullModel:
    # REML for the variance ratio: the standardised GRM is singular along the intercept
    # direction, where ML would push delta to 0 (log|V| -> -inf).
    if kin.sparse:  # family by family: each block's eigendecomposition
        lmm = LMM(y, X, restricted=True, K=kin.K)
    else:
        lmm = LMM(y, X, kin.qs(), restricted=True)
    lmm.fit()
    # the scanner's covariance (1 - delta) K + delta I, from the K already in memory
    # (LMM.get_fast_scanner would rebuild it from Q0 S0 Q0^T: 2 n^3 more flops)
    scanner = normal_scanner(y, X, kin.K, lmm.delta)
    v0, v1 = lmm.v0, lmm.v1
    return NullModel(
        "normal", y.size, names, lmm.beta.tolist(), lmm.beta_se.tolist(), v0, v1,
        lmm.scale, lmm.delta, _ratio(v0, v0 + v1), None, lmm.lml(), "converged",
        "REML: delta by grid + bounded Brent", 0, 0, 0,
        time.perf_counter() - t0, scanner=scanner)


def _normal_at_delta(y: F, X: F, names: list[str], kin: Kinship, delta: float,
                     t0: float) -> NullModel:
    """The Normal null at a given variance ratio ``delta``: GLS effects and the REML scale
    in closed form from one factorisation of ``(1 - delta) K + delta I`` (no
    eigendecomposition)."""
    scanner = normal_scanner(y, X, kin.K, delta)
    n, p = y.size, X.shape[1]
    scale = scanner.null_scale * n / max(n - p, 1)  # REML: Q0 / (n - p)
    beta = scanner.null_beta
    se = np.sqrt(np.maximum(np.diag(scanner.null_beta_covariance), 0.0))
    v0, v1 = scale * (1.0 - delta), scale * delta
    return NullModel(
        "normal", n, names, beta.tolist(), se.tolist(), v0, v1, scale, delta,
        _ratio(v0, v0 + v1), None, scanner.null_lml(), "converged",
        "variance ratio delta kept from the whole-genome fit; GLS effects and the REML "
        "scale refitted", 0, 1, 0, time.perf_counter() - t0, scanner=scanner)


def normal_scanner(y: F, X: F, K: Any, delta: float) -> FastScanner:
    """The Normal trait's scanner, whitening by ``(1 - delta) K + delta I`` (``K`` dense,
    or ``scipy.sparse``: whitened family by family)."""
    if issparse(K):
        return FastScanner.from_whitener(y, X, BlockKinship(K).whitener(1.0 - delta, delta))
    C = (1.0 - delta) * K
    C[np.diag_indices(y.size)] += delta
    return FastScanner.from_covariance(y, X, C)


def _fit_ep(y: F, trials: F | None, X: F, names: list[str], kin: Kinship, likelihood: str,
            binary_null: str, t0: float, start: NullModel | None = None,
            fixed_variance: bool = False) -> NullModel:
    spec: Any = ("binomial", trials) if likelihood == "binomial" else likelihood
    glmm = GLMMExpFam(y, spec, X, K=kin.K, n_int=EP_N_INT)
    glmm.beta = _start_beta(y, trials, names, X.shape[1], likelihood)
    warm = start is not None and start.route == "glmm" and len(start.eta) == y.size
    if warm:
        assert start is not None
        glmm.beta = np.asarray(start.beta, dtype=np.float64)
        glmm.scale = max(start.scale, SCALE_LOWER)
        if likelihood not in BINARY_LINKS:
            glmm.delta = start.delta
        glmm.warm_start(start.eta, start.tau)
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
    if fixed_variance:
        assert start is not None
        glmm.scale = max(start.scale, SCALE_LOWER)
        glmm.delta = start.delta
        glmm.fix("scale")
        glmm.fix("delta")
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
        likelihood, y.size, names, glmm.beta.tolist(), se.tolist(), v0, v1, glmm.scale,
        glmm.delta, _ratio(v0, v0 + v1), h2_liab, glmm.lml(), info.status,
        ("v0 kept from the whole-genome fit; EP sites and effects refitted"
         if fixed_variance else info.message)
        + (f" (at bound: {', '.join(info.at_bound)})" if info.at_bound else ""),
        info.iterations, info.evaluations, info.ep_sweeps, time.perf_counter() - t0,
        eta=site.eta.tolist(), tau=site.tau.tolist(), scanner=scanner, spa=spa)
    if likelihood in BINARY_LINKS:
        res.v0_ml, res.v0_lrt, res.v0_p, res.route_reason = glmm.v0, lrt, p_v0, reason
    return res


def related_fraction(K: Any, threshold: float = RELATIVE_GRM) -> float:
    """Fraction of samples with at least one relative (an off-diagonal GRM entry above
    ``threshold``) among the analysed samples (``K`` dense or ``scipy.sparse``)."""
    n = K.shape[0]
    if n < 2:
        return 0.0
    if issparse(K):
        C = K.tocoo()
        rel = (C.row != C.col) & (C.data > threshold)
        has = np.zeros(n, dtype=bool)
        has[C.row[rel]] = True
        return float(has.mean())
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
    p = float(0.5 * chdtrc(1, lrt)) if lrt > 0 else 1.0
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
