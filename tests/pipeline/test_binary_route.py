"""The null route of 0/1 traits: GLMM where relatives identify v0, the GLM where not.

Unrelated samples: iid genotypes written as PLINK files (K close to I). Related samples:
the families of example_data with a trait drawn from the logit GLMM with v0 = 2.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import chi2

from glimix_cli.io.plink import open_bfile
from glimix_cli.io.plink_write import write_plink1
from glimix_cli.io.results import BINARY_COLUMNS, COLUMNS
from glimix_cli.kinship import kinship_qs
from glimix_cli.kinship.grm import grm
from glimix_cli.model import glm
from glimix_cli.pipeline.kinship import Kinship
from glimix_cli.pipeline.null import (
    BINARY_MAX_V0,
    RELATED_FRACTION,
    binary_route,
    fit_null_arrays,
    related_fraction,
)
from glimix_cli.pipeline.scan import GLM_REFIT_P, scan_block, scan_context
from glimix_cli.testing import simulate_null_binary

EX = Path(__file__).resolve().parents[2] / "example_data"


def test_binary_route_rules():
    # unrelated samples, at the cap: the flat ridge, whatever the likelihood gain
    route, lrt, p, why = binary_route(BINARY_MAX_V0, -100.0, -110.0, 0.01)
    assert route == "glm" and lrt == pytest.approx(20.0) and "cap" in why
    # a gain the 1/2 chi2_0 + 1/2 chi2_1 mixture does not call significant
    route, lrt, p, _ = binary_route(1.5, -100.0, -100.5, 0.0)
    assert route == "glm" and p == pytest.approx(0.5 * chi2.sf(1.0, 1))
    # a significant interior maximum
    route, lrt, p, _ = binary_route(1.5, -100.0, -110.0, 0.0)
    assert route == "glmm" and p < 1e-5
    assert binary_route(1.5, -100.0, -101.5, 0.0, level=0.1)[0] == "glmm"
    # v0 at its lower bound: the two models coincide
    assert binary_route(1e-8, -100.0, -100.0, 0.9)[:3] == ("glm", 0.0, 1.0)
    # a related cohort keeps the GLMM even where the test of v0 does not reject, or at cap
    assert binary_route(0.6, -100.0, -100.5, 0.3)[0] == "glmm"
    assert binary_route(BINARY_MAX_V0, -100.0, -100.1, RELATED_FRACTION)[0] == "glmm"


def test_related_fraction_counts_samples_with_a_relative():
    K = np.eye(6)
    K[0, 1] = K[1, 0] = 0.5   # a sib pair
    K[2, 3] = K[3, 2] = 0.05  # too distant to count
    assert related_fraction(K) == pytest.approx(2 / 6)
    assert related_fraction(np.eye(1)) == 0.0


@pytest.fixture(scope="module")
def unrelated(tmp_path_factory):
    rng = np.random.default_rng(14)
    n, m = 500, 1500
    f = rng.uniform(0.02, 0.5, m)
    G = rng.binomial(2, f, size=(n, m)).astype(float)
    G[rng.random((n, m)) < 0.01] = np.nan  # some missing calls
    prefix = tmp_path_factory.mktemp("unrel") / "u"
    codes = np.where(np.isnan(G), -1, G)
    write_plink1(prefix, np.where(codes < 0, np.nan, codes), chrom=["1"] * m,
                 variant_id=[f"v{j}" for j in range(m)], pos=list(range(1, m + 1)),
                 a1=["A"] * m, a2=["G"] * m, fid=[f"f{i}" for i in range(n)],
                 iid=[f"i{i}" for i in range(n)])
    bfile = open_bfile(prefix)
    K = grm(bfile).K
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = (rng.random(n) < expit(-1.2 + 0.5 * X[:, 1])).astype(float)
    return bfile, K, X, y


def _rows(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), sep="\t", header=None,
                       names=list(COLUMNS + BINARY_COLUMNS), keep_default_na=False,
                       na_values=["NA"])


@pytest.mark.parametrize("lik", ["bernoulli", "probit"])
def test_unrelated_null_is_the_glm_and_its_scan_is_the_glm_scan(unrelated, lik):
    bfile, K, X, y = unrelated
    null = fit_null_arrays(y, None, X, ["intercept", "x"], Kinship(K, None, "GRM"), lik)
    assert null.route == "glm" and null.v0 == 0.0 and null.eta == []
    link = "logit" if lik == "bernoulli" else "probit"
    b0, ll0, _ = glm.fit_null(y, X, link)
    np.testing.assert_allclose(null.beta, b0, atol=1e-6)
    assert null.lml == pytest.approx(ll0)
    ctx = scan_context(str(bfile.bed), np.arange(bfile.n_samples), y, null, "spa")
    idx = np.arange(bfile.n_variants)
    df = _rows(scan_block(ctx, idx).text)
    ok = df["status"] == "ok"
    assert ok.sum() > 1000
    (_, Graw), = __import__("glimix_cli.io.plink", fromlist=["x"]).iter_blocks(
        bfile, idx, idx.size)
    # case/control counts and frequencies, by hand (missing calls left out)
    case = y > 0.5
    obs = ~np.isnan(Graw)
    np.testing.assert_array_equal(df["n_cases"], obs[case].sum(0))
    np.testing.assert_array_equal(df["n_controls"], obs[~case].sum(0))
    fc = np.nansum(Graw[case], 0) / (2 * obs[case].sum(0))
    np.testing.assert_allclose(df["effect_allele_frequency_cases"], fc, rtol=1e-5)
    # the Normal-theory p-value is the score test's, the p-value is the saddlepoint's
    # beyond |z| > 2; beta and SE are the logistic/probit MLE where p < 0.05
    Gi = np.where(np.isnan(Graw), np.nanmean(Graw, 0), Graw)[:, ok.to_numpy()]
    sel = df.loc[ok, "p_value"].to_numpy() < GLM_REFIT_P
    fit = glm.fit_variants(y, X, Gi[:, sel], link)
    np.testing.assert_allclose(df.loc[ok, "beta"].to_numpy()[sel], fit.beta, rtol=1e-5)
    np.testing.assert_allclose(df.loc[ok, "standard_error"].to_numpy()[sel], fit.se, rtol=1e-5)
    tests = set(df.loc[ok, "test"])
    assert tests <= {"score", "spa"} and "spa" in tests
    score = df[ok & (df["test"] == "score")]
    np.testing.assert_allclose(score["p_value"], score["p_value_surrogate"], rtol=1e-12)
    # where beta is the one-step estimate S/V with SE 1/sqrt(V), z = beta/SE is the score z
    one = df[ok].iloc[np.flatnonzero(~sel)]
    z2 = (one["beta"] / one["standard_error"]) ** 2
    np.testing.assert_allclose(z2, one["lrt_chisq"], rtol=2e-5)


def test_related_trait_with_kinship_variance_keeps_the_glmm():
    bfile = open_bfile(EX / "cohort")
    n = bfile.n_samples
    res = kinship_qs(bfile)
    (Q0, _), S0 = res.QS
    K = (Q0 * S0) @ Q0.T
    rng = np.random.default_rng(3)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = simulate_null_binary(res.QS, X, rng, case_fraction=0.5, v0=2.0,
                             beta=[0.0, 0.3]).y.astype(float)
    null = fit_null_arrays(y, None, X, ["intercept", "x"], Kinship((K + K.T) / 2, res.QS,
                                                                   "GRM"), "bernoulli")
    assert null.route == "glmm" and null.v0 > 0.5
    assert null.v0_ml == null.v0 and "have a relative" in null.route_reason
