"""DenseCore (the B = I + T^1/2 Sigma T^1/2 factorisation) against dense inverses."""

from __future__ import annotations

import numpy as np
import pytest

from glimix_cli.model.gaussian import DenseCore


@pytest.mark.parametrize("scale", [1.0, 1e-4, 1e-9, 1e-12])
@pytest.mark.parametrize("rank", [None, 3])
def test_posterior_diagonal_matches_the_dense_formula(scale, rank):
    """Every branch: tau = 0 (direct formula: the site still learns from correlated sites),
    a few tiny tau (direct), ordinary sites; at scale 1e-12 every site is tiny and the
    cancellation-prone form is used with its documented error eps / (tau_i Sigma_ii)."""
    rng = np.random.default_rng(0)
    n = 25
    G = rng.normal(size=(n, rank or 2 * n))
    Sigma = scale * (G @ G.T) / G.shape[1]
    tau = rng.uniform(0.05, 2.0, size=n)
    tau[:3] = 0.0
    tau[3:6] = 1e-14
    core = DenseCore(Sigma, tau)
    sq = np.sqrt(tau)
    B = np.eye(n) + sq[:, None] * Sigma * sq[None, :]
    M = sq[:, None] * Sigma
    post = np.diag(Sigma - M.T @ np.linalg.solve(B, M))  # valid for singular Sigma
    got = core.posterior_diag()
    ts = tau * np.diag(Sigma)
    # DenseCore's direct form: every tau = 0 site, plus the smallest tiny ones (positive
    # tau, tau Sigma_ii < 1e-10) up to max(8, n/16) sites in all. (The mask once counted
    # the tau = 0 sites among the tiny ones, which let the tiny sites err by 220%.)
    zero = tau == 0
    tiny = (tau > 0) & (ts < 1e-10)
    room = max(8, n // 16) - int(zero.sum())
    smallest = np.argsort(np.where(tiny, ts, np.inf))[:room]
    direct = zero.copy()
    direct[smallest[tiny[smallest]]] = True
    if scale == 1.0:
        assert direct[:6].all() and not direct[6:].any()
    bound = np.where(direct, 1e-9, 1e-7 + 100 * np.finfo(float).eps / np.maximum(ts, 1e-300))
    rel = np.abs(got - post) / post
    assert np.all(rel <= bound), (rel / bound).max()
    if scale == 1.0:  # the tau = 0 sites are not at their prior variance
        assert np.all(post[:3] < 0.99 * np.diag(Sigma)[:3])
    np.testing.assert_allclose(core.logdet_B, np.linalg.slogdet(B)[1], rtol=1e-10, atol=1e-12)


def test_posterior_diagonal_with_no_site_information_is_the_prior():
    Sigma = np.array([[2.0, 0.5], [0.5, 1.0]])
    core = DenseCore(Sigma, np.zeros(2))
    np.testing.assert_array_equal(core.posterior_diag(), [2.0, 1.0])


def test_the_scan_whitener_reuses_the_factor_of_b():
    """``chol(C) = T^-1/2 L_B`` for ``C = Sigma + T^-1``: the whitening through the EP
    core equals a fresh Cholesky of C (W^T W = C^-1, the same log|C|), and the scanner of
    ``to_normal()`` (the EP state's core) equals that of a GLMMNormal built afresh from the
    same sites."""
    from glimix_cli.model.glmm import GLMMExpFam, GLMMNormal

    rng = np.random.default_rng(4)
    n = 60
    G = rng.normal(size=(n, 80))
    K = G @ G.T / 80
    Sigma = 0.7 * K + 0.2 * np.eye(n)
    tau = rng.uniform(1e-3, 5.0, n)
    W = DenseCore(Sigma, tau).whitener()
    C = Sigma + np.diag(1.0 / tau)
    M = rng.normal(size=(n, 5))
    Mw = W.whiten(M)
    np.testing.assert_allclose(Mw.T @ Mw, M.T @ np.linalg.solve(C, M), rtol=1e-9)
    np.testing.assert_allclose(W.logdet, np.linalg.slogdet(C)[1], rtol=1e-12)
    np.testing.assert_allclose(np.diag(W.L) / np.sqrt(tau), np.diag(np.linalg.cholesky(C)),
                               rtol=1e-9)
    y = (rng.random(n) < 0.4).astype(float)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    m = GLMMExpFam(y, "bernoulli", X, K=K, n_int=256)
    m.scale = 0.8
    normal = m.to_normal()
    fresh = GLMMNormal(normal.eta, normal.tau, X, K=K)
    fresh.beta, fresh.scale, fresh.delta = normal.beta, normal.scale, normal.delta
    assert normal._core is m._ep().core  # no second factorisation of B
    r1 = normal.get_fixed_scale_scanner().fast_scan(M)
    r2 = fresh.get_fixed_scale_scanner().fast_scan(M)
    for key in ("lrt", "effsizes1", "effsizes1_se", "lml"):
        np.testing.assert_allclose(r1[key], r2[key], rtol=1e-9, err_msg=key)
    np.testing.assert_allclose(normal.beta_covariance(), fresh.beta_covariance(), rtol=1e-9)
