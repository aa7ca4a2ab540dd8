"""Structured kinships (model/covariance.py) against the dense path on the same matrix.

The reference is the dense implementation on ``K.toarray()``: what the block structure
changes is how ``B = I + T^1/2 Sigma T^1/2`` is factorised, never the model. Independent
checks: EP on a block-diagonal K equals EP on each family alone; with no random effect
EP's marginal likelihood is the GLM's log-likelihood (closed form); permuting the samples
changes nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse
from scipy.special import expit, gammaln, log_ndtr

from glimix_cli.model.covariance import BlockKinship, DenseKinship, as_kinship
from glimix_cli.model.gaussian import DenseCore
from glimix_cli.model.glmm import GLMMExpFam, GLMMNormal
from glimix_cli.model.linalg import economic_qs
from glimix_cli.model.lmm import LMM
from glimix_cli.model.spa import spa_null, spa_pvalues

LIKS = ("bernoulli", "probit", "binomial", "poisson")
SIZES = (1, 1, 1, 2, 2, 3, 4, 4, 1, 6, 2, 1, 3, 1)


def family_kinship(sizes=SIZES, seed=0) -> sparse.csr_matrix:
    """A GRM-like block-diagonal K: each family's block is positive definite, relatives at
    0.25-0.5, and the samples shuffled so the families are not contiguous."""
    rng = np.random.default_rng(seed)
    blocks = []
    for b in sizes:
        A = rng.normal(size=(b, b + 3))
        R = 0.5 * np.ones((b, b)) + 0.5 * np.eye(b) + 0.05 * (A @ A.T) / (b + 3)
        blocks.append(R)
    K = sparse.block_diag(blocks).tocsr()
    perm = rng.permutation(K.shape[0])
    return K[perm][:, perm].tocsr()


def outcome(lik: str, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    z = 0.3 + rng.normal(size=n)
    if lik == "bernoulli":
        return (rng.random(n) < expit(z)).astype(float)
    if lik == "probit":
        return (z + rng.normal(size=n) > 0).astype(float)
    if lik == "poisson":
        return rng.poisson(np.exp(0.5 * z)).astype(float)
    trials = rng.integers(1, 6, n).astype(float)
    return rng.binomial(trials.astype(int), expit(z)).astype(float), trials


def models(lik: str, K, params=(0.8, 0.3)):
    n = K.shape[0]
    data = outcome(lik, n)
    y, s = (data[0], ("binomial", data[1])) if lik == "binomial" else (data, lik)
    X = np.column_stack([np.ones(n), np.random.default_rng(5).normal(size=n)])
    out = []
    for Km in (K, K.toarray()):
        m = GLMMExpFam(y, s, X, K=Km, n_int=256)
        m.beta = [0.2, -0.1]
        m.scale, m.delta = params
        out.append(m)
    return out


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def test_blocks_are_the_connected_components():
    K = family_kinship()
    kin = BlockKinship(K)
    assert kin.n_families == len(SIZES) and kin.largest == max(SIZES)
    seen = np.concatenate([g.idx.ravel() for g in kin.groups])
    assert np.array_equal(np.sort(seen), np.arange(K.shape[0]))
    x = np.random.default_rng(2).normal(size=(K.shape[0], 3))
    assert np.allclose(kin.matvec(x), K @ x, rtol=1e-13, atol=1e-13)
    assert np.allclose(kin.matvec(x[:, 0]), K @ x[:, 0], rtol=1e-13, atol=1e-13)
    assert np.array_equal(kin.diag(), K.diagonal())
    dense = 0.7 * K.toarray() + 0.2 * np.eye(K.shape[0])
    assert np.allclose(kin.covariance(0.7, 0.2).toarray(), dense)
    assert isinstance(as_kinship(K.shape[0], K=K.toarray()), DenseKinship)


@pytest.mark.parametrize("tau_kind", ["positive", "with_zero_and_tiny"])
def test_block_core_equals_the_dense_core(tau_kind):
    K = family_kinship()
    n = K.shape[0]
    rng = np.random.default_rng(3)
    tau = rng.gamma(2.0, 0.5, n)
    if tau_kind != "positive":
        tau[[0, 5, 9]] = 0.0
        tau[[2, 11]] = 1e-13
    v0, v1 = 0.9, 0.15
    block = BlockKinship(K).prior(v0, v1).core(tau)
    dense = DenseCore(v0 * K.toarray() + v1 * np.eye(n), tau)
    assert block.logdet_B == pytest.approx(dense.logdet_B, rel=1e-12)
    assert rel(block.diag_Binv, dense.diag_Binv) < 1e-12
    x = rng.normal(size=n)
    M = rng.normal(size=(n, 4))
    assert rel(block.solve_B(x), dense.solve_B(x)) < 1e-10
    assert rel(block.solve_C(M), dense.solve_C(M)) < 1e-10
    assert block.tr_Cinv() == pytest.approx(dense.tr_Cinv(), rel=1e-12)
    assert block.tr_Cinv_Sigma() == pytest.approx(dense.tr_Cinv_Sigma(), rel=1e-12)
    assert block.tr_Cinv_K() == pytest.approx(dense.tr_Cinv_M(K.toarray()), rel=1e-12)
    assert rel(block.posterior_diag(), dense.posterior_diag()) < 1e-9
    assert rel(block.posterior_apply(x), dense.posterior_apply(x)) < 1e-10
    assert np.allclose(block.posterior_covariance(), dense.posterior_covariance(),
                       rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lik", LIKS)
def test_ep_on_a_sparse_kinship_equals_the_dense_ep(lik):
    sp, de = models(lik, family_kinship())
    assert sp.lml() == pytest.approx(de.lml(), rel=1e-8)
    gs, gd = sp.gradient(), de.gradient()
    for key in ("beta", "scale", "delta"):
        assert rel(gs[key], gd[key]) < 1e-6, key
    assert rel(sp.posteriori_mean(), de.posteriori_mean()) < 1e-8
    assert rel(sp.site.tau, de.site.tau) < 1e-8


@pytest.mark.parametrize("lik", LIKS)
def test_fit_and_scan_on_a_sparse_kinship_equal_the_dense_ones(lik):
    sp, de = models(lik, family_kinship())
    for m in (sp, de):
        m.fit(verbose=False)
    assert sp.lml() == pytest.approx(de.lml(), rel=1e-8)
    assert sp.scale == pytest.approx(de.scale, rel=1e-5)
    assert sp.delta == pytest.approx(de.delta, rel=1e-5, abs=1e-8)
    assert rel(sp.beta, de.beta) < 1e-5
    ns, nd = sp.to_normal(), de.to_normal()
    assert rel(ns.beta_covariance(), nd.beta_covariance()) < 1e-8
    G = np.random.default_rng(7).binomial(2, 0.3, size=(sp._n, 12)).astype(float)
    for get in ("get_fixed_scale_scanner", "get_fast_scanner"):
        rs, rd = getattr(ns, get)().fast_scan(G), getattr(nd, get)().fast_scan(G)
        for key in ("lml", "lrt", "effsizes0", "effsizes0_se", "effsizes1", "effsizes1_se",
                    "scale"):
            assert rel(rs[key], rd[key]) < 1e-8, (get, key)
    if lik in ("bernoulli", "probit", "binomial"):
        y = sp.likelihood.y
        trials = sp.likelihood.ntrials if lik == "binomial" else None
        r = ns.get_fixed_scale_scanner().fast_scan(G)
        z = r["effsizes1"] / r["effsizes1_se"]
        ps = spa_pvalues(spa_null(sp.posteriori_mean(), sp.X, lik, trials, y), G, z)[0]
        pd = spa_pvalues(spa_null(de.posteriori_mean(), de.X, lik, trials, y), G, z)[0]
        assert rel(ps, pd) < 1e-8


def test_a_block_read_in_the_family_order_gives_the_same_scan_and_saddlepoint():
    """The scan reads genotypes in the scanner's row order (``ordered=True``, no gather):
    every scanner column and the saddlepoint p-values equal those of the block in the
    samples' order, and the dense kinship has no row order of its own."""
    sp, de = models("bernoulli", family_kinship(sizes=SIZES * 3, seed=2))
    ns = sp.to_normal()
    scanner = ns.get_fixed_scale_scanner()
    order = scanner.row_order
    assert sorted(order) == list(range(sp._n)) and not np.array_equal(order, np.arange(sp._n))
    assert de.to_normal().get_fixed_scale_scanner().row_order is None
    rng = np.random.default_rng(8)
    G = np.asfortranarray(rng.binomial(2, 0.3, size=(sp._n, 9)).astype(float))
    r0 = scanner.fast_scan(G)
    r1 = scanner.fast_scan(np.asfortranarray(G[order]), ordered=True)
    for key in ("lrt", "effsizes0", "effsizes1", "effsizes1_se"):
        np.testing.assert_allclose(r1[key], r0[key], rtol=1e-12, err_msg=key)
    np.testing.assert_allclose(scanner.whiten(G[order], ordered=True), scanner.whiten(G),
                               rtol=0, atol=1e-13)
    y = sp.likelihood.y
    null = spa_null(sp.posteriori_mean(), sp.X, "bernoulli", None, y)
    z = r0["effsizes1"] / r0["effsizes1_se"] * 3  # far enough out for the saddlepoint
    lp0, used0 = spa_pvalues(null, G, z, cutoff=0.0)
    lp1, used1 = spa_pvalues(null.permuted(order), G[order], z, cutoff=0.0)
    assert np.array_equal(used0, used1) and used0.any()
    np.testing.assert_allclose(lp1, lp0, rtol=1e-9)


