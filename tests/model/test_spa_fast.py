"""The certified fast conditional saddlepoint (model/spa_fast.py) against the exact solver.

The reference is the exact double-saddlepoint solver of ``model/spa.py`` (Newton over
every sample, itself checked against enumeration in ``test_spa.py``); the fast one must
agree within its certified bound wherever it reports a value, and must report a value for
most variants at biobank-like n (else it is not doing its job).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from glimix_cli.model import spa_fast
from glimix_cli.model.spa import _log_upper_tail_conditional, spa_null, spa_pvalues


def _null(n, prevalence, likelihood="bernoulli", seed=0, trials=None):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    base = np.log(prevalence / (1 - prevalence))
    f = base + X[:, 1:] @ [0.3, -0.2] + 0.5 * rng.normal(size=n)
    if likelihood == "probit":
        from scipy.special import ndtr, ndtri

        f = ndtri(prevalence) + 0.2 * X[:, 1] + 0.3 * rng.normal(size=n)
        y = (rng.random(n) < ndtr(f)).astype(float)
    elif trials is not None:
        y = rng.binomial(trials.astype(int), expit(f)).astype(float)
    else:
        y = (rng.random(n) < expit(f)).astype(float)
    return spa_null(f, X, likelihood, trials, y), rng


def _weights(null, G):
    return null.c[:, None] * (G - null.X @ (null.H @ G))


def _q(null, a, z):
    pi0 = expit(null.logit_mu + null.conditional[1])
    w0 = null.trials * pi0 * (1 - pi0)
    c01 = a.T @ w0
    cvar = (a * a).T @ w0 - c01 * c01 / null.conditional[3]
    return np.abs(z) * np.sqrt(cvar)


def _genotypes(rng, n, mafs, dosage=False):
    G = rng.binomial(2, mafs, size=(n, len(mafs))).astype(float)
    if dosage:  # imputed dosages: hard calls blurred, most zeros kept
        G = np.clip(G + rng.normal(0, 0.1, G.shape) * (G > 0), 0, 2)
    return G[:, G.std(axis=0) > 0]


CASES = [
    ("bernoulli", 0.5, False, None),
    ("bernoulli", 0.1, False, None),
    ("bernoulli", 0.01, False, None),
    ("bernoulli", 0.1, True, None),
    ("probit", 0.2, False, None),
    ("binomial", 0.3, False, 4),
]


@pytest.mark.parametrize("likelihood, prevalence, dosage, trials", CASES)
def test_fast_tails_match_the_exact_solver(likelihood, prevalence, dosage, trials):
    n = 4000
    tr = None if trials is None else np.full(n, float(trials))
    null, rng = _null(n, prevalence, likelihood, seed=int(prevalence * 100), trials=tr)
    mafs = np.concatenate([rng.uniform(0.001, 0.01, 40), rng.uniform(0.01, 0.5, 40)])
    G = _genotypes(rng, n, mafs, dosage)
    a = _weights(null, G)
    k = a.shape[1]
    z = rng.choice([-1.0, 1.0], k) * rng.uniform(2.0, 6.0, k)
    q = _q(null, a, z)
    fast, ok = spa_fast.conditional_tails(null, a, q)
    exact, good = _log_upper_tail_conditional(null, np.concatenate([a, -a], axis=1),
                                              np.concatenate([q, q]))
    assert ok.sum() >= 0.2 * good.sum(), "the fast solver certified too few tails"
    both = ok & good
    assert both.sum() == ok.sum(), "a certified tail where the exact saddlepoint fails"
    # the certified bound (1e-4 on the log scale) plus the exact solver's own tolerance
    np.testing.assert_allclose(fast[both], exact[both], rtol=0, atol=spa_fast.TOL + 1e-6)
    assert np.all(np.isnan(fast[~ok]))


def test_fast_path_carries_most_variants_at_large_n():
    """At n = 30,000 nearly every tail is certified and they agree with the exact solver."""
    n = 30_000
    null, rng = _null(n, 0.05, seed=7)
    mafs = np.concatenate([rng.uniform(0.0005, 0.01, 16), rng.uniform(0.01, 0.5, 16)])
    G = _genotypes(rng, n, mafs)
    a = _weights(null, G)
    k = a.shape[1]
    z = rng.choice([-1.0, 1.0], k) * rng.uniform(2.0, 5.0, k)
    q = _q(null, a, z)
    fast, ok = spa_fast.conditional_tails(null, a, q)
    exact, good = _log_upper_tail_conditional(null, np.concatenate([a, -a], axis=1),
                                              np.concatenate([q, q]))
    assert ok.sum() >= 0.8 * good.sum()
    np.testing.assert_allclose(fast[ok], exact[ok], rtol=0, atol=spa_fast.TOL + 1e-6)


def test_polynomial_part_is_within_its_remainder_bound():
    """K_E + P against the exact cumulant generating function at points around the
    expansion, for a rare and a common variant: the gap stays below the Lagrange bound of
    the module notes (and is far from zero once the tilt is sizeable: the test can fail)."""
    n = 3000
    null, rng = _null(n, 0.1, seed=3)
    G = _genotypes(rng, n, np.array([0.004, 0.3]))
    a = _weights(null, G)
    n_obs, t0, k0, ktt0 = null.conditional
    D = spa_fast.taylor_terms(null)
    mom, a6v = spa_fast._moments(a, D)
    coef = np.zeros((2, 6, 6))
    for j in range(6):
        for kk in range(6 - j):
            coef[:, j, kk] = mom[:, j + kk, j] / (spa_fast._FACT[j] * spa_fast._FACT[kk])
    lm = null.logit_mu
    for s, tau in [(0.05, 0.01), (0.2, -0.03), (0.4, 0.05)]:
        x = a * s + tau
        exact = (np.logaddexp(0, lm[:, None] + t0 + x) - np.logaddexp(0, lm)[:, None]).sum(0)
        poly = np.array([spa_fast._Newton._poly(coef[i:i + 1], np.array([s]),
                                                np.array([tau]))[0] for i in range(2)])
        h = np.abs(x).max(axis=0)
        bound = np.exp(h) / 720 * (D[:, 2][:, None] * x ** 6).sum(0)
        assert np.all(np.abs(exact - poly) <= bound * (1 + 1e-9) + 1e-10)
    assert np.abs(exact - poly).max() > 1e-6  # the last point is far enough to show a gap


@pytest.mark.parametrize("prevalence", [0.02, 0.3])
def test_spa_pvalues_fast_and_exact_agree(prevalence):
    n = 5000
    null, rng = _null(n, prevalence, seed=11)
    G = _genotypes(rng, n, rng.uniform(0.002, 0.5, 60))
    z = rng.choice([-1.0, 1.0], G.shape[1]) * rng.uniform(0.5, 6.0, G.shape[1])
    lf, uf = spa_pvalues(null, G, z, fast=True)
    le, ue = spa_pvalues(null, G, z, fast=False)
    assert np.array_equal(uf, ue)
    np.testing.assert_allclose(lf, le, rtol=0, atol=2 * spa_fast.TOL)
