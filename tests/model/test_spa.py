"""Saddlepoint p-values against exact enumeration, the Normal limit and closed forms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import expit, ndtr
from scipy.stats import binom, norm

from glimix_cli.model.spa import SPA_Z_CUTOFF, SPANull, _log_upper_tail, spa_null, spa_pvalues
from glimix_cli.model.stats import chi2_1_logsf


def _enumerate(mu: np.ndarray, a: np.ndarray, m: np.ndarray | None = None):
    """Exact law of S = sum a_i (Y_i - m_i mu_i), Y_i ~ Binomial(m_i, mu_i) independent."""
    m = np.ones(mu.size, dtype=int) if m is None else m.astype(int)
    Y = np.array(list(itertools.product(*[range(k + 1) for k in m])), dtype=float)
    P = np.prod(binom.pmf(Y, m, mu), axis=1)
    return (Y - m * mu) @ a, P


@pytest.fixture
def skewed():
    rng = np.random.default_rng(0)
    n = 18
    f = rng.normal(-2.5, 0.7, n)  # ~10% successes: a skewed score
    a = rng.gamma(1.0, 1.0, n) * (rng.random(n) < 0.6) + 0.01 * rng.normal(size=n)
    return f, a


@pytest.mark.parametrize("zq", [2.0, 3.0, 4.0, 5.0, 6.0])
def test_upper_tail_matches_enumeration(skewed, zq):
    f, a = skewed
    null = spa_null(f, np.ones((f.size, 1)), "bernoulli")
    S, P = _enumerate(null.mu, a)
    V = np.sum(a * a * null.mu * (1 - null.mu))
    q = zq * np.sqrt(V)
    exact = P[S >= q].sum()
    spa = np.exp(_log_upper_tail(null, a[:, None], np.array([q]))[0])
    assert spa == pytest.approx(exact, rel=0.2)
    # and far closer than the Normal tail, which misses by orders of magnitude at 4+ SD
    assert abs(np.log(spa / exact)) < abs(np.log(norm.sf(zq) / exact))


def test_two_sided_with_covariate_adjustment_matches_enumeration(skewed):
    f, _ = skewed
    n = f.size
    rng = np.random.default_rng(3)
    g = rng.binomial(2, 0.3, n).astype(float)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    null = spa_null(f, X, "bernoulli")
    # independent covariate adjustment: weighted least-squares residual of g on X
    w = null.mu * (1 - null.mu)
    coef = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * g))
    a = g - X @ coef
    S, P = _enumerate(null.mu, a)
    V = np.sum(a * a * w)
    for z in (2.5, 3.5, -3.5):
        q = abs(z) * np.sqrt(V)
        exact = P[S >= q].sum() + P[S <= -q].sum()
        log_p, used = spa_pvalues(null, g[:, None], np.array([z]))
        assert used[0]
        assert np.exp(log_p[0]) == pytest.approx(exact, rel=0.25)


def test_binomial_trials_match_enumeration():
    rng = np.random.default_rng(5)
    n = 9
    m = rng.integers(1, 4, n)
    f = rng.normal(-1.8, 0.5, n)
    a = rng.gamma(1.5, 1.0, n)
    null = spa_null(f, np.ones((n, 1)), "binomial", trials=m)
    np.testing.assert_array_equal(null.trials, m)
    S, P = _enumerate(null.mu, a, m)
    V = np.sum(a * a * m * null.mu * (1 - null.mu))
    for zq in (2.0, 3.0, 4.0):
        q = zq * np.sqrt(V)
        spa = np.exp(_log_upper_tail(null, a[:, None], np.array([q]))[0])
        assert spa == pytest.approx(P[S >= q - 1e-12].sum(), rel=0.3)


def test_balanced_large_n_is_normal():
    """mu = 1/2 and many small weights: the score is Normal to O(1/n), so is the SPA."""
    rng = np.random.default_rng(1)
    n = 4000
    null = spa_null(np.zeros(n), np.ones((n, 1)), "bernoulli")
    G = rng.binomial(2, 0.3, (n, 3)).astype(float)
    z = np.array([2.5, -3.0, 4.0])
    log_p, used = spa_pvalues(null, G, z)
    assert used.all()
    np.testing.assert_allclose(log_p, chi2_1_logsf(z * z), rtol=0.02)


def test_below_cutoff_is_the_normal_pvalue(skewed):
    f, _ = skewed
    null = spa_null(f, np.ones((f.size, 1)), "bernoulli")
    G = np.random.default_rng(2).binomial(2, 0.4, (f.size, 4)).astype(float)
    z = np.array([0.0, 1.0, -SPA_Z_CUTOFF, np.nan])
    log_p, used = spa_pvalues(null, G, z)
    assert not used.any()
    np.testing.assert_array_equal(log_p[:3], chi2_1_logsf(z[:3] ** 2))
    assert np.isnan(log_p[3])


def test_extreme_tails_monotone_and_on_log_scale():
    """Large n, rare successes: p far below 1e-300 stays finite on the log scale."""
    rng = np.random.default_rng(4)
    n = 3000
    f = rng.normal(-4.0, 0.5, n)
    null = spa_null(f, np.ones((n, 1)), "bernoulli")
    g = rng.binomial(2, 0.3, n).astype(float)
    z = np.linspace(2.5, 90.0, 40)
    log_p, used = spa_pvalues(null, np.repeat(g[:, None], z.size, axis=1), z)
    assert used.all() and np.all(np.isfinite(log_p))
    assert np.all(np.diff(log_p) < 0)
    assert log_p[-1] / np.log(10) < -300


def test_end_of_support_is_probability_of_the_extreme_point():
    rng = np.random.default_rng(6)
    n = 12
    f = rng.normal(-2.0, 0.5, n)
    a = np.where(rng.random(n) < 0.3, 1.0, 0.0) - 0.1
    null = spa_null(f, np.ones((n, 1)), "bernoulli")
    s_max = np.sum(np.maximum(a, 0)) - np.sum(a * null.mu)
    expected = np.sum(np.log(null.mu[a > 0])) + np.sum(np.log1p(-null.mu[a < 0]))
    got = _log_upper_tail(null, a[:, None], np.array([s_max]))[0]
    assert got == pytest.approx(expected, rel=1e-10)
    # strictly beyond the largest value S can take the tail is empty ...
    assert _log_upper_tail(null, a[:, None], np.array([1.01 * s_max]))[0] == -np.inf
    # ... unless it is the tail that holds the observed score: not representable (NaN)
    got = _log_upper_tail(null, a[:, None], np.array([1.01 * s_max]), np.array([True]))[0]
    assert np.isnan(got)


def test_score_past_the_observed_end():
    """A GLMM z more extreme than any value of the independent-Bernoulli score (a case
    carrying a singleton, z = 30) must get neither an empty tail (p = 0) nor the
    all-others-are-controls extreme point (~1e-12): the observation is placed at the
    realised score. Exact reference: S = a0 (y0 - mu) + a1 (N - (n - 1) mu) with N ~
    Bin(n - 1, mu) the other cases; one dominant term makes the saddlepoint rough here, but
    it must stay on the conservative side and within a small factor. Without y, or with z
    pointing the other way than the realised score, the surrogate p-value is kept."""
    n = 500
    y = (np.random.default_rng(8).random(n) < expit(-3.0)).astype(float)
    y[0] = 1.0
    mu = y.mean()  # the intercept-only fit
    f = np.full(n, np.log(mu / (1 - mu)))
    g = np.zeros(n)
    g[0] = 1.0
    G = np.repeat(g[:, None], 2, axis=1)
    z = np.array([30.0, -30.0])
    log_p, used = spa_pvalues(spa_null(f, np.ones((n, 1)), "bernoulli", y=y), G, z)
    a0, a1 = 1 - 1 / n, -1 / n  # g - mean(g)
    s_obs = a0 * (1 - mu) + a1 * (y[1:].sum() - (n - 1) * mu)
    N = np.arange(n)
    pN = binom.pmf(N, n - 1, mu)
    exact = sum(py * pN[np.abs(a0 * (y0 - mu) + a1 * (N - (n - 1) * mu)) >= s_obs - 1e-12].sum()
                for y0, py in ((0, 1 - mu), (1, mu)))
    assert used[0] and exact <= np.exp(log_p[0]) < 4 * exact
    assert not used[1] and log_p[1] == chi2_1_logsf(900.0)
    log_p, used = spa_pvalues(spa_null(f, np.ones((n, 1)), "bernoulli"), G, z)
    assert not used.any()
    np.testing.assert_array_equal(log_p, chi2_1_logsf(z * z))


def _known_mu_null(n, mu):
    """Null with a known success probability and no covariates: S = sum g (y - mu)."""
    return SPANull(mu=np.full(n, mu), logit_mu=np.full(n, np.log(mu / (1 - mu))),
                   trials=np.ones(n), c=np.ones(n), X=np.zeros((n, 1)), H=np.zeros((1, n)))


def test_two_sided_when_the_lower_tail_is_empty():
    """Rare cases, common variant, many carrier cases: S sits above the mean by more than
    the mean, so P(S <= -s) = 0 and the two-sided p-value is the upper tail alone. Exact
    reference: T = sum g y = X1 + 2 X2 with X1 ~ Bin(n1, mu), X2 ~ Bin(n2, mu)."""
    n, mu, n1, n2, t_obs = 2000, 0.01, 278, 15, 11
    g = np.zeros(n)
    g[:n1] = 1.0
    g[n1:n1 + n2] = 2.0
    pmf = np.convolve(binom.pmf(np.arange(n1 + 1), n1, mu),
                      np.repeat(binom.pmf(np.arange(n2 + 1), n2, mu), 2)[:-1]
                      * (np.arange(2 * n2 + 1) % 2 == 0))
    upper_incl = pmf[t_obs:].sum()  # P(T >= t): the exact (conservative) p-value
    upper_excl = pmf[t_obs + 1:].sum()
    mean = mu * g.sum()
    z = (t_obs - mean) / np.sqrt(np.sum(g * g) * mu * (1 - mu))
    log_p, used = spa_pvalues(_known_mu_null(n, mu), g[:, None], np.array([z]))
    assert used[0]
    # the saddlepoint tail of a lattice variable lies between P(T > t) and P(T >= t),
    # near the mid-p value; the old 'atom at the empty end' answer was about 100x larger
    assert upper_excl < np.exp(log_p[0]) < upper_incl


def test_probit_weights():
    f = np.array([-6.0, -1.0, 0.0, 2.0])
    null = spa_null(f, np.ones((4, 1)), "probit")
    np.testing.assert_allclose(null.mu, ndtr(f))
    np.testing.assert_allclose(expit(null.logit_mu), ndtr(f), rtol=1e-12)
    h = 1e-6
    dmu = (ndtr(f + h) - ndtr(f - h)) / (2 * h)
    np.testing.assert_allclose(null.c, dmu / (null.mu * (1 - null.mu)), rtol=1e-6)
    logit = spa_null(f, np.ones((4, 1)), "bernoulli")
    np.testing.assert_array_equal(logit.c, np.ones(4))


def test_rejects_other_likelihoods():
    with pytest.raises(ValueError, match="binary or binomial likelihood"):
        spa_null(np.zeros(3), np.ones((3, 1)), "poisson")
    with pytest.raises(ValueError, match="number of trials"):
        spa_null(np.zeros(3), np.ones((3, 1)), "binomial")


def test_conditional_tail_tracks_the_exact_conditional_mid_p():
    """Non-exchangeable cases (a covariate moves mu), 6 cases among 24: every case set
    enumerated with its probability given the number of cases; the double saddlepoint
    tail P(U >= u | N = 6) against the conditional mid-p value over the upper tail."""
    from glimix_cli.model.spa import _log_upper_tail_conditional

    rng = np.random.default_rng(5)
    n, n_cases = 24, 6
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x])
    f = -1.2 + 0.6 * x
    y = np.zeros(n)
    y[:n_cases] = 1
    null = spa_null(f, X, "bernoulli", y=y)
    subsets = np.array(list(itertools.combinations(range(n), n_cases)))
    lw = np.log(null.mu)[subsets].sum(1) - np.log1p(-null.mu)[subsets].sum(1)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    centre_pi = expit(null.logit_mu + null.conditional[1])
    checked = 0
    for g in (rng.binomial(2, 0.3, n).astype(float), (np.arange(n) % 5 == 0) * 1.0):
        a = g - X @ (null.H @ g)
        U = a[subsets].sum(1)
        centre = a @ centre_pi
        order = np.argsort(-U)
        tail = np.cumsum(w[order])  # P(U >= U[order[i]]), ties aside
        for p_target in (0.05, 0.01, 1e-3, 1e-4):
            u = U[order[np.searchsorted(tail, p_target)]]
            exact = w[U >= u - 1e-9].sum()
            mid = exact - 0.5 * w[np.abs(U - u) <= 1e-9].sum()
            lt, good = _log_upper_tail_conditional(null, a[:, None], np.array([u - centre]))
            assert good[0]
            # 6 cases: the saddlepoint is rough, but within a small factor at every level
            assert 0.4 < np.exp(lt[0]) / mid < 2.5, (p_target, mid, np.exp(lt[0]))
            checked += 1
    assert checked == 8


def test_default_pvalue_is_the_hypergeometric_mid_p():
    """Intercept only, 20 cases among 2,000 (mu = 20 / n, the fitted value): given the
    number of cases the carrier-allele count among cases is bivariate hypergeometric. The
    default two-sided p-value (conditional on the number of cases) is close to that law's
    mid-p value."""
    from scipy.stats import hypergeom

    n, n_cases = 2000, 20
    n1, n2 = 700, 100  # genotype counts: MAF 0.225
    g = np.zeros(n)
    g[:n1] = 1.0
    g[n1:n1 + n2] = 2.0
    law = np.zeros(2 * n_cases + 1)
    for k in range(n_cases + 1):
        for h in range(n_cases - k + 1):
            law[h + 2 * k] += np.exp(hypergeom.logpmf(k, n, n2, n_cases)
                                     + hypergeom.logpmf(h, n - n2, n1, n_cases - k))
    mean = n_cases * g.mean()
    dev = np.abs(np.arange(law.size) - mean)
    mu = n_cases / n
    f = np.full(n, np.log(mu / (1 - mu)))
    X = np.ones((n, 1))
    for t_obs in (16, 18, 20):
        y = np.zeros(n)
        # t_obs carrier alleles among the cases: heterozygous cases, then non-carriers
        y[:t_obs] = 1.0
        y[n - (n_cases - t_obs):] = 1.0
        assert y.sum() == n_cases and g @ y == t_obs
        d = abs(t_obs - mean)
        exact = law[dev >= d - 1e-9].sum()
        mid = exact - 0.5 * law[np.abs(dev - d) <= 1e-9].sum()
        gt = g - g.mean()
        z = gt @ (y - mu) / np.sqrt(gt @ gt * mu * (1 - mu))
        lp, used = spa_pvalues(spa_null(f, X, "bernoulli", y=y), g[:, None], np.array([z]))
        assert used[0]
        assert 0.8 < np.exp(lp[0]) / mid < 1.25, (t_obs, np.exp(lp[0]), mid, exact)


@pytest.mark.parametrize("conditional", [True, False])
def test_a_variant_gets_the_same_pvalue_alone_or_in_a_batch(conditional):
    """The saddlepoint solve of one column must not depend on the others solved with it.

    (A stopping rule that read an absent upper bracket, ``hi = inf``, as converged ended
    the Newton iterations of a batch whose unfinished columns all lacked one: up to 250
    orders of magnitude off for extreme scores of rare variants.)
    """
    rng = np.random.default_rng(0)
    n_bad = 0
    for prev, spread in ((0.005, 0.0), (0.02, 1.0), (0.05, 0.5), (0.5, 1.0)):
        n, b = 700, 120
        X = np.column_stack([np.ones(n), rng.normal(size=n)])
        f = np.log(prev / (1 - prev)) + 0.5 * X[:, 1] + spread * rng.normal(size=n)
        y = (rng.random(n) < expit(f)).astype(float)
        y[0] = 1.0
        G = rng.binomial(2, rng.uniform(0.001, 0.5, size=b), size=(n, b)).astype(float)
        z = rng.normal(scale=8.0, size=b)
        null = spa_null(f, X, "bernoulli", y=y, conditional=conditional)
        batch, _ = spa_pvalues(null, G, z)
        alone = np.array([spa_pvalues(null, G[:, [j]], z[[j]])[0][0] for j in range(b)])
        same = np.isclose(alone, batch, rtol=1e-9) | (np.isnan(alone) & np.isnan(batch))
        n_bad += int((~same).sum())
    assert n_bad == 0


def test_conditional_max_is_the_best_allocation_of_the_successes():
    """The largest ``sum a_i Y_i`` given ``sum Y_i = n_obs``: brute force over every
    allocation on a tiny problem, for 0/1 outcomes (partial sort) and binomial trials."""
    import itertools
    from types import SimpleNamespace

    from glimix_cli.model.spa import _conditional_max

    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 3))
    for trials in (np.ones(7), np.array([1.0, 2, 1, 3, 1, 2, 1])):
        for n_obs in (1, 3, 5):
            null = SimpleNamespace(conditional=(float(n_obs),), trials=trials)
            best = np.full(3, -np.inf)
            for ys in itertools.product(*[range(int(m) + 1) for m in trials]):
                if sum(ys) == n_obs:
                    best = np.maximum(best, np.asarray(ys) @ a)
            assert np.allclose(_conditional_max(null, a), best, rtol=1e-12)
