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

import copy
import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize

from glimix_cli.errors import ConvergenceError
from glimix_cli.model.ep import EPDiagnostics, EPState, run_ep
from glimix_cli.model.gaussian import DenseCore
from glimix_cli.model.likelihoods import Likelihood, make_likelihood
from glimix_cli.model.linalg import QSType, check_qs, kinship_from_qs

F = NDArray[np.float64]
log = logging.getLogger(__name__)

#: Bounds of the total latent variance ``scale`` during fit().
SCALE_BOUNDS = (1e-8, 1e3)
#: Bounds of ``delta`` (the iid share of the latent variance) during fit().
DELTA_BOUNDS = (0.0, 1.0)
_PARAMS = ("beta", "scale", "delta")


@dataclass(frozen=True)
class FitInfo:
    """How a fit ended: ``status`` is ``converged``, ``at_bound`` or ``max_iter``."""

    status: str
    message: str
    iterations: int
    evaluations: int
    lml: float
    at_bound: tuple[str, ...]
    ep_sweeps: int = 0


class _GLMMBase:
    def __init__(self, n: int, X: ArrayLike, QS: QSType | None, K: ArrayLike | None = None):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[0] != n:
            raise ValueError(f"X must have shape ({n}, p); got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinite values")
        self._X = X
        if K is not None:
            if QS is not None:
                raise ValueError("give either QS or K, not both")
            K = np.asarray(K, dtype=np.float64)
            if K.shape != (n, n) or not np.all(np.isfinite(K)):
                raise ValueError(f"K must be a finite ({n}, {n}) matrix")
            self._QS = None
            self._K = K
        else:
            self._QS = check_qs(QS, n)
            self._K = kinship_from_qs(self._QS, n)
        self._n = n
        self._beta = np.zeros(X.shape[1])
        self._scale = 1.0
        self._delta = 0.5
        self._fixed: set[str] = set()
        self.fit_info: FitInfo | None = None
        #: (low, high) bounds of ``scale`` during fit(); see SCALE_BOUNDS.
        self.scale_bounds: tuple[float, float] = SCALE_BOUNDS

    # -- parameters -----------------------------------------------------------------------
    @property
    def X(self) -> F:
        return self._X

    @property
    def beta(self) -> F:
        return self._beta.copy()

    @beta.setter
    def beta(self, value: ArrayLike) -> None:
        b = np.asarray(value, dtype=np.float64).ravel()
        if b.shape != self._beta.shape:
            raise ValueError(f"beta must have {self._beta.shape[0]} values")
        self._beta = b
        self._changed()

    @property
    def scale(self) -> float:
        return self._scale

    @scale.setter
    def scale(self, value: float) -> None:
        if not value > 0:
            raise ValueError("scale must be positive")
        self._scale = float(value)
        self._changed()

    @property
    def delta(self) -> float:
        return self._delta

    @delta.setter
    def delta(self, value: float) -> None:
        if not 0 <= value <= 1:
            raise ValueError("delta must be in [0, 1]")
        self._delta = float(value)
        self._changed()

    @property
    def v0(self) -> float:
        """Variance of the random effect ``Gu`` per unit of K: ``scale * (1 - delta)``."""
        return self._scale * (1.0 - self._delta)

    @property
    def v1(self) -> float:
        """Variance of the iid latent effect: ``scale * delta``."""
        return self._scale * self._delta

    def fix(self, name: str) -> None:
        self._check_name(name)
        self._fixed.add(name)

    def unfix(self, name: str) -> None:
        self._check_name(name)
        self._fixed.discard(name)

    def isfixed(self, name: str) -> bool:
        self._check_name(name)
        return name in self._fixed

    @staticmethod
    def _check_name(name: str) -> None:
        if name not in _PARAMS:
            raise ValueError(f"unknown parameter {name!r}; use one of {', '.join(_PARAMS)}")

    def _changed(self) -> None:  # overridden to invalidate caches
        pass

    # -- model quantities -----------------------------------------------------------------
    def mean(self) -> F:
        """Prior mean of the latent: ``X beta``."""
        return self._X @ self._beta

    def covariance(self) -> F:
        """Prior covariance of the latent: ``v0 K + v1 I``."""
        S = self.v0 * self._K
        S[np.diag_indices(self._n)] += self.v1
        return S

    # -- gradient shared by both models ---------------------------------------------------
    def _grad_from_core(self, core: DenseCore, resid_site: F) -> dict[str, F | float]:
        """Gradient of ``log N(mu~ | m, Sigma + T^-1)`` in beta, scale, delta.

        ``resid_site = (eta - tau m) / sqrt(tau)``, i.e. ``T^1/2 (mu~ - m)``.
        """
        a = core.sq * core.solve_B(resid_site)  # C^-1 (mu~ - m)
        Ka = self._K @ a
        v0, v1, s = self.v0, self.v1, self._scale
        n = self._n
        tr_c = core.tr_Cinv()
        tr_cs = core.tr_Cinv_Sigma()
        if v0 > 1e-4 * v1:
            tr_ck = (tr_cs - v1 * tr_c) / v0
        elif v0 > 0:
            # (tr_cs - v1 tr_c) / v0 cancels as v0 -> 0 (22% off at delta = 1 - 1e-14):
            # near that bound compute tr(C^-1 K) directly (n^3, only there)
            tr_ck = core.tr_Cinv_M(self._K)
        else:
            tr_ck = float(np.sum(core.tau * np.diag(self._K) / (1.0 + v1 * core.tau)))
        d_v0 = 0.5 * float(a @ Ka) - 0.5 * tr_ck
        d_v1 = 0.5 * float(a @ a) - 0.5 * tr_c
        del n
        return {
            "beta": self._X.T @ a,
            "scale": (1.0 - self._delta) * d_v0 + self._delta * d_v1,
            "delta": s * (d_v1 - d_v0),
        }

    # -- optimisation ---------------------------------------------------------------------
    def _free(self) -> list[str]:
        return [p for p in _PARAMS if p not in self._fixed]

    def _beta_transform(self) -> F:
        """``T`` with ``beta = T b``: the optimiser works on ``b``, in which the covariates
        are orthonormal (``X T`` has orthogonal columns of norm sqrt(n)). This removes the
        scale differences between covariates (age in years next to a 0/1 indicator) that
        otherwise cost L-BFGS-B dozens of iterations."""
        if getattr(self, "_T", None) is None:
            _, R = np.linalg.qr(self._X)
            d = np.abs(np.diag(R))
            if d.size and d.min() > 1e-10 * d.max():
                self._T = np.linalg.inv(R) * np.sqrt(self._n)
            else:  # rank-deficient X: fall back to the identity
                self._T = np.eye(self._X.shape[1])
        return self._T

    def _pack(self, free: list[str]) -> tuple[F, list[tuple[float | None, float | None]]]:
        x: list[float] = []
        bounds: list[tuple[float | None, float | None]] = []
        if "beta" in free:
            x.extend(np.linalg.solve(self._beta_transform(), self._beta).tolist())
            bounds.extend([(None, None)] * self._beta.shape[0])
        if "scale" in free:
            lo, hi = self.scale_bounds
            x.append(float(np.clip(np.log(self._scale), np.log(lo), np.log(hi))))
            bounds.append((np.log(lo), np.log(hi)))
        if "delta" in free:
            x.append(float(np.clip(self._delta, *DELTA_BOUNDS)))
            bounds.append(DELTA_BOUNDS)
        return np.asarray(x), bounds

    def _unpack(self, x: F, free: list[str]) -> None:
        i = 0
        if "beta" in free:
            p = self._beta.shape[0]
            self._beta = self._beta_transform() @ np.asarray(x[i:i + p], dtype=np.float64)
            i += p
        if "scale" in free:
            self._scale = float(np.exp(x[i]))
            i += 1
        if "delta" in free:
            self._delta = float(np.clip(x[i], 0.0, 1.0))
        self._changed()

    def _grad_vector(self, g: dict, free: list[str]) -> F:
        out: list[float] = []
        if "beta" in free:
            out.extend((self._beta_transform().T @ np.asarray(g["beta"])).tolist())
        if "scale" in free:
            out.append(float(g["scale"]) * self._scale)  # d/dlog(scale)
        if "delta" in free:
            out.append(float(g["delta"]))
        return np.asarray(out)

    def _optimise(self, free: list[str], factr: float, pgtol: float, maxiter: int,
                  verbose: bool) -> FitInfo:
        x0, bounds = self._pack(free)
        evals = [0]

        def fun(x: F) -> tuple[float, F]:
            self._unpack(x, free)
            evals[0] += 1
            value = self.lml()
            g = self._grad_vector(self.gradient(), free)
            if verbose:
                log.info("lml=%.8g scale=%.6g delta=%.6g", value, self._scale, self._delta)
            return -value, -g

        if x0.size == 0:
            value = self.lml()
            return FitInfo("converged", "nothing to fit: all parameters fixed", 0, 1, value, ())
        if x0.size == 1:
            return self._optimise_1d(free[0], x0[0], bounds[0], factr, maxiter, verbose)
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": factr * np.finfo(float).eps, "gtol": pgtol,
                                "maxiter": maxiter})
        self._unpack(res.x, free)
        value = self.lml()
        at_bound = []
        j = self._beta.shape[0] if "beta" in free else 0
        if "scale" in free:
            lo, hi = self.scale_bounds
            if np.isclose(res.x[j], np.log(hi)) or np.isclose(res.x[j], np.log(lo)):
                at_bound.append("scale")
            j += 1
        if "delta" in free and (res.x[j] <= DELTA_BOUNDS[0] or res.x[j] >= DELTA_BOUNDS[1]):
            at_bound.append("delta")
        if res.status == 1:
            status = "max_iter"
        elif at_bound:
            status = "at_bound"
        elif res.success:
            status = "converged"
        else:
            raise ConvergenceError(
                f"the optimiser stopped without converging ({res.message}); "
                "try a larger factr or pgtol"
            )
        return FitInfo(status, str(res.message), int(res.nit), evals[0], value, tuple(at_bound))

    def _optimise_1d(self, name: str, x0: float, bounds: tuple, factr: float, maxiter: int,
                     verbose: bool) -> FitInfo:
        """Maximise over one parameter by root finding on its derivative.

        Walk uphill from ``x0`` in steps that double (first step: a factor e^0.5 in scale,
        0.1 in delta) until the derivative changes sign or a bound is reached, then run
        Brent's method on the derivative inside that bracket. Each evaluation warm-starts
        EP from the previous sites, and the walk keeps steps short near ``x0``, so EP needs
        few sweeps. On smooth 1-D problems this takes about half the evaluations of
        L-BFGS-B, whose first steps here overshoot by an order of magnitude.
        Stops when the bracket is narrower than ``1e-6 * sqrt(factr / 1e5)`` (in
        log-scale or delta units).
        """
        from scipy.optimize import brentq

        lo, hi = bounds
        cache: dict[float, tuple[float, float]] = {}

        def ev(x: float) -> tuple[float, float]:
            x = float(min(max(x, lo), hi))
            if x not in cache:
                if len(cache) >= maxiter:
                    raise _MaxIter
                self._unpack(np.array([x]), [name])
                value = self.lml()
                g = float(self._grad_vector(self.gradient(), [name])[0])
                if verbose:
                    log.info("lml=%.8g scale=%.6g delta=%.6g", value, self._scale,
                             self._delta)
                cache[x] = (value, g)
            return cache[x]

        xtol = 1e-6 * np.sqrt(factr / 1e5)
        status, message, x = "converged", "", x0
        try:
            a = float(min(max(x0, lo), hi))
            _, ga = ev(a)
            x = a
            if ga == 0.0:
                message = "zero derivative at the start"
            else:
                direction = 1.0 if ga > 0 else -1.0
                step = 0.5 if name == "scale" else 0.1
                bound = hi if direction > 0 else lo
                while True:
                    if a == bound:
                        status, message, x = "at_bound", f"{name} at its bound", a
                        break
                    b = float(min(max(a + direction * step, lo), hi))
                    _, gb = ev(b)
                    # (no early stop on a small derivative here: in log(scale) it shrinks
                    # with the scale itself, so it would stop short of a lower bound)
                    if gb * direction <= 0:  # the derivative changed sign: a maximum
                        x = brentq(lambda t: ev(t)[1], min(a, b), max(a, b), xtol=xtol,
                                   maxiter=maxiter)
                        message = "derivative root bracketed and located (Brent)"
                        break
                    a, step = b, 2 * step
        except _MaxIter:
            status, message = "max_iter", f"stopped after {maxiter} evaluations"
            x = max(cache, key=lambda k: cache[k][0])
        self._unpack(np.array([x]), [name])
        value = self.lml()
        at_bound = (name,) if status == "at_bound" else ()
        return FitInfo(status, message, len(cache), len(cache), value, at_bound)

    def copy(self):
        return copy.deepcopy(self)


