"""Fixed-covariance association scanner.

For a covariance shape ``C`` fixed from the null model (``K + v I`` for the LMM,
``v0 K + v1 I + T^-1`` for the EP surrogate) and each candidate column ``m``::

    maximise  N(y | X beta + m alpha, s C)   over beta, alpha and the scale s.

With the Cholesky factor ``C = L L^T`` every candidate is whitened once,
``m~ = L^-1 m`` (a BLAS triangular solve over a whole block of variants), after which
each candidate is an ordinary least-squares problem solved for the whole block at once
through the Schur complement of the covariate block:

    e      = m~'m~ - a' A^-1 a,            a = X~' m~,  A = X~' X~
    alpha  = (m~'y~ - a' beta0) / e,       beta0 = A^-1 X~' y~  (the null estimate)
    Q1     = Q0 - (m~'y~ - a' beta0)^2 / e                (residual sum of squares)
    lml    = -n/2 log(2 pi Q1 / n) - 1/2 log|C| - n/2    (ML scale s = Q1 / n)
    LRT    = 2 (lml1 - lml0) = -n log(1 - (m~'y~ - a' beta0)^2 / (e Q0))

With ``fixed_scale`` set (the EP surrogate, whose covariance ``v0 K + v1 I + T^-1`` is
fully specified on the latent scale) s is not estimated: ``LRT = (m~'y~ - a' beta0)^2 / e``
and ``se(alpha) = sqrt(s / e)``. Re-estimating s there would fold the surrogate's overall
dispersion (which differs from 1 for counts and rare binary traits) into every test and
inflate them along the kinship directions, where genotypes live.

Standard errors use the unbiased scale of the alternative, ``Q1 / (n - p - 1)``, so that
with ``C = I`` they are the ordinary least-squares standard errors (as plink2 --glm
reports): ``se(alpha) = sqrt(Q1 / ((n - p - 1) e))``. The ``scale`` returned is the ML one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from glimix_cli.model.covariance import LOW_RANK_FRACTION, DenseWhitener, LowRankKinship
from glimix_cli.model.linalg import QSType, check_qs, kinship_from_qs

F = NDArray[np.float64]

#: A candidate whose residual norm after projecting out X is below this fraction of its
#: own norm is collinear with the covariates: its statistics are NaN.
COLLINEAR_RTOL = 1e-5


class FastScanner:
    """Scan candidate columns under the covariance ``s (K + v I)``.

    Parameters
    ----------
    y : array_like of float, shape (n,)
    X : array_like of float, shape (n, p)
    QS : ((Q0, Q1), S0) or None
        Eigendecomposition of K (None: K = 0).
    v : float
        Ratio of the iid variance to the K variance; must be > 0 unless K is full rank.
    """

    def __init__(self, y: ArrayLike, X: ArrayLike, QS: QSType | None, v: float):
        y = np.asarray(y, dtype=np.float64).ravel()
        n = y.shape[0]
        QS = check_qs(QS, n)
        if QS is not None and QS[1].size <= LOW_RANK_FRACTION * n:
            # low rank: whiten by Woodbury, the n x n covariance is never formed
            self._setup(y, X, LowRankKinship(QS[0][0], QS[1]).whitener(1.0, float(v)))
            return
        C = kinship_from_qs(QS, n)
        C[np.diag_indices(n)] += float(v)
        self._setup(y, X, _dense_whitener(C, n))

    @classmethod
    def from_covariance(cls, y: ArrayLike, X: ArrayLike, C: ArrayLike,
                        fixed_scale: float | None = None) -> FastScanner:
        """Scanner for an explicit covariance ``C`` (n x n, positive definite).

        ``fixed_scale=None`` estimates the scale s of ``s C`` (per candidate, by ML); a
        number fixes it.
        """
        y = np.asarray(y, dtype=np.float64).ravel()
        return cls.from_whitener(y, X, _dense_whitener(np.asarray(C, dtype=np.float64),
                                                       y.shape[0]), fixed_scale)

    @classmethod
    def from_whitener(cls, y: ArrayLike, X: ArrayLike, whitener: Any,
                      fixed_scale: float | None = None) -> FastScanner:
        """Scanner for a covariance known through its whitening: ``whitener.whiten(M)``
        returns ``W M`` with ``W^T W = C^-1`` and ``whitener.logdet`` is ``log|C|`` (a
        structured kinship's, :mod:`glimix_cli.model.covariance`)."""
        self = cls.__new__(cls)
        self._setup(np.asarray(y, dtype=np.float64).ravel(), X, whitener, fixed_scale)
        return self

    def _setup(self, y: F, X: ArrayLike, whitener: Any, fixed_scale: float | None = None
               ) -> None:
        if fixed_scale is not None and not fixed_scale > 0:
            raise ValueError("fixed_scale must be positive")
        self._fixed = None if fixed_scale is None else float(fixed_scale)
        n = y.shape[0]
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.shape[0] != n:
            raise ValueError("y, X and the covariance must agree on the number of samples")
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X))):
            raise ValueError("y, X and the covariance must be finite")
        self._whitener = whitener
        self._n = n
        self._logdetC = float(whitener.logdet)
        self._y = self.whiten(y[:, None])[:, 0]
        self._X = self.whiten(X)
        A = self._X.T @ self._X
        self._Ainv = np.linalg.pinv(A, hermitian=True)
        Xy = self._X.T @ self._y
        self._beta0 = self._Ainv @ Xy
        r = self._y - self._X @ self._beta0
        self._Q0 = float(r @ r)
        self._p = X.shape[1]

    @property
    def row_order(self) -> NDArray[np.intp] | None:
        """The sample order in which :meth:`fast_scan` takes a block with ``ordered=True``
        without reordering it (a block-diagonal kinship's family order), or None (any
        order is the same: dense and low-rank kinships)."""
        return getattr(self._whitener, "row_order", None)

    def whiten(self, M: ArrayLike, *, ordered: bool = False) -> F:
        """``W M`` (``W^T W = C^-1``) for a block ``M`` of shape (n, b): for a dense ``C``
        ``L^-1 M`` by one BLAS triangular solve, ``C = L L^T``. ``ordered``: the rows of
        ``M`` are in :attr:`row_order`, not the samples' order."""
        M = np.asarray(M, dtype=np.float64)
        if M.ndim == 1:
            M = M[:, None]
        if ordered and self.row_order is not None:
            return self._whitener.whiten(M, ordered=True)
        return self._whitener.whiten(M)

    # -- null model -----------------------------------------------------------------------
    @property
    def null_scale(self) -> float:
        return self._Q0 / self._n if self._fixed is None else self._fixed

    def null_lml(self) -> float:
        n = self._n
        s = self.null_scale
        if self._fixed is not None:
            return float(-0.5 * n * np.log(2 * np.pi * s) - 0.5 * self._logdetC
                         - 0.5 * self._Q0 / s)
        return float(-0.5 * n * np.log(2 * np.pi * s) - 0.5 * self._logdetC - 0.5 * n)

    @property
    def null_beta(self) -> F:
        return self._beta0.copy()

    @property
    def null_beta_covariance(self) -> F:
        """Covariance of the null effects (unbiased scale ``Q0 / (n - p)`` unless fixed)."""
        s = self._Q0 / max(self._n - self._p, 1) if self._fixed is None else self._fixed
        return s * self._Ainv

    @property
    def null_beta_se(self) -> F:
        return np.sqrt(np.diag(self.null_beta_covariance))

    # -- single-column scan -----------------------------------------------------------------
    def fast_scan(self, M: ArrayLike, verbose: bool = False, *,
                  whitened: bool = False, ordered: bool = False) -> dict[str, F]:
        """Test each column of ``M`` (n, b) on its own.

        ``verbose`` is the classic API's second argument and is accepted for it (this
        scanner prints nothing); ``whitened`` (keyword only) says that ``M`` is already
        multiplied by the whitening factor (see :meth:`whiten`); ``ordered`` that its rows
        are in :attr:`row_order` (saves a block-diagonal whitener's reordering pass).

        Returns a dict of arrays: ``lml`` (b,), ``lrt`` (b,), ``effsizes0`` (b, p),
        ``effsizes0_se`` (b, p), ``effsizes1`` (b,), ``effsizes1_se`` (b,), ``scale`` (b,),
        ``collinear`` (b,) bool. Collinear candidates get NaN statistics.
        """
        Mw = (np.asarray(M, dtype=np.float64) if whitened
              else self.whiten(M, ordered=ordered))
        if Mw.ndim == 1:
            Mw = Mw[:, None]
        n = self._n
        a = self._X.T @ Mw  # (p, b)
        c = np.einsum("ij,ij->j", Mw, Mw)
        my = Mw.T @ self._y
        Aia = self._Ainv @ a  # (p, b)
        e = c - np.einsum("ij,ij->j", a, Aia)
        num = my - a.T @ self._beta0
        collinear = ~(e > COLLINEAR_RTOL**2 * np.maximum(c, np.finfo(float).tiny))
        if self._fixed is not None:
            return self._fast_scan_fixed(a, Aia, e, num, c, collinear)
        with np.errstate(divide="ignore", invalid="ignore"):
            e_safe = np.where(collinear, np.nan, e)
            alpha = num / e_safe
            frac = num * num / (e_safe * self._Q0)
            frac = np.minimum(frac, 1.0)
            lrt = -n * np.log1p(-frac)
            Q1 = self._Q0 * (1.0 - frac)
            s1 = Q1 / n
            lml = -0.5 * n * np.log(2 * np.pi * s1) - 0.5 * self._logdetC - 0.5 * n
            beta = self._beta0[None, :] - (Aia * alpha).T
            cov_diag = np.diag(self._Ainv)[None, :] + (Aia * Aia).T / e_safe[:, None]
            s_unb = Q1 / max(n - self._p - 1, 1)
            beta_se = np.sqrt(s_unb[:, None] * cov_diag)
            alpha_se = np.sqrt(s_unb / e_safe)
        lrt = np.where(collinear, np.nan, np.maximum(lrt, 0.0))
        return {
            "lml": lml,
            "lrt": lrt,
            "effsizes0": beta,
            "effsizes0_se": beta_se,
            "effsizes1": alpha,
            "effsizes1_se": alpha_se,
            "scale": s1,
            "collinear": collinear,
        }

    def _fast_scan_fixed(self, a: F, Aia: F, e: F, num: F, c: F, collinear: F) -> dict[str, F]:
        s = self._fixed
        assert s is not None
        with np.errstate(divide="ignore", invalid="ignore"):
            e_safe = np.where(collinear, np.nan, e)
            alpha = num / e_safe
            lrt = num * num / (e_safe * s)
            lml = self.null_lml() + 0.5 * lrt
            beta = self._beta0[None, :] - (Aia * alpha).T
            cov_diag = np.diag(self._Ainv)[None, :] + (Aia * Aia).T / e_safe[:, None]
            beta_se = np.sqrt(s * cov_diag)
            alpha_se = np.sqrt(s / e_safe)
        return {
            "lml": lml,
            "lrt": np.where(collinear, np.nan, lrt),
            "effsizes0": beta,
            "effsizes0_se": beta_se,
            "effsizes1": alpha,
            "effsizes1_se": alpha_se,
            "scale": np.full(e.shape, s),
            "collinear": collinear,
        }

    # -- joint scan ---------------------------------------------------------------------------
    def scan(self, M: ArrayLike) -> dict[str, F | float]:
        """Joint test of all columns of ``M`` (n, q) as extra fixed effects."""
        Mw = self.whiten(M)
        Z = np.concatenate([self._X, Mw], axis=1)
        A = Z.T @ Z
        Ainv = np.linalg.pinv(A, hermitian=True)
        coef = Ainv @ (Z.T @ self._y)
        r = self._y - Z @ coef
        n = self._n
        Q1 = float(r @ r)
        if self._fixed is not None:
            s1 = self._fixed
            se = np.sqrt(s1 * np.diag(Ainv))
            lml = float(-0.5 * n * np.log(2 * np.pi * s1) - 0.5 * self._logdetC - 0.5 * Q1 / s1)
        else:
            s1 = Q1 / n
            se = np.sqrt(Q1 / max(n - Z.shape[1], 1) * np.diag(Ainv))
            lml = float(-0.5 * n * np.log(2 * np.pi * s1) - 0.5 * self._logdetC - 0.5 * n)
        p = self._p
        return {
            "lml": lml,
            "lrt": max(0.0, 2.0 * (lml - self.null_lml())),
            "effsizes0": coef[:p],
            "effsizes0_se": se[:p],
            "effsizes1": coef[p:],
            "effsizes1_se": se[p:],
            "scale": s1,
        }


def _dense_whitener(C: F, n: int) -> DenseWhitener:
    if C.shape != (n, n):
        raise ValueError("y, X and the covariance must agree on the number of samples")
    if not np.all(np.isfinite(C)):
        raise ValueError("y, X and the covariance must be finite")
    return DenseWhitener(C)
