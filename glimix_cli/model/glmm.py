"""Generalised linear mixed models: ``GLMMExpFam`` (EP) and ``GLMMNormal`` (closed form).

Model (both classes)::

    z = X beta + G u + e,   u ~ N(0, v0 I),  e ~ N(0, v1 I),   K = G G^T
    z ~ N(X beta, Sigma),   Sigma = v0 K + v1 I,   v0 = scale (1 - delta),  v1 = scale delta

``GLMMExpFam`` observes ``y_i | z_i ~ ExpFam(g(z_i))`` and approximates the marginal
likelihood by Expectation Propagation. ``GLMMNormal`` observes the EP site means
``mu~ = eta / tau`` with heterogeneous noise ``1 / tau``: ``mu~ ~ N(X beta, Sigma + T^-1)``.

``fit()`` profiles ``beta`` (GLS given the sites, inside EP for ``GLMMExpFam``) and
searches ``log(scale)`` and ``delta`` (bounded, see ``SCALE_BOUNDS``) by L-BFGS-B, or by a
bracketing root finder on the derivative when only one of them is free; the gradient of
the EP marginal likelihood at an EP fixed point
equals the gradient of ``log N(mu~ | X beta, Sigma + T^-1)`` with the sites held fixed
(Rasmussen & Williams 2006, sec. 3.6.3), which is what ``gradient()`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from glimix_cli.errors import ConvergenceError
from glimix_cli.model.ep import EPDiagnostics, EPState, run_ep
from glimix_cli.model.glmm_base import DELTA_BOUNDS, SCALE_BOUNDS, FitInfo, _GLMMBase
from glimix_cli.model.likelihoods import Likelihood, make_likelihood
from glimix_cli.model.linalg import QSType
from glimix_cli.registry import BINARY_LIKELIHOODS

__all__ = ["DELTA_BOUNDS", "SCALE_BOUNDS", "FitInfo", "GLMMExpFam", "GLMMNormal"]

F = NDArray[np.float64]


class GLMMExpFam(_GLMMBase):
    """Generalised linear mixed model fitted by Expectation Propagation.

    Parameters
    ----------
    y : array_like of float, shape (n,)
        Outcomes (successes for the binomial likelihood).
    lik : str or tuple
        ``"bernoulli"``, ``"probit"``, ``"poisson"`` or ``("binomial", ntrials)``.
    X : array_like of float, shape (n, p)
        Covariates (include an intercept column yourself).
    QS : ((Q0, Q1), S0) or None
        Economic eigendecomposition of K; None for no random effect.
    n_int : int
        Integration points for the tilted moments.
    rtol, atol : float
        EP convergence tolerances on the site parameters.

    Notes
    -----
    For ``bernoulli`` and ``probit`` ``delta`` starts at 0 and is fixed (``v1 = 0``): the
    iid latent share of a 0/1 trait is not identifiable, and leaving it free (as the
    classic implementation does for bernoulli) only makes ``fit()`` wander along a flat
    ridge. ``unfix("delta")`` restores the free parameter.
    K : array_like of float, shape (n, n), optional (keyword only)
        The kinship matrix itself, instead of ``QS`` (EP works with the dense matrix, so
        this skips an eigendecomposition).

    Examples
    --------
    >>> import numpy as np
    >>> from glimix_cli import GLMMExpFam, economic_qs
    >>> random = np.random.RandomState(0)
    >>> nsamples = 10
    >>> X = random.randn(nsamples, 2)
    >>> G = random.randn(nsamples, 100)
    >>> K = G @ G.T
    >>> ntrials = random.randint(1, 100, nsamples)
    >>> z = G @ random.randn(100) / np.sqrt(100)
    >>> successes = np.zeros(len(ntrials), int)
    >>> for i in range(len(ntrials)):
    ...     successes[i] = sum(z[i] + 0.2 * random.randn(ntrials[i]) > 0)
    >>> QS = economic_qs(K)
    >>> glmm = GLMMExpFam(successes, ("binomial", ntrials), X, QS)
    >>> print(f"{glmm.lml():.2f}")
    -16.40
    >>> glmm.fit(verbose=False)
    >>> print(f"{glmm.lml():.2f}")
    -13.43
    """

    def __init__(self, y: ArrayLike, lik: str | tuple, X: ArrayLike, QS: QSType | None = None,
                 n_int: int = 1000, rtol: float = 1.49e-05, atol: float = 1.49e-08, *,
                 K: ArrayLike | None = None):
        self._lik: Likelihood = make_likelihood(y, lik)
        super().__init__(self._lik.n, X, QS, K)
        self._n_int = int(n_int)
        if self._n_int < 64:
            raise ValueError(f"n_int={n_int} is too small for accurate EP moments; use >= 64")
        self._rtol = float(rtol)
        self._atol = float(atol)
        self._state: EPState | None = None
        self._warm: tuple[F, F] | None = None
        self._ep_sweeps_total = 0
        self._profile_beta = False
        if self._lik.name in BINARY_LIKELIHOODS:
            # a 0/1 outcome cannot tell an iid latent term from the link's own noise (for
            # probit exactly: it only rescales the link), so the free delta of the classic
            # API is a flat ridge the optimiser wanders along (813 s at n = 5,000). Start
            # well posed, as glimix fit does; unfix("delta") restores the classic model.
            self._delta = 0.0
            self._fixed.add("delta")

    @property
    def likelihood(self) -> Likelihood:
        return self._lik

    def warm_start(self, eta: ArrayLike, tau: ArrayLike) -> None:
        """Start the next EP run from these site parameters (e.g. the sites of a fit on a
        similar kinship) instead of from zero. Changes where EP starts, not its result."""
        eta = np.asarray(eta, dtype=np.float64)
        tau = np.asarray(tau, dtype=np.float64)
        if eta.shape != (self._lik.n,) or tau.shape != (self._lik.n,):
            raise ValueError(f"warm_start: eta and tau must have shape ({self._lik.n},)")
        self._state = None
        self._warm = (eta.copy(), tau.copy())

    def _changed(self) -> None:
        if getattr(self, "_state", None) is not None:
            self._warm = (self._state.eta, self._state.tau)
        self._state = None

    def _ep(self) -> EPState:
        if self._state is None:
            eta, tau = self._warm if self._warm is not None else (None, None)
            kw = {"rtol": self._rtol, "atol": self._atol, "n_int": self._n_int,
                  "profile_X": self._X if self._profile_beta else None}
            try:
                self._state = run_ep(self._lik, self.mean(), self._prior(), eta, tau, **kw)
            except ConvergenceError:
                if eta is None:
                    raise
                # a warm start from far-away parameters can oscillate: retry cold
                self._state = run_ep(self._lik, self.mean(), self._prior(), None, None, **kw)
            if self._state.beta is not None:
                self._beta = self._state.beta.copy()
            self._ep_sweeps_total += self._state.diagnostics.sweeps
        return self._state

    @property
    def site(self):
        """EP site natural parameters: ``site.eta``, ``site.tau`` (shape (n,))."""
        st = self._ep()

        @dataclass(frozen=True)
        class Site:
            eta: F
            tau: F

        return Site(st.eta.copy(), st.tau.copy())

    @property
    def ep_diagnostics(self) -> EPDiagnostics:
        return self._ep().diagnostics

    def lml(self) -> float:
        """EP approximation of the log marginal likelihood ``log p(y)``."""
        return self._ep().lml

    def gradient(self) -> dict[str, F | float]:
        """Derivatives of ``lml()`` in ``beta``, ``scale`` and ``delta``.

        Keys and units differ from the classic implementation's: here they are the
        derivatives in the natural parameters (``beta`` as is, ``scale`` itself, ``delta``
        in [0, 1]), not in its internal optimisation variables (log-scale, logit-delta).
        """
        st = self._ep()
        tau = st.tau
        r = np.zeros_like(tau)
        pos = tau > 0
        r[pos] = (st.eta[pos] - tau[pos] * self.mean()[pos]) / np.sqrt(tau[pos])
        return self._grad_from_core(st.core, r)

    def posteriori_mean(self) -> F:
        """Mean of the EP posterior of the latent ``z``."""
        return self._ep().post_mean.copy()

    def posteriori_covariance(self) -> F:
        """Covariance of the EP posterior of ``z`` (n x n)."""
        return self._ep().core.posterior_covariance()

    def fit(self, verbose: bool = True, factr: float = 1e5, pgtol: float = 1e-7,
            maxiter: int = 500) -> None:
        """Maximise the EP marginal likelihood over the free parameters.

        ``verbose=True`` logs one line per evaluation through :mod:`logging` (logger
        ``glimix_cli.model.glmm``, level INFO) instead of printing.

        A free ``beta`` is profiled inside EP (GLS on the sites after every sweep). With
        both ``scale`` and ``delta`` free, L-BFGS-B searches them; ``factr`` and ``pgtol``
        have its meaning (relative reduction in units of machine epsilon; projected-gradient
        tolerance). With one of them free, a bracketing root finder on the derivative does
        (see ``_optimise_1d``; ``factr`` sets its tolerance). The outcome is in
        ``fit_info``.
        """
        self._ep_sweeps_total = 0
        free = self._free()
        if "beta" in free:
            # profile beta inside EP (GLS on the sites after every sweep, see run_ep): the
            # search then covers only the variance parameters, with the same optimum and
            # about half the EP runs of a joint search.
            free.remove("beta")
            self._profile_beta = True
            self._changed()
        try:
            info = self._optimise(free, factr, pgtol, maxiter, verbose)
        finally:
            self._profile_beta = False
        self.fit_info = FitInfo(info.status, info.message, info.iterations, info.evaluations,
                                info.lml, info.at_bound, self._ep_sweeps_total)

    def to_normal(self) -> GLMMNormal:
        """The heterogeneous-Normal model on the EP sites, with this model's parameters."""
        st = self._ep()
        g = GLMMNormal(st.eta, st.tau, self._X, _kin=self._kin)
        g._QS = self._QS
        g._beta = self._beta.copy()
        g._scale = self._scale
        g._delta = self._delta
        if np.all(st.tau > 0):
            # the EP state's factorisation of B = I + T^1/2 Sigma T^1/2 is the heterogeneous
            # Normal's at these parameters: its lml, beta_covariance and scanner reuse it
            g._core = st.core
        return g


