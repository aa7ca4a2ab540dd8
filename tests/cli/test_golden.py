"""Fresh scans of example_data equal the reviewed golden outputs (tests/data/golden)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
NUMERIC = ["beta", "standard_error", "effect_allele_frequency", "lrt_chisq",
           "neg_log10_p_value"]


@pytest.mark.parametrize("trait", ["quant", "binary", "count", "successes"])
def test_scan_matches_golden(scans, trait):
    new = pd.read_csv(scans[trait][0], sep="\t", keep_default_na=False, na_values=["NA"])
    old = pd.read_csv(GOLDEN / f"{trait}.tsv.gz", sep="\t", keep_default_na=False,
                      na_values=["NA"])
    text = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "variant_id",
            "n", "status"]
    pd.testing.assert_frame_equal(new[text], old[text])
    for col in NUMERIC:
        # 6 (5 for -log10 p) significant digits are printed: allow a last-digit flip
        np.testing.assert_allclose(new[col], old[col], rtol=1e-4, atol=2e-5, err_msg=col)
