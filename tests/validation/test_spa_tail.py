"""validation/spa_tail.py: its exact reference law against brute-force enumeration, and
the ordering its counts must obey."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "validation"))

from spa_conditional import _conditional_law  # noqa: E402
from spa_tail import run  # noqa: E402


@pytest.mark.parametrize("g", [[0, 0, 0, 1, 1, 2, 0, 1, 0], [2, 2, 1, 0, 0, 0, 0, 1, 1]])
def test_conditional_law_matches_enumeration(g):
    g = np.array(g)
    n, k = g.size, 4
    T = np.array([g[list(s)].sum() for s in itertools.combinations(range(n), k)])
    ref = np.bincount(T, minlength=2 * k + 1) / T.size
    law = _conditional_law(n, k, int((g == 1).sum()), int((g == 2).sum()))
    np.testing.assert_allclose(law, ref, atol=1e-12)


def test_counts_are_ordered():
    res = run(traits=3, cases=30, fixed=True, maf=(0.05, 0.5), below=0.05, seed=1, n=600, b=300)
    assert res["variants"] == 900
    t = res["type_I_over_alpha"]
    for a in t["exact"]:
        # the exact tail is never below the mid-p value, so it rejects no more often
        assert t["exact"][a]["rejections"] <= t["exact_midp"][a]["rejections"]
    assert t["exact_midp"]["0.01"]["rejections"] > 0
