"""The conditional saddlepoint tail of :mod:`glimix_cli.model.spa` at biobank n.

:func:`glimix_cli.model.spa._log_upper_tail_conditional` solves the double-saddlepoint
equations by Newton's method over every sample: each step evaluates ``expit`` and
``softplus`` on an (n, k) array, about 30 ms per variant at n = 100,000. Most samples
contribute little curvature: their tilt ``x_i = a_i s + (t - t0)`` stays small (every
sample of a common variant at biobank n; the non-carriers of a rare one). Their part of
the cumulant generating function is a smooth function of ``(s, tau = t - t0)`` that its
Taylor polynomial of order 5 around ``(0, t0)`` reproduces, with coefficients that are
per-variant moment sums (BLAS products, no transcendental function per sample). Only
the samples with a large ``|a_i|`` (carriers of a rare allele) are evaluated exactly at
each Newton step. The result is *certified*: a bound on what the polynomial leaves out
(Lagrange remainder, below) is computed at the solution, and a column whose bound
exceeds :data:`TOL` on the log scale is left to the exact solver (``ok`` False).

Notes
-----
``K(s, t) = sum_i m_i [sp(l_i + a_i s + t) - sp(l_i)]`` (``sp`` = softplus). Split the
samples into an exact set ``E`` and the rest ``R``; for ``i`` in ``R``, with
``x_i = a_i s + tau`` and the derivatives ``sp^(r)`` at ``l_i + t0``::

    K_R ~= sum_{j + k <= 5} c_jk s^j tau^k,   c_jk = sum_R m_i sp^(j+k) a_i^j / (j! k!)

(``sp^(0)`` standing for ``sp(l + t0) - sp(l)``). With ``pi = expit`` and
``v = pi (1 - pi)``: ``sp' = pi``, ``sp'' = v``, ``sp^(3) = v (1 - 2 pi)``,
``sp^(4) = v (1 - 6 v)``, ``sp^(5) = v (1 - 2 pi)(1 - 12 v)`` and
``sp^(6) = v (1 - 30 v + 120 v^2)``, so ``|sp^(6)| <= v`` (as ``v <= 1/4``); and
``v(x + h) <= e^|h| v(x)``. Hence, where every ``|x_i| <= h`` over R, the polynomial misses
the value by at most ``(e^h / 720) sum_R m_i v_i x_i^6`` and the gradient by at most
``(e^h / 120) sum_R m_i v_i (|a_i|, 1) |x_i|^5``; Minkowski's and Hoelder's inequalities
bound both by the moments ``sum_R m v a^6`` and ``sum_R m v``. A gradient error ``d``
moves the minimum of the convex ``phi`` by at most ``d^T H^-1 d / 2`` (to second order);
the bound on the log tail is the value bound plus that.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit, log_ndtr

if TYPE_CHECKING:
    from glimix_cli.model.spa import SPANull

F = NDArray[np.float64]

#: Certified bound on the error of a log tail from the fast solver; columns above it go to
#: the exact solver.
TOL = 1e-4
#: A sample is in the exact set when its first tilt estimate ``|a_i| s0 + |tau0|`` exceeds
#: this.
THETA = 0.5
#: Largest tilt ``|x_i|`` of a sample left to the polynomial (the ``h`` of the bound).
H_MAX = 1.0
#: Above this fraction of exact samples a column goes straight to the exact solver.
MAX_EXACT_FRACTION = 0.2
#: Order of the Taylor polynomial (the remainder bound above is for order 5).
ORDER = 5
_MAX_ITER = 60
_P = np.arange(ORDER + 1)
_FACT = np.array([float(math.factorial(i)) for i in _P])


def taylor_terms(null: SPANull) -> F:
    """``m_i sp^(r)(l_i + t0)`` for r = 0..5 (r = 0: ``sp(l + t0) - sp(l)``), shape (n, 6).
    Cached on ``null``."""
    cached = getattr(null, "_taylor", None)
    if cached is not None:
        return cached
    assert null.conditional is not None
    t0 = null.conditional[1]
    lm, m = null.logit_mu, null.trials
    x = lm + t0
    pi = expit(x)
    v = pi * (1.0 - pi)
    D = np.empty((lm.size, ORDER + 1))
    D[:, 0] = np.logaddexp(0.0, x) - np.logaddexp(0.0, lm)
    D[:, 1] = pi
    D[:, 2] = v
    D[:, 3] = v * (1.0 - 2.0 * pi)
    D[:, 4] = v * (1.0 - 6.0 * v)
    D[:, 5] = v * (1.0 - 2.0 * pi) * (1.0 - 12.0 * v)
    D *= m[:, None]
    object.__setattr__(null, "_taylor", D)  # a cache on the frozen dataclass
    return D


def _moments(a: F, D: F) -> tuple[F, F]:
    """``mom[c, r, p] = sum_i D_ir a_ic^p`` (p = 0..ORDER) and ``sum_i D_i2 a_ic^6``."""
    k = a.shape[1]
    mom = np.empty((k, ORDER + 1, ORDER + 1))
    mom[:, :, 0] = D.sum(axis=0)
    mom[:, :, 1] = a.T @ D
    pw = a * a
    for p in range(2, ORDER + 1):
        mom[:, :, p] = pw.T @ D
        pw *= a
    return mom, pw.T @ D[:, 2]  # pw = a^6 after the loop


def conditional_tails(null: SPANull, a: F, q: F, tol: float = TOL
                      ) -> tuple[F, NDArray[np.bool_]]:
    """Both conditional log tails of each column of ``a``, by the certified fast solver.

    Parameters
    ----------
    null : SPANull
        With ``conditional`` set.
    a : ndarray of float, shape (n, k)
        Score weights ``c g~`` of the variants.
    q : ndarray of float, shape (k,)
        Distance of the observation from the conditional centre (> 0).
    tol : float
        Bound on the error of a log tail below which the fast value is used.

    Returns
    -------
    log_tail : ndarray of float, shape (2 k,)
        ``log P(U >= E + q | N)`` for the columns of ``a``, then for those of ``-a`` (as
        :func:`glimix_cli.model.spa._log_upper_tail_conditional` on ``[a, -a]``).
    ok : ndarray of bool, shape (2 k,)
        Where the fast value is certified to ``tol``; elsewhere NaN (use the exact solver).

    Notes
    -----
    The exact set is first the samples whose tilt at the Normal approximation's
    saddlepoint, ``|a_i| s0 + |tau0|``, exceeds :data:`THETA`; a variant with a tail that
    converged but was not certified is solved once more with the samples whose tilt at
    that solution exceeds ``THETA / 2`` made exact.
    """
    assert null.conditional is not None
    ktt0 = null.conditional[3]
    k = a.shape[1]
    D = taylor_terms(null)
    mom, a6v = _moments(a, D)
    c01 = mom[:, 2, 1].copy()
    cvar0 = np.maximum(mom[:, 2, 2] - c01 * c01 / ktt0, 1e-300)
    s0 = q / cvar0
    with np.errstate(divide="ignore", invalid="ignore"):
        cut = (THETA - np.abs(s0 * c01 / ktt0)) / s0
    out, ok, conv, s, tau = _attempt(null, a, q, D, mom, a6v, cut, tol)
    # second round: a bigger exact set where a converged tail was not certified
    retry = np.flatnonzero(((conv & ~ok)[:k] | (conv & ~ok)[k:])
                           & (ok[:k] | conv[:k]) & (ok[k:] | conv[k:]))
    if retry.size:
        s_r = np.maximum(np.abs(s[retry]), np.abs(s[retry + k]))
        t_r = np.maximum(np.abs(tau[retry]), np.abs(tau[retry + k]))
        with np.errstate(divide="ignore", invalid="ignore"):
            cut2 = (0.5 * THETA - t_r) / s_r
        o2, ok2, *_ = _attempt(null, a[:, retry], q[retry], D, mom[retry], a6v[retry], cut2,
                               tol)
        both = np.concatenate([retry, retry + k])
        better = ok2 & ~ok[both]
        out[both[better]] = o2[better]
        ok[both[better]] = True
    return out, ok


def _attempt(null: SPANull, a: F, q: F, D: F, mom_all: F, a6v_all: F, cut: F,
             tol: float) -> tuple[F, NDArray[np.bool_], NDArray[np.bool_], F, F]:
    """One fast solve with the exact set ``|a_i| > cut_c`` per column: the log tails, the
    certified and converged masks and the solution ``(s, tau)``, each of length 2 k."""
    assert null.conditional is not None
    n_obs, t0, k0, ktt0 = null.conditional
    n, k = a.shape
    mom, a6v = mom_all.copy(), a6v_all.copy()
    centre, var0, c01 = mom[:, 1, 1].copy(), mom[:, 2, 2].copy(), mom[:, 2, 1].copy()
    cvar0 = np.maximum(var0 - c01 * c01 / ktt0, 1e-300)
    s0 = q / cvar0
    absa = np.abs(a)
    exact = absa > cut
    usable = ((cut > 0) & (exact.sum(axis=0) <= MAX_EXACT_FRACTION * n) & np.isfinite(s0)
              & (s0 > 0))
    exact[:, ~usable] = False
    rows, cols = np.nonzero(exact)
    absa[exact] = 0.0
    max_rest = absa.max(axis=0) if n else np.zeros(k)
    del absa, exact
    # moments over the rest R = all - E
    ae, De = a[rows, cols], D[rows]
    pw = np.ones_like(ae)
    for p in range(ORDER + 1):
        for r in range(ORDER + 1):
            mom[:, r, p] -= np.bincount(cols, weights=De[:, r] * pw, minlength=k)
        pw = pw * ae
    a6v -= np.bincount(cols, weights=De[:, 2] * pw, minlength=k)  # pw = ae^6
    # the two tails: the columns of a, then of -a (odd powers change sign)
    flip = np.array([1.0, -1.0])[:, None] ** _P[None, :]
    mom2 = np.concatenate([mom * flip[0], mom * flip[1]])  # (2k, r, p)
    coef = np.zeros((2 * k, ORDER + 1, ORDER + 1))  # c_jk of s^j tau^k
    for j in _P:
        for kk in range(ORDER + 1 - j):
            coef[:, j, kk] = mom2[:, j + kk, j] / (_FACT[j] * _FACT[kk])

    def two(x: F) -> F:
        return np.concatenate([x, x])

    le = two(null.logit_mu[rows])
    solver = _Newton(coef, np.concatenate([cols, cols + k]), np.concatenate([ae, -ae]),
                     le + t0, two(null.trials[rows]), np.logaddexp(0.0, le),
                     np.concatenate([centre, -centre]) + two(q), n_obs, t0,
                     H_MAX / np.maximum(two(max_rest), 1e-300))
    s, tau, f, (hss, hst, htt), conv = solver.solve(
        two(s0), -two(s0) * np.concatenate([c01, -c01]) / ktt0, two(cvar0), two(usable))
    # certification (see the module notes)
    nv = two(np.maximum(mom[:, 2, 0], 0.0))
    a6 = two(np.maximum(a6v, 0.0))
    h = np.abs(s) * two(max_rest) + np.abs(tau)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        x6 = (np.abs(s) * a6 ** (1 / 6) + np.abs(tau) * nv ** (1 / 6)) ** 6
        eh = np.exp(np.minimum(h, H_MAX))
        err_gs = eh / 120.0 * a6 ** (1 / 6) * x6 ** (5 / 6)
        err_gt = eh / 120.0 * nv ** (1 / 6) * x6 ** (5 / 6)
        lam_min = 0.5 * (hss + htt - np.sqrt((hss - htt) ** 2 + 4.0 * hst * hst))
        # the Hessian's error, through log det in the tail formula's log(v / w) / w
        x4 = x6 ** (2 / 3) * eh / 24.0
        e_ss = x4 * a6 ** (1 / 3)
        e_st = x4 * a6 ** (1 / 6) * nv ** (1 / 6)
        e_tt = x4 * nv ** (1 / 3)
        det = hss * htt - hst * hst
        err_det = 0.5 * (e_ss * np.abs(htt) + np.abs(hss) * e_tt + 2 * np.abs(hst) * e_st) / det
        err = (eh / 720.0 * x6 + 0.5 * (err_gs ** 2 + err_gt ** 2) / lam_min
               + np.abs(err_det))
        certified = conv & (h <= H_MAX) & (lam_min > 0) & (err <= tol)
        w = np.sqrt(np.maximum(2.0 * (-f - (t0 * n_obs - k0)), 0.0))
        v = s * np.sqrt(np.maximum(det, 0.0) / ktt0)
        out = log_ndtr(-(w + np.log(v / w) / w))
        out = np.where(w > 1e-3, out, log_ndtr(-two(q) / np.sqrt(two(cvar0))))
    ok = certified & np.isfinite(out) & (s > 0)
    return np.where(ok, out, np.nan), ok, conv & (s > 0), s, tau


def _shift(c: F, axis: int) -> F:
    """Coefficients of the derivative of ``sum c_jk s^j tau^k`` in s (axis 1) or tau (2)."""
    out = np.zeros_like(c)
    if axis == 1:
        out[:, :-1, :] = c[:, 1:, :] * _P[1:, None]
    else:
        out[:, :, :-1] = c[:, :, 1:] * _P[None, 1:]
    return out


class _Newton:
    """Damped Newton on ``phi(s, tau) = K_E + P - s target - (t0 + tau) n_obs`` for many
    columns at once: ``K_E`` exact over the flat exact entries (column ``col``, weight
    ``a``, ``x0 = l + t0``, trials ``m``, ``spl = sp(l)``), ``P`` the polynomial with
    coefficients ``coef``. A column whose ``|s|`` passes ``2 s_max`` (where the polynomial
    cannot be certified) is given up."""

    def __init__(self, coef: F, col: NDArray[np.intp], a: F, x0: F, m: F, spl: F,
                 target: F, n_obs: float, t0: float, s_max: F):
        self.coef, self.col, self.a, self.x0, self.m, self.spl = coef, col, a, x0, m, spl
        self.target, self.n_obs, self.t0, self.s_max = target, n_obs, t0, s_max
        self.ncol = coef.shape[0]
        cs, ct = _shift(coef, 1), _shift(coef, 2)
        self._d = (cs, ct, _shift(cs, 1), _shift(cs, 2), _shift(ct, 2))

    def _sum(self, w: F, sel: NDArray[np.bool_] | None) -> F:
        col = self.col if sel is None else self.col[sel]
        # (an empty bincount is int64)
        return np.bincount(col, weights=w, minlength=self.ncol).astype(np.float64, copy=False)

    @staticmethod
    def _poly(c: F, s: F, tau: F) -> F:
        return np.einsum("cjk,jc,kc->c", c, s[None, :] ** _P[:, None],
                         tau[None, :] ** _P[:, None])

    def phi(self, s: F, tau: F, cols: NDArray[np.bool_]) -> F:
        """``phi`` of the columns marked in ``cols`` (NaN elsewhere)."""
        sel = cols[self.col]
        c = self.col[sel]
        x = self.x0[sel] + self.a[sel] * s[c] + tau[c]
        ke = self._sum(self.m[sel] * (np.logaddexp(0.0, x) - self.spl[sel]), sel)
        out = ke + self._poly(self.coef, s, tau) - s * self.target - (self.t0 + tau) * self.n_obs
        return np.where(cols, out, np.nan)

    def derivatives(self, s: F, tau: F) -> tuple[F, ...]:
        """``K_s, K_t, K_ss, K_st, K_tt`` of ``K = K_E + P`` (all columns)."""
        x = self.x0 + self.a * s[self.col] + tau[self.col]
        pi = expit(x)
        mv = self.m * pi * (1.0 - pi)
        exact = (self.m * self.a * pi, self.m * pi, mv * self.a * self.a, mv * self.a, mv)
        return tuple(self._sum(e, None) + self._poly(c, s, tau)
                     for e, c in zip(exact, self._d, strict=True))

    def solve(self, s: F, tau: F, cvar0: F, use: NDArray[np.bool_]
              ) -> tuple[F, F, F, tuple[F, F, F], NDArray[np.bool_]]:
        """Newton from ``(s, tau)`` for the columns in ``use``; returns the point, ``phi``,
        the Hessian ``(K_ss, K_st, K_tt)`` there and the converged mask (the exact
        solver's tolerances)."""
        s, tau = s.copy(), tau.copy()
        conv = np.zeros(s.shape, dtype=bool)
        live = use.copy()
        f = self.phi(s, tau, live)
        for _ in range(_MAX_ITER):
            if not live.any():
                break
            ks, kt, kss, kst, ktt = self.derivatives(s, tau)
            gs, gt = ks - self.target, kt - self.n_obs
            done = live & (np.abs(gs) <= 1e-8 * np.sqrt(cvar0)) & (np.abs(gt) <= 1e-8)
            conv |= done
            live &= ~done
            det = kss * ktt - kst * kst
            with np.errstate(divide="ignore", invalid="ignore"):
                ds = -(ktt * gs - kst * gt) / det
                dt = -(kss * gt - kst * gs) / det
            live &= np.isfinite(ds) & np.isfinite(dt) & (det > 0) & (kss > 0)
            live &= np.abs(s + ds) <= 2.0 * self.s_max
            if not live.any():
                break
            step = np.where(live, 1.0, 0.0)
            fn = self.phi(s + step * ds, tau + step * dt, live)
            for _ in range(30):
                worse = live & ~(fn <= f + 1e-12 * np.abs(f))
                if not worse.any():
                    break
                step = np.where(worse, 0.5 * step, step)
                fn = np.where(worse, self.phi(s + step * ds, tau + step * dt, worse), fn)
            live &= fn <= f + 1e-12 * np.abs(f)
            s = np.where(live, s + step * ds, s)
            tau = np.where(live, tau + step * dt, tau)
            f = np.where(live, fn, f)
        _, _, kss, kst, ktt = self.derivatives(s, tau)
        return s, tau, f, (kss, kst, ktt), conv
