"""GLMMExpFam / GLMMNormal / LMM / FastScanner against independent references.

References: 1-D quadrature (EP is exact for n = 1), central differences of lml, dense
O(n^3) Gaussian log densities and generalised least squares, ordinary least squares.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import multivariate_normal

from glimix_cli import LMM, FastScanner, GLMMExpFam, GLMMNormal, economic_qs
from glimix_cli.model.likelihoods import make_likelihood

LIKS = ["bernoulli", "probit", "poisson", "binomial"]


def problem(lik: str, n: int = 12, seed: int = 0, rank: int | None = None):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    G = rng.normal(size=(n, rank or 2 * n)) / np.sqrt(rank or 2 * n)
    K = G @ G.T
    z = X @ np.array([0.2, 0.5]) + rng.multivariate_normal(np.zeros(n), 0.5 * K + 0.2 * np.eye(n))
    if lik in ("bernoulli", "probit"):
        y = (z + rng.logistic(size=n) > 0).astype(float)
        spec = lik
    elif lik == "poisson":
        y = rng.poisson(np.exp(z)).astype(float)
        spec = lik
    else:
        nt = rng.integers(1, 15, size=n)
        y = rng.binomial(nt, 1 / (1 + np.exp(-z))).astype(float)
        spec = ("binomial", nt)
    return y, spec, X, K


@pytest.mark.parametrize("lik", LIKS)
def test_ep_is_exact_for_one_sample(lik):
    y, spec, _, _ = problem(lik, n=1, seed=3)
    X = np.array([[0.7]])
    k = 1.3
    glmm = GLMMExpFam(y, spec, X, economic_qs(np.array([[k]])), rtol=1e-12, atol=1e-14)
    glmm.beta = [0.4]
    glmm.scale = 1.7
    glmm.delta = 0.3
    m = 0.7 * 0.4
    var = glmm.v0 * k + glmm.v1
    L = make_likelihood(y, spec)

    def integrand(z):
        return np.exp(L.logpdf(np.array([z]))[0]) * np.exp(-0.5 * (z - m) ** 2 / var) / np.sqrt(
            2 * np.pi * var
        )

    ref = np.log(quad(integrand, m - 40 * np.sqrt(var), m + 40 * np.sqrt(var),
                      epsabs=0, epsrel=1e-13, limit=500)[0])
    assert glmm.lml() == pytest.approx(ref, rel=1e-7, abs=1e-9)


def central_diff(model, name: str, h: float = 1e-5):
    if name == "beta":
        b0 = model.beta
        out = []
        for j in range(b0.size):
            e = np.zeros_like(b0)
            e[j] = h
            model.beta = b0 + e
            up = model.lml()
            model.beta = b0 - e
            dn = model.lml()
            out.append((up - dn) / (2 * h))
        model.beta = b0
        return np.array(out)
    x0 = getattr(model, name)
    setattr(model, name, x0 + h)
    up = model.lml()
    setattr(model, name, x0 - h)
    dn = model.lml()
    setattr(model, name, x0)
    return (up - dn) / (2 * h)


@pytest.mark.parametrize("lik", LIKS)
def test_glmmexpfam_gradient_matches_central_differences(lik):
    y, spec, X, K = problem(lik, seed=1)
    glmm = GLMMExpFam(y, spec, X, economic_qs(K), rtol=1e-11, atol=1e-13)
    glmm.beta = [0.1, 0.3]
    glmm.scale = 0.9
    glmm.delta = 0.4
    g = glmm.gradient()
    for name in ("beta", "scale", "delta"):
        np.testing.assert_allclose(g[name], central_diff(glmm, name), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{lik}: d lml / d {name}")


def test_glmmnormal_gradient_and_lml_match_dense_formula():
    rng = np.random.default_rng(4)
    n = 15
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    G = rng.normal(size=(n, 6))
    K = G @ G.T / 6  # low rank on purpose
    tau = rng.uniform(0.2, 3.0, size=n)
    eta = rng.normal(size=n) * tau
    g = GLMMNormal(eta, tau, X, economic_qs(K))
    g.beta = [0.3, -0.2]
    g.scale = 1.4
    g.delta = 0.25
    C = g.v0 * K + g.v1 * np.eye(n) + np.diag(1 / tau)
    ref = multivariate_normal(X @ g.beta, C).logpdf(eta / tau)
    assert g.lml() == pytest.approx(ref, rel=1e-10)
    grad = g.gradient()
    for name in ("beta", "scale", "delta"):
        np.testing.assert_allclose(grad[name], central_diff(g, name), rtol=1e-6, atol=1e-8)


def test_glmmnormal_scanners_classic_rescales_and_fixed_scale_does_not():
    """get_fast_scanner: the classic statistic (overall scale re-estimated per candidate);
    get_fixed_scale_scanner: the covariance held fixed at scale 1 (glimix's scans)."""
    rng = np.random.default_rng(21)
    n = 30
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    G = rng.normal(size=(n, 10)) / np.sqrt(10)
    K = G @ G.T
    tau = rng.uniform(0.3, 2.0, size=n)
    eta = (rng.normal(size=n) * 0.6 + G[:, 0]) * tau
    g = GLMMNormal(eta, tau, X, K=K)
    g.scale, g.delta = 0.8, 0.3
    M = rng.binomial(2, 0.4, size=(n, 4)).astype(float)
    C = g.v0 * K + g.v1 * np.eye(n) + np.diag(1 / tau)
    Ci = np.linalg.inv(C)
    mu = eta / tau

    def lml(Z, scale_free):
        b = np.linalg.solve(Z.T @ Ci @ Z, Z.T @ Ci @ mu)
        r = mu - Z @ b
        s = r @ Ci @ r / n if scale_free else 1.0
        return multivariate_normal(Z @ b, s * C).logpdf(mu)

    classic = g.get_fast_scanner().fast_scan(M)
    fixed = g.get_fixed_scale_scanner().fast_scan(M)
    for j in range(M.shape[1]):
        Z = np.column_stack([X, M[:, j]])
        assert classic["lrt"][j] == pytest.approx(2 * (lml(Z, True) - lml(X, True)), rel=1e-8)
        assert fixed["lrt"][j] == pytest.approx(2 * (lml(Z, False) - lml(X, False)), rel=1e-8)
    assert not np.allclose(classic["scale"], 1.0)


@pytest.mark.parametrize("delta", [1 - 1e-6, 1 - 1e-10, 1 - 1e-14])
def test_delta_gradient_near_its_upper_bound_matches_the_dense_formula(delta):
    """d lml / d delta = scale (d_v1 - d_v0) with d_v0 = a'Ka/2 - tr(C^-1 K)/2, the trace
    from a dense inverse; the old (tr(C^-1 Sigma) - v1 tr(C^-1)) / v0 was 22% off at
    delta = 1 - 1e-14 by cancellation."""
    rng = np.random.default_rng(5)
    n = 25
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    G = rng.normal(size=(n, n))
    K = G @ G.T / n
    tau = rng.uniform(0.2, 3.0, size=n)
    eta = rng.normal(size=n) * tau
    g = GLMMNormal(eta, tau, X, K=K)
    g.beta = [0.3, -0.2]
    g.scale = 1.7
    g.delta = delta
    C = g.v0 * K + g.v1 * np.eye(n) + np.diag(1 / tau)
    Ci = np.linalg.inv(C)
    a = Ci @ (eta / tau - X @ g.beta)
    d_v0 = 0.5 * a @ K @ a - 0.5 * np.trace(Ci @ K)
    d_v1 = 0.5 * a @ a - 0.5 * np.trace(Ci)
    assert g.gradient()["delta"] == pytest.approx(g.scale * (d_v1 - d_v0), rel=1e-9)


@pytest.mark.parametrize("restricted", [False, True])
@pytest.mark.parametrize("rank", [None, 5])
def test_lmm_gradient_and_lml_match_dense_formula(restricted, rank):
    rng = np.random.default_rng(5)
    n = 20
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    G = rng.normal(size=(n, rank or 40))
    K = G @ G.T / G.shape[1]
    y = rng.normal(size=n) + G[:, 0]
    lmm = LMM(y, X, economic_qs(K), restricted=restricted)
    lmm.delta = 0.37
    V = (1 - lmm.delta) * K + lmm.delta * np.eye(n)
    Vi = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
    r = y - X @ beta
    p = X.shape[1]
    s = r @ Vi @ r / (n - p if restricted else n)
    ref = multivariate_normal(X @ beta, s * V).logpdf(y)
    if restricted:
        ref += 0.5 * p * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(X.T @ Vi @ X / s)[1]
        ref += 0.5 * np.linalg.slogdet(X.T @ X)[1]
    assert lmm.lml() == pytest.approx(ref, rel=1e-9)
    np.testing.assert_allclose(lmm.beta, beta, rtol=1e-9)
    assert lmm.gradient()["delta"] == pytest.approx(central_diff(lmm, "delta"), rel=1e-5)


def test_glmmnormal_with_huge_tau_equals_lmm():
    rng = np.random.default_rng(6)
    n = 25
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    G = rng.normal(size=(n, 50)) / np.sqrt(50)
    K = G @ G.T
    y = X @ [1.0, 0.5] + G @ rng.normal(size=50) + rng.normal(size=n)
    QS = economic_qs(K)
    lmm = LMM(y, X, QS)
    lmm.fit()
    tau = np.full(n, 1e10)
    g = GLMMNormal(y * tau, tau, X, QS)
    g.beta = lmm.beta
    g.scale = lmm.scale
    g.delta = lmm.delta
    assert g.lml() == pytest.approx(lmm.lml(), rel=1e-7)


def test_lmm_without_kinship_is_ordinary_least_squares():
    rng = np.random.default_rng(7)
    n = 40
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    y = rng.normal(size=n)
    lmm = LMM(y, X)
    lmm.fit()
    beta, rss = np.linalg.lstsq(X, y, rcond=None)[:2]
    np.testing.assert_allclose(lmm.beta, beta, rtol=1e-10)
    assert lmm.lml() == pytest.approx(-n / 2 * np.log(2 * np.pi * rss[0] / n) - n / 2)


def test_fast_scanner_without_kinship_gives_ols_effect_and_se():
    rng = np.random.default_rng(8)
    n, b = 60, 7
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    M = rng.binomial(2, 0.3, size=(n, b)).astype(float)
    y = rng.normal(size=n) + 0.4 * M[:, 2]
    res = FastScanner(y, X, None, 1.0).fast_scan(M)
    for j in range(b):
        Z = np.column_stack([X, M[:, j]])
        coef, rss = np.linalg.lstsq(Z, y, rcond=None)[:2]
        cov = rss[0] / (n - Z.shape[1]) * np.linalg.inv(Z.T @ Z)
        assert res["effsizes1"][j] == pytest.approx(coef[-1], rel=1e-9)
        assert res["effsizes1_se"][j] == pytest.approx(np.sqrt(cov[-1, -1]), rel=1e-9)
        np.testing.assert_allclose(res["effsizes0"][j], coef[:2], rtol=1e-9, atol=1e-12)


def test_fast_scan_second_positional_argument_is_verbose_as_in_the_classic_api():
    """``fast_scan(M, True)`` means verbose: it once meant "M is already whitened" and
    returned wrong statistics silently."""
    rng = np.random.default_rng(19)
    n = 40
    X = np.ones((n, 1))
    G = rng.normal(size=(n, 8)) / np.sqrt(8)
    M = rng.binomial(2, 0.3, size=(n, 3)).astype(float)
    sc = FastScanner(rng.normal(size=n) + G[:, 0], X, economic_qs(G @ G.T), 0.5)
    np.testing.assert_array_equal(sc.fast_scan(M, True)["lrt"], sc.fast_scan(M)["lrt"])
    np.testing.assert_allclose(sc.fast_scan(sc.whiten(M), whitened=True)["lrt"],
                               sc.fast_scan(M)["lrt"], rtol=1e-12)


def test_fast_scanner_matches_joint_scan_and_dense_gls():
    rng = np.random.default_rng(9)
    n, b = 30, 5
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    G = rng.normal(size=(n, 10)) / np.sqrt(10)
    K = G @ G.T
    M = rng.binomial(2, 0.4, size=(n, b)).astype(float)
    y = rng.normal(size=n) + G[:, 0]
    v = 0.6
    sc = FastScanner(y, X, economic_qs(K), v)
    res = sc.fast_scan(M)
    V = K + v * np.eye(n)
    Vi = np.linalg.inv(V)
    # null by dense GLS
    b0 = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ y)
    r0 = y - X @ b0
    s0 = r0 @ Vi @ r0 / n
    assert sc.null_lml() == pytest.approx(multivariate_normal(X @ b0, s0 * V).logpdf(y), rel=1e-10)
    for j in range(b):
        Z = np.column_stack([X, M[:, j]])
        coef = np.linalg.solve(Z.T @ Vi @ Z, Z.T @ Vi @ y)
        r = y - Z @ coef
        s1 = r @ Vi @ r / n
        lml1 = multivariate_normal(Z @ coef, s1 * V).logpdf(y)
        assert res["lml"][j] == pytest.approx(lml1, rel=1e-10)
        assert res["lrt"][j] == pytest.approx(2 * (lml1 - sc.null_lml()), rel=1e-7, abs=1e-9)
        assert res["effsizes1"][j] == pytest.approx(coef[-1], rel=1e-9)
        joint = sc.scan(M[:, [j]])
        assert joint["lml"] == pytest.approx(res["lml"][j], rel=1e-12)
        assert joint["effsizes1"][0] == pytest.approx(res["effsizes1"][j], rel=1e-10)
        assert joint["effsizes1_se"][0] == pytest.approx(res["effsizes1_se"][j], rel=1e-10)


