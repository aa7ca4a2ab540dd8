"""Per-variant binary GLMs (model/glm.py) and the GLM score test (spa.glm_score).

References are earned independently: the log-likelihood written out in full and maximised
by scipy's general-purpose optimiser, the information matrix by finite differences of the
score, and the covariate-adjusted score test from the full information matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, log_expit, log_ndtr, ndtr

from glimix_cli.model import glm
from glimix_cli.model.spa import glm_score, spa_null


def _data(seed: int, n: int = 400, k: int = 4, frac: float = 0.3, link: str = "logit"):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.binomial(1, 0.4, n)])
    G = rng.binomial(2, rng.uniform(0.05, 0.5, k), size=(n, k)).astype(float)
    eta = -1.0 + 0.4 * X[:, 1] - 0.3 * X[:, 2] + 0.9 * (G[:, 0] - G[:, 0].mean())
    h = expit if link == "logit" else ndtr
    y = (rng.random(n) < h(eta + np.log(frac / (1 - frac)) + 1.0)).astype(float)
    return y, X, G


def _loglik(theta, Z, y, link):
    eta = Z @ theta
    s = 2 * y - 1
    return float(np.sum(log_expit(s * eta) if link == "logit" else log_ndtr(s * eta)))


def _fisher(theta, Z, link):
    eta = Z @ theta
    if link == "logit":
        w = expit(eta) * expit(-eta)
    else:
        phi = np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi)
        w = phi**2 / (ndtr(eta) * ndtr(-eta))
    return Z.T @ (w[:, None] * Z)


def _brute(Z, y, link, firth=False, fixed_last=False):
    """Maximise the (penalised) log-likelihood with BFGS; with ``fixed_last`` the last
    coefficient stays 0 (the penalty still uses the full design)."""
    q = Z.shape[1]

    def obj(t):
        th = np.append(t, 0.0) if fixed_last else t
        v = _loglik(th, Z, y, link)
        if firth:
            v += 0.5 * np.linalg.slogdet(_fisher(th, Z, link))[1]
        return -v

    x0 = np.zeros(q - 1 if fixed_last else q)
    res = minimize(obj, x0, method="BFGS", options={"gtol": 1e-9, "maxiter": 10_000})
    th = np.append(res.x, 0.0) if fixed_last else res.x
    return th, -res.fun


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_fit_variants_equals_brute_force_ml(link):
    y, X, G = _data(1, link=link)
    fit = glm.fit_variants(y, X, G, link)
    b0, ll0 = _brute(X, y, link)
    nb, nll, ok = glm.fit_null(y, X, link)
    assert ok and nll == pytest.approx(ll0, abs=1e-7)
    np.testing.assert_allclose(nb, b0, atol=1e-5)
    assert fit.converged.all()
    for j in range(G.shape[1]):
        Z = np.column_stack([X, G[:, j]])
        th, ll = _brute(Z, y, link)
        assert fit.beta[j] == pytest.approx(th[-1], abs=1e-5)
        assert fit.lrt[j] == pytest.approx(2 * (ll - ll0), abs=1e-6)
        # Wald SE from the inverse expected information at the estimate
        se = np.sqrt(np.linalg.inv(_fisher(th, Z, link))[-1, -1])
        assert fit.se[j] == pytest.approx(se, rel=1e-5)
    assert fit.lrt[0] > 10  # the planted variant


def test_firth_equals_brute_force_penalised_ml_and_survives_separation():
    y, X, G = _data(2, n=200, frac=0.15)
    # a rare variant carried by controls only: the logistic MLE runs off to -infinity
    g = np.zeros(y.size)
    g[np.flatnonzero(y == 0)[:6]] = 1.0
    G = np.column_stack([G[:, :2], g])
    plain = glm.fit_variants(y, X, G, "logit")
    assert not plain.converged[2] or abs(plain.beta[2]) > 10
    fit = glm.fit_variants(y, X, G, "logit", firth=True)
    assert fit.converged.all() and np.isfinite(fit.beta).all()
    for j in range(G.shape[1]):
        Z = np.column_stack([X, G[:, j]])
        th, ll = _brute(Z, y, "logit", firth=True)
        th0, ll0 = _brute(Z, y, "logit", firth=True, fixed_last=True)
        assert fit.beta[j] == pytest.approx(th[-1], abs=1e-4)
        assert fit.lrt[j] == pytest.approx(2 * (ll - ll0), abs=1e-5)
    assert -5 < fit.beta[2] < 0


def test_firth_is_logit_only():
    y, X, G = _data(3)
    with pytest.raises(ValueError, match="logit link only"):
        glm.fit_variants(y, X, G, "probit", firth=True)


@pytest.mark.parametrize("link,lik", [("logit", "bernoulli"), ("probit", "probit")])
def test_glm_score_is_the_expected_information_score_test(link, lik):
    y, X, G = _data(4, link=link)
    b0, _ = _brute(X, y, link)
    null = spa_null(X @ b0, X, lik, y=y)
    S, V = glm_score(null, G)
    for j in range(G.shape[1]):
        Z = np.column_stack([X, G[:, j]])
        th = np.append(b0, 0.0)
        # score by central differences of the log-likelihood in the variant's coefficient
        e = np.zeros(Z.shape[1])
        e[-1] = 1e-5
        u = (_loglik(th + e, Z, y, link) - _loglik(th - e, Z, y, link)) / 2e-5
        Info = _fisher(th, Z, link)
        v = Info[-1, -1] - Info[-1, :-1] @ np.linalg.solve(Info[:-1, :-1], Info[:-1, -1])
        assert S[j] == pytest.approx(u, rel=1e-5, abs=1e-6)
        assert V[j] == pytest.approx(v, rel=1e-8)
