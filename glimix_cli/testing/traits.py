"""Simulate GLMM traits on a (simulated) cohort.

One latent liability ``z = X beta + g + e + sum_j b_j (G_j - mean(G_j))`` with
``g ~ N(0, v0 K)`` and ``e ~ N(0, v1 I)`` is mapped to a quantitative, a binary, a count and
a binomial outcome, each through its own link and intercept shift
(:func:`simulate_traits`); :func:`simulate_null_binary` draws a null binary trait with an
exact number of cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from glimix_cli.model.linalg import QSType, check_qs, economic_qs
from glimix_cli.testing.genotypes import as_dosage_matrix

F = NDArray[np.float64]

__all__ = [
    "NullBinaryTrait",
    "SimulatedTraits",
    "effect_for_variance",
    "simulate_null_binary",
    "simulate_traits",
]


# --------------------------------------------------------------------------------------
# Result containers
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SimulatedTraits:
    """Output of :func:`simulate_traits`: four outcomes of one latent liability.

    Attributes
    ----------
    z : ndarray of float, shape (n,)
        Latent liability ``fixed + genetic + causal + residual``.
    fixed, genetic, causal, residual : ndarray of float, shape (n,)
        Its components ``X beta``, ``g``, the planted-variant sum and ``e``.
    quant : ndarray of float, shape (n,)
        Quantitative trait, equal to ``z`` (Normal likelihood, identity link).
    binary : ndarray of int64, shape (n,)
        0/1 trait.
    binary_offset : float
        Intercept added to ``z`` for the binary trait (logit), or minus the liability
        threshold (probit).
    count : ndarray of int64, shape (n,)
        Poisson counts with mean ``exp(z + count_offset)``.
    count_offset : float
    successes, trials : ndarray of int64, shape (n,)
        Binomial outcome: ``successes ~ Binomial(trials, expit(z + binomial_offset))``.
    binomial_offset : float
    """

    z: F
    fixed: F
    genetic: F
    causal: F
    residual: F
    quant: F
    binary: NDArray[np.int64]
    binary_offset: float
    count: NDArray[np.int64]
    count_offset: float
    successes: NDArray[np.int64]
    trials: NDArray[np.int64]
    binomial_offset: float


@dataclass(frozen=True, eq=False)
class NullBinaryTrait:
    """Output of :func:`simulate_null_binary`.

    Attributes
    ----------
    y : ndarray of int64, shape (n,)
        0/1 trait with exactly ``n_cases`` ones.
    z : ndarray of float, shape (n,)
        Latent ``X beta + g + e`` it was drawn from.
    n_cases : int
    """

    y: NDArray[np.int64]
    z: F
    n_cases: int


# --------------------------------------------------------------------------------------
# Latent liability
# --------------------------------------------------------------------------------------
def _expit(x: F) -> F:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _solve_shift(z: F, target: float) -> float:
    """The ``c`` with ``mean(expit(z + c)) = target`` (bisection; the mean is increasing)."""
    if not 0 < target < 1:
        raise ValueError(f"target fraction must be in (0, 1); got {target}")
    lo, hi = -1.0, 1.0
    while np.mean(_expit(z + lo)) > target:
        lo *= 2.0
    while np.mean(_expit(z + hi)) < target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.mean(_expit(z + mid)) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def _as_qs(K_or_QS: ArrayLike | QSType | None, n: int) -> QSType | None:
    if K_or_QS is None:
        return None
    if isinstance(K_or_QS, tuple):
        return check_qs(K_or_QS, n)
    K = np.asarray(K_or_QS, dtype=np.float64)
    if K.shape != (n, n):
        raise ValueError(f"K has shape {K.shape}; expected ({n}, {n}) to match the samples")
    return economic_qs(K)


def _latent(
    QS: QSType | None, X: ArrayLike | None, beta: ArrayLike | None, v0: float, v1: float,
    n: int, rng: np.random.Generator,
) -> tuple[F, F, F]:
    """Return ``(X beta, g, e)``."""
    if v0 < 0 or v1 < 0:
        raise ValueError(f"variances must be non-negative; got v0={v0}, v1={v1}")
    if X is None:
        Xm = np.empty((n, 0))
    else:
        Xm = np.asarray(X, dtype=np.float64)
        if Xm.ndim == 1:
            Xm = Xm[:, None]
    if Xm.shape[0] != n:
        raise ValueError(f"X has {Xm.shape[0]} rows; expected {n} (one per sample)")
    b = np.zeros(Xm.shape[1]) if beta is None else np.asarray(beta, dtype=np.float64).ravel()
    if b.shape[0] != Xm.shape[1]:
        raise ValueError(f"beta has {b.shape[0]} values; X has {Xm.shape[1]} columns")
    fixed = Xm @ b
    if QS is None or v0 == 0:
        g = np.zeros(n)
    else:
        (Q0, _), S0 = QS
        g = Q0 @ (np.sqrt(v0 * S0) * rng.standard_normal(S0.shape[0]))
    e = np.sqrt(v1) * rng.standard_normal(n)
    return fixed, g, e


def _planted_effect(G: F, causal: Sequence[tuple[int, float]]) -> F:
    """``sum_j b_j (G_j - mean(G_j))`` over the planted ``(j, b_j)``; missing calls add 0."""
    n, m = G.shape
    planted = np.zeros(n)
    for j, b in causal:
        if not 0 <= int(j) < m:
            raise ValueError(f"causal variant index {j} is out of range 0..{m - 1}")
        col = G[:, int(j)]
        ok = np.isfinite(col)
        if not ok.any():
            raise ValueError(f"causal variant {j} has only missing calls")
        centred = np.where(ok, col - col[ok].mean(), 0.0)
        planted += float(b) * centred
    return planted


def effect_for_variance(dosage_column: ArrayLike, fraction: float, total_variance: float) -> float:
    """Per-allele effect whose contribution has variance ``fraction * total_variance``.

    Parameters
    ----------
    dosage_column : array_like of float, shape (n,)
        One variant's allele counts (NaN ignored).
    fraction : float
        Share of the latent variance to explain.
    total_variance : float
        Latent variance the share refers to.

    Returns
    -------
    float
        ``sqrt(fraction * total_variance / var(G_j))`` (positive).
    """
    g = np.asarray(dosage_column, dtype=np.float64)
    var = float(np.var(g[np.isfinite(g)]))
    if var == 0:
        raise ValueError("the variant is monomorphic; it cannot explain any variance")
    return float(np.sqrt(fraction * total_variance / var))


# --------------------------------------------------------------------------------------
# Outcomes of the latent liability
# --------------------------------------------------------------------------------------
def _check_outcome_args(
    binary_link: str, case_fraction: float, success_fraction: float, count_mean: float,
    max_trials: int,
) -> None:
    if binary_link not in ("logit", "probit"):
        raise ValueError(f"binary_link must be 'logit' or 'probit'; got {binary_link!r}")
    if not 0 < case_fraction < 1 or not 0 < success_fraction < 1:
        raise ValueError(
            f"case_fraction and success_fraction must be in (0, 1); "
            f"got {case_fraction}, {success_fraction}"
        )
    if count_mean <= 0 or max_trials < 1:
        raise ValueError(f"need count_mean > 0 and max_trials >= 1; got {count_mean}, "
                         f"{max_trials}")


def _binary_outcome(
    z: F, case_fraction: float, binary_link: str, rng: np.random.Generator
) -> tuple[NDArray[np.int64], float]:
    """0/1 trait and its intercept (logit) or minus its liability threshold (probit)."""
    n = z.shape[0]
    if binary_link == "logit":
        c_bin = _solve_shift(z, case_fraction)
        return (rng.random(n) < _expit(z + c_bin)).astype(np.int64), float(c_bin)
    liability = z + rng.standard_normal(n)
    n_cases = int(round(case_fraction * n))
    order = np.argsort(-liability, kind="stable")
    binary = np.zeros(n, dtype=np.int64)
    binary[order[:n_cases]] = 1
    threshold = (liability[order[n_cases - 1]] + liability[order[n_cases]]) / 2
    return binary, -float(threshold)


def _count_outcome(
    z: F, count_mean: float, rng: np.random.Generator
) -> tuple[NDArray[np.int64], float]:
    """Poisson counts with ``mean(exp(z + c)) = count_mean``, and ``c``."""
    zmax = float(z.max())
    c_count = float(np.log(count_mean) - (zmax + np.log(np.mean(np.exp(z - zmax)))))
    return rng.poisson(np.exp(z + c_count)).astype(np.int64), c_count


def _binomial_outcome(
    z: F, success_fraction: float, max_trials: int, rng: np.random.Generator
) -> tuple[NDArray[np.int64], NDArray[np.int64], float]:
    """``(successes, trials, c)`` with ``mean(expit(z + c)) = success_fraction``."""
    c_binom = _solve_shift(z, success_fraction)
    trials = rng.integers(1, max_trials + 1, size=z.shape[0]).astype(np.int64)
    successes = rng.binomial(trials, _expit(z + c_binom)).astype(np.int64)
    return successes, trials, float(c_binom)


def simulate_traits(
    dosage: ArrayLike,
    K_or_QS: ArrayLike | QSType | None,
    X: ArrayLike | None,
    rng: np.random.Generator,
    *,
    beta: ArrayLike | None = None,
    v0: float = 0.4,
    v1: float = 0.6,
    causal: Sequence[tuple[int, float]] = (),
    case_fraction: float = 0.3,
    binary_link: str = "logit",
    count_mean: float = 2.0,
    max_trials: int = 10,
    success_fraction: float = 0.5,
) -> SimulatedTraits:
    """Draw one latent liability and four outcomes from it.

    Parameters
    ----------
    dosage : array_like of float, shape (n, m)
        Allele counts (NaN = missing, mean-imputed for the causal sum).
    K_or_QS : array_like of float, shape (n, n), or ((Q0, Q1), S0), or None
        Covariance of the polygenic effect (usually
        :func:`glimix_cli.testing.standardised_grm`) or its economic eigendecomposition;
        None means no polygenic effect.
    X : array_like of float, shape (n, p), or None
        Covariates (include a column of ones for an intercept).
    rng : numpy.random.Generator
    beta : array_like of float, shape (p,), optional
        Covariate effects (default zeros).
    v0, v1 : float
        Polygenic and residual variances on the latent scale.
    causal : sequence of (int, float)
        ``(variant column, effect per a1 allele)`` planted on the latent scale; may be empty
        (null trait).
    case_fraction : float
        Target fraction of cases of the binary trait.
    binary_link : {"logit", "probit"}
        ``"logit"``: ``y ~ Bernoulli(expit(z + c))`` with ``c`` solved so that the expected
        case fraction is ``case_fraction``. ``"probit"``: liability threshold, cases are
        the ``round(case_fraction * n)`` largest ``z + eps``, ``eps ~ N(0, 1)``, which is a
        probit model whose intercept is set in-sample (exact fraction).
    count_mean : float
        Target mean of the Poisson counts.
    max_trials : int
        Trials per sample are uniform on ``1 .. max_trials``.
    success_fraction : float
        Target mean success probability of the binomial trait.

    Returns
    -------
    SimulatedTraits

    Raises
    ------
    ValueError
        On an argument out of its range or of the wrong shape.

    Notes
    -----
    ``z = X beta + g + e + sum_j b_j (G_j - mean(G_j))``, ``g ~ N(0, v0 K)``,
    ``e ~ N(0, v1 I)``. Then ``quant = z``; ``binary`` as above; ``count ~
    Poisson(exp(z + c_p))`` with ``c_p = log(count_mean) - log(mean(exp(z)))``;
    ``successes ~ Binomial(trials, expit(z + c_b))`` with ``mean(expit(z + c_b)) =
    success_fraction``. All intercept shifts are solved on the realised ``z``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> G = rng.binomial(2, 0.3, size=(50, 20)).astype(float)
    >>> tr = simulate_traits(G, None, None, rng, causal=[(3, 0.5)])
    >>> tr.quant.shape, bool(np.all(tr.successes <= tr.trials))
    ((50,), True)
    """
    G = as_dosage_matrix(dosage)
    n = G.shape[0]
    _check_outcome_args(binary_link, case_fraction, success_fraction, count_mean, max_trials)
    QS = _as_qs(K_or_QS, n)
    fixed, g, e = _latent(QS, X, beta, v0, v1, n, rng)
    planted = _planted_effect(G, causal)
    z = fixed + g + e + planted

    binary, c_bin = _binary_outcome(z, case_fraction, binary_link, rng)
    count, c_count = _count_outcome(z, count_mean, rng)
    successes, trials, c_binom = _binomial_outcome(z, success_fraction, max_trials, rng)
    return SimulatedTraits(
        z=z, fixed=fixed, genetic=g, causal=planted, residual=e, quant=z.copy(),
        binary=binary, binary_offset=c_bin, count=count, count_offset=c_count,
        successes=successes, trials=trials, binomial_offset=c_binom,
    )


# --------------------------------------------------------------------------------------
# Null binary trait with an exact number of cases
# --------------------------------------------------------------------------------------
def _conditional_bernoulli(log_odds: F, k: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Draw independent Bernoulli(expit(log_odds)) variables conditioned on summing to ``k``.

    Exact sequential sampler. ``W[i, r]`` is the total odds-product over subsets of size
    ``r`` of sites ``i..n-1``, so ``P(y_i = 1 | r still needed) = w_i W[i+1, r-1] / W[i, r]``.
    Kept on the log scale; costs O(n k) time and memory.
    """
    n = log_odds.shape[0]
    logW = np.full((n + 1, k + 1), -np.inf)
    logW[n, 0] = 0.0
    for i in range(n - 1, -1, -1):
        logW[i, 0] = 0.0
        logW[i, 1:] = np.logaddexp(logW[i + 1, 1:], log_odds[i] + logW[i + 1, :-1])
    y = np.zeros(n, dtype=np.int64)
    u = rng.random(n)
    r = k
    for i in range(n):
        if r == 0:
            break
        p1 = np.exp(log_odds[i] + logW[i + 1, r - 1] - logW[i, r])
        if u[i] < p1:
            y[i] = 1
            r -= 1
    return y