def test_collinear_candidate_gets_nan_not_an_exception():
    rng = np.random.default_rng(10)
    n = 20
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    M = np.column_stack([np.full(n, 2.0), X[:, 1] * 3, rng.normal(size=n)])
    res = FastScanner(rng.normal(size=n), X, None, 1.0).fast_scan(M)
    assert res["collinear"].tolist() == [True, True, False]
    assert np.isnan(res["lrt"][:2]).all() and np.isfinite(res["lrt"][2])


@pytest.mark.parametrize("lik", ["bernoulli", "poisson"])
def test_low_rank_and_full_rank_qs_give_the_same_lml(lik):
    rng = np.random.default_rng(11)
    n = 14
    y, spec, X, _ = problem(lik, n=n, seed=2)
    G = rng.normal(size=(n, 4))
    K = G @ G.T
    (Q0, Q1), S0 = economic_qs(K)
    assert S0.size == 4
    # full-rank description of the same K: all eigenvectors, zero eigenvalues kept
    w, Q = np.linalg.eigh(K)
    w = np.clip(w, 0, None)
    full = ((Q, np.empty((n, 0))), w)
    a = GLMMExpFam(y, spec, X, ((Q0, Q1), S0), rtol=1e-10)
    b = GLMMExpFam(y, spec, X, full, rtol=1e-10)
    for m in (a, b):
        m.scale, m.delta = 1.3, 0.2
    assert a.lml() == pytest.approx(b.lml(), rel=1e-8)
    la, lb = LMM(y, X, ((Q0, Q1), S0)), LMM(y, X, full)
    la.delta = lb.delta = 0.3
    assert la.lml() == pytest.approx(lb.lml(), rel=1e-8)


