"""Binary-trait GLMs (logit or probit link) fitted per variant, vectorised over a block.

When a 0/1 trait carries no identifiable kinship variance (unrelated samples: the GLMM's
``v0`` is not identified, see ``docs/calibrated-test.md``) the null model is the plain GLM
on the covariates, and the variants with a small score-test p-value are refitted here by
maximum likelihood, as plink2 ``--glm`` (logistic/probit) does for every variant:

    y_i ~ Bernoulli(h(x_i' beta + g_i gamma)),   h = expit (logit) or Phi (probit)

Each variant of a block gets its own Newton (Fisher scoring) iteration on
``theta = (beta, gamma)``; all variants of the block iterate together, so every step is a
few batched ``(q, q)`` solves with ``q = p + 1``.

Notes
-----
With ``mu = h(eta)``, ``d = h'(eta)`` and the Fisher weight ``w = d^2 / (mu (1 - mu))``,
the score and the expected information are

    U = Z' [d (y - mu) / (mu (1 - mu))],   I = Z' diag(w) Z,   Z = [X, g].

For the logit link ``d = mu (1 - mu)``: ``U = Z'(y - mu)`` and ``w = mu (1 - mu)``.

Firth's penalised likelihood (logit only; Firth 1993, Heinze & Schemper 2002) maximises
``l*(theta) = l(theta) + log|I(theta)| / 2``, whose score is

    U*_j = sum_i z_ij (y_i - mu_i + h_i (1/2 - mu_i)),   h_i = w_i z_i' I^-1 z_i

(``h`` the diagonal of the weighted hat matrix). Its estimate is finite even under
separation (a rare variant carried by no case), which is why plink2 falls back to it
(``firth-fallback``) and REGENIE uses its likelihood ratio for small p-values.

Steps are ``I^-1 U`` (``I^-1 U*`` for Firth), each coordinate capped at
:data:`MAX_STEP`, halved up to :data:`MAX_HALVINGS` times while the (penalised)
log-likelihood does not increase. Convergence: the largest coordinate change below
``tol``. The likelihood-ratio statistic is ``2 (l(theta_hat) - l(theta_0))`` against the
covariates-only fit of the same likelihood (penalised or not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, log_expit, log_ndtr, ndtri

F = NDArray[np.float64]

LINKS = ("logit", "probit")
#: Largest change of one coefficient in one Newton step (as logistf's maxstep).
MAX_STEP = 5.0
MAX_HALVINGS = 15
MAX_ITER = 60
_LOG_2PI = float(np.log(2.0 * np.pi))
#: Work-array budget (float64 elements) of one batched sub-block: the information
#: matrices need (n, k, p) temporaries, so k shrinks as n grows (512 at most).
_SUB_ELEMENTS = 20_000_000


@dataclass(frozen=True)
class GLMFit:
    """Per-variant maximum-likelihood fit of ``y ~ X + g``.

    Attributes
    ----------
    beta : ndarray of float, shape (k,)
        Effect ``gamma`` of the variant (log odds ratio for the logit link).
    se : ndarray of float, shape (k,)
        ``sqrt([I(theta_hat)^-1]_gg)``: the Wald standard error at the estimate.
    lrt : ndarray of float, shape (k,)
        Likelihood-ratio statistic against the covariates-only fit (NaN where the fit did
        not converge).
    converged : ndarray of bool, shape (k,)
    """

    beta: F
    se: F
    lrt: F
    converged: NDArray[np.bool_]


def _check_link(link: str) -> None:
    if link not in LINKS:
        raise ValueError(f"link must be one of {', '.join(LINKS)}; got {link!r}")


def _terms(eta: F, y: F, link: str) -> tuple[F, F, F, F]:
    """``(loglik terms, mu, score residual, Fisher weight)`` at the linear predictor."""
    s = 2.0 * y - 1.0
    if link == "logit":
        ll = log_expit(s * eta)
        mu = expit(eta)
        w = mu * (1.0 - mu)
        return ll, mu, y - mu, w
    ll = log_ndtr(s * eta)
    lp, lq = log_ndtr(eta), log_ndtr(-eta)
    mu = np.exp(lp)
    log_phi = -0.5 * eta * eta - 0.5 * _LOG_2PI
    # d (y - mu) / (mu (1 - mu)): phi/Phi for a case, -phi/(1 - Phi) for a control
    r = np.where(y > 0.5, np.exp(log_phi - lp), -np.exp(log_phi - lq))
    w = np.exp(2.0 * log_phi - lp - lq)
    return ll, mu, r, w


def fit_null(y: ArrayLike, X: ArrayLike, link: str = "logit", firth: bool = False,
             tol: float = 1e-8) -> tuple[F, float, bool]:
    """Covariates-only fit: ``(beta, loglik, converged)`` (penalised when ``firth``)."""
    _check_link(link)
    yv = np.asarray(y, dtype=np.float64).ravel()
    Xm = np.asarray(X, dtype=np.float64)
    theta, ll, conv = _newton(yv, Xm, None, link, firth, tol, None)
    return theta[0], float(ll[0]), bool(conv[0])


def fit_variants(y: ArrayLike, X: ArrayLike, G: ArrayLike, link: str = "logit",
                 firth: bool = False, null_loglik: float | None = None,
                 null_beta: ArrayLike | None = None, tol: float = 1e-8) -> GLMFit:
    """Fit ``y ~ X + g`` for every column ``g`` of ``G`` (n x k) by (penalised) ML.

    ``null_loglik``/``null_beta`` come from :func:`fit_null` with the same ``link`` and
    ``firth``; they are computed here when not given.
    """
    _check_link(link)
    yv = np.asarray(y, dtype=np.float64).ravel()
    Xm = np.asarray(X, dtype=np.float64)
    Gm = np.asarray(G, dtype=np.float64)
    if Gm.ndim == 1:
        Gm = Gm[:, None]
    if null_loglik is None or null_beta is None:
        nb, nll, _ = fit_null(yv, Xm, link, firth, tol)
    else:
        nb, nll = np.asarray(null_beta, dtype=np.float64), float(null_loglik)
    k = Gm.shape[1]
    beta, se, lrt = np.full(k, np.nan), np.full(k, np.nan), np.full(k, np.nan)
    conv = np.zeros(k, dtype=bool)
    sub = int(max(8, min(512, _SUB_ELEMENTS // max(Xm.shape[0] * (Xm.shape[1] + 1), 1))))
    for lo in range(0, k, sub):
        sl = slice(lo, min(lo + sub, k))
        theta, ll, ok, var_g = _newton(yv, Xm, Gm[:, sl], link, firth, tol, nb)
        ll0 = nll
        if firth:
            # the constrained fit carries the same penalty |I(beta, 0)| of the full design
            _, ll0, ok0, _ = _newton(yv, Xm, Gm[:, sl], link, firth, tol, nb, True)
            ok = ok & ok0
        beta[sl] = theta[:, -1]
        with np.errstate(invalid="ignore"):
            se[sl] = np.sqrt(var_g)
        lrt[sl] = np.where(ok, np.maximum(2.0 * (ll - ll0), 0.0), np.nan)
        conv[sl] = ok
    return GLMFit(beta, se, lrt, conv)


def _newton(y: F, X: F, G: F | None, link: str, firth: bool, tol: float,
            start: F | None, hold_variant: bool = False):
    """Vectorised (penalised) Fisher scoring. Returns theta (k, q), loglik (k,), converged
    (k,) and, with ``G``, the variance of the variant's coefficient (k,).

    ``hold_variant`` keeps the variant's coefficient at 0 (the constrained fit of a
    likelihood-ratio test whose penalty includes the variant's column)."""
    if firth and link != "logit":
        raise ValueError("Firth's penalty is implemented for the logit link only")
    n, p = X.shape
    k = 1 if G is None else G.shape[1]
    q = p if G is None else p + 1
    theta = np.zeros((k, q))
    if start is not None:
        theta[:, :p] = start
    elif p and np.allclose(X[:, 0], 1.0):
        mean = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        theta[:, 0] = np.log(mean / (1 - mean)) if link == "logit" else float(ndtri(mean))
    yc = y[:, None]
    mu, r, w, Ii, ll = _evaluate(theta, X, G, yc, link, firth)
    converged = np.zeros(k, dtype=bool)
    for _ in range(MAX_ITER):
        a = np.flatnonzero(~converged)
        if not a.size:
            break
        Ga = None if G is None else G[:, a]
        Ainv = _inv(Ii[a])
        resid = r[:, a]
        if firth:
            resid = resid + _hat_diag(X, Ga, w[:, a], Ainv, p) * (0.5 - mu[:, a])
        U = np.empty((a.size, q))
        U[:, :p] = (X.T @ resid).T
        if Ga is not None:
            U[:, p] = np.einsum("ik,ik->k", Ga, resid)
        if hold_variant:
            step = np.zeros_like(U)
            step[:, :p] = np.einsum("kab,kb->ka", _inv(Ii[a][:, :p, :p]), U[:, :p])
        else:
            step = np.einsum("kab,kb->ka", Ainv, U)
        step *= np.minimum(1.0, MAX_STEP / np.maximum(np.abs(step).max(axis=1), 1e-300))[:, None]
        t = np.ones(a.size)
        for _h in range(MAX_HALVINGS + 1):
            new = theta[a] + t[:, None] * step
            res = _evaluate(new, X, Ga, yc, link, firth)
            worse = ~(res[-1] >= ll[a] - 1e-12 * np.abs(ll[a]))
            if not worse.any():
                break
            t = np.where(worse, 0.5 * t, t)
        theta[a] = new
        mu[:, a], r[:, a], w[:, a], Ii[a], ll[a] = res
        moved = np.abs(t[:, None] * step).max(axis=1)
        converged[a[moved < tol * (1.0 + np.abs(new).max(axis=1))]] = True
    ok = converged & np.isfinite(ll) & np.all(np.isfinite(theta), axis=1)
    if G is None:
        return theta, ll, ok
    var_g = np.full(k, np.nan)
    good = np.flatnonzero(ok)
    if good.size:
        var_g[good] = _inv(Ii[good])[:, p, p]
    return theta, ll, ok, var_g