def test_the_lmm_on_a_sparse_kinship_equals_the_dense_one():
    K = family_kinship()
    n = K.shape[0]
    rng = np.random.default_rng(4)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    L = np.linalg.cholesky(0.6 * K.toarray() + 0.4 * np.eye(n))
    y = X @ [1.0, 0.5] + L @ rng.normal(size=n)

    for restricted in (False, True):
        a = LMM(y, X, K=K, restricted=restricted)
        b = LMM(y, X, economic_qs(K.toarray()), restricted=restricted)
        a.fit()
        b.fit()
        assert a.lml() == pytest.approx(b.lml(), rel=1e-9)
        assert a.delta == pytest.approx(b.delta, rel=1e-6)
        assert rel(a.beta, b.beta) < 1e-6
        G = rng.binomial(2, 0.4, size=(n, 5)).astype(float)
        ra, rb = a.get_fast_scanner().fast_scan(G), b.get_fast_scanner().fast_scan(G)
        assert rel(ra["lrt"], rb["lrt"]) < 1e-6 and rel(ra["effsizes1"], rb["effsizes1"]) < 1e-6


def test_block_diagonal_ep_is_independent_ep_per_family():
    sizes = (3, 2, 4, 1)
    K = sparse.block_diag([family_kinship((b,), seed=b).toarray() for b in sizes]).tocsr()
    n = K.shape[0]
    y = outcome("bernoulli", n, seed=8)
    X = np.ones((n, 1))
    tol = {"n_int": 256, "rtol": 1e-11, "atol": 1e-13}  # each EP to its own convergence
    whole = GLMMExpFam(y, "bernoulli", X, K=K, **tol)
    whole.beta, whole.scale = [0.1], 1.3
    parts, lo = [], 0
    for b in sizes:
        s = slice(lo, lo + b)
        m = GLMMExpFam(y[s], "bernoulli", X[s], K=K[s, s].toarray(), **tol)
        m.beta, m.scale = [0.1], 1.3
        parts.append(m)
        lo += b
    assert whole.lml() == pytest.approx(sum(m.lml() for m in parts), rel=1e-12)
    each = np.concatenate([m.posteriori_mean() for m in parts])
    assert rel(whole.posteriori_mean(), each) < 1e-9


