"""What ``GLMMExpFam`` and ``GLMMNormal`` share: parameters, prior, gradient, optimiser.

The models themselves, and the fitting they do with this, are described in
:mod:`glimix_cli.model.glmm`.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize

from glimix_cli.errors import ConvergenceError
from glimix_cli.model.covariance import as_kinship
from glimix_cli.model.linalg import QSType, check_qs

F = NDArray[np.float64]
#: ``fit(verbose=True)`` logs here; the name is the public module's, as documented.
log = logging.getLogger("glimix_cli.model.glmm")

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
    def __init__(self, n: int, X: ArrayLike, QS: QSType | None, K: ArrayLike | None = None,
                 kin=None):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[0] != n:
            raise ValueError(f"X must have shape ({n}, p); got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN or infinite values")
        self._X = X
        self._QS = check_qs(QS, n) if K is None else None
        #: the kinship's structure (dense, or block-diagonal for a sparse K): what EP,
        #: the gradients and the scanners need from it (model/covariance.py)
        self._kin = as_kinship(n, self._QS, K) if kin is None else kin
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
        """Prior covariance of the latent: ``v0 K + v1 I`` (n x n; a ``scipy.sparse``
        matrix when K was given sparse)."""
        return self._kin.covariance(self.v0, self.v1)

    def _prior(self):
        """The prior covariance in K's structure (model/covariance.py)."""
        return self._kin.prior(self.v0, self.v1)

    # -- gradient shared by both models ---------------------------------------------------
    def _grad_from_core(self, core, resid_site: F) -> dict[str, F | float]:
        """Gradient of ``log N(mu~ | m, Sigma + T^-1)`` in beta, scale, delta.

        ``resid_site = (eta - tau m) / sqrt(tau)``, i.e. ``T^1/2 (mu~ - m)``.
        """
        a = core.sq * core.solve_B(resid_site)  # C^-1 (mu~ - m)
        Ka = self._kin.matvec(a)
        v0, v1, s = self.v0, self.v1, self._scale
        tr_c = core.tr_Cinv()
        tr_cs = core.tr_Cinv_Sigma()
        if v0 > 1e-4 * v1:
            tr_ck = (tr_cs - v1 * tr_c) / v0
        elif v0 > 0:
            # (tr_cs - v1 tr_c) / v0 cancels as v0 -> 0 (22% off at delta = 1 - 1e-14):
            # near that bound compute tr(C^-1 K) directly (n^3, only there)
            tr_ck = self._kin.tr_Cinv_K(core)
        else:
            tr_ck = float(np.sum(core.tau * self._kin.diag() / (1.0 + v1 * core.tau)))
        d_v0 = 0.5 * float(a @ Ka) - 0.5 * tr_ck
        d_v1 = 0.5 * float(a @ a) - 0.5 * tr_c
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
