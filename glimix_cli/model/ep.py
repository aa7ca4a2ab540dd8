"""Parallel Expectation Propagation for a GLMM with a dense Gaussian prior.

Prior ``z ~ N(m, Sigma)``, likelihood ``prod_i p(y_i | z_i)``, Gaussian sites
``t_i(z_i) ∝ exp(eta_i z_i - tau_i z_i^2 / 2)``. One sweep computes every cavity from the
current posterior marginals, every tilted moment at once (vectorised), the new sites, and
refactorises the posterior (one Cholesky of ``B``). Damping halves when a sweep increases
the largest site change, so strongly coupled sites still converge.

EP marginal likelihood (derived from ``Z_EP = prod_i Z~_i N(mu~ | m, Sigma + Sigma~)`` with
``Z~_i`` matching each tilted normaliser ``Z^_i``)::

    log Z_EP = -1/2 s^T B^-1 s - 1/2 log|B|
               + sum_i [ log Z^_i + 1/2 log(1 + tau_i v_-i)
                         + 1/2 (eta_i - tau_i m_-i)^2 / (tau_i (1 + tau_i v_-i)) ]

with ``s = (eta - tau * m) / sqrt(tau)`` and cavity mean/variance ``m_-i``, ``v_-i``. The
``log tau`` terms of ``log N(mu~ | m, C)`` and of the site normalisers cancel, so the
expression stays finite as a site precision goes to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import ConvergenceError
from glimix_cli.model.covariance import (
    BlockCore,
    BlockPrior,
    DensePrior,
    LowRankCore,
    LowRankPrior,
)
from glimix_cli.model.gaussian import DenseCore
from glimix_cli.model.likelihoods import Likelihood

F = NDArray[np.float64]

#: Largest number of EP sweeps before ConvergenceError.
MAX_SWEEPS = 500
_MIN_DAMPING = 1.0 / 64


@dataclass(frozen=True)
class EPDiagnostics:
    """How an EP run ended."""

    converged: bool
    sweeps: int
    last_step: float  # largest site change of the last sweep, in units of atol + rtol*|x|
    damping: float
    skipped_sites: int  # site updates skipped because the cavity variance was not positive


Core = DenseCore | BlockCore | LowRankCore
Prior = DensePrior | BlockPrior | LowRankPrior


@dataclass
class EPState:
    eta: F
    tau: F
    core: Core
    post_mean: F
    lml: float
    diagnostics: EPDiagnostics
    #: prior mean the sites are fitted to (``X beta``; updated when ``profile_X`` is given)
    mean: F | None = None
    #: generalised-least-squares ``beta`` from the sites when ``profile_X`` is given
    beta: F | None = None


def gls_beta(core: Core, X: F, eta: F, tau: F) -> F:
    """``beta`` maximising ``log N(mu~ | X beta, Sigma + T^-1)`` for fixed sites:
    ``(X^T C^-1 X)^-1 X^T C^-1 mu~`` with ``C^-1 = T^1/2 B^-1 T^1/2`` (sites with
    ``tau = 0`` carry no weight)."""
    sq = core.sq
    w = np.zeros_like(eta)
    pos = tau > 0
    w[pos] = eta[pos] / sq[pos]  # T^1/2 mu~
    rhs = np.column_stack([sq[:, None] * X, w])
    sol = core.solve_B(rhs)
    XtC = (sq[:, None] * X).T
    A = XtC @ sol[:, :-1]
    return np.linalg.lstsq(A, XtC @ sol[:, -1], rcond=None)[0]


def _posterior(prior: Prior, mean: F, eta: F, tau: F) -> tuple[Core, F]:
    core = prior.core(tau)
    mu = mean + core.posterior_apply(eta - tau * mean)
    return core, mu


def ep_lml(core: Core, mean: F, eta: F, tau: F, cav_mean: F, cav_var: F, log_zhat: F
           ) -> float:
    """EP log marginal likelihood from converged sites and their cavities (formula above)."""
    pos = tau > 0
    sq = core.sq
    s = np.zeros_like(tau)
    s[pos] = (eta[pos] - tau[pos] * mean[pos]) / sq[pos]
    quad = float(s @ core.solve_B(s))
    tv = tau * cav_var
    site = np.zeros_like(tau)
    site[pos] = (eta[pos] - tau[pos] * cav_mean[pos]) ** 2 / (tau[pos] * (1.0 + tv[pos]))
    return float(
        -0.5 * quad - 0.5 * core.logdet_B
        + np.sum(log_zhat + 0.5 * np.log1p(tv) + 0.5 * site)
    )


def site_update(tm, cav_mean: F, cav_var: F, cav_tau: F, cav_eta: F) -> tuple[F, F]:
    """New site parameters from the tilted moments.

    With ``a = dlogZ/dm`` and ``b = -d2logZ/dm2`` (``b >= 0`` for log-concave likelihoods):
    ``tau = b / (1 - v b)`` and ``eta = (a + m b) / (1 - v b)``, free of cancellation when
    the cavity is narrow (``v b`` small); when ``v b`` is near 1 (a sharp likelihood in a
    wide cavity) ``tau = 1/var - 1/v`` is the accurate form instead.
    """
    vb = cav_var * tm.neg_d2log_z
    narrow = vb < 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        one_m = 1.0 - vb
        tau_a = tm.neg_d2log_z / one_m
        eta_a = (tm.dlog_z + cav_mean * tm.neg_d2log_z) / one_m
        tau_b = 1.0 / tm.var - cav_tau
        eta_b = tm.mean / tm.var - cav_eta
    new_tau = np.where(narrow, tau_a, tau_b)
    new_eta = np.where(narrow, eta_a, eta_b)
    # log-concave likelihoods give tau >= 0; rounding can leave a tiny negative value
    return np.maximum(new_tau, 0.0), new_eta


def run_ep(
    lik: Likelihood,
    mean: F,
    prior: F | Prior,
    eta: F | None,
    tau: F | None,
    *,
    rtol: float,
    atol: float,
    n_int: int,
    max_sweeps: int = MAX_SWEEPS,
    profile_X: F | None = None,
) -> EPState:
    """Run parallel EP to convergence, warm-started from the given sites.

    Convergence: every proposed site update changes ``tau`` and ``eta`` by at most
    ``atol + rtol * |value|``. Raises :class:`ConvergenceError` after ``max_sweeps``.

    With ``profile_X``, the prior mean is ``X beta`` with ``beta`` re-estimated by GLS on
    the sites after every sweep (it needs only the factorisation the sweep makes anyway).
    At convergence the sites are EP's for that mean and ``beta`` is GLS on them, so the EP
    marginal likelihood is stationary in ``beta`` (its gradient in ``beta`` is the GLS
    normal equations): the result is the likelihood profiled over ``beta``.

    ``prior`` is the prior covariance ``Sigma`` as a dense array, or a structured prior
    (:mod:`glimix_cli.model.covariance`) that factorises ``B`` its own way.
    """
    if isinstance(prior, np.ndarray):
        prior = DensePrior(prior)
    n = mean.shape[0]
    eta = np.zeros(n) if eta is None else eta.copy()
    tau = np.zeros(n) if tau is None else tau.copy()
    beta = None
    mean = mean.copy()
    if profile_X is not None and np.any(tau > 0):
        core = prior.core(tau)
        beta = gls_beta(core, profile_X, eta, tau)
        mean = profile_X @ beta
        mu = mean + core.posterior_apply(eta - tau * mean)
    else:
        core, mu = _posterior(prior, mean, eta, tau)
    rho = 1.0
    prev_step = np.inf
    step = np.inf
    for sweep in range(1, max_sweeps + 1):
        s2 = core.posterior_diag()
        with np.errstate(divide="ignore", invalid="ignore"):
            cav_tau = 1.0 / s2 - tau
            cav_eta = mu / s2 - eta
        ok = np.isfinite(cav_tau) & np.isfinite(cav_eta) & (cav_tau > 0)
        skipped = int(n - ok.sum())
        if skipped:
            # keep the old site where the cavity is improper (rounding at huge tau, or a
            # posterior variance that rounded to zero); those tilted moments are computed
            # on the prior marginal only to keep the vectorised call valid, then discarded
            prior_var = prior.diag()
            cav_tau = np.where(ok, cav_tau, 1.0 / np.maximum(prior_var, 1e-300))
            cav_eta = np.where(ok, cav_eta, mean * cav_tau)
        cav_var = 1.0 / cav_tau
        cav_mean = cav_eta * cav_var
        tm = lik.tilted_moments(cav_mean, cav_var, n_int)
        new_tau, new_eta = site_update(tm, cav_mean, cav_var, cav_tau, cav_eta)
        new_tau = np.where(ok, new_tau, tau)
        new_eta = np.where(ok, new_eta, eta)
        d_tau = np.abs(new_tau - tau) / (atol + rtol * np.abs(new_tau))
        d_eta = np.abs(new_eta - eta) / (atol + rtol * np.abs(new_eta))
        step = float(max(d_tau.max(initial=0.0), d_eta.max(initial=0.0)))
        if step <= 1.0:
            lml = ep_lml(core, mean, eta, tau, cav_mean, cav_var, tm.log_z)
            diag = EPDiagnostics(True, sweep, step, rho, skipped)
            return EPState(eta, tau, core, mu, lml, diag, mean, beta)
        if sweep > 1 and step > 1.05 * prev_step:
            rho = max(rho / 2, _MIN_DAMPING)
        elif sweep > 1 and step < prev_step:
            rho = min(1.0, rho * 1.25)
        prev_step = step
        tau = tau + rho * (new_tau - tau)
        eta = eta + rho * (new_eta - eta)
        if profile_X is not None:
            core = prior.core(tau)
            beta = gls_beta(core, profile_X, eta, tau)
            mean = profile_X @ beta
            mu = mean + core.posterior_apply(eta - tau * mean)
        else:
            core, mu = _posterior(prior, mean, eta, tau)
    raise ConvergenceError(
        f"EP did not converge in {max_sweeps} sweeps (last largest site change {step:.3g} "
        f"in units of atol + rtol*|value|, damping {rho:g}); loosen rtol/atol or check the "
        "trait for perfect separation / extreme values"
    )
