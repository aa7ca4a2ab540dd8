"""The kinship's structure, and what the models need from ``v0 K + v1 I + diag(1 / tau)``.

EP, the GLMM gradients, ``GLMMNormal``, its scanners and ``beta_covariance`` use the
prior covariance ``Sigma = v0 K + v1 I`` only through a few operations: the diagonal,
``K x``, and the factorisation of ``B = I + T^1/2 Sigma T^1/2`` (a *core*: solves,
``log|B|``, ``diag(B^-1)``, the posterior diagonal and products, the trace terms), and
the whitening of variants by the scan covariance ``C = v0 K + v1 I + diag(d)``. Each
structure of K implements them:

* :class:`DenseKinship` - K as an (n, n) array; the core is
  :class:`glimix_cli.model.gaussian.DenseCore` (one Cholesky, O(n^3)).
* :class:`LowRankKinship` - ``K = Q0 S0 Q0^T`` with r < n columns (the seed's
  ``z = X beta + G u`` with G n x r, ``economic_qs_linear``): Woodbury, O(n r^2) per EP
  sweep and O(n r) per variant, memory O(n r).
* :class:`BlockKinship` - K block-diagonal after a permutation of the samples (the
  connected components of a sparse kinship: families). The prior and the likelihood then
  factorise over families, so EP is exactly EP per family. Blocks of one size are
  factorised together (stacked, batched Cholesky), singletons in closed form: O(sum b^3)
  per EP sweep and O(n + nnz) memory instead of O(n^3) and O(n^2).

:func:`as_kinship` chooses by what the caller passes (an array, a ``scipy.sparse``
matrix, or an eigendecomposition ``QS``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import blas, lapack

from glimix_cli.model.blocks import MAX_BLOCK, BlockCore, BlockKinship, BlockPrior
from glimix_cli.model.gaussian import DenseCore
from glimix_cli.model.linalg import QSType, check_qs, kinship_from_qs
from glimix_cli.model.lowrank import LowRankCore, LowRankKinship, LowRankPrior

__all__ = ["LOW_RANK_FRACTION", "MAX_BLOCK", "BlockCore", "BlockKinship", "BlockPrior", "DenseCore",
           "DenseKinship", "DensePrior", "DenseWhitener", "EigenWhitener", "LowRankCore",
           "LowRankKinship", "LowRankPrior", "as_kinship"]

F = NDArray[np.float64]
#: An eigendecomposition ``QS`` with at most this fraction of n columns is used as a low
#: rank kinship (Woodbury, O(n r^2)); above it the dense K (Cholesky, O(n^3 / 3)) is
#: cheaper, and a GRM's economic decomposition (rank n - 1) keeps the dense arithmetic.
LOW_RANK_FRACTION = 0.5


# ----------------------------------------------------------------------------------------
# dense


class DenseKinship:
    """K as a dense (n, n) matrix."""

    structure = "dense"

    def __init__(self, K: F):
        self.K = K
        self.n = K.shape[0]

    def diag(self) -> F:
        return np.diag(self.K).copy()

    def matvec(self, x: F) -> F:
        return self.K @ x

    def covariance(self, v0: float, v1: float) -> F:
        S = v0 * self.K
        S[np.diag_indices(self.n)] += v1
        return S

    def prior(self, v0: float, v1: float) -> DensePrior:
        return DensePrior(self.covariance(v0, v1))

    def tr_Cinv_K(self, core: DenseCore) -> float:
        return core.tr_Cinv_M(self.K)

    def whitener(self, v0: float, v1: float, d: F | None = None) -> DenseWhitener:
        C = self.covariance(v0, v1)
        if d is not None:
            C[np.diag_indices(self.n)] += d
        return DenseWhitener(C)


class DensePrior:
    """A dense prior covariance ``Sigma``."""

    def __init__(self, Sigma: F):
        self.Sigma = Sigma

    def diag(self) -> F:
        return np.diag(self.Sigma)

    def core(self, tau: F) -> DenseCore:
        return DenseCore(self.Sigma, tau)


class DenseWhitener:
    """``L^-1 M`` with ``C = L L^T`` (Cholesky of a dense positive-definite ``C``)."""

    def __init__(self, C: F):
        L, info = lapack.dpotrf(np.asfortranarray(C), lower=1, clean=1)
        if info != 0:
            raise ValueError("the scan covariance is singular (K is not full rank and v = 0); "
                             "use v > 0 or a full-rank kinship")
        self.L = np.asfortranarray(L)
        self.logdet = 2.0 * float(np.sum(np.log(np.diag(L))))

    def whiten(self, M: F) -> F:
        return blas.dtrsm(1.0, self.L, np.asfortranarray(M), lower=1)


class EigenWhitener:
    """``W M = diag(((1 - delta) S + delta)^-1/2) Q^T M`` for ``C = (1 - delta) K + delta I``
    with ``K = Q diag(S) Q^T`` (all n eigenvectors): ``W^T W = C^-1``. Several Normal
    traits on the same samples and kinship differ only in ``delta``, so a block's rotation
    ``Q^T M`` (:meth:`rotate`) serves them all and each whitens by its diagonal
    (:attr:`scale`); ``log|C| = sum log((1 - delta) S + delta)``."""

    def __init__(self, Q: F, S: F, delta: float):
        d = (1.0 - delta) * np.asarray(S, dtype=np.float64) + delta
        if Q.shape[1] != Q.shape[0] or not np.all(d > 0):
            raise ValueError("EigenWhitener needs every eigenvector of K and a positive "
                             "(1 - delta) S + delta")
        self.Q = Q
        self.scale = 1.0 / np.sqrt(d)
        self.logdet = float(np.sum(np.log(d)))

    def rotate(self, M: F) -> F:
        return self.Q.T @ M

    def whiten(self, M: F) -> F:
        R = self.rotate(M)
        return R * (self.scale[:, None] if R.ndim == 2 else self.scale)


# ----------------------------------------------------------------------------------------


def as_kinship(n: int, QS: QSType | None = None, K: ArrayLike | None = None,
               max_block: int = MAX_BLOCK) -> DenseKinship | BlockKinship:
    """The kinship structure of what a model was given: a ``scipy.sparse`` ``K`` gives
    :class:`BlockKinship`; an eigendecomposition ``QS`` of rank at most
    :data:`LOW_RANK_FRACTION` n gives :class:`LowRankKinship`; a dense ``K``, a QS of higher
    rank (where a Cholesky of the dense matrix is cheaper than Woodbury) or neither
    (K = 0) gives :class:`DenseKinship`."""
    if K is not None:
        if QS is not None:
            raise ValueError("give either QS or K, not both")
        from scipy.sparse import issparse

        if issparse(K):
            kin = BlockKinship(K, max_block)
            if kin.n != n:
                raise ValueError(f"K must be a ({n}, {n}) matrix; got {K.shape}")
            return kin
        Kd = np.asarray(K, dtype=np.float64)
        if Kd.shape != (n, n) or not np.all(np.isfinite(Kd)):
            raise ValueError(f"K must be a finite ({n}, {n}) matrix")
        return DenseKinship(Kd)
    QS = check_qs(QS, n)
    if QS is not None and QS[1].size <= LOW_RANK_FRACTION * n:
        return LowRankKinship(QS[0][0], QS[1])
    return DenseKinship(kinship_from_qs(QS, n))
