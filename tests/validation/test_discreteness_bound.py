"""validation/discreteness_bound.py: the carrier-count law and the exact / mid-p test sizes
against brute-force enumeration of every case set of a tiny population."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "validation"))

from discreteness_bound import carrier_law, sizes  # noqa: E402


@pytest.mark.parametrize("g", [[0, 0, 0, 1, 1, 2, 0, 1, 0], [2, 2, 1, 0, 0, 0, 0, 1, 1]])
def test_law_and_sizes_match_enumeration(g):
    g = np.array(g)
    n, n_cases = g.size, 3
    sets = list(itertools.combinations(range(n), n_cases))
    T = np.array([g[list(s)].sum() for s in sets])
    law_ref = np.bincount(T, minlength=2 * n_cases + 1) / len(sets)
    counts = np.array([[np.sum(g == v) for v in (0, 1, 2)]], dtype=float)
    law = carrier_law(counts, n_cases)
    np.testing.assert_allclose(law[0], law_ref, atol=1e-12)

    mean = n_cases * g.mean()
    dev = np.abs(np.arange(law_ref.size) - mean)
    alphas = [0.05, 0.2, 0.5]
    s = sizes(law, np.array([mean]), alphas)
    for j, a in enumerate(alphas):
        exact = sum(law_ref[t] for t in range(law_ref.size)
                    if law_ref[dev >= dev[t] - 1e-12].sum() <= a)
        mid = sum(law_ref[t] for t in range(law_ref.size)
                  if law_ref[dev > dev[t] + 1e-12].sum()
                  + 0.5 * law_ref[np.abs(dev - dev[t]) <= 1e-12].sum() <= a)
        assert s["exact"][0, j] == pytest.approx(exact, abs=1e-12)
        assert s["midp"][0, j] == pytest.approx(mid, abs=1e-12)
        assert s["exact"][0, j] <= a + 1e-12
