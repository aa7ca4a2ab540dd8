"""Saddlepoint-approximation (SPA) p-values for the binary-trait GLMM score test.

The surrogate scan (``FastScanner`` on the EP pseudo-observations, covariance fixed) gives
per variant a standardised score ``z = alpha / se(alpha)``. Its chi-square reading assumes
``z`` is Normal; for a rare binary trait the score is a weighted sum of a few skewed
Bernoulli residuals and its tails are far from Normal. This module replaces the Normal
tail by the saddlepoint approximation of the score's null distribution built from the
Bernoulli (binomial) cumulant generating function, as SAIGE does (Zhou et al. 2018), for
the variants with ``|z|`` above :data:`SPA_Z_CUTOFF`; below it the Normal p-value is kept.

Notes
-----
Null model: fitted latent means ``f_i`` (the EP posterior mean: covariates plus random
effect), success probabilities ``mu_i = h(f_i)`` (``h`` the inverse link), trials
``m_i`` (1 for a 0/1 trait). The score of a variant with genotype ``g`` is

    S = sum_i a_i (y_i - m_i mu_i),   a_i = c_i g~_i,   c_i = h'(f_i) / (mu_i (1 - mu_i))

(``c = 1`` for the logit link, ``phi(f) / (Phi(f) Phi(-f))`` for probit), with the
covariate-adjusted genotype ``g~ = g - X (X' W X)^-1 X' W g`` and Fisher weights
``W_i = c_i^2 m_i mu_i (1 - mu_i)``. Treating the ``y_i`` as independent given ``f``, S has
the cumulant generating function

    K(t)   = sum_i m_i [softplus(l_i + a_i t) - softplus(l_i)] - t sum_i a_i m_i mu_i
    K'(t)  = sum_i m_i a_i (pi_i(t) - mu_i),     pi_i(t) = expit(l_i + a_i t)
    K''(t) = sum_i m_i a_i^2 pi_i(t) (1 - pi_i(t)),          l_i = logit(mu_i)

and variance ``V = K''(0)``. The relatedness that the independent-Bernoulli model
ignores enters through the variance: the observed statistic is placed at
``q = |z| sqrt(V)``, i.e. at the same number of standard deviations as the GLMM score
(whose exact variance under the fixed null covariance is what the surrogate's ``se``
uses). This is SAIGE's variance-ratio adjustment, with the ratio computed exactly per
variant rather than estimated on random variants. The two-sided p-value is

    p = P(S >= q) + P(S <= -q),

each tail by the Barndorff-Nielsen formula at the saddlepoint ``t^`` solving
``K'(t^) = q``:

    w = sign(t^) sqrt(2 (t^ q - K(t^))),   u = t^ sqrt(K''(t^)),
    P(S >= q) ~= 1 - Phi(w + log(u / w) / w),

evaluated with ``log_ndtr`` so that p-values far below 1e-300 keep their exponent. The
saddlepoint equation is solved for all selected variants at once by Newton's method
inside a bracket that shrinks each step (a step that leaves the bracket is replaced by
bisection, or by doubling while no upper bound is known). ``S`` is bounded: it cannot
exceed ``Smax = sum_i m_i max(a_i, 0) - sum_i a_i m_i mu_i``. When ``q`` is that extreme
value the tail is the probability of the extreme point, ``P(S = Smax)``; when ``q`` lies
beyond it the tail is empty (probability 0). The second case is common for rare traits:
a common variant carried by many of the few cases puts ``S`` far above its mean, and the
lower tail ``P(S <= -q)`` then asks for fewer than zero carrier cases. The tail on the
side of the observed score is never empty: if the GLMM's ``z`` places ``q`` past that
side's end (with ``v0 > 0``, ``q`` is not computed from ``S`` itself), the observation is
placed at the realised score ``S = sum_i a_i (y_i - m_i mu_i)`` instead (a value S does
take, so the tail holds it); without ``y``, or when ``S`` lies on the other side of its
mean than ``z``, the surrogate p-value is kept for that variant (``used`` False).

The score of a 0/1 trait with integer genotypes is a lattice variable. With a fitted
intercept its null law given the number of cases is a lattice (hypergeometric) law, and
the formula above tracks that law's exact tail ``P(S >= s)`` (checked against
enumeration: ``validation/spa_conditional.py``), which is conservative at 20-40 cases
like every exact test of a discrete statistic (the exact test spends 0.6-0.7 alpha at
1e-3 there: ``validation/discreteness_bound.py``).

The default test therefore conditions on the number of successes ``N = sum_i Y_i`` (the
intercept's sufficient statistic) and reports the conditional mid-p value, by Skovgaard's
(1987) double saddlepoint approximation of ``P(U >= u | N = n_obs)`` for
``U = sum_i a_i Y_i`` (:func:`_log_upper_tail_conditional`), two-sided about the
conditional centre with the observation placed at ``q = |z| sqrt(V_cond)`` as above. Its
uncorrected form approximates the mid-p value ``P(U > u | n) + P(U = u | n) / 2``, whose
type-I error averages close to alpha. Where that saddlepoint cannot be formed (the
observation at or past the end of the conditional support, or no convergence) the
unconditional value above is kept. See ``docs/calibrated-test.md`` for the validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, log_ndtr, ndtr

from glimix_cli.model import spa_fast
from glimix_cli.model.stats import chi2_1_logsf
from glimix_cli.registry import SPA_LIKELIHOODS  # re-exported: the pipeline imports it here

F = NDArray[np.float64]

#: |z| above which the saddlepoint p-value replaces the Normal one (SAIGE uses 2 SD).
SPA_Z_CUTOFF = 2.0
#: Variants per vectorised saddlepoint solve, and elements of its (n, k) work arrays
_CHUNK = 256
_CHUNK_ELEMENTS = 4_000_000
_MAX_ITER = 100
#: Relative distance from the end of the score's support within which q counts as on it.
_SUPPORT_RTOL = 1e-6


@dataclass(frozen=True)
class SPANull:
    """What the saddlepoint test needs from the null model (picklable, O(n p)).

    Attributes
    ----------
    mu : ndarray of float, shape (n,)
        Fitted success probability per trial, ``h(f)``.
    logit_mu : ndarray of float, shape (n,)
        ``logit(mu)``, computed from ``f`` without rounding through ``mu``.
    trials : ndarray of float, shape (n,)
        Trials per sample (ones for a 0/1 trait).
    c : ndarray of float, shape (n,)
        Score weight ``h'(f) / (mu (1 - mu))`` (ones for the logit link).
    X : ndarray of float, shape (n, p)
        Covariates.
    H : ndarray of float, shape (p, n)
        ``(X' W X)^-1 X' W``: ``g~ = g - X (H g)``.
    y : ndarray of float, shape (n,), or None
        Observed successes; used only where the GLMM's ``z`` lies past the end of the
        score's support (see :func:`spa_pvalues`).
    """

    mu: F
    logit_mu: F
    trials: F
    c: F
    X: F
    H: F
    y: F | None = None
    #: ``(n_obs, t0, K(0, t0), K_tt(0, t0))`` for the test conditional on the number of
    #: successes (see :func:`_log_upper_tail_conditional`); None without ``y``.
    conditional: tuple[float, float, float, float] | None = None

    def permuted(self, order: ArrayLike) -> SPANull:
        """The same null with its samples in ``order`` (the genotype blocks' row order:
        a block-diagonal kinship's family order, see ``FastScanner.row_order``)."""
        o = np.asarray(order, dtype=np.intp)
        return SPANull(mu=self.mu[o], logit_mu=self.logit_mu[o], trials=self.trials[o],
                       c=self.c[o], X=self.X[o], H=self.H[:, o],
                       y=None if self.y is None else self.y[o], conditional=self.conditional)


def spa_null(post_mean: ArrayLike, X: ArrayLike, likelihood: str,
             trials: ArrayLike | None = None, y: ArrayLike | None = None,
             conditional: bool = True) -> SPANull:
    """Null-model quantities of the saddlepoint test.

    Parameters
    ----------
    post_mean : array_like of float, shape (n,)
        Fitted latent mean ``f`` (EP posterior mean: ``X beta`` plus the random effect).
    X : array_like of float, shape (n, p)
        Covariates of the null model.
    likelihood : {"bernoulli", "probit", "binomial"}
    trials : array_like of float, shape (n,), optional
        Number of trials (binomial only).
    y : array_like of float, shape (n,), optional
        Observed successes (0/1 for a binary trait): they give the number of successes the
        default test conditions on, and the fall-back described in :func:`spa_pvalues`.
    conditional : bool
        Condition on the number of successes (the default, needs ``y``); False gives the
        unconditional saddlepoint test (an exact-tail approximation, conservative at
        20-40 cases; kept for comparison).

    Returns
    -------
    SPANull
    """
    f = np.asarray(post_mean, dtype=np.float64).ravel()
    n = f.shape[0]
    Xm = np.asarray(X, dtype=np.float64)
    if Xm.ndim == 1:
        Xm = Xm[:, None]
    if likelihood not in SPA_LIKELIHOODS:
        raise ValueError(f"the saddlepoint test needs a binary or binomial likelihood "
                         f"({', '.join(SPA_LIKELIHOODS)}); got {likelihood!r}")
    if likelihood == "binomial":
        if trials is None:
            raise ValueError("the binomial saddlepoint test needs the number of trials")
        m = np.asarray(trials, dtype=np.float64).ravel()
    else:
        m = np.ones(n)
    if likelihood == "probit":
        log_p, log_q = log_ndtr(f), log_ndtr(-f)
        mu = ndtr(f)
        logit_mu = log_p - log_q
        # h'(f) / (mu (1 - mu)) = phi(f) / (Phi(f) Phi(-f)), on the log scale
        c = np.exp(-0.5 * f * f - 0.5 * np.log(2 * np.pi) - log_p - log_q)
    else:
        mu = expit(f)
        logit_mu = f.copy()
        c = np.ones(n)
    w = c * c * m * mu * (1.0 - mu)
    XW = Xm.T * w
    H = np.linalg.pinv(XW @ Xm, hermitian=True) @ XW
    yv = None if y is None else np.asarray(y, dtype=np.float64).ravel()
    cond = (None if yv is None or not conditional
            else _conditional_null(logit_mu, m, float(yv.sum())))
    return SPANull(mu=mu, logit_mu=logit_mu, trials=m, c=c, X=Xm, H=H, y=yv,
                   conditional=cond)


def _conditional_null(logit_mu: F, m: F, n_obs: float) -> tuple[float, float, float, float] | None:
    """``(n_obs, t0, K(0, t0), K_tt(0, t0))``: the tilt ``t0`` that centres the number of
    successes ``N`` on its observed value (0 when the fitted means already sum to it).
    None when ``n_obs`` is at an end of N's support (no variation to condition on)."""
    if not 0 < n_obs < m.sum():
        return None
    t = 0.0
    for _ in range(_MAX_ITER):
        pi = expit(logit_mu + t)
        g = float(m @ pi) - n_obs
        h = float(m @ (pi * (1 - pi)))
        if abs(g) <= 1e-10 * max(1.0, n_obs) or h <= 0:
            break
        t -= g / h
    pi = expit(logit_mu + t)
    k0 = float(m @ (np.logaddexp(0.0, logit_mu + t) - np.logaddexp(0.0, logit_mu)))
    ktt = float(m @ (pi * (1 - pi)))
    return (n_obs, t, k0, ktt) if ktt > 0 else None


def _conditional_max(null: SPANull, a: F) -> F:
    """Largest value of ``sum_i a_i Y_i`` given ``sum_i Y_i = n_obs`` (``0 <= Y_i <= m_i``):
    the successes go to the largest ``a_i`` first. One value per column of ``a``."""
    n_obs = null.conditional[0]
    if np.all(null.trials == 1) and float(n_obs).is_integer():
        # 0/1 outcomes: the sum of the n_obs largest a_i (a partial sort: O(n), not n log n)
        top = int(n_obs)
        return np.partition(a, a.shape[0] - top, axis=0)[a.shape[0] - top:].sum(axis=0)
    order = np.argsort(-a, axis=0)
    a_sorted = np.take_along_axis(a, order, axis=0)
    m_sorted = null.trials[order]
    before = np.cumsum(m_sorted, axis=0) - m_sorted
    fill = np.clip(n_obs - before, 0.0, m_sorted)
    return np.einsum("ij,ij->j", fill, a_sorted)


def glm_score(null: SPANull, G: ArrayLike) -> tuple[F, F]:
    """Score ``S`` and its null variance ``V`` of each column of ``G`` under the GLM null.

    ``S = sum_i a_i (y_i - m_i mu_i)`` and ``V = sum_i a_i^2 m_i mu_i (1 - mu_i)`` with
    ``a = c g~`` (see the module notes): the score test of ``y ~ X + g`` with the expected
    (Fisher) information, ``z = S / sqrt(V)``, and the one-step estimate ``S / V`` of the
    variant's effect with standard error ``1 / sqrt(V)``. For the logit link this is the
    surrogate's statistic at ``v0 = 0``; for probit it differs from it, since the EP sites
    carry the observed information, and it is the expected-information statistic whose
    saddlepoint p-values are calibrated (``docs/calibrated-test.md``). Needs ``null.y``.
    """
    if null.y is None:
        raise ValueError("glm_score needs the observed outcomes (SPANull.y)")
    G = np.asarray(G, dtype=np.float64)
    if G.ndim == 1:
        G = G[:, None]
    a = null.c[:, None] * (G - null.X @ (null.H @ G))
    S = a.T @ (null.y - null.trials * null.mu)
    V = np.einsum("ij,ij->j", a * (null.trials * null.mu * (1 - null.mu))[:, None], a)
    return S, V


def spa_pvalues(null: SPANull, G: ArrayLike, z: ArrayLike,
                cutoff: float = SPA_Z_CUTOFF, fast: bool = True) -> tuple[F, NDArray[np.bool_]]:
    """Two-sided log p-values: saddlepoint beyond ``|z| > cutoff``, Normal otherwise.

    Parameters
    ----------
    null : SPANull
    G : array_like of float, shape (n, b)
        Genotypes of the tested variants (no missing values), as given to the scanner.
    z : array_like of float, shape (b,)
        Standardised GLMM scores ``alpha / se(alpha)`` from the surrogate scan.
    cutoff : float
        ``|z|`` above which the saddlepoint approximation is used (0: always).
    fast : bool
        Solve the conditional saddlepoint by :mod:`glimix_cli.model.spa_fast` where its
        error bound allows (certified to ``spa_fast.TOL`` on the log scale), the exact
        solver elsewhere; False: the exact solver everywhere.

    Returns
    -------
    log_p : ndarray of float, shape (b,)
        Natural log of the two-sided p-value (NaN where ``z`` is NaN).
    used : ndarray of bool, shape (b,)
        True where the saddlepoint approximation produced the p-value.
    """
    z = np.asarray(z, dtype=np.float64).ravel()
    G = np.asarray(G, dtype=np.float64)
    if G.ndim == 1:
        G = G[:, None]
    log_p = chi2_1_logsf(z * z)
    used = np.zeros(z.shape, dtype=bool)
    sel = np.flatnonzero(np.isfinite(z) & (np.abs(z) > cutoff))
    chunk = max(8, min(_CHUNK, _CHUNK_ELEMENTS // max(G.shape[0], 1)))
    for lo in range(0, sel.size, chunk):
        idx = sel[lo:lo + chunk]
        g = G[:, idx]
        a = null.c[:, None] * (g - null.X @ (null.H @ g))
        V = np.einsum("ij,ij->j", a * (null.trials * null.mu * (1 - null.mu))[:, None], a)
        good = V > 0
        if not np.any(good):
            continue
        a, idx, V = a[:, good], idx[good], V[good]
        lp = np.full(idx.size, np.nan)
        if null.conditional is not None:
            # the mid-p value conditional on the number of cases, where it can be formed
            lp = _conditional_logp(null, a, z[idx], fast)
        rest = np.flatnonzero(~np.isfinite(lp))
        if rest.size:  # the unconditional value elsewhere
            lp[rest] = _unconditional_logp(null, a[:, rest], z[idx[rest]], V[rest])
        ok = np.isfinite(lp)
        log_p[idx[ok]] = np.minimum(lp[ok], 0.0)
        used[idx[ok]] = True
    return log_p, used


def _unconditional_logp(null: SPANull, a: F, z: F, V: F) -> F:
    """Two-sided unconditional log p-value per column (NaN where not representable), the
    observation placed at ``q = |z| sqrt(V)``, or at the realised score where that ``q`` lies
    past the observed side's end of the support (see the module notes)."""
    q = np.abs(z) * np.sqrt(V)
    k = z.size
    # the tail on the side of the observed score can never be empty (it holds the
    # observation), the opposite one can
    observed = np.concatenate([z > 0, z < 0])
    tails = _log_upper_tail(null, np.concatenate([a, -a], axis=1), np.concatenate([q, q]),
                            observed)
    with np.errstate(invalid="ignore"):  # NaN tails: not representable, see below
        lp = np.logaddexp(tails[:k], tails[k:])
    past = np.flatnonzero(np.isnan(lp))
    if past.size and null.y is not None:
        # q past the observed side's end: place the observation at the score itself
        s_obs = a[:, past].T @ (null.y - null.trials * null.mu) * np.sign(z[past])
        fine = s_obs > 0  # the realised score, on the side the GLMM's z points to
        if np.any(fine):
            ap, qp = a[:, past[fine]], s_obs[fine]
            zp = z[past[fine]]
            t2 = _log_upper_tail(null, np.concatenate([ap, -ap], axis=1),
                                 np.concatenate([qp, qp]), np.concatenate([zp > 0, zp < 0]))
            with np.errstate(invalid="ignore"):
                lp[past[fine]] = np.logaddexp(t2[:qp.size], t2[qp.size:])
    return lp


def _conditional_logp(null: SPANull, a: F, z: F, fast: bool = True) -> F:
    """Two-sided conditional log p-value ``P(|U - E| >= q | N = n_obs)`` per column, with
    the observation ``q = |z| sqrt(V_cond)`` as many conditional SDs from the centre as the
    GLMM score is from 0 (NaN where it cannot be formed: the observed side's saddlepoint not
    found or ``q`` past that side's end of the conditional support).

    The conditional variance is taken at the tilted probabilities ``pi(0, t0)``, which sum
    to the observed number of cases; ``mu = h(f)`` from the posterior mean need not (with
    ``v0 > 0``, ``E[h(z)] != h(E[z])``: 23.7 expected against 39 observed cases in a 2%
    validation trait), so a ``q`` scaled by the unconditional variance would sit at the
    wrong number of SDs (measured: p-values 3-4x too large).
    """
    k = z.shape[0]
    m = null.trials[:, None]
    pi0 = expit(null.logit_mu + null.conditional[1])[:, None]
    w0 = m * pi0 * (1 - pi0)
    c01 = np.einsum("ij,ij->j", a, w0)
    cvar = np.einsum("ij,ij->j", a * a, w0) - c01 * c01 / null.conditional[3]
    q = np.abs(z) * np.sqrt(np.maximum(cvar, 0.0))
    Q = np.concatenate([q, q])
    tails = np.full(2 * k, np.nan)
    slow = np.ones(2 * k, dtype=bool)
    if fast and k:
        # certified to spa_fast.TOL on the log scale; the rest by the exact solver below
        tails, done = spa_fast.conditional_tails(null, a, q)
        slow = ~done
    cols = np.flatnonzero(slow)
    if cols.size:
        A = np.concatenate([a, -a], axis=1)[:, cols]
        room = _conditional_max(null, A) - A.T @ (m[:, 0] * pi0[:, 0])
        beyond = Q[cols] >= room * (1.0 - 1e-9)
        observed = np.concatenate([z > 0, z < 0])[cols]
        tails[cols] = np.where(observed, np.nan, -np.inf)  # past the support: see above
        inside = np.flatnonzero(~beyond)
        if inside.size:
            tails[cols[inside]], _ = _log_upper_tail_conditional(null, A[:, inside],
                                                                 Q[cols[inside]])
    with np.errstate(invalid="ignore"):
        return np.logaddexp(tails[:k], tails[k:])


def _log_upper_tail(null: SPANull, a: F, q: F,
                    observed: NDArray[np.bool_] | None = None) -> F:
    """``log P(S >= q)`` for ``S = sum_i a_i (Y_i - m_i mu_i)``, one column of ``a`` per q > 0.

    ``observed`` marks the columns whose tail holds the observed score. There a ``q`` past
    the end of the support (possible because ``q`` is placed by the GLMM's z, not computed
    from the independent-Bernoulli S) means the saddlepoint model cannot represent the
    observation at q: the result is NaN, never an empty tail (:func:`spa_pvalues` then
    places the observation at the realised score, or keeps the surrogate p-value).
    """
    lm = null.logit_mu[:, None]
    m = null.trials[:, None]
    mu = null.mu[:, None]
    mean_term = np.einsum("ij,ij->j", a, m * mu)
    V = np.einsum("ij,ij->j", a * a, m * mu * (1 - mu))
    s_max = np.einsum("ij,ij->j", m, np.maximum(a, 0.0)) - mean_term
    # q at the end of the support (to a relative 1e-6: q comes from the GLMM's z): the tail
    # is the probability of that extreme point; strictly beyond it the tail is empty.
    at_end = np.abs(q - s_max) <= _SUPPORT_RTOL * np.maximum(np.abs(s_max), np.sqrt(V))
    beyond = at_end | (q > s_max)
    out = np.full(q.shape, np.nan)
    empty = beyond & ~at_end
    if observed is not None:
        empty &= ~observed  # stays NaN: not representable, see above
    out[empty] = -np.inf
    if np.any(at_end):
        # P(S = Smax): every sample with a > 0 a full success, every a < 0 a full failure
        ab = a[:, at_end]
        lpos = np.logaddexp(0.0, -lm)  # -log(mu) = softplus(-l)
        lneg = np.logaddexp(0.0, lm)  # -log(1 - mu)
        out[at_end] = -(np.einsum("ij,ij->j", m * lpos, (ab > 0).astype(float))
                        + np.einsum("ij,ij->j", m * lneg, (ab < 0).astype(float)))
    inner = np.flatnonzero(~beyond)
    if inner.size == 0:
        return out
    a = a[:, inner]
    q = q[inner]
    mean_term = mean_term[inner]
    V = V[inner]
    t = q / V
    lo = np.zeros_like(t)
    hi = np.full_like(t, np.inf)
    tol = 1e-10 * np.sqrt(V)
    done = np.zeros(t.shape, dtype=bool)
    for _ in range(_MAX_ITER):
        x = lm + a * t
        pi = expit(x)
        f = np.einsum("ij,ij->j", a, m * pi) - mean_term - q
        d = np.einsum("ij,ij->j", a * a, m * pi * (1 - pi))
        done = np.abs(f) <= tol
        if np.all(done):
            break
        lo = np.where(f < 0, t, lo)
        hi = np.where(f > 0, t, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = t - f / d
        inside = np.isfinite(step) & (step > lo) & (step < hi)
        fallback = np.where(np.isfinite(hi), 0.5 * (lo + hi), 2.0 * t)
        t_new = np.where(inside, step, fallback)
        t = np.where(done, t, t_new)
        if np.all(done | (np.isfinite(hi) & (hi - lo <= 1e-14 * np.maximum(hi, 1e-300)))):
            break
    x = lm + a * t
    K = (np.einsum("ij,ij->j", m, np.logaddexp(0.0, x) - np.logaddexp(0.0, lm))
         - t * mean_term)
    pi = expit(x)
    d = np.einsum("ij,ij->j", a * a, m * pi * (1 - pi))
    w = np.sqrt(np.maximum(2.0 * (t * q - K), 0.0))
    u = t * np.sqrt(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_star = w + np.log(u / w) / w
    res = log_ndtr(-r_star)
    # Saddlepoint too close to the mean for the formula (w ~ 0): the Normal tail is exact
    # there to the order that matters.
    centre = ~(w > 1e-6) | ~np.isfinite(res)
    res = np.where(centre, log_ndtr(-q / np.sqrt(V)), res)
    out[inner] = res
    return out


def _log_upper_tail_conditional(null: SPANull, a: F, q: F) -> tuple[F, NDArray[np.bool_]]:
    """``log P(U >= E + q | N = n_obs)``, Skovgaard's double saddlepoint, uncorrected.

    ``U = sum_i a_i Y_i`` and ``N = sum_i Y_i`` (successes) for independent
    ``Y_i ~ Binomial(m_i, mu_i)``, one column of ``a`` per ``q > 0``; ``E`` is the centre
    ``sum_i a_i m_i pi_i(0, t0)`` of the conditional law. Joint cumulant generating function
    ``K(s, t) = sum_i m_i log(1 - mu_i + mu_i exp(s a_i + t))``. With ``t0`` solving
    ``K_t(0, t0) = n_obs`` and ``(s, t)`` solving ``grad K = (E + q, n_obs)``::

        w = sign(s) sqrt(2 [(s u + t n - K(s, t)) - (t0 n - K(0, t0))])
        v = s sqrt(det K''(s, t) / K_tt(0, t0))
        P(U >= u | N = n) ~= 1 - Phi(w + log(v / w) / w)

    For a lattice ``U`` this uncorrected form approximates the conditional mid-p value
    ``P(U > u | n) + P(U = u | n) / 2`` (Skovgaard 1987; Butler 2007, sec. 4.2), which is
    the point: see :func:`spa_pvalues`. Returns the log tails and a mask of the columns
    where the saddlepoint was found (``q`` inside the conditional support); elsewhere the
    value is NaN.
    """
    lm = null.logit_mu[:, None]
    m = null.trials[:, None]
    n_obs, t0, k0, ktt0 = null.conditional
    k = q.shape[0]
    pi0 = expit(lm + t0)
    u = np.einsum("ij,ij->j", a, m * pi0) + q
    var0 = np.einsum("ij,ij->j", a * a, m * pi0 * (1 - pi0))
    c01 = np.einsum("ij,ij->j", a, m * pi0 * (1 - pi0))
    cvar0 = np.maximum(var0 - c01 * c01 / ktt0, 1e-300)  # conditional variance at the null
    s = q / cvar0
    t = t0 - s * c01 / ktt0
    sp0 = np.logaddexp(0.0, lm)  # K from the log(1 - mu) terms: softplus(l)
    m1 = null.trials

    def phi(cols: NDArray[np.intp], s_: F, t_: F) -> F:
        x = lm + a[:, cols] * s_ + t_
        return (m1 @ (np.logaddexp(0.0, x) - sp0)) - s_ * u[cols] - t_ * n_obs

    # damped Newton on the convex phi(s, t) = K - s u - t n_obs: halve a step until phi
    # does not increase (phi re-evaluated only for the columns that need it)
    f = phi(np.arange(k), s, t)
    ok = np.zeros(k, dtype=bool)
    for _ in range(_MAX_ITER):
        act = np.flatnonzero(~ok)
        if act.size == 0:
            break
        aa = a[:, act]
        pi = expit(lm + aa * s[act] + t[act])
        w_ = m * pi * (1 - pi)
        gs = np.einsum("ij,ij->j", aa, m * pi) - u[act]
        gt = m1 @ pi - n_obs
        hss = np.einsum("ij,ij->j", aa * aa, w_)
        hst = np.einsum("ij,ij->j", aa, w_)
        htt = m1 @ (pi * (1 - pi))
        det = hss * htt - hst * hst
        conv = (np.abs(gs) <= 1e-8 * np.sqrt(cvar0[act])) & (np.abs(gt) <= 1e-8)
        ok[act[conv]] = True
        with np.errstate(divide="ignore", invalid="ignore"):
            ds = -(htt * gs - hst * gt) / det
            dt = -(hss * gt - hst * gs) / det
        move = ~conv & np.isfinite(ds) & np.isfinite(dt) & (det > 0)
        act, ds, dt = act[move], ds[move], dt[move]
        if act.size == 0:
            break
        step = np.ones(act.size)
        fn = phi(act, s[act] + ds, t[act] + dt)
        for _ in range(20):
            worse = ~(fn <= f[act] + 1e-12 * np.abs(f[act]))
            if not np.any(worse):
                break
            step = np.where(worse, 0.5 * step, step)
            wi = np.flatnonzero(worse)
            fn[wi] = phi(act[wi], s[act[wi]] + step[wi] * ds[wi],
                         t[act[wi]] + step[wi] * dt[wi])
        s[act] += step * ds
        t[act] += step * dt
        f[act] = fn
    pi = expit(lm + a * s + t)
    w_ = m * pi * (1 - pi)
    det = (np.einsum("ij,ij->j", a * a, w_) * (m1 @ (pi * (1 - pi)))
           - np.einsum("ij,ij->j", a, w_) ** 2)
    # the Legendre transforms are -phi: w^2 = 2 [(-phi(s, t)) - (t0 n - K(0, t0))]
    lr = 2.0 * (-f - (t0 * n_obs - k0))
    w = np.sqrt(np.maximum(lr, 0.0))
    v = s * np.sqrt(np.maximum(det, 0.0) / ktt0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_star = w + np.log(v / w) / w
    out = log_ndtr(-r_star)
    # near the centre log(v / w) / w is 0/0-like: the Normal tail is exact to that order
    out = np.where(w > 1e-3, out, log_ndtr(-q / np.sqrt(cvar0)))
    good = ok & np.isfinite(out) & (s > 0)
    return np.where(good, out, np.nan), good