def _evaluate(theta: F, X: F, G: F | None, y: F, link: str, firth: bool):
    """``(mu, score residual, Fisher weight, information, loglik)`` for each row of theta
    (one variant per row, its genotype the matching column of ``G``)."""
    p = X.shape[1]
    eta = X @ theta[:, :p].T
    if G is not None:
        eta = eta + G * theta[:, p]
    ll_i, mu, r, w = _terms(eta, y, link)
    ll = ll_i.sum(axis=0)
    k, q = theta.shape
    Ii = np.empty((k, q, q))
    Ii[:, :p, :p] = np.einsum("ip,ik,ir->kpr", X, w, X, optimize=True)
    if G is not None:
        wg = w * G
        Ii[:, :p, p] = wg.T @ X
        Ii[:, p, :p] = Ii[:, :p, p]
        Ii[:, p, p] = np.einsum("ik,ik->k", wg, G)
    if firth:
        sign, logdet = np.linalg.slogdet(Ii)
        ll = ll + 0.5 * np.where(sign > 0, logdet, -np.inf)
    return mu, r, w, Ii, ll


def _inv(A: F) -> F:
    try:
        return np.linalg.inv(A)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(A, hermitian=True)


def _hat_diag(X: F, G: F | None, w: F, Ainv: F, p: int) -> F:
    """``h_i = w_i z_i' A z_i`` for every variant (``A = I^-1``), shape (n, k)."""
    quad = np.einsum("ip,kpr,ir->ik", X, Ainv[:, :p, :p], X, optimize=True)
    if G is not None:
        quad += 2.0 * G * (X @ Ainv[:, :p, p].T) + G * G * Ainv[:, p, p]
    return w * quad