def test_perfect_separation_drives_the_likelihood_to_one():
    """A covariate that separates cases from controls: the fit converges with the slope
    running off (the logistic MLE does not exist) and the likelihood tends to 1."""
    n = 30
    x = np.linspace(-1, 1, n)
    X = np.column_stack([np.ones(n), x])
    y = (x > 0).astype(float)
    glmm = GLMMExpFam(y, "bernoulli", X, economic_qs(np.eye(n) * 0.5 + 0.5))
    glmm.fit(verbose=False)
    assert glmm.fit_info is not None and glmm.fit_info.status in ("converged", "at_bound")
    assert -1e-3 < glmm.lml() < 0
    assert glmm.beta[1] > 50 and abs(glmm.beta[0]) < 1


def test_all_zero_poisson_and_single_level_binary_fit_the_degenerate_limit():
    """All outcomes 0 (Poisson) or all 1 (Bernoulli): the intercept runs off to -/+
    infinity and the likelihood to 1; the fit must get there, finite, not stop early."""
    n = 20
    rng = np.random.default_rng(12)
    X = np.ones((n, 1))
    G = rng.normal(size=(n, 30))
    QS = economic_qs(G @ G.T / 30)
    for y, lik, sign in ((np.zeros(n), "poisson", -1), (np.ones(n), "bernoulli", 1)):
        glmm = GLMMExpFam(y, lik, X, QS)
        glmm.fit(verbose=False)
        assert glmm.fit_info.status in ("converged", "at_bound")
        assert -1e-4 < glmm.lml() < 0
        assert sign * glmm.beta[0] > 10


