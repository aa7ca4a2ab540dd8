"""LOCO null models: the warm start changes where EP starts, not the fit; the GLM route
has nothing to leave out; block contexts are made once and dropped after their last block."""

from __future__ import annotations

import numpy as np
import pytest

from glimix_cli.model.glmm import GLMMExpFam
from glimix_cli.pipeline.kinship import Kinship
from glimix_cli.pipeline.loco import LocoKinship, LocoNulls
from glimix_cli.pipeline.null import NullModel, fit_null_arrays
from glimix_cli.pipeline.scan import BlockContexts


def _family_problem(seed: int = 1, n: int = 120):
    rng = np.random.default_rng(seed)
    G = rng.binomial(2, 0.3, size=(n, 400)).astype(float)
    Z = (G - G.mean(0)) / G.std(0)
    K = Z @ Z.T / Z.shape[1]
    fam = np.repeat(np.arange(n // 4), 4)
    K += 0.5 * (fam[:, None] == fam[None, :])
    K /= np.mean(np.diag(K))
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    L = np.linalg.cholesky(K + 1e-9 * np.eye(n))
    z = X @ [-0.3, 0.5] + L @ rng.normal(size=n) * 1.2
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    return y, X, K


def test_warm_start_changes_where_ep_starts_not_the_fit() -> None:
    y, X, K = _family_problem()
    cold = fit_null_arrays(y, None, X, ["intercept", "x"], Kinship(K, None, "t"), "bernoulli",
                           binary_null="glmm")
    K2 = 0.9 * K + 0.1 * np.eye(y.size)  # a nearby kinship, as K_-c is to K
    a = fit_null_arrays(y, None, X, ["intercept", "x"], Kinship(K2, None, "t"), "bernoulli",
                        binary_null="glmm")
    b = fit_null_arrays(y, None, X, ["intercept", "x"], Kinship(K2, None, "t"), "bernoulli",
                        binary_null="glmm", start=cold)
    assert b.ep_sweeps < a.ep_sweeps
    np.testing.assert_allclose(b.v0, a.v0, rtol=1e-4)
    np.testing.assert_allclose(b.lml, a.lml, rtol=1e-8)
    np.testing.assert_allclose(b.beta, a.beta, rtol=1e-4, atol=1e-6)


def test_warm_start_checks_shapes() -> None:
    y, X, K = _family_problem(n=40)
    g = GLMMExpFam(y, "bernoulli", X, K=K)
    with pytest.raises(ValueError, match="shape \\(40,\\)"):
        g.warm_start(np.zeros(3), np.zeros(3))


def _null(route: str) -> NullModel:
    return NullModel("bernoulli", 4, ["intercept"], [0.0], [1.0], 0.0, 0.0, 0.0, 0.0, 0.0,
                     0.0, -1.0, "converged", "", 0, 0, 0, 0.0, route=route)


def test_glm_route_has_nothing_to_leave_out() -> None:
    kin = Kinship(np.eye(4), None, "t")
    kin.loco = LocoKinship({"1": 5, "2": 5}, 10, lambda c: pytest.fail("no LOCO kinship"), kin)
    whole = _null("glm")
    nulls = LocoNulls(None, kin, whole, "bernoulli")  # type: ignore[arg-type]
    assert not nulls.active and nulls.null("1") is whole
    assert "no kinship term" in nulls.summary()["note"]


def test_block_contexts_are_made_once_and_dropped_after_their_last_block() -> None:
    made, dropped = [], []
    bc = BlockContexts(["1", "1", "2", "2", "2", "3"], lambda k: made.append(k) or k,
                       dropped.append)
    seen = []
    for b in range(6):
        seen.append(bc.get(b))
        assert bc.done(b) == (b in (1, 4, 5))
    assert seen == ["1", "1", "2", "2", "2", "3"]
    assert made == ["1", "2", "3"] and dropped == ["1", "2", "3"]
