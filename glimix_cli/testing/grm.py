"""Dense GRM of a simulated dosage matrix, the covariance the simulated traits are drawn with.

The standardisation is :func:`glimix_cli.kinship.grm.standardise`, the one the GRM of
``glimix kinship`` and the scan uses, with its binomial (Hardy-Weinberg) SD
``sqrt(2 p (1 - p))`` instead of the empirical one: the committed example data, the golden
outputs and the validation seeds were drawn with that scaling.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from glimix_cli.kinship.grm import standardise
from glimix_cli.testing.genotypes import as_dosage_matrix

__all__ = ["standardised_grm"]


def standardised_grm(dosage: ArrayLike) -> NDArray[np.float64]:
    """Dense standardised genetic relationship matrix (for simulation and tests).

    Parameters
    ----------
    dosage : array_like of float, shape (n, m)
        Allele counts, NaN for missing calls.

    Returns
    -------
    K : ndarray of float, shape (n, n)
        ``K = Z Z^T / m'`` over the ``m'`` variants with allele frequency in (0, 1).

    Raises
    ------
    ValueError
        When ``dosage`` is not 2-D or has no polymorphic variant.

    Notes
    -----
    ``Z_ij = (G_ij - 2 p_j) / sqrt(2 p_j (1 - p_j))`` with ``p_j`` the frequency among
    non-missing calls; missing calls get ``Z_ij = 0`` (mean imputation). Off-diagonal
    entries estimate twice the kinship coefficient (0.5 for full sibs and parent-offspring,
    0.25 for half sibs, 0 for unrelated pairs).

    Examples
    --------
    >>> G = np.array([[0.0, 2.0], [2.0, 0.0], [1.0, 1.0]])
    >>> np.round(standardised_grm(G), 3).tolist()
    [[2.0, -2.0, 0.0], [-2.0, 2.0, 0.0], [0.0, 0.0, 0.0]]
    """
    G = np.array(as_dosage_matrix(dosage), dtype=np.float64, order="C")
    st = standardise(G, scale="binomial")
    if not st.use.any():
        raise ValueError("dosage has no polymorphic variant; cannot build a GRM")
    K = st.Z @ st.Z.T / st.use.sum()
    return (K + K.T) / 2
