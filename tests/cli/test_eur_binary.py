"""Issue 14's trait on real unrelated genotypes (../shared/data/EUR_subset): the default
binary-trait scan as a user runs it, against plink2 and an independent logistic fit.

The trait and plink2's results come from tests/reference/eur_binary.py (stored in
tests/data/eur_binary_plink2.tsv). The logistic likelihood-ratio test of the hit is
recomputed here by a general-purpose optimiser on the full log-likelihood.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from eur_binary import EUR, HIT, STORED, write_trait
from scipy.optimize import minimize
from scipy.special import log_expit
from scipy.stats import chi2
from shared_data import shared_cohort

from glimix_cli.cli.app import app
from glimix_cli.io.plink import iter_blocks, open_bfile


@pytest.fixture(scope="module")
def eur_scans(tmp_path_factory):
    shared_cohort()
    from typer.testing import CliRunner

    tmp = tmp_path_factory.mktemp("eur")
    table = write_trait(tmp / "trait.tsv")
    out = {}
    for lik in ("bernoulli", "probit"):
        res = CliRunner().invoke(app, [
            "scan", "--bfile", str(EUR), "--pheno", str(tmp / "trait.tsv"), "--pheno-name",
            "case", "-l", lik, "--covar", f"{EUR}.pheno.covars", "--covar-name", "QCOV1",
            "--covar-name", "QCOV2", "--covar-cat", "CAT_COV", "--out", str(tmp / f"{lik}.tsv"),
        ])
        assert res.exit_code == 0, res.output
        out[lik] = (pd.read_csv(tmp / f"{lik}.tsv", sep="\t"), res.output)
    return table, out


def _logistic_lrt(y, X, g) -> float:
    def nll(b, Z):
        return -float(np.sum(log_expit((2 * y - 1) * (Z @ b))))

    full = np.column_stack([X, g])
    r1 = minimize(nll, np.zeros(full.shape[1]), args=(full,), method="BFGS",
                  options={"gtol": 1e-8})
    r0 = minimize(nll, np.zeros(X.shape[1]), args=(X,), method="BFGS", options={"gtol": 1e-8})
    return 2 * (r0.fun - r1.fun)


@pytest.mark.parametrize("lik", ["bernoulli", "probit"])
def test_unrelated_binary_scan_is_calibrated_outside_the_locus(eur_scans, lik):
    table, out = eur_scans
    df, text = out[lik]
    assert "no kinship variance is identified" in text
    ok = df[df["status"] == "ok"]
    hit = ok[ok["variant_id"] == HIT].iloc[0]
    near = (ok["chromosome"] == hit["chromosome"]) & (
        (ok["base_pair_location"] - hit["base_pair_location"]).abs() < 1_000_000)
    outside = ok[~near]
    expected = 1e-4 * len(outside)
    assert (outside["p_value"] < 1e-4).sum() <= 3 * expected
    assert (outside["p_value"] < 5e-8).sum() == 0
    # the real hit stays genome-wide significant
    assert hit["p_value"] < 1e-15
    # the case/control columns count the hit's non-missing genotypes
    assert hit["n_cases"] + hit["n_controls"] == hit["n"]
    assert hit["n_cases"] == int(table["case"].sum())
    assert hit["effect_allele_frequency_cases"] > hit["effect_allele_frequency_controls"]


def test_hit_p_value_matches_the_logistic_lrt_and_beta_matches_plink2(eur_scans):
    table, out = eur_scans
    df, _ = out["bernoulli"]
    hit = df[df["variant_id"] == HIT].iloc[0]
    bfile = open_bfile(EUR)
    fam = bfile.samples
    pairs_fi = zip(fam["fid"], fam["iid"], strict=True)
    pos = {(str(f), str(i)): j for j, (f, i) in enumerate(pairs_fi)}
    keys = zip(table["FID"], table["IID"], strict=True)
    idx = np.array([pos[(str(f), str(i))] for f, i in keys])
    (_, g), = iter_blocks(bfile, np.flatnonzero(bfile.variants["variant_id"] == HIT), 1, idx)
    X = np.column_stack([np.ones(len(table)), table["QCOV1"], table["QCOV2"],
                         table["CAT_COV"] == "B"]).astype(float)
    lrt = _logistic_lrt(table["case"].to_numpy(float), X, g[:, 0])
    # the saddlepoint p-value of the score test agrees with the likelihood-ratio test to
    # within 2 orders of magnitude (both ~1e-24; plink2's Wald test says 3.5e-17: the Wald
    # test is conservative for an odds ratio of 36, see docs/calibrated-test.md)
    assert abs(np.log10(hit["p_value"]) - chi2.logsf(lrt, 1) / np.log(10)) < 2
    p2 = pd.read_csv(STORED, sep="\t", comment=None, skiprows=1)
    ref = p2[p2["ID"] == HIT].iloc[0]
    assert ref["A1"] == hit["effect_allele"]
    # beta and SE are plink2's logistic maximum-likelihood log odds ratio and Wald SE
    assert hit["beta"] == pytest.approx(np.log(ref["OR"]), rel=1e-4)
    assert hit["standard_error"] == pytest.approx(ref["LOG(OR)_SE"], rel=1e-4)
    # and so for every variant plink2 finds at p < 1e-3
    both = p2.merge(df, left_on="ID", right_on="variant_id")
    assert len(both) >= 50
    np.testing.assert_allclose(both["beta"], np.log(both["OR"]), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(both["standard_error"], both["LOG(OR)_SE"], rtol=1e-3)


def test_glm_route_null_json_reuse_gives_the_same_scan(eur_scans, tmp_path):
    import json

    from typer.testing import CliRunner

    table, out = eur_scans
    write_trait(tmp_path / "trait.tsv")
    common = ["--bfile", str(EUR), "--pheno", str(tmp_path / "trait.tsv"), "--pheno-name",
              "case", "-l", "bernoulli", "--covar", f"{EUR}.pheno.covars", "--covar-name",
              "QCOV1", "--covar-name", "QCOV2", "--covar-cat", "CAT_COV"]
    r = CliRunner().invoke(app, ["fit", *common, "--out", str(tmp_path / "f")])
    assert r.exit_code == 0, r.output
    facts = json.loads((tmp_path / "f.null.json").read_text())["null"]
    assert facts["route"] == "glm" and facts["v0"] == 0 and facts["v0_ml"] > 0
    r = CliRunner().invoke(app, ["scan", *common, "--null", str(tmp_path / "f.null.json"),
                                 "--chrom", "18", "--out", str(tmp_path / "s.tsv")])
    assert r.exit_code == 0, r.output
    reused = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    fresh = out["bernoulli"][0]
    fresh = fresh[fresh["chromosome"] == 18].reset_index(drop=True)
    pd.testing.assert_frame_equal(reused, fresh)