def test_all_singletons_without_kinship_variance_is_the_glm():
    """v0 = 0 and v1 -> 0: the EP marginal likelihood is the GLM log-likelihood."""
    n = 30
    K = sparse.identity(n, format="csr")
    X = np.column_stack([np.ones(n), np.linspace(-1, 1, n)])
    beta = np.array([0.3, -0.7])
    eta = X @ beta
    cases = {"bernoulli": outcome("bernoulli", n), "probit": outcome("probit", n),
             "poisson": outcome("poisson", n)}
    for lik, y in cases.items():
        m = GLMMExpFam(y, lik, X, K=K, n_int=256)
        m.beta = beta
        m.delta, m.scale = 1.0, 1e-10
        if lik == "bernoulli":
            ll = np.sum(y * eta - np.logaddexp(0, eta))
        elif lik == "probit":
            ll = np.sum(np.where(y > 0, log_ndtr(eta), log_ndtr(-eta)))
        else:
            ll = np.sum(y * eta - np.exp(eta) - gammaln(y + 1))
        assert m.lml() == pytest.approx(ll, rel=1e-6), lik


def test_permuting_the_samples_changes_nothing():
    K = family_kinship()
    n = K.shape[0]
    y = outcome("bernoulli", n)
    X = np.column_stack([np.ones(n), np.arange(n) / n])
    p = np.random.default_rng(9).permutation(n)
    a = GLMMExpFam(y, "bernoulli", X, K=K, n_int=256)
    b = GLMMExpFam(y[p], "bernoulli", X[p], K=K[p][:, p], n_int=256)
    for m in (a, b):
        m.beta, m.scale = [0.1, 0.2], 0.9
    assert a.lml() == pytest.approx(b.lml(), rel=1e-11)
    assert rel(a.posteriori_mean()[p], b.posteriori_mean()) < 1e-10