class GLMMNormal(_GLMMBase):
    """Heterogeneous-Normal model ``mu~ ~ N(X beta, v0 K + v1 I + diag(1 / tau))``.

    Built from EP site parameters ``eta``, ``tau`` (``mu~ = eta / tau``); its lml and
    gradient are closed form. ``fit()`` profiles ``beta`` by generalised least squares.
    """

    def __init__(self, eta: ArrayLike, tau: ArrayLike, X: ArrayLike,
                 QS: QSType | None = None, *, K: ArrayLike | None = None, _kin=None):
        eta = np.asarray(eta, dtype=np.float64).ravel()
        tau = np.asarray(tau, dtype=np.float64).ravel()
        if eta.shape != tau.shape:
            raise ValueError("eta and tau must have the same shape")
        if not (np.all(np.isfinite(eta)) and np.all(np.isfinite(tau)) and np.all(tau > 0)):
            raise ValueError("GLMMNormal needs finite eta and strictly positive tau")
        # _kin: to_normal shares the EP model's kinship structure
        super().__init__(eta.shape[0], X, QS, K, kin=_kin)
        self._eta = eta
        self._tau = tau
        self._core = None

    @property
    def eta(self) -> F:
        return self._eta.copy()

    @property
    def tau(self) -> F:
        return self._tau.copy()

    def _changed(self) -> None:
        self._core = None

    def _get_core(self):
        if self._core is None:
            self._core = self._prior().core(self._tau)
        return self._core

    def _resid(self) -> F:
        return (self._eta - self._tau * self.mean()) / np.sqrt(self._tau)

    def lml(self) -> float:
        """``log N(mu~ | X beta, v0 K + v1 I + diag(1/tau))``."""
        core = self._get_core()
        s = self._resid()
        n = self._n
        return float(-0.5 * s @ core.solve_B(s) - 0.5 * core.logdet_B
                     + 0.5 * np.sum(np.log(self._tau)) - 0.5 * n * np.log(2 * np.pi))

    def gradient(self) -> dict[str, F | float]:
        return self._grad_from_core(self._get_core(), self._resid())

    def _gls_beta(self) -> F:
        core = self._get_core()
        mu = self._eta / self._tau
        CX = core.solve_C(self._X)
        A = self._X.T @ CX
        return np.linalg.lstsq(A, CX.T @ mu, rcond=None)[0]

    def fit(self, verbose: bool = True, factr: float = 1e5, pgtol: float = 1e-7,
            maxiter: int = 500) -> None:
        """Maximise the lml: beta by GLS (profiled), scale and delta by L-BFGS-B (or by the
        1-D root finder of ``_optimise_1d`` when only one of them is free)."""
        profile_beta = "beta" not in self._fixed
        free = [p for p in ("scale", "delta") if p not in self._fixed]
        if profile_beta:
            orig_changed = self._changed

            def changed() -> None:
                orig_changed()
                self._beta = self._gls_beta()

            self._changed = changed  # type: ignore[method-assign]
            try:
                self._changed()
                info = self._optimise(free, factr, pgtol, maxiter, verbose)
            finally:
                del self._changed
        else:
            info = self._optimise(free, factr, pgtol, maxiter, verbose)
        self.fit_info = info

    def beta_covariance(self) -> F:
        """``(X^T C^-1 X)^-1``: covariance of the GLS estimate of beta at these parameters."""
        core = self._get_core()
        return np.linalg.pinv(self._X.T @ core.solve_C(self._X), hermitian=True)

    def get_fast_scanner(self):
        """The classic scanner: ``mu~`` with covariance ``s (v0 K + v1 I + T^-1)`` whose
        overall scale ``s`` is re-estimated (by ML) for each candidate, as an LMM scan.

        glimix's own scans use :meth:`get_fixed_scale_scanner` instead (see there).
        """
        from glimix_cli.model.scanner import FastScanner

        return FastScanner.from_whitener(self._eta / self._tau, self._X, self._site_whitener())

    def get_fixed_scale_scanner(self):
        """Scanner of ``mu~`` with the covariance ``v0 K + v1 I + T^-1`` held fixed, scale 1.

        The covariance is fully specified on the latent scale, so each test is the exact
        LRT of the heterogeneous-Normal model with one extra fixed effect and the variance
        components of the null. This is the calibrated surrogate test of ``glimix scan``:
        re-estimating the scale per candidate (:meth:`get_fast_scanner`) inflates count
        and rare binary traits, whose pseudo-observations are less dispersed than their
        nominal covariance (README, "How the test works").
        """
        from glimix_cli.model.scanner import FastScanner

        return FastScanner.from_whitener(self._eta / self._tau, self._X, self._site_whitener(),
                                         fixed_scale=1.0)

    def _site_whitener(self):
        """Whitening by ``v0 K + v1 I + T^-1`` in K's structure, from the factorisation of
        ``B`` the model already holds (dense: ``chol(C) = T^-1/2 L_B``, no second n^3)."""
        return self._get_core().whitener()

    def posteriori_mean(self) -> F:
        """Mean of the latent ``z`` given ``mu~`` (Gaussian conditioning)."""
        core = self._get_core()
        m = self.mean()
        return m + core.posterior_apply(self._eta - self._tau * m)

    def posteriori_covariance(self) -> F:
        return self._get_core().posterior_covariance()
