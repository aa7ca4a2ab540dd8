"""The classic ``glimix_core.glmm`` API, call by call, on our own implementation.

Every method and property the classic documentation lists for ``GLMMExpFam``,
``GLMMNormal`` and the fast scanner is called here in its documented form (positional
arguments where the classic takes them), with a check of what it returns.
"""

from __future__ import annotations

import numpy as np
import pytest

from glimix_cli import GLMMExpFam, GLMMNormal, economic_qs, economic_qs_linear


@pytest.fixture
def data():
    random = np.random.RandomState(0)
    n = 10
    X = random.randn(n, 2)
    G = random.randn(n, 100)
    K = G @ G.T
    ntrials = random.randint(1, 100, n)
    z = G @ random.randn(100) / np.sqrt(100)
    successes = np.array([sum(z[i] + 0.2 * random.randn(ntrials[i]) > 0) for i in range(n)])
    return X, G, K, ntrials, successes, (z > 0).astype(float)


@pytest.mark.parametrize("lik", ["bernoulli", ("bernoulli",), "probit", ("probit",),
                                 "Poisson", ("poisson",)])
def test_likelihood_names_and_1_tuples(data, lik):
    X, G, K, _, successes, y01 = data
    y = successes if "oisson" in str(lik) else y01
    glmm = GLMMExpFam(y, lik, X, economic_qs(K))
    assert np.isfinite(glmm.lml())


def test_glmmexpfam_every_documented_member(data):
    X, G, K, ntrials, successes, _ = data
    QS = economic_qs(K)
    glmm = GLMMExpFam(successes, ("binomial", ntrials), X, QS, 1000, 1.49e-05, 1.49e-08)
    assert f"{glmm.lml():.2f}" == "-16.40"
    # parameters and their fixed/free state
    assert glmm.beta.shape == (2,) and 0 <= glmm.delta <= 1 and glmm.scale > 0
    assert glmm.v0 == pytest.approx(glmm.scale * (1 - glmm.delta))
    assert glmm.v1 == pytest.approx(glmm.scale * glmm.delta)
    for name in ("beta", "scale", "delta"):
        assert not glmm.isfixed(name)
        glmm.fix(name)
        assert glmm.isfixed(name)
        glmm.unfix(name)
    assert sorted(glmm.gradient()) == ["beta", "delta", "scale"]
    assert glmm.mean().shape == (10,) and glmm.covariance().shape == (10, 10)
    np.testing.assert_allclose(glmm.covariance(), glmm.v0 * K + glmm.v1 * np.eye(10),
                               rtol=1e-10, atol=1e-10)
    glmm.fit(False, 1e5, 1e-7)  # verbose, factr, pgtol (positional, as documented)
    assert f"{glmm.lml():.2f}" == "-13.43"
    site = glmm.site
    assert site.eta.shape == site.tau.shape == (10,)
    assert glmm.posteriori_mean().shape == (10,)
    P = glmm.posteriori_covariance()
    assert P.shape == (10, 10) and np.allclose(P, P.T)
    other = glmm.copy()
    other.scale = 2.0 * glmm.scale
    assert other.lml() != glmm.lml()
    # the same model from a low-rank description of K (economic_qs_linear of G)
    same = GLMMExpFam(successes, ("binomial", ntrials), X, economic_qs_linear(G))
    same.beta, same.scale, same.delta = glmm.beta, glmm.scale, glmm.delta
    assert same.lml() == pytest.approx(glmm.lml(), rel=1e-6)


def test_glmmnormal_and_its_scanner_every_documented_member(data):
    X, G, K, ntrials, successes, _ = data
    QS = economic_qs(K)
    glmm = GLMMExpFam(successes, ("binomial", ntrials), X, QS)
    glmm.fit(verbose=False)
    eta, tau = glmm.site.eta, glmm.site.tau
    normal = GLMMNormal(eta, tau, X, QS)
    normal.beta, normal.scale, normal.delta = glmm.beta, glmm.scale, glmm.delta
    np.testing.assert_array_equal(normal.eta, eta)
    np.testing.assert_array_equal(normal.tau, tau)
    assert np.isfinite(normal.lml())
    assert sorted(normal.gradient()) == ["beta", "delta", "scale"]
    assert normal.beta_covariance().shape == (2, 2)
    assert normal.mean().shape == (10,) and normal.covariance().shape == (10, 10)
    for name in ("beta", "scale", "delta"):
        normal.fix(name)
        assert normal.isfixed(name)
        normal.unfix(name)
    normal.fit(verbose=False)
    assert normal.lml() >= GLMMNormal(eta, tau, X, QS).lml() - 1e-9
    scanner = normal.get_fast_scanner()
    M = np.random.RandomState(1).randn(10, 3)
    res = scanner.fast_scan(M, False)  # (M, verbose) as the classic takes them
    assert sorted(res) == ["collinear", "effsizes0", "effsizes0_se", "effsizes1",
                           "effsizes1_se", "lml", "lrt", "scale"]
    assert res["lml"].shape == (3,) and res["effsizes0"].shape == (3, 2)
    assert np.all(res["lrt"] >= 0)
    assert np.isfinite(scanner.null_lml())
    assert scanner.null_beta.shape == (2,) and scanner.null_beta_se.shape == (2,)
    assert scanner.null_scale > 0
    joint = scanner.scan(M)
    assert np.isfinite(joint["lml"]) and joint["effsizes1"].shape == (3,)


@pytest.mark.parametrize("lik", ["bernoulli", "probit"])
def test_binary_likelihoods_start_well_posed_and_unfix_restores_the_classic(data, lik):
    X, _, K, _, _, y01 = data
    glmm = GLMMExpFam(y01, lik, X, economic_qs(K))
    assert glmm.delta == 0.0 and glmm.isfixed("delta")
    glmm.fit(verbose=False)
    assert glmm.delta == 0.0 and glmm.v1 == 0.0
    glmm.unfix("delta")
    assert not glmm.isfixed("delta")
    assert not GLMMExpFam(y01 * 3, "poisson", X, economic_qs(K)).isfixed("delta")
