"""Linear mixed model for Normal traits, in the eigenbasis of K.

``y ~ N(X beta, s ((1 - delta) K + delta I))``. With ``K = Q0 diag(S0) Q0^T`` the
covariance has eigenvalues ``s d_j``, ``d_j = (1 - delta) S0_j + delta`` on ``Q0`` and
``s delta`` on the orthogonal complement, which is never formed: inner products there are
``a^T b - (Q0^T a)^T (Q0^T b)``. For a given delta, beta and s are closed form (GLS, then
``s = Q / n`` for ML or ``Q / (n - p)`` for REML, Q the weighted residual sum of squares);
delta is maximised in one dimension (grid, then bounded Brent).

Log-likelihoods::

    ML   = -n/2 log(2 pi s) - 1/2 sum_j log d_j - n/2
    REML = -(n-p)/2 log(2 pi s) - 1/2 sum_j log d_j - 1/2 log|X^T D^-1 X|
           + 1/2 log|X^T X| - (n-p)/2

(REML includes ``+1/2 log|X^T X|`` so that it does not depend on how X is parametrised.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

from glimix_cli.model.covariance import LOW_RANK_FRACTION, BlockKinship, LowRankKinship
from glimix_cli.model.linalg import QSType, check_qs

F = NDArray[np.float64]


class LMM:
    """Linear mixed model; maximum likelihood by default, REML with ``restricted=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from glimix_cli import LMM
    >>> rng = np.random.default_rng(1)
    >>> X = np.ones((50, 1))
    >>> y = 2.0 + rng.normal(size=50)
    >>> lmm = LMM(y, X)   # no kinship: ordinary least squares
    >>> lmm.fit()
    >>> bool(np.isclose(lmm.beta[0], y.mean()))
    True
    """

    def __init__(self, y: ArrayLike, X: ArrayLike, QS: QSType | None = None,
                 restricted: bool = False, *, K=None):
        y = np.asarray(y, dtype=np.float64).ravel()
        n = y.shape[0]
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.shape[0] != n:
            raise ValueError(f"X must have {n} rows; got {X.shape[0]}")
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X))):
            raise ValueError("y and X must be finite")
        self._y, self._X, self._n, self._p = y, X, n, X.shape[1]
        self._restricted = bool(restricted)
        self._kin = None
        if K is not None:
            # a sparse K: its families' eigendecompositions, block by block (never n x n)
            if QS is not None:
                raise ValueError("give either QS or K, not both")
            self._kin = BlockKinship(K)
            if self._kin.n != n:
                raise ValueError(f"K must be a ({n}, {n}) matrix; got {K.shape}")
            self._Q0 = None
            self._S0, self._ty, self._tX = self._kin.rotate(y, X)
        else:
            QS = check_qs(QS, n)
            if QS is None:
                self._Q0 = np.empty((n, 0))
                self._S0 = np.empty(0)
            else:
                (self._Q0, _), self._S0 = QS
            # rotated data: Q0^T y, Q0^T X
            self._ty = self._Q0.T @ y
            self._tX = self._Q0.T @ X
        self._k = self._S0.shape[0]
        # and the complement's Gram blocks
        self._yy_c = float(y @ y - self._ty @ self._ty)
        self._Xy_c = X.T @ y - self._tX.T @ self._ty
        self._XX_c = X.T @ X - self._tX.T @ self._tX
        self._XX = X.T @ X
        self._delta = 1.0 if self._k == 0 else 0.5
        self._fixed_delta = self._k == 0
        self._fit_at(self._delta)

    # -- core -------------------------------------------------------------------------------
    def _terms(self, delta: float) -> tuple[F, float, F, float, float]:
        d = (1.0 - delta) * self._S0 + delta
        w = 1.0 / d
        nc = self._n - self._k
        if nc > 0 and delta <= 0:
            raise ValueError("delta = 0 with a low-rank kinship gives a singular covariance")
        wc = 1.0 / delta if nc > 0 else 0.0
        A = (self._tX.T * w) @ self._tX + wc * self._XX_c
        b = (self._tX.T * w) @ self._ty + wc * self._Xy_c
        beta = np.linalg.lstsq(A, b, rcond=None)[0]
        yy = float(self._ty @ (w * self._ty)) + wc * self._yy_c
        Q = yy - float(b @ beta)
        logdet = float(np.sum(np.log(d))) + (nc * np.log(delta) if nc > 0 else 0.0)
        return beta, max(Q, 0.0), A, logdet, wc

    def _lml_delta(self, delta: float) -> float:
        beta, Q, A, logdet, _ = self._terms(delta)
        n, p = self._n, self._p
        if self._restricted:
            s = Q / (n - p)
            _, ldA = np.linalg.slogdet(A)
            _, ldXX = np.linalg.slogdet(self._XX)
            return float(-0.5 * (n - p) * np.log(2 * np.pi * s) - 0.5 * logdet - 0.5 * ldA
                         + 0.5 * ldXX - 0.5 * (n - p))
        s = Q / n
        return float(-0.5 * n * np.log(2 * np.pi * s) - 0.5 * logdet - 0.5 * n)

    def _fit_at(self, delta: float) -> None:
        beta, Q, A, _, _ = self._terms(delta)
        self._delta = float(delta)
        self._beta = beta
        dof = self._n - self._p if self._restricted else self._n
        self._scale = Q / dof
        self._A = A

    # -- public API -------------------------------------------------------------------------
    def fit(self, verbose: bool = False) -> None:
        """Maximise the (restricted) likelihood over delta; beta and scale are closed form."""
        if self._fixed_delta:
            self._fit_at(self._delta)
            return
        lo = 0.0 if self._k == self._n else 1e-9
        grid = np.concatenate([[lo], np.linspace(0.02, 0.98, 25), [1.0]])
        vals = np.array([self._lml_delta(d) for d in grid])
        i = int(np.argmax(vals))
        a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        res = minimize_scalar(lambda d: -self._lml_delta(d), bounds=(a, b), method="bounded",
                              options={"xatol": 1e-10})
        best = float(res.x) if -res.fun >= vals[i] else float(grid[i])
        self._fit_at(best)

    def lml(self) -> float:
        return self._lml_delta(self._delta)

    def gradient(self) -> dict[str, float]:
        """Derivative of the profiled ``lml()`` with respect to delta."""
        delta = self._delta
        beta, Q, A, _, wc = self._terms(delta)
        dd = 1.0 - self._S0  # d d_j / d delta
        w = 1.0 / ((1.0 - delta) * self._S0 + delta)
        r0 = self._ty - self._tX @ beta
        nc = self._n - self._k
        # complement residual norm: ||r||^2 - ||Q0^T r||^2
        rr_c = (self._yy_c - 2 * beta @ self._Xy_c + beta @ self._XX_c @ beta)
        dQ = -float(np.sum(r0 * r0 * w * w * dd)) - (rr_c * wc * wc if nc > 0 else 0.0)
        dlogdet = float(np.sum(w * dd)) + (nc * wc if nc > 0 else 0.0)
        n, p = self._n, self._p
        if self._restricted:
            dA = -((self._tX.T * (w * w * dd)) @ self._tX) - (wc * wc * self._XX_c
                                                              if nc > 0 else 0.0)
            dldA = float(np.trace(np.linalg.solve(A, dA)))
            return {"delta": -0.5 * (n - p) * dQ / Q - 0.5 * dlogdet - 0.5 * dldA}
        return {"delta": -0.5 * n * dQ / Q - 0.5 * dlogdet}

    @property
    def beta(self) -> F:
        return self._beta.copy()

    @property
    def beta_se(self) -> F:
        return np.sqrt(self._scale * np.diag(np.linalg.pinv(self._A, hermitian=True)))

    @property
    def scale(self) -> float:
        return float(self._scale)

    @property
    def delta(self) -> float:
        return self._delta

    @delta.setter
    def delta(self, value: float) -> None:
        if not 0 <= value <= 1:
            raise ValueError("delta must be in [0, 1]")
        self._fit_at(float(value))

    @property
    def v0(self) -> float:
        return self._scale * (1.0 - self._delta)

    @property
    def v1(self) -> float:
        return self._scale * self._delta

    def fix(self, name: str) -> None:
        if name != "delta":
            raise ValueError("LMM profiles beta and scale; only 'delta' can be fixed")
        self._fixed_delta = True

    def unfix(self, name: str) -> None:
        if name != "delta":
            raise ValueError("LMM profiles beta and scale; only 'delta' can be fixed")
        self._fixed_delta = self._k == 0

    def isfixed(self, name: str) -> bool:
        return name == "delta" and self._fixed_delta

    def covariance(self) -> F:
        """``scale ((1 - delta) K + delta I)`` (n x n; ``scipy.sparse`` for a sparse K)."""
        if self._kin is not None:
            return self._kin.covariance(self.v0, self.v1)
        K = (self._Q0 * self._S0) @ self._Q0.T
        return self._scale * ((1 - self._delta) * K + self._delta * np.eye(self._n))

    def mean(self) -> F:
        return self._X @ self._beta

    def get_fast_scanner(self):
        """Scanner with the covariance shape ``(1 - delta) K + delta I`` fixed."""
        from glimix_cli.model.scanner import FastScanner

        kin = self._kin
        if kin is None and 0 < self._k <= LOW_RANK_FRACTION * self._n:
            kin = LowRankKinship(self._Q0, self._S0)  # Woodbury: the n x n C never formed
        if kin is not None:
            w = kin.whitener(1.0 - self._delta, self._delta)
            return FastScanner.from_whitener(self._y, self._X, w)
        C = (self._Q0 * ((1 - self._delta) * self._S0)) @ self._Q0.T
        C[np.diag_indices(self._n)] += self._delta
        return FastScanner.from_covariance(self._y, self._X, C)
