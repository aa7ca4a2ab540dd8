"""Test statistics on the log scale."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import log_ndtr

F = NDArray[np.float64]
LN10 = float(np.log(10.0))
#: Median of the chi-square distribution with one degree of freedom.
CHI2_1_MEDIAN = 0.454936423119572


def chi2_1_logsf(x: ArrayLike) -> F:
    """``log P(chi2_1 > x)``, accurate far into the tail (no underflow at 1e-300).

    Uses ``P(chi2_1 > x) = 2 Phi(-sqrt(x))`` with the log of the normal CDF.

    >>> float(np.round(-chi2_1_logsf(3000.0) / np.log(10), 2))
    653.28
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.log(2.0) + log_ndtr(-np.sqrt(np.maximum(x, 0.0)))
    return np.where(np.isnan(x), np.nan, out)


def chi2_1_pvalue(x: ArrayLike) -> tuple[F, F]:
    """P-values and their ``-log10`` for chi-square(1) statistics ``x``."""
    lp = chi2_1_logsf(x)
    return np.exp(lp), -lp / LN10


def genomic_inflation(chisq: ArrayLike) -> float:
    """``lambda_GC = median(chi2) / median of chi2_1`` over the finite statistics."""
    c = np.asarray(chisq, dtype=np.float64)
    c = c[np.isfinite(c)]
    if c.size == 0:
        return float("nan")
    return float(np.median(c) / CHI2_1_MEDIAN)