def test_ill_conditioned_kinship_gives_the_rank_one_answer():
    """K = g g' + 1e-12 I is numerically rank one: the same lml as the exact rank-one QS."""
    rng = np.random.default_rng(13)
    n = 25
    g = rng.normal(size=(n, 1))
    K = g @ g.T + 1e-12 * np.eye(n)
    y, spec, X, _ = problem("bernoulli", n=n, seed=5)
    a = GLMMExpFam(y, spec, X, economic_qs(K))
    a.scale, a.delta = 0.7, 0.4
    b = GLMMExpFam(y, spec, X, economic_qs(g @ g.T))
    b.scale, b.delta = 0.7, 0.4
    assert np.isfinite(a.lml())
    assert a.lml() == pytest.approx(b.lml(), rel=1e-7)
    a.fit(verbose=False)
    assert np.isfinite(a.lml()) and a.lml() >= b.lml() - 1e-9


def test_small_n_int_is_rejected_with_advice():
    y, spec, X, K = problem("bernoulli")
    with pytest.raises(ValueError, match="n_int=10 is too small"):
        GLMMExpFam(y, spec, X, economic_qs(K), n_int=10)


def test_ep_sites_hand_off_to_glmmnormal_with_same_parameters():
    y, spec, X, K = problem("poisson", n=20, seed=7)
    QS = economic_qs(K)
    glmm = GLMMExpFam(y, spec, X, QS)
    glmm.fit(verbose=False)
    normal = glmm.to_normal()
    assert normal.scale == glmm.scale and normal.delta == glmm.delta
    site = glmm.site
    np.testing.assert_allclose(normal.eta / normal.tau, site.eta / site.tau)
    # at an EP fixed point the surrogate's gradient is the EP gradient; compare it away
    # from the optimum (after fit() the beta gradient is 0 on both sides by construction)
    glmm.beta = np.asarray(glmm.beta) + [0.3, -0.2]
    glmm.scale = glmm.scale * 1.5 + 0.1
    glmm.delta = 0.4
    normal = glmm.to_normal()
    gn, ge = normal.gradient(), glmm.gradient()
    assert np.abs(ge["beta"]).max() > 0.1 and abs(ge["scale"]) > 1e-3
    for name in ("beta", "scale", "delta"):
        np.testing.assert_allclose(gn[name], ge[name], rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(ge[name], central_diff(glmm, name), rtol=1e-4, atol=1e-6)


def test_posterior_moments_match_dense_formula():
    y, spec, X, K = problem("probit", n=10, seed=8)
    glmm = GLMMExpFam(y, spec, X, economic_qs(K), rtol=1e-10)
    glmm.beta = [0.1, 0.2]
    site = glmm.site
    Sigma = glmm.covariance()
    P = np.linalg.inv(np.linalg.inv(Sigma) + np.diag(site.tau))
    mu = P @ (np.linalg.solve(Sigma, glmm.mean()) + site.eta)
    np.testing.assert_allclose(glmm.posteriori_covariance(), P, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(glmm.posteriori_mean(), mu, rtol=1e-8, atol=1e-12)


def test_fixed_scale_scanner_is_the_known_covariance_lrt():
    rng = np.random.default_rng(14)
    n, b = 25, 4
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    A = rng.normal(size=(n, n))
    C = A @ A.T / n + np.eye(n)
    M = rng.normal(size=(n, b))
    y = rng.normal(size=n)
    sc = FastScanner.from_covariance(y, X, C, fixed_scale=1.0)
    res = sc.fast_scan(M)
    Ci = np.linalg.inv(C)
    b0 = np.linalg.solve(X.T @ Ci @ X, X.T @ Ci @ y)
    lml0 = multivariate_normal(X @ b0, C).logpdf(y)
    assert sc.null_lml() == pytest.approx(lml0, rel=1e-10)
    for j in range(b):
        Z = np.column_stack([X, M[:, j]])
        V = np.linalg.inv(Z.T @ Ci @ Z)
        coef = V @ Z.T @ Ci @ y
        lml1 = multivariate_normal(Z @ coef, C).logpdf(y)
        assert res["lrt"][j] == pytest.approx(2 * (lml1 - lml0), rel=1e-8)
        assert res["effsizes1_se"][j] == pytest.approx(np.sqrt(V[-1, -1]), rel=1e-9)
        assert sc.scan(M[:, [j]])["lml"] == pytest.approx(lml1, rel=1e-10)


@pytest.mark.parametrize(("lik", "fix_delta"), [("bernoulli", True), ("probit", True),
                                                ("poisson", False), ("binomial", False)])
def test_fit_reaches_the_maximum_found_by_a_derivative_free_search(lik, fix_delta):
    """fit() profiles beta inside EP and searches the variance parameters (a 1-D root
    finder when only the scale is free, L-BFGS-B otherwise). References: Nelder-Mead on the
    plain EP lml over every free parameter jointly, from two other starts, must not do
    better; and central differences of the plain lml vanish at the fit."""
    from scipy.optimize import minimize

    y, spec, X, K = problem(lik, n=30, seed=22)
    QS = economic_qs(K)
    glmm = GLMMExpFam(y, spec, X, QS, n_int=256, rtol=1e-10, atol=1e-12)
    if fix_delta:
        glmm.delta = 0.0
        glmm.fix("delta")
    glmm.fit(verbose=False)
    info = glmm.fit_info
    assert info.status == "converged" or info.at_bound == ("delta",)
    assert 0.05 < glmm.scale < 100  # an interior optimum

    ref = GLMMExpFam(y, spec, X, QS, n_int=256, rtol=1e-10, atol=1e-12)
    ref.delta = 0.0

    def neg(x):
        ref.beta = x[:2]
        ref.scale = float(np.exp(np.clip(x[2], np.log(1e-8), np.log(1e3))))
        if not fix_delta:
            ref.delta = float(np.clip(x[3], 0.0, 1.0))
        return -ref.lml()

    best = np.inf
    for start in ([0.0, 0.0, np.log(2.0), 0.5], [0.5, -0.5, np.log(0.2), 0.2]):
        x0 = start[:3] if fix_delta else start
        res = minimize(neg, x0, method="Nelder-Mead",
                       options={"xatol": 1e-6, "fatol": 1e-10, "maxfev": 4000})
        best = min(best, res.fun)
    assert glmm.lml() >= -best - 1e-7
    assert glmm.lml() == pytest.approx(-best, abs=1e-4)
    for name in ("beta", "scale") + (() if fix_delta else ("delta",)):
        step = 1e-4 if name != "scale" else 1e-4 * glmm.scale
        if name == "delta" and not step < glmm.delta < 1 - step:
            continue  # on the boundary: no two-sided difference
        np.testing.assert_allclose(central_diff(glmm, name, step), 0.0, atol=1e-4,
                                   err_msg=f"{lik}: d lml / d {name} at the fit")


def test_fit_reports_the_lower_bound_when_relatives_are_anticorrelated():
    """Pairs of relatives (kinship 0.5) where every pair has one case and one control: the
    trait is less alike within pairs than any v0 >= 0 predicts, the lml falls with v0
    (checked on a grid), and the fit walks to the lower bound and says so."""
    n = 60
    X = np.ones((n, 1))
    K = np.kron(np.eye(n // 2), np.array([[1.0, 0.5], [0.5, 1.0]]))
    y = np.tile([1.0, 0.0], n // 2)
    glmm = GLMMExpFam(y, "bernoulli", X, K=K)
    glmm.delta = 0.0
    glmm.fix("delta")
    glmm.fit(verbose=False)
    info = glmm.fit_info
    assert info.status == "at_bound" and info.at_bound == ("scale",)
    assert glmm.scale == pytest.approx(1e-8)
    best = glmm.lml()
    grid = GLMMExpFam(y, "bernoulli", X, K=K)
    grid.delta = 0.0
    values = []
    for s in (1e-6, 1e-3, 0.1, 1.0):
        grid.scale = s
        values.append(grid.lml())
    assert np.all(np.diff(values) < 0) and best >= values[0] - 1e-9
