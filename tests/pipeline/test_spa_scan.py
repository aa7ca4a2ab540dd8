"""The saddlepoint test inside the scan: columns, fall-back to the surrogate, calibration.

One null fit of a rare (5%) null binary trait on the example genotypes (610 related
samples) is shared by the module; validation/rare_binary.py is the full-size study.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from glimix_cli.errors import InputError
from glimix_cli.io.plink import open_bfile
from glimix_cli.io.results import COLUMNS
from glimix_cli.kinship import kinship_qs
from glimix_cli.model.spa import SPA_Z_CUTOFF
from glimix_cli.model.stats import genomic_inflation
from glimix_cli.pipeline.kinship import Kinship
from glimix_cli.pipeline.null import fit_null_arrays
from glimix_cli.pipeline.scan import ScanContext, resolve_test, scan_block
from glimix_cli.testing import simulate_null_binary

EX = Path(__file__).resolve().parents[2] / "example_data"


@pytest.fixture(scope="module")
def rare_null():
    bfile = open_bfile(EX / "cohort")
    n = bfile.n_samples
    res = kinship_qs(bfile)
    (Q0, _), S0 = res.QS
    K = (Q0 * S0) @ Q0.T
    K = (K + K.T) / 2
    rng = np.random.default_rng(8)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = simulate_null_binary(res.QS, X, rng, case_fraction=0.05, v0=1.0,
                             beta=[0.0, 0.3]).y.astype(float)
    # 30 cases in families: the data do not identify v0, so the automatic route is the GLM;
    # this module tests the GLMM route's saddlepoint (the GLM route: test_binary_route.py)
    null = fit_null_arrays(y, None, X, ["intercept", "x"], Kinship(K, res.QS, "GRM"),
                           "bernoulli", binary_null="glmm")
    return bfile, null


def _rows(text: str) -> list[dict[str, str]]:
    return [dict(zip(COLUMNS, line.split("\t"), strict=True)) for line in text.splitlines()]


def test_columns_and_fallback(rare_null):
    bfile, null = rare_null
    idx = np.arange(bfile.n_variants)
    sample_index = np.arange(bfile.n_samples)
    spa_ctx = ScanContext(str(bfile.bed), sample_index, null.scanner, 0.0, 5.0, 1.0,
                          test="spa", spa=null.spa)
    sur_ctx = ScanContext(str(bfile.bed), sample_index, null.scanner, 0.0, 5.0, 1.0)
    r_spa = scan_block(pickle.loads(pickle.dumps(spa_ctx)), idx)  # picklable for workers
    r_sur = scan_block(sur_ctx, idx)
    a, b = _rows(r_spa.text), _rows(r_sur.text)
    assert COLUMNS[-2:] == ("test", "p_value_surrogate")
    n_spa = 0
    for x, y in zip(a, b, strict=True):
        # effect, SE, LRT and the surrogate p-value are the surrogate's in both runs
        for col in ("beta", "standard_error", "lrt_chisq", "status"):
            assert x[col] == y[col]
        assert x["p_value_surrogate"] == y["p_value"] == y["p_value_surrogate"]
        if x["status"] != "ok":
            assert x["test"] == "NA" and x["p_value"] == "NA"
            continue
        assert y["test"] == "surrogate_lrt"
        z = float(x["beta"]) / float(x["standard_error"])
        if abs(z) <= SPA_Z_CUTOFF * (1 - 1e-4):
            assert x["test"] == "surrogate_lrt" and x["p_value"] == y["p_value"]
        elif abs(z) > SPA_Z_CUTOFF * (1 + 1e-4):
            assert x["test"] == "spa"
            assert 0 < float(x["p_value"]) <= 1
            n_spa += 1
    assert n_spa > 50
    # lambda_GC is the surrogate's by construction (the median lies inside |z| <= 2)
    assert r_spa.lrt == pytest.approx(r_sur.lrt, nan_ok=True)


def test_rare_null_is_calibrated(rare_null):
    """5% cases (30) on 610 related samples: SPA type-I near alpha at 0.05 and 0.01."""
    bfile, null = rare_null
    ctx = ScanContext(str(bfile.bed), np.arange(bfile.n_samples), null.scanner, 0.05, 5.0,
                      1.0, test="spa", spa=null.spa)
    r = scan_block(ctx, np.arange(bfile.n_variants))
    ok = np.asarray(r.status) == "ok"
    p = 10.0 ** -r.nlp[ok]
    m = p.size
    assert m > 4000
    for alpha in (0.05, 0.01):
        sd = np.sqrt(alpha * (1 - alpha) / m)
        # variants are correlated (LD, one trait): allow 5 binomial SDs
        assert abs(np.mean(p < alpha) - alpha) < 5 * sd + 0.2 * alpha
    assert 0.9 < genomic_inflation(r.lrt[ok]) < 1.1


def test_null_quantities_only_for_binary_traits(rare_null):
    _, null = rare_null
    assert null.spa is not None and "spa" not in null.facts()
    assert resolve_test("auto", "bernoulli") == "spa"
    assert resolve_test("auto", "probit") == "spa"
    assert resolve_test("auto", "binomial") == "surrogate"
    assert resolve_test("auto", "poisson") == "surrogate"
    assert resolve_test("spa", "binomial") == "spa"
    with pytest.raises(InputError, match="--test spa: the saddlepoint test needs a binary"):
        resolve_test("spa", "normal")
    with pytest.raises(ValueError, match="needs the null model's SPANull"):
        ScanContext("x.bed", np.arange(3), None, 0.0, 5.0, 1.0, test="spa")  # type: ignore[arg-type]