def _n_samples(K_or_QS: ArrayLike | QSType | None, X: ArrayLike | None, n: int | None) -> int:
    """``n`` if given, else the number of samples of ``K_or_QS`` or, failing that, ``X``."""
    if n is not None:
        return n
    if K_or_QS is not None:
        return (np.asarray(K_or_QS).shape[0] if not isinstance(K_or_QS, tuple)
                else np.asarray(K_or_QS[0][0]).shape[0])
    if X is not None:
        return np.asarray(X).shape[0]
    raise ValueError("simulate_null_binary: pass n when K_or_QS and X are both None")


def simulate_null_binary(
    K_or_QS: ArrayLike | QSType | None,
    X: ArrayLike | None,
    rng: np.random.Generator,
    *,
    case_fraction: float = 0.1,
    v0: float = 0.5,
    v1: float = 0.0,
    beta: ArrayLike | None = None,
    n: int | None = None,
) -> NullBinaryTrait:
    """A null binary trait drawn from the logit GLMM, with an exact number of cases.

    Parameters
    ----------
    K_or_QS : array_like of float, shape (n, n), or ((Q0, Q1), S0), or None
        Polygenic covariance (or its eigendecomposition); None for none.
    X : array_like of float, shape (n, p), or None
        Covariates.
    rng : numpy.random.Generator
    case_fraction : float
        Cases are exactly ``round(case_fraction * n)``.
    v0, v1 : float
        Polygenic and extra residual variance on the logit scale.
    beta : array_like of float, shape (p,), optional
        Covariate effects.
    n : int, optional
        Number of samples; needed only when both ``K_or_QS`` and ``X`` are None.

    Returns
    -------
    NullBinaryTrait

    Raises
    ------
    ValueError
        On an argument out of its range or of the wrong shape.

    Notes
    -----
    ``z = X beta + g + e`` as in :func:`simulate_traits`, then ``y_i ~
    Bernoulli(expit(z_i + c))`` independently, conditioned on ``sum(y) = k``. The
    conditional law does not depend on the intercept ``c`` (it scales every size-``k``
    subset's probability by the same ``exp(k c)``), so no intercept needs solving; the
    draw is exact, by the sequential conditional-Bernoulli sampler (O(n k)).

    Examples
    --------
    >>> t = simulate_null_binary(None, None, np.random.default_rng(0), n=200)
    >>> t.n_cases, int(t.y.sum())
    (20, 20)
    """
    n = _n_samples(K_or_QS, X, n)
    if not 0 < case_fraction < 1:
        raise ValueError(f"case_fraction must be in (0, 1); got {case_fraction}")
    QS = _as_qs(K_or_QS, n)
    fixed, g, e = _latent(QS, X, beta, v0, v1, n, rng)
    z = fixed + g + e
    k = int(round(case_fraction * n))
    if k > n // 2:  # sample the controls instead: smaller table
        y = 1 - _conditional_bernoulli(-z, n - k, rng)
    else:
        y = _conditional_bernoulli(z, k, rng)
    return NullBinaryTrait(y=y, z=z, n_cases=k)