class _MaxIter(Exception):
    """Internal: the 1-D search used up its evaluations."""


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
        if self._lik.name in ("bernoulli", "probit"):
            # a 0/1 outcome cannot tell an iid latent term from the link's own noise (for
            # probit exactly: it only rescales the link), so the free delta of the classic
            # API is a flat ridge the optimiser wanders along (813 s at n = 5,000). Start
            # well posed, as glimix fit does; unfix("delta") restores the classic model.
            self._delta = 0.0
            self._fixed.add("delta")

    @property
    def likelihood(self) -> Likelihood:
        return self._lik

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
                self._state = run_ep(self._lik, self.mean(), self.covariance(), eta, tau, **kw)
            except ConvergenceError:
                if eta is None:
                    raise
                # a warm start from far-away parameters can oscillate: retry cold
                self._state = run_ep(self._lik, self.mean(), self.covariance(), None, None,
                                     **kw)
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
        g = GLMMNormal(st.eta, st.tau, self._X, K=self._K)
        g._QS = self._QS
        g._beta = self._beta.copy()
        g._scale = self._scale
        g._delta = self._delta
        return g


class GLMMNormal(_GLMMBase):
    """Heterogeneous-Normal model ``mu~ ~ N(X beta, v0 K + v1 I + diag(1 / tau))``.

    Built from EP site parameters ``eta``, ``tau`` (``mu~ = eta / tau``); its lml and
    gradient are closed form. ``fit()`` profiles ``beta`` by generalised least squares.
    """

    def __init__(self, eta: ArrayLike, tau: ArrayLike, X: ArrayLike,
                 QS: QSType | None = None, *, K: ArrayLike | None = None):
        eta = np.asarray(eta, dtype=np.float64).ravel()
        tau = np.asarray(tau, dtype=np.float64).ravel()
        if eta.shape != tau.shape:
            raise ValueError("eta and tau must have the same shape")
        if not (np.all(np.isfinite(eta)) and np.all(np.isfinite(tau)) and np.all(tau > 0)):
            raise ValueError("GLMMNormal needs finite eta and strictly positive tau")
        super().__init__(eta.shape[0], X, QS, K)
        self._eta = eta
        self._tau = tau
        self._core: DenseCore | None = None

    @property
    def eta(self) -> F:
        return self._eta.copy()

    @property
    def tau(self) -> F:
        return self._tau.copy()

    def _changed(self) -> None:
        self._core = None

    def _get_core(self) -> DenseCore:
        if self._core is None:
            self._core = DenseCore(self.covariance(), self._tau)
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

        return FastScanner.from_covariance(self._eta / self._tau, self._X, self._site_cov())

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

        return FastScanner.from_covariance(self._eta / self._tau, self._X, self._site_cov(),
                                           fixed_scale=1.0)

    def _site_cov(self) -> F:
        C = self.covariance()
        C[np.diag_indices(self._n)] += 1.0 / self._tau
        return C

    def posteriori_mean(self) -> F:
        """Mean of the latent ``z`` given ``mu~`` (Gaussian conditioning)."""
        core = self._get_core()
        m = self.mean()
        return m + core.posterior_apply(self._eta - self._tau * m)

    def posteriori_covariance(self) -> F:
        return self._get_core().posterior_covariance()