def test_glmm_normal_takes_a_sparse_kinship():
    K = family_kinship()
    n = K.shape[0]
    rng = np.random.default_rng(11)
    eta, tau = rng.normal(size=n), rng.gamma(2.0, 1.0, n)
    X = np.ones((n, 1))
    a = GLMMNormal(eta, tau, X, K=K)
    b = GLMMNormal(eta, tau, X, K=K.toarray())
    for m in (a, b):
        m.scale, m.delta = 0.7, 0.2
        m.fit(verbose=False)
    assert a.lml() == pytest.approx(b.lml(), rel=1e-9)
    assert a.scale == pytest.approx(b.scale, rel=1e-5)


def test_a_family_above_the_cap_is_a_clear_error():
    K = family_kinship((1, 7, 2))
    with pytest.raises(ValueError, match=r"family \(connected component\) of 7 samples, above "
                                         r"the block cap 5"):
        BlockKinship(K, max_block=5)
    with pytest.raises(ValueError, match="symmetric"):
        BlockKinship(sparse.csr_matrix(np.triu(K.toarray())))


# -- low rank ---------------------------------------------------------------------------


def low_rank_qs(n=40, r=5, seed=12):
    """``QS`` of ``K = G G^T / r`` for a standardised G (n x r): rank r < n/2."""
    G = np.random.default_rng(seed).normal(size=(n, r))
    G = (G - G.mean(axis=0)) / G.std(axis=0)
    from glimix_cli.model.linalg import economic_qs_linear

    QS = economic_qs_linear(G / np.sqrt(r))
    K = G @ G.T / r
    return QS, (K + K.T) / 2


@pytest.mark.parametrize("v1", [0.0, 0.3])
def test_low_rank_core_equals_the_dense_core(v1):
    from glimix_cli.model.covariance import LowRankKinship

    QS, K = low_rank_qs()
    n = K.shape[0]
    kin = as_kinship(n, QS=QS)
    assert isinstance(kin, LowRankKinship) and kin.r == 5
    rng = np.random.default_rng(13)
    tau = rng.gamma(2.0, 0.5, n)
    tau[[1, 7]] = 0.0
    tau[3] = 1e-13
    v0 = 0.8
    low = kin.prior(v0, v1).core(tau)
    dense = DenseCore(v0 * K + v1 * np.eye(n), tau)
    assert low.logdet_B == pytest.approx(dense.logdet_B, rel=1e-11)
    assert rel(low.diag_Binv, dense.diag_Binv) < 1e-11
    x, M = rng.normal(size=n), rng.normal(size=(n, 3))
    assert rel(low.solve_B(x), dense.solve_B(x)) < 1e-10
    assert rel(low.solve_C(M), dense.solve_C(M)) < 1e-10
    assert low.tr_Cinv() == pytest.approx(dense.tr_Cinv(), rel=1e-11)
    assert low.tr_Cinv_Sigma() == pytest.approx(dense.tr_Cinv_Sigma(), rel=1e-11)
    assert low.tr_Cinv_K() == pytest.approx(dense.tr_Cinv_M(K), rel=1e-10)
    assert rel(low.posterior_diag(), dense.posterior_diag()) < 1e-8
    assert rel(low.posterior_apply(x), dense.posterior_apply(x)) < 1e-9
    assert np.allclose(low.posterior_covariance(), dense.posterior_covariance(), rtol=1e-9,
                       atol=1e-12)
    assert np.allclose(kin.matvec(M), K @ M, atol=1e-12)
    assert np.allclose(kin.diag(), np.diag(K), atol=1e-12)
    d = rng.gamma(2.0, 1.0, n)
    W = kin.whitener(v0, v1 + 0.1, d).whiten(M)
    C = v0 * K + (v1 + 0.1) * np.eye(n) + np.diag(d)
    assert np.allclose(W.T @ W, M.T @ np.linalg.solve(C, M), rtol=1e-10)
    assert kin.whitener(v0, v1 + 0.1, d).logdet == pytest.approx(np.linalg.slogdet(C)[1],
                                                                rel=1e-11)


