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
