"""Exponential-family likelihoods and their EP tilted moments.

Every likelihood is a small class with one interface: the link, the per-observation log
density ``log p(y | z)`` with its first two derivatives in the latent ``z``, and the EP
tilted moments

    Z    = ∫ p(y | z) N(z | m, v) dz
    mean = E[z],  var = Var[z]   under  p(y | z) N(z | m, v) / Z

for a vector of cavity means ``m`` and variances ``v``. The generic moments are computed
by a numerical integral on the log scale that adapts its window to each tilted density
(all likelihoods here are log-concave in ``z``, so the tilted density is log-concave and
unimodal): find the mode by safeguarded Newton, find where the log density has dropped
by ``DROP`` nats on either side, integrate with the trapezoidal rule on ``n_int`` points.
For an analytic integrand whose ends are ~e^-40 below the peak the trapezoidal rule
converges geometrically, so a few hundred points give 1e-10 relative accuracy.
Probit has closed-form moments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, gammaln, log_ndtr

from glimix_cli.registry import EP_LIKELIHOODS

F = NDArray[np.float64]

#: Depth (nats below the mode) at which the integration window ends.
DROP = 40.0
#: Smallest number of integration points accepted.
MIN_N_INT = 64
_LOG_2PI = float(np.log(2 * np.pi))


@dataclass(frozen=True)
class TiltedMoments:
    """Log normaliser, mean and variance of the tilted distributions, one per site.

    ``dlog_z`` and ``neg_d2log_z`` are the first and minus the second derivative of
    ``log Z`` in the cavity mean: ``E[g'(z)]`` and ``-(E[g''(z)] + Var[g'(z)])`` under the
    tilted distribution (``g = log p(y|z)``). They give the EP site update without the
    cancellation of ``1/var - 1/cavity_var`` when the cavity is narrow:
    ``mean = m + v dlog_z`` and ``var = v - v^2 neg_d2log_z``.
    """

    log_z: F
    mean: F
    var: F
    dlog_z: F
    neg_d2log_z: F


class Likelihood:
    """Base class: an exponential-family observation model ``p(y | z)``.

    Subclasses define ``name``, ``link_name``, ``mean(z)`` (inverse link), ``logpdf``,
    ``dlogpdf`` and ``d2logpdf`` (derivatives in ``z``), and ``check(y)``.
    """

    name: str = ""
    link_name: str = ""

    def __init__(self, y: ArrayLike):
        self.y = self.check(np.asarray(y, dtype=np.float64))

    # -- to be defined by subclasses -------------------------------------------------
    def check(self, y: F) -> F:  # pragma: no cover - abstract
        raise NotImplementedError

    def mean(self, z: F) -> F:  # pragma: no cover - abstract
        """Inverse link ``g(z)``: the expected observation given the latent value."""
        raise NotImplementedError

    def logpdf(self, z: F, idx: slice | F | None = None) -> F:  # pragma: no cover
        raise NotImplementedError

    def dlogpdf(self, z: F, idx: slice | F | None = None) -> F:  # pragma: no cover
        raise NotImplementedError

    def d2logpdf(self, z: F, idx: slice | F | None = None) -> F:  # pragma: no cover
        raise NotImplementedError

    def logpdf_derivs(self, z: F, idx: slice | F | None = None) -> tuple[F, F, F]:
        """``(logpdf, dlogpdf, d2logpdf)`` in one pass (subclasses share work here)."""
        return self.logpdf(z, idx), self.dlogpdf(z, idx), self.d2logpdf(z, idx)

    def quadrature_terms(self, z: F, idx: slice | F | None = None
                         ) -> tuple[F, F | None, F, F]:
        """``(log_part, factor, dlogpdf, d2logpdf)`` with ``p(y|z) = factor * exp(log_part)``
        (``factor`` None means 1). The quadrature exponentiates ``log_part`` together with
        the Gaussian, so a subclass may move a bounded factor out of the logarithm when that
        saves a ``log`` per point."""
        lp, d1, d2 = self.logpdf_derivs(z, idx)
        return lp, None, d1, d2

    # -- shared ------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def _col(self, a: F, idx: slice | F | None, ndim: int) -> F:
        """``a[idx]`` shaped to broadcast against a (sites, points) array when ndim == 2."""
        b = a if idx is None else a[idx]
        return b[:, None] if ndim == 2 else b

    def tilted_moments(self, cav_mean: ArrayLike, cav_var: ArrayLike, n_int: int = 1000
                       ) -> TiltedMoments:
        """EP tilted moments for all sites, by adaptive trapezoidal integration.

        Parameters
        ----------
        cav_mean, cav_var : ndarray of float, shape (n,)
            Cavity means and variances (``cav_var > 0``).
        n_int : int
            Number of integration points per site (at least ``MIN_N_INT``).
        """
        m = np.asarray(cav_mean, dtype=np.float64)
        v = np.asarray(cav_var, dtype=np.float64)
        _check_cavity(m, v, self.n)
        if n_int < MIN_N_INT:
            raise ValueError(
                f"n_int={n_int} is too small for accurate EP moments; use n_int >= {MIN_N_INT}"
            )
        # exp(z) may overflow to inf while bracketing far into a tail; the resulting
        # -inf log densities are handled correctly, so the warning carries no information.
        with np.errstate(over="ignore"):
            return _numeric_moments(self, m, v, int(n_int))


def _check_cavity(m: F, v: F, n: int) -> None:
    if m.shape != (n,) or v.shape != (n,):
        raise ValueError(f"cavity mean/variance must have shape ({n},)")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(v)) and np.all(v > 0)):
        raise ValueError("cavity parameters must be finite with positive variances")


def _log_tilted(lik: Likelihood, z: F, m: F, v: F, idx: slice | F | None) -> F:
    """log p(y|z) + log N(z | m, v), broadcasting z (sites,) or (sites, points)."""
    mm = m[:, None] if z.ndim == 2 else m
    vv = v[:, None] if z.ndim == 2 else v
    return lik.logpdf(z, idx) - 0.5 * (z - mm) ** 2 / vv - 0.5 * (_LOG_2PI + np.log(vv))


def _dlog_tilted(lik: Likelihood, z: F, m: F, v: F, idx: slice | F | None) -> tuple[F, F]:
    return lik.dlogpdf(z, idx) - (z - m) / v, lik.d2logpdf(z, idx) - 1.0 / v


def _find_root_decreasing(fun, lo: F, hi: F, x0: F, tol: F, maxiter: int = 200) -> F:
    """Root of elementwise decreasing functions by safeguarded Newton within [lo, hi].

    ``fun(x) -> (value, derivative)``; requires value(lo) >= 0 >= value(hi). A Newton step
    is replaced by bisection when it leaves the bracket or shrinks the step less than
    twofold (Numerical Recipes' rtsafe rule), so a far-off start on an exponential (where
    Newton crawls one unit per step) still converges in a few dozen iterations.
    """
    x = np.clip(x0, lo, hi)
    lo = lo.copy()
    hi = hi.copy()
    prev = hi - lo
    for _ in range(maxiter):
        f, df = fun(x)
        pos = f > 0
        lo = np.where(pos, x, lo)
        hi = np.where(pos, hi, x)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(df < 0, -f / df, np.nan)
        xn = x + step
        # a converged Newton step is kept even though x itself is now a bracket end
        small = np.abs(step) <= tol
        bad = ~small & (~np.isfinite(xn) | (xn <= lo) | (xn >= hi)
                        | (np.abs(step) > 0.5 * np.abs(prev)))
        xn = np.where(bad, 0.5 * (lo + hi), xn)
        prev = xn - x
        done = small | (hi - lo <= tol)
        x = xn
        if np.all(done):
            return x
    raise ValueError("could not locate the mode of an EP tilted density (extreme cavity "
                     "values)")


def _window_end(lik: Likelihood, m: F, v: F, mode: F, fmode: F, lap: F, direction: float
                ) -> F:
    """A point on one side of the mode where the tilted log density is about DROP nats
    below its peak.

    Walk out in steps that double from the Laplace guess ``sqrt(2 DROP) lap`` until the
    density is DROP nats down, never past the strong-concavity bound ``sqrt(2 DROP v)``
    (where it is at least that far down). That costs one or two evaluations for the
    near-Gaussian sides of logit likelihoods. Where the walk overshot by far (a side much
    steeper than the Laplace guess, e.g. the Poisson's ``exp(z)`` side), the end is pulled
    back to the DROP level by root finding on those sites only, so that the quadrature
    points are not spent where the density is zero.
    """
    bound = np.sqrt(2 * DROP * v)
    step = np.minimum(np.sqrt(2 * DROP) * lap, bound)
    inner = np.zeros_like(step)
    while True:
        fz = _log_tilted(lik, mode + direction * step, m, v, None)
        need = (fz > fmode - DROP) & (step < bound)
        if not np.any(need):
            break
        inner = np.where(need, step, inner)
        step = np.where(need, np.minimum(2 * step, bound), step)
    far = ~(fz >= fmode - 4 * DROP)  # also catches -inf from overflow
    if np.any(far):
        idx = np.flatnonzero(far)
        c, mm, vv, level = mode[idx], m[idx], v[idx], fmode[idx] - DROP

        def phi(t: F) -> tuple[F, F]:  # decreasing in the distance t from the mode
            z = c + direction * t
            d, _ = _dlog_tilted(lik, z, mm, vv, idx)
            return _log_tilted(lik, z, mm, vv, idx) - level, direction * d

        lo, hi = inner[idx], step[idx]
        step[idx] = _find_root_decreasing(phi, lo, hi, 0.5 * (lo + hi), 1e-3 * lap[idx])
    return mode + direction * step


def _numeric_moments(lik: Likelihood, m: F, v: F, n_int: int) -> TiltedMoments:
    n = m.shape[0]
    sd = np.sqrt(v)
    tol = 1e-12 * (1.0 + np.abs(m)) + 1e-10 * np.minimum(sd, 1.0)

    def dfun(z: F) -> tuple[F, F]:
        return _dlog_tilted(lik, z, m, v, None)

    # Every likelihood here is log-concave in z, so the tilted log density f is strongly
    # concave: f'' <= -1/v everywhere. Two bounds follow that need no search:
    #  * the mode lies between m and m + v f'(m) (f' falls by at least |z - m| / v);
    #  * f(z) <= f(mode) - (z - mode)^2 / (2 v): the density is DROP nats down within
    #    sqrt(2 DROP v) of the mode.
    # 1. mode by safeguarded Newton inside the first bracket, started with a Newton step.
    d0, dd0 = dfun(m)
    far = m + v * d0
    lo = np.minimum(m, far)
    hi = np.maximum(m, far)
    mode = _find_root_decreasing(dfun, lo, hi, m - d0 / dd0, tol)
    fmode = _log_tilted(lik, mode, m, v, None)
    _, d2 = dfun(mode)
    lap = 1.0 / np.sqrt(-d2)  # Laplace scale at the mode (<= cavity sd)

    # 2. window ends about DROP nats down on either side.
    right = _window_end(lik, m, v, mode, fmode, lap, +1.0)
    left = _window_end(lik, m, v, mode, fmode, lap, -1.0)

    # 3. trapezoidal rule after the change of variable z = c + alpha * sinh(u), u uniform:
    #    points are dense near the mode (spacing ~ alpha du) and spread out geometrically in
    #    the tails, so a likelihood "cliff" next to the mode and a wide prior tail on the
    #    other side are both resolved. The integrand in u is analytic and ~e^-40 at both
    #    ends, where the trapezoidal rule converges geometrically.
    alpha = lap / 4.0
    log_z = np.empty(n)
    mean = np.empty(n)
    var = np.empty(n)
    dlog_z = np.empty(n)
    neg_d2 = np.empty(n)
    t = np.linspace(0.0, 1.0, n_int)
    # the peak of the unnormalised integrand (the mode is its maximiser, to ``tol``)
    f_peak = fmode + 0.5 * (_LOG_2PI + np.log(v))
    # blocks of ~64k points keep the temporaries in cache
    chunk = max(1, 65_536 // n_int)
    for s in range(0, n, chunk):
        sl = slice(s, min(n, s + chunk))
        c, half_al = mode[sl], 0.5 * alpha[sl, None]
        u_a = np.arcsinh((left[sl] - c) / alpha[sl])
        u_b = np.arcsinh((right[sl] - c) / alpha[sl])
        du = (u_b - u_a) / (n_int - 1)
        eu = np.exp(u_a[:, None] + (u_b - u_a)[:, None] * t)
        ieu = 1.0 / eu
        d = half_al * (eu - ieu)  # z - c = alpha sinh(u)
        jac = half_al * (eu + ieu)  # dz/du = alpha cosh(u), with the trapezoid end weights
        jac[:, 0] *= 0.5
        jac[:, -1] *= 0.5
        z = c[:, None] + d
        lp, factor, g1, g2 = lik.quadrature_terms(z, sl)
        dm = z - m[sl, None]
        lp -= (0.5 / v[sl, None]) * dm * dm
        lp -= f_peak[sl, None]
        e = np.exp(lp, out=lp)
        if factor is not None:
            e *= factor
        e *= jac
        s0 = e.sum(axis=1)
        off = np.einsum("ij,ij->i", e, d) / s0
        mean[sl] = c + off
        # the mean's offset from the mode is at most about one sd for a log-concave
        # density, so E[d^2] - off^2 loses no accuracy.
        d *= e
        var[sl] = np.einsum("ij,ij->i", d, z - c[:, None]) / s0 - off * off
        log_z[sl] = f_peak[sl] + np.log(s0 * du) - 0.5 * (_LOG_2PI + np.log(v[sl]))
        a = np.einsum("ij,ij->i", e, g1) / s0
        dlog_z[sl] = a
        g1 -= a[:, None]
        g1 *= g1
        neg_d2[sl] = -(np.einsum("ij,ij->i", e, g2) + np.einsum("ij,ij->i", e, g1)) / s0
    return TiltedMoments(log_z, mean, var, dlog_z, np.maximum(neg_d2, 0.0))


# ---------------------------------------------------------------------------------------
class Bernoulli(Likelihood):
    """Bernoulli with logit link: ``p(y=1 | z) = 1 / (1 + exp(-z))``; y in {0, 1}."""

    name = "bernoulli"
    link_name = "logit"

    def check(self, y: F) -> F:
        _check_finite_1d(y, self.name)
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("bernoulli outcomes must be 0 or 1")
        return y

    def _sign(self, idx: slice | F | None, ndim: int) -> F:
        return self._col(2 * self.y - 1, idx, ndim)

    def mean(self, z: F) -> F:
        return expit(z)

    def logpdf(self, z, idx=None):
        s = self._sign(idx, np.ndim(z))
        return -np.logaddexp(0.0, -s * z)

    def dlogpdf(self, z, idx=None):
        s = self._sign(idx, np.ndim(z))
        return s * expit(-s * z)

    def d2logpdf(self, z, idx=None):
        return -expit(z) * expit(-z)

    def logpdf_derivs(self, z, idx=None):
        # With x = s z and e = exp(-|x|) <= 1 (never overflows), r = 1 / (1 + e):
        # log expit(x) = min(x, 0) - log1p(e), expit(-x) = e r (x >= 0) or r (x < 0),
        # expit(x) expit(-x) = e r^2. Two transcendental calls instead of five.
        s = self._sign(idx, np.ndim(z))
        x = s * z
        e = np.exp(-np.abs(x))
        lp = np.minimum(x, 0.0) - np.log1p(e)
        r = 1.0 / (1.0 + e)
        er = e * r
        q = np.where(x >= 0, er, r)
        return lp, s * q, -er * r

    def quadrature_terms(self, z, idx=None):
        # expit(x) = r exp(min(x, 0)) and expit(-x) = r exp(-max(x, 0)) with r = 1/(1 + e),
        # e = exp(-|x|) <= 1: three exp calls and no log (log is ~7x slower than exp here).
        s = self._sign(idx, np.ndim(z))
        x = s * z
        e = np.exp(-np.abs(x))
        r = 1.0 / (1.0 + e)
        q = np.exp(-np.maximum(x, 0.0))
        q *= r
        e *= r
        e *= r
        e *= -1.0
        q *= s
        return np.minimum(x, 0.0), r, q, e


class Probit(Likelihood):
    """Bernoulli with probit link: ``p(y=1 | z) = Phi(z)``; closed-form tilted moments."""

    name = "probit"
    link_name = "probit"

    def check(self, y: F) -> F:
        _check_finite_1d(y, self.name)
        if not np.all((y == 0) | (y == 1)):
            raise ValueError("probit outcomes must be 0 or 1")
        return y

    def _sign(self, idx, ndim):
        return self._col(2 * self.y - 1, idx, ndim)

    def mean(self, z: F) -> F:
        return np.exp(log_ndtr(z))

    def logpdf(self, z, idx=None):
        s = self._sign(idx, np.ndim(z))
        return log_ndtr(s * z)

    def _ratio(self, u: F) -> F:
        """phi(u) / Phi(u), computed on the log scale."""
        return np.exp(-0.5 * u * u - 0.5 * _LOG_2PI - log_ndtr(u))

    def dlogpdf(self, z, idx=None):
        s = self._sign(idx, np.ndim(z))
        return s * self._ratio(s * z)

    def d2logpdf(self, z, idx=None):
        s = self._sign(idx, np.ndim(z))
        u = s * z
        r = self._ratio(u)
        return -r * (r + u)

    def tilted_moments(self, cav_mean, cav_var, n_int: int = 1000) -> TiltedMoments:
        """Closed form (Rasmussen & Williams 2006, eq. 3.58)."""
        m = np.asarray(cav_mean, dtype=np.float64)
        v = np.asarray(cav_var, dtype=np.float64)
        _check_cavity(m, v, self.n)
        s = 2 * self.y - 1
        c = np.sqrt(1.0 + v)
        u = s * m / c
        log_z = log_ndtr(u)
        r = self._ratio(u)
        mean = m + s * v * r / c
        # var = v - v^2 b with b = r (u + r) / (1 + v) = -d2 log Z / dm2, as written: no
        # special form for large negative u (where r ~ -u and u + r ~ -1/u cancels), nor
        # for v b near 1 (where var cancels); ep.site_update uses b itself, not var, while
        # the cavity is narrow (v b < 0.5).
        b = r * (u + r) / (1.0 + v)
        var = v - v * v * b
        return TiltedMoments(log_z, mean, var, s * r / c, b)


class Binomial(Likelihood):
    """Binomial with logit link: ``y ~ Binomial(N, 1/(1+exp(-z)))``; ``y`` successes."""

    name = "binomial"
    link_name = "logit"

    def __init__(self, y: ArrayLike, ntrials: ArrayLike):
        nt = np.asarray(ntrials, dtype=np.float64)
        yy = np.asarray(y, dtype=np.float64)
        if nt.shape != yy.shape:
            raise ValueError("binomial: ntrials must have the same shape as the successes")
        if not np.all(np.isfinite(nt)) or np.any(nt < 1) or np.any(nt != np.round(nt)):
            raise ValueError("binomial: ntrials must be integers >= 1")
        self.ntrials = nt
        super().__init__(yy)
        self._logc = gammaln(nt + 1) - gammaln(self.y + 1) - gammaln(nt - self.y + 1)

    def check(self, y: F) -> F:
        _check_finite_1d(y, self.name)
        if np.any(y < 0) or np.any(y != np.round(y)) or np.any(y > self.ntrials):
            raise ValueError("binomial successes must be integers with 0 <= y <= ntrials")
        return y

    def mean(self, z: F) -> F:
        return expit(z)

    def logpdf(self, z, idx=None):
        nd = np.ndim(z)
        y = self._col(self.y, idx, nd)
        nt = self._col(self.ntrials, idx, nd)
        c = self._col(self._logc, idx, nd)
        return c - y * np.logaddexp(0.0, -z) - (nt - y) * np.logaddexp(0.0, z)

    def dlogpdf(self, z, idx=None):
        nd = np.ndim(z)
        y = self._col(self.y, idx, nd)
        nt = self._col(self.ntrials, idx, nd)
        return y - nt * expit(z)

    def d2logpdf(self, z, idx=None):
        nt = self._col(self.ntrials, idx, np.ndim(z))
        return -nt * expit(z) * expit(-z)

    def logpdf_derivs(self, z, idx=None):
        nd = np.ndim(z)
        y = self._col(self.y, idx, nd)
        nt = self._col(self.ntrials, idx, nd)
        c = self._col(self._logc, idx, nd)
        lpos = -np.logaddexp(0.0, -z)  # log expit(z)
        lneg = -np.logaddexp(0.0, z)  # log expit(-z)
        p = np.exp(lpos)
        return c + y * lpos + (nt - y) * lneg, y - nt * p, -nt * p * np.exp(lneg)


class Poisson(Likelihood):
    """Poisson with log link: ``y ~ Poisson(exp(z))``."""

    name = "poisson"
    link_name = "log"

    def __init__(self, y: ArrayLike):
        super().__init__(y)
        self._logfact = gammaln(self.y + 1)

    def check(self, y: F) -> F:
        _check_finite_1d(y, self.name)
        if np.any(y < 0) or np.any(y != np.round(y)):
            raise ValueError("poisson outcomes must be non-negative integers")
        return y

    def mean(self, z: F) -> F:
        return np.exp(z)

    def logpdf(self, z, idx=None):
        nd = np.ndim(z)
        y = self._col(self.y, idx, nd)
        c = self._col(self._logfact, idx, nd)
        return y * z - np.exp(z) - c

    def dlogpdf(self, z, idx=None):
        y = self._col(self.y, idx, np.ndim(z))
        return y - np.exp(z)

    def d2logpdf(self, z, idx=None):
        return -np.exp(z)

    def logpdf_derivs(self, z, idx=None):
        nd = np.ndim(z)
        y = self._col(self.y, idx, nd)
        c = self._col(self._logfact, idx, nd)
        ez = np.exp(z)
        return y * z - ez - c, y - ez, -ez


def _check_finite_1d(y: F, name: str) -> None:
    if y.ndim != 1:
        raise ValueError(f"{name} outcomes must be a 1-D array; got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} outcomes contain NaN or infinite values; drop those samples")


#: The class of each name of :data:`glimix_cli.registry.EP_LIKELIHOODS`, in its order.
LIKELIHOODS: dict[str, type[Likelihood]] = {
    "bernoulli": Bernoulli,
    "probit": Probit,
    "binomial": Binomial,
    "poisson": Poisson,
}
#: The names ``make_likelihood`` accepts, as its error message lists them.
_CHOICES = ", ".join("('binomial', ntrials)" if name == "binomial" else name
                     for name in EP_LIKELIHOODS)


def make_likelihood(y: ArrayLike, lik: str | tuple) -> Likelihood:
    """Build a likelihood from its name or a tuple whose first item is the name.

    As in the classic API: ``"bernoulli"``, ``("bernoulli",)``, ``("probit",)``,
    ``("poisson",)`` and ``("binomial", ntrials)``; names in any capitalisation.
    """
    params: tuple = ()
    if isinstance(lik, tuple | list):
        if not lik:
            raise ValueError("likelihood tuple is empty; give e.g. ('bernoulli',)")
        name, params = str(lik[0]).lower(), tuple(lik[1:])
    else:
        name = str(lik).lower()
    if name == "binomial":
        if len(params) != 1:
            raise ValueError("the binomial likelihood needs trials: pass ('binomial', ntrials)")
        return Binomial(y, params[0])
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {lik!r}; choose one of {_CHOICES}")
    if params:
        raise ValueError(f"the {name} likelihood takes no parameters; got {lik!r}")
    return LIKELIHOODS[name](y)