@pytest.mark.parametrize("lik", LIKS)
def test_ep_fit_and_scan_on_a_low_rank_kinship_equal_the_dense_ones(lik):
    QS, K = low_rank_qs()
    n = K.shape[0]
    data = outcome(lik, n, seed=14)
    y, s = (data[0], ("binomial", data[1])) if lik == "binomial" else (data, lik)
    X = np.column_stack([np.ones(n), np.random.default_rng(5).normal(size=n)])
    low = GLMMExpFam(y, s, X, QS, n_int=256)
    dense = GLMMExpFam(y, s, X, K=K, n_int=256)
    for m in (low, dense):
        m.beta, m.scale, m.delta = [0.2, -0.1], 0.9, 0.3
    assert low.lml() == pytest.approx(dense.lml(), rel=1e-8)
    gl, gd = low.gradient(), dense.gradient()
    for key in ("beta", "scale", "delta"):
        assert rel(gl[key], gd[key]) < 1e-6, key
    assert rel(low.posteriori_mean(), dense.posteriori_mean()) < 1e-8
    for m in (low, dense):
        m.fit(verbose=False)
    assert low.lml() == pytest.approx(dense.lml(), rel=1e-8)
    assert low.scale == pytest.approx(dense.scale, rel=1e-5)
    nl, nd = low.to_normal(), dense.to_normal()
    assert rel(nl.beta_covariance(), nd.beta_covariance()) < 1e-8
    G = np.random.default_rng(15).binomial(2, 0.3, size=(n, 9)).astype(float)
    for get in ("get_fixed_scale_scanner", "get_fast_scanner"):
        rl, rd = getattr(nl, get)().fast_scan(G), getattr(nd, get)().fast_scan(G)
        for key in ("lml", "lrt", "effsizes1", "effsizes1_se", "effsizes0"):
            assert rel(rl[key], rd[key]) < 1e-8, (get, key)


def test_the_low_rank_lmm_and_scanner_never_need_the_dense_covariance():
    from glimix_cli.model.scanner import FastScanner

    QS, K = low_rank_qs(n=60, r=6)
    n = K.shape[0]
    rng = np.random.default_rng(16)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = X @ [0.5, 1.0] + np.linalg.cholesky(0.5 * K + 0.5 * np.eye(n) + 1e-12 * np.eye(n)) \
        @ rng.normal(size=n)
    G = rng.binomial(2, 0.4, size=(n, 6)).astype(float)
    lmm = LMM(y, X, QS, restricted=True)
    lmm.fit()
    d = lmm.delta
    ref = FastScanner.from_covariance(y, X, (1 - d) * K + d * np.eye(n)).fast_scan(G)
    got = lmm.get_fast_scanner().fast_scan(G)
    for key in ("lml", "lrt", "effsizes1", "effsizes1_se"):
        assert rel(got[key], ref[key]) < 1e-8, key
    a = FastScanner(y, X, QS, 0.7).fast_scan(G)
    b = FastScanner.from_covariance(y, X, K + 0.7 * np.eye(n)).fast_scan(G)
    assert rel(a["lrt"], b["lrt"]) < 1e-8 and rel(a["lml"], b["lml"]) < 1e-10


@pytest.mark.slow
def test_a_low_rank_kinship_runs_where_the_dense_one_would_not_fit_in_memory():
    """n = 60,000, r = 500: the dense n x n would be 28.8 GB (more than this machine has);
    the low-rank EP, its gradient and a scan block stay within 1.5 GB of allocations."""
    import tracemalloc

    from glimix_cli.model.linalg import economic_qs_linear

    n, r = 60_000, 500
    rng = np.random.default_rng(17)
    G = rng.normal(size=(n, r))
    G = (G - G.mean(axis=0)) / (G.std(axis=0) * np.sqrt(r))
    y = (rng.random(n) < expit(-1.5 + G @ rng.normal(size=r) * 0.7)).astype(float)
    QS = economic_qs_linear(G, return_q1=False)  # Q1 would be n x (n - r)
    del G
    X = np.ones((n, 1))
    tracemalloc.start()
    try:
        m = GLMMExpFam(y, "bernoulli", X, QS, n_int=256)
        m.beta, m.scale = [-1.5], 0.5
        lml = m.lml()
        grad = m.gradient()
        res = m.to_normal().get_fixed_scale_scanner().fast_scan(
            rng.binomial(2, 0.3, size=(n, 64)).astype(float))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert type(m._kin).__name__ == "LowRankKinship"
    assert np.isfinite(lml) and np.isfinite(grad["scale"])
    assert np.all(np.isfinite(res["lrt"]))
    assert peak < 1.5e9, f"peak allocations {peak / 1e9:.2f} GB"
