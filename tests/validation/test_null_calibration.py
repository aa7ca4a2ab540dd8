"""Null calibration of the scan (issue 4): traits drawn from the model, no variant effect.

Runs validation/null_calibration.py's code on the example cohort: lambda_GC (median over
replicates, variants with MAF >= 5%) within [0.9, 1.1] and the pooled type-I error at
alpha = 0.05 within [0.04, 0.06], for Normal, balanced and unbalanced (10% cases)
Bernoulli, and Poisson traits.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_null_traits_are_calibrated(tmp_path):
    out = tmp_path / "calib.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "validation" / "null_calibration.py"), "--reps", "3",
         "--out", str(out)],
        capture_output=True, text=True, timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert set(res) == {"normal", "bernoulli50", "bernoulli10", "poisson"}
    for name, r in res.items():
        assert 0.9 <= r["lambda_gc_median"] <= 1.1, (name, r)
        assert 0.04 <= r["type1_0.05"] <= 0.06, (name, r)
