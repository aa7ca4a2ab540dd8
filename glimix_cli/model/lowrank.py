"""Low-rank kinship ``K = Q0 S0 Q0^T``, r < n: see :mod:`glimix_cli.model.covariance`."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import blas, lapack

from glimix_cli.model.gaussian import _DIRECT_DIAG, CoreOps

F = NDArray[np.float64]


# ----------------------------------------------------------------------------------------
# low rank (an eigendecomposition with r < n columns, or z = X beta + G u with G n x r)


class LowRankKinship:
    """``K = Q0 diag(S0) Q0^T`` with ``Q0`` (n, r), r < n orthonormal columns, never
    formed: Woodbury's identity on ``B = D + U A U^T`` (``D = I + v1 T``, ``U = T^1/2 Q0``,
    ``A = v0 diag(S0)``) costs O(n r^2) per factorisation and O(n r) per variant."""

    structure = "low_rank"

    def __init__(self, Q0: F, S0: F):
        self.Q = np.ascontiguousarray(Q0, dtype=np.float64)
        self.S = np.asarray(S0, dtype=np.float64)
        self.n, self.r = self.Q.shape
        self._diag = np.einsum("ij,ij,j->i", self.Q, self.Q, self.S)

    def diag(self) -> F:
        return self._diag.copy()

    def matvec(self, x: F) -> F:
        QtX = self.Q.T @ x
        return self.Q @ (self.S[:, None] * QtX if x.ndim == 2 else self.S * QtX)

    def covariance(self, v0: float, v1: float) -> F:
        """``v0 K + v1 I`` as a dense (n, n) array (for the API; the model never forms
        it)."""
        S = (self.Q * (v0 * self.S)) @ self.Q.T
        S[np.diag_indices(self.n)] += v1
        return (S + S.T) / 2

    def prior(self, v0: float, v1: float) -> LowRankPrior:
        return LowRankPrior(self, v0, v1)

    def tr_Cinv_K(self, core: LowRankCore) -> float:
        return core.tr_Cinv_K()

    def whitener(self, v0: float, v1: float, d: F | None = None) -> LowRankWhitener:
        return LowRankWhitener(self, v0, v1, d)


class LowRankPrior:
    """``Sigma = v0 Q0 S0 Q0^T + v1 I``."""

    def __init__(self, kin: LowRankKinship, v0: float, v1: float):
        self.kin = kin
        self.v0, self.v1 = float(v0), float(v1)

    def diag(self) -> F:
        return self.v0 * self.kin._diag + self.v1

    def apply(self, x: F) -> F:
        """``Sigma x``."""
        return self.v0 * self.kin.matvec(x) + self.v1 * x

    def core(self, tau: F) -> LowRankCore:
        return LowRankCore(self, tau)


class LowRankCore(CoreOps):
    """:class:`~glimix_cli.model.gaussian.DenseCore`'s operations for a low-rank-plus-
    identity ``Sigma``, by Woodbury: ``B^-1 = D^-1 - D^-1 U M^-1 U^T D^-1`` with
    ``M = A^-1 + U^T D^-1 U`` (r x r) and ``log|B| = sum log D + log|M| + log|A|``;
    ``W = D^-1/2 U`` (n x r) is the one large array it keeps."""

    def __init__(self, prior: LowRankPrior, tau: F):
        self.prior = prior
        self.tau = tau
        self.sq = np.sqrt(tau)
        kin = prior.kin
        self.D = 1.0 + prior.v1 * tau
        self.logdet_B = float(np.sum(np.log(self.D)))
        self._W = None
        self.diag_Binv = 1.0 / self.D
        if prior.v0 > 0:
            a = prior.v0 * kin.S
            self._isd = 1.0 / np.sqrt(self.D)
            # W = D^-1/2 U (U = T^1/2 Q0): M = A^-1 + W^T W by a rank-r update (dsyrk:
            # n r^2 flops, half a general product's)
            W = (self.sq * self._isd)[:, None] * kin.Q
            M = blas.dsyrk(1.0, W.T, trans=0, lower=1)
            M[np.diag_indices(kin.r)] += 1.0 / a
            R, info = lapack.dpotrf(M, lower=1, clean=1)
            if info != 0:
                raise np.linalg.LinAlgError("the Woodbury capacitance matrix is not positive "
                                            f"definite (LAPACK dpotrf info={info})")
            self._R = R
            self._W = W
            self.logdet_B += 2.0 * float(np.sum(np.log(np.diag(R)))) + float(np.sum(np.log(a)))
            # V = R^-1 W^T D^-1/2: diag(B^-1) = 1/D - column sums of V^2
            V = lapack.dtrtrs(R, W.T, lower=1)[0]
            self.diag_Binv = 1.0 / self.D - np.einsum("ji,ji->i", V, V) / self.D

    def whitener(self) -> LowRankWhitener:
        """Whitening by ``C = Sigma + T^-1`` (its thin-SVD form: O(n r^2), as cheap as this
        core's own factorisation)."""
        return LowRankWhitener(self.prior.kin, self.prior.v0, self.prior.v1, 1.0 / self.tau)

    def solve_B(self, x: F) -> F:
        """``B^-1 x = D^-1 x - D^-1/2 W M^-1 W^T D^-1/2 x``."""
        Dx = x / (self.D if x.ndim == 1 else self.D[:, None])
        if self._W is None:
            return Dx
        isd = self._isd if x.ndim == 1 else self._isd[:, None]
        xs = x * isd
        w = lapack.dpotrs(self._R, self._W.T @ xs, lower=1)[0]
        return Dx - isd * (self._W @ w)

    def tr_Cinv_K(self) -> float:
        """``tr(C^-1 K) = tr(S0 U^T B^-1 U)``, ``U = T^1/2 Q0`` (O(n r^2))."""
        kin = self.prior.kin
        U = self.sq[:, None] * kin.Q
        return float(np.einsum("ij,ij,j->", U, self.solve_B(U), kin.S))

    def posterior_diag(self) -> F:
        """As the dense core's: ``(1 - B^-1_ii) / tau_i``, and the direct form
        ``Sigma_ii - w_i^T B^-1 w_i`` (``w_i = T^1/2 Sigma e_i``, O(n r) each) for the
        sites with ``tau_i = 0`` and up to ``max(8, min(n/16, 256))`` with tiny
        ``tau_i Sigma_ii``."""
        tau = self.tau
        n = tau.shape[0]
        sd = self.prior.diag()
        zero = tau == 0
        if np.all(zero):
            return sd.copy()
        out = np.empty_like(tau)
        pos = ~zero
        out[pos] = (1.0 - self.diag_Binv[pos]) / tau[pos]
        tiny = np.flatnonzero(pos & (tau * sd < _DIRECT_DIAG))
        cap = max(8, min(n // 16, 256))
        idx = np.flatnonzero(zero)
        if tiny.size and idx.size < cap:
            order = np.argsort((tau * sd)[tiny])
            idx = np.concatenate([idx, tiny[order[: cap - idx.size]]])
        if idx.size:
            E = np.zeros((n, idx.size))
            E[idx, np.arange(idx.size)] = 1.0
            W = self.sq[:, None] * self.prior.apply(E)
            out[idx] = sd[idx] - np.einsum("ij,ij->j", W, self.solve_B(W))
        return out

    def posterior_apply(self, r: F) -> F:
        Sr = self.prior.apply(r)
        return Sr - self.prior.apply(self.sq * self.solve_B(self.sq * Sr))

    def posterior_covariance(self) -> F:
        n = self.tau.shape[0]
        S = self.prior.apply(np.eye(n))
        P = S - self.prior.apply(self.sq[:, None] * self.solve_B(self.sq[:, None] * S))
        return (P + P.T) / 2


class LowRankWhitener:
    """``W M`` with ``W^T W = C^-1`` for ``C = v0 Q0 S0 Q0^T + diag(e)``, ``e = v1 + d > 0``:
    with ``F = E^-1/2 Q0 (v0 S0)^1/2 = P Sigma R^T`` (thin SVD), ``W = (I - P G P^T)
    E^-1/2`` and ``G = I - (I + Sigma^2)^-1/2``; O(n r) per variant."""

    def __init__(self, kin: LowRankKinship, v0: float, v1: float, d: F | None = None):
        e = np.full(kin.n, float(v1)) if d is None else v1 + np.asarray(d, dtype=np.float64)
        if not np.all(e > 0):
            raise ValueError("the scan covariance is singular (K is not full rank and v = 0); "
                             "use v > 0 or a full-rank kinship")
        self.isq = 1.0 / np.sqrt(e)
        Fm = self.isq[:, None] * kin.Q * np.sqrt(max(v0, 0.0) * kin.S)
        Qf, Rf = np.linalg.qr(Fm)
        Ur, sv, _ = np.linalg.svd(Rf)
        self.P = Qf @ Ur
        self.G = 1.0 - 1.0 / np.sqrt(1.0 + sv * sv)
        self.logdet = float(np.sum(np.log(e)) + np.sum(np.log1p(sv * sv)))

    def whiten(self, M: F) -> F:
        Me = M * (self.isq[:, None] if M.ndim == 2 else self.isq)
        PtM = self.P.T @ Me
        return Me - self.P @ (self.G[:, None] * PtM if M.ndim == 2 else self.G * PtM)
