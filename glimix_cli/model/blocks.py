"""Block-diagonal kinship (families of a sparse K): see :mod:`glimix_cli.model.covariance`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from glimix_cli.model.gaussian import _DIRECT_DIAG, CoreOps

F = NDArray[np.float64]
#: Largest family (connected component of a sparse kinship) factorised as one block.
MAX_BLOCK = 5000


# ----------------------------------------------------------------------------------------
# block diagonal (families)


@dataclass(frozen=True, eq=False)
class _Group:
    """The ``k`` families of one size ``b``: their samples ``idx`` (k, b) and kinship
    blocks ``K`` (k, b, b)."""

    idx: NDArray[np.intp]
    K: F

    @property
    def b(self) -> int:
        return self.idx.shape[1]


class BlockKinship:
    """K block-diagonal up to a permutation: the families of a sparse kinship.

    Parameters
    ----------
    K : scipy.sparse matrix, shape (n, n)
        Symmetric kinship; samples joined by a non-zero off-diagonal entry (directly or
        through others) form one family (a connected component).
    max_block : int
        Largest family allowed; a larger one is a ``ValueError`` (a sparse kinship with
        a higher threshold, or the dense path, is the way out).
    """

    structure = "blocks"

    def __init__(self, K, max_block: int = MAX_BLOCK):
        from scipy.sparse import coo_matrix, csgraph, issparse

        if not issparse(K):
            raise TypeError("BlockKinship needs a scipy.sparse matrix")
        n = K.shape[0]
        if K.shape != (n, n):
            raise ValueError(f"K must be square; got shape {K.shape}")
        C = coo_matrix(K, dtype=np.float64)
        C.sum_duplicates()
        C.eliminate_zeros()
        if not np.all(np.isfinite(C.data)):
            raise ValueError("K contains NaN or infinite values")
        asym = abs(C - C.T)
        if asym.nnz and asym.max() > 1e-10 * max(abs(C).max(), 1.0):
            raise ValueError("K must be symmetric")
        ncomp, labels = csgraph.connected_components(C, directed=False)
        sizes = np.bincount(labels, minlength=ncomp)
        if sizes.max(initial=0) > max_block:
            raise ValueError(
                f"K has a family (connected component) of {sizes.max():,} samples, above the "
                f"block cap {max_block:,}: use a higher relatedness threshold for the sparse "
                "kinship (fewer distant pairs), raise max_block, or pass K dense")
        self.n = n
        self.n_families = int(ncomp)
        self.largest = int(sizes.max(initial=0))
        self.nnz = int(C.nnz)
        # position of each sample inside its family (samples in their original order)
        order = np.argsort(labels, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        pos = np.empty(n, dtype=np.intp)
        pos[order] = np.arange(n) - np.repeat(starts, sizes)
        self._diag = np.zeros(n)
        on = C.row == C.col
        self._diag[C.row[on]] = C.data[on]
        groups = []
        for b in np.unique(sizes):
            comps = np.flatnonzero(sizes == b)
            slot = np.full(ncomp, -1, dtype=np.intp)
            slot[comps] = np.arange(comps.size)
            idx = np.empty((comps.size, b), dtype=np.intp)
            members = order[np.isin(labels[order], comps)]
            idx[slot[labels[members]], pos[members]] = members
            Kb = np.zeros((comps.size, b, b))
            sel = slot[labels[C.row]] >= 0
            sel &= sizes[labels[C.row]] == b
            r, c = C.row[sel], C.col[sel]
            Kb[slot[labels[r]], pos[r], pos[c]] = C.data[sel]
            groups.append(_Group(idx, Kb))
        self.groups: list[_Group] = groups

    def diag(self) -> F:
        return self._diag.copy()

    def matvec(self, x: F) -> F:
        out = np.empty_like(x, dtype=np.float64)
        for g in self.groups:
            out[g.idx] = _bmul(g.K, x[g.idx])
        return out

    def covariance(self, v0: float, v1: float):
        """``v0 K + v1 I`` as a ``scipy.sparse`` matrix (the dense one would be n x n)."""
        from scipy.sparse import coo_matrix

        rows, cols, vals = [], [], []
        for g in self.groups:
            S = v0 * g.K + v1 * np.eye(g.b)
            k = g.idx.shape[0]
            rows.append(np.repeat(g.idx, g.b, axis=1).ravel())
            cols.append(np.tile(g.idx, (1, g.b)).ravel())
            vals.append(S.reshape(k, -1).ravel())
        return coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(self.n, self.n)).tocsr()

    def prior(self, v0: float, v1: float) -> BlockPrior:
        return BlockPrior(self, v0, v1)

    def tr_Cinv_K(self, core: BlockCore) -> float:
        return core.tr_Cinv_K()

    def whitener(self, v0: float, v1: float, d: F | None = None) -> BlockWhitener:
        return BlockWhitener(self, v0, v1, d)

    def rotate(self, y: F, X: F, rtol: float = 1e-12) -> tuple[F, F, F]:
        """K's eigenvalues ``S0`` above ``rtol`` times the largest, and ``Q0^T y``,
        ``Q0^T X`` in their eigenvectors: ``K = Q0 diag(S0) Q0^T`` block by block (what
        the LMM needs; Q0 itself, n x n, is never formed)."""
        S, ty, tX = [], [], []
        for g in self.groups:
            w, U = np.linalg.eigh(g.K)  # (k, b), (k, b, b)
            Ut = np.swapaxes(U, 1, 2)
            S.append(w.ravel())
            ty.append(_bmul(Ut, y[g.idx]).ravel())
            tX.append(np.matmul(Ut, X[g.idx]).reshape(-1, X.shape[1]))
        S0, ty0, tX0 = np.concatenate(S), np.concatenate(ty), np.concatenate(tX)
        keep = S0 > rtol * max(S0.max(initial=0.0), 0.0)
        return S0[keep], ty0[keep], tX0[keep]


def _bmul(A: F, x: F) -> F:
    """Stacked ``A @ x`` for ``A`` (k, b, b) and ``x`` (k, b) or (k, b, c)."""
    if x.ndim == 2:
        return np.einsum("kij,kj->ki", A, x)
    return np.matmul(A, x)


def _sigmas(kin: BlockKinship, v0: float, v1: float) -> list[F]:
    out = []
    for g in kin.groups:
        S = v0 * g.K
        S[:, np.arange(g.b), np.arange(g.b)] += v1
        out.append(S)
    return out


class BlockPrior:
    """``Sigma = v0 K + v1 I`` for a block-diagonal K, one stack of blocks per size."""

    def __init__(self, kin: BlockKinship, v0: float, v1: float):
        self.kin = kin
        self.v0, self.v1 = float(v0), float(v1)
        self.Sigma = _sigmas(kin, v0, v1)

    def diag(self) -> F:
        return self.v0 * self.kin._diag + self.v1

    def core(self, tau: F) -> BlockCore:
        return BlockCore(self, tau)


def _chol_inv(A: F, what: str) -> tuple[F, F]:
    """Batched Cholesky factors of ``A`` (k, b, b) and their inverses."""
    b = A.shape[1]
    if b == 1:
        if not np.all(A[:, 0, 0] > 0):
            raise np.linalg.LinAlgError(f"{what} is not positive definite")
        L = np.sqrt(A)
        return L, 1.0 / L
    try:
        L = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError(f"{what} is not positive definite") from None
    Li = np.linalg.inv(L)
    Li = np.tril(Li)  # exact zeros above the diagonal
    return L, Li


class BlockCore(CoreOps):
    """:class:`~glimix_cli.model.gaussian.DenseCore`'s operations for a block-diagonal
    ``Sigma``: ``B = I + T^1/2 Sigma T^1/2`` factorised block by block."""

    def __init__(self, prior: BlockPrior, tau: F):
        self.prior = prior
        self.tau = tau
        self.sq = np.sqrt(tau)
        n = tau.shape[0]
        self.diag_Binv = np.empty(n)
        self.logdet_B = 0.0
        self._parts = []
        for g, S in zip(prior.kin.groups, prior.Sigma, strict=True):
            s = self.sq[g.idx]  # (k, b)
            B = S * s[:, :, None] * s[:, None, :]
            B[:, np.arange(g.b), np.arange(g.b)] += 1.0
            L, Li = _chol_inv(B, "B = I + T^1/2 Sigma T^1/2")
            self.logdet_B += 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2))))
            Binv = np.matmul(np.swapaxes(Li, 1, 2), Li)
            self.diag_Binv[g.idx] = np.einsum("kij,kij->kj", Li, Li)
            self._parts.append((g, S, s, Li, Binv))

    def whitener(self) -> BlockWhitener:
        """Whitening by ``C = Sigma + T^-1``, family by family (O(sum b^3), as cheap as this
        core's own factorisation)."""
        return BlockWhitener(self.prior.kin, self.prior.v0, self.prior.v1, 1.0 / self.tau)

    # -- basic operations ----------------------------------------------------------------
    def solve_B(self, x: F) -> F:
        out = np.empty_like(x, dtype=np.float64)
        for g, _, _, _, Binv in self._parts:
            out[g.idx] = _bmul(Binv, x[g.idx])
        return out

    def tr_Cinv_K(self) -> float:
        """``tr(C^-1 K) = sum_blocks tr(T^1/2 B^-1 T^1/2 K)``."""
        total = 0.0
        for g, _, s, _, Binv in self._parts:
            total += float(np.einsum("kij,kij->", Binv * s[:, :, None] * s[:, None, :], g.K))
        return total

    # -- EP posterior ----------------------------------------------------------------------
    def posterior_diag(self) -> F:
        """Diagonal of ``(Sigma^-1 + T)^-1``: ``(1 - B^-1_ii) / tau_i``, and for sites with
        ``tau_i = 0`` or ``tau_i Sigma_ii`` below 1e-10 the direct form
        ``Sigma_ii - ||L^-1 T^1/2 Sigma e_i||^2`` (cheap per block, so without the dense
        core's cap on how many)."""
        tau = self.tau
        out = np.empty_like(tau)
        for g, S, s, Li, _ in self._parts:
            t = tau[g.idx]
            sd = np.diagonal(S, axis1=1, axis2=2)
            with np.errstate(divide="ignore", invalid="ignore"):
                reg = (1.0 - self.diag_Binv[g.idx]) / t
            direct_needed = (t == 0) | (t * sd < _DIRECT_DIAG)
            if direct_needed.any():
                V = np.matmul(Li, s[:, :, None] * S)
                direct = sd - np.einsum("kij,kij->kj", V, V)
                reg = np.where(direct_needed, direct, reg)
            out[g.idx] = reg
        return out

    def posterior_apply(self, r: F) -> F:
        """``(Sigma^-1 + T)^-1 r = Sigma r - Sigma T^1/2 B^-1 T^1/2 Sigma r``."""
        out = np.empty_like(r, dtype=np.float64)
        for g, S, s, _, Binv in self._parts:
            Sr = _bmul(S, r[g.idx])
            out[g.idx] = Sr - _bmul(S, s * _bmul(Binv, s * Sr))
        return out

    def posterior_covariance(self) -> F:
        """The posterior covariance as a dense (n, n) array (its blocks; zero between
        families)."""
        n = self.tau.shape[0]
        P = np.zeros((n, n))
        for g, S, s, Li, _ in self._parts:
            V = np.matmul(Li, s[:, :, None] * S)
            Pb = S - np.matmul(np.swapaxes(V, 1, 2), V)
            Pb = (Pb + np.swapaxes(Pb, 1, 2)) / 2
            P[g.idx[:, :, None], g.idx[:, None, :]] = Pb
        return P


class BlockWhitener:
    """``W M`` with ``W^T W = C^-1`` for ``C = v0 K + v1 I + diag(d)`` block-diagonal.

    ``W = P^T blockdiag(L_f^-1) P`` up to the row order: the rows of ``W M`` come out in
    family order (``P`` sorts the samples by family, so each size's families are one
    contiguous (k, b) stretch), an orthogonal rotation of the dense ``L^-1 M``. Every inner
    product the scanner forms (``X~^T m~``, ``m~^T m~``, ``m~^T y~``) is the same.
    ``row_order`` is that family order: a caller that reads ``M``'s rows in it (the scan
    reads genotypes in any sample order for free) passes ``ordered=True`` and saves the
    gather, the costliest pass at biobank n.
    """

    def __init__(self, kin: BlockKinship, v0: float, v1: float, d: F | None = None):
        self.kin = kin
        self.logdet = 0.0
        self._parts = []
        self.row_order = np.concatenate([g.idx.ravel() for g in kin.groups])
        start = 0
        for g, C in zip(kin.groups, _sigmas(kin, v0, v1), strict=True):
            if d is not None:
                C[:, np.arange(g.b), np.arange(g.b)] += d[g.idx]
            L, Li = _chol_inv(C, "the scan covariance")
            self.logdet += 2.0 * float(np.sum(np.log(np.diagonal(L, axis1=1, axis2=2))))
            stop = start + g.idx.size
            self._parts.append((start, stop, g.b, Li))
            start = stop

    def whiten(self, M: F, ordered: bool = False) -> F:
        """``W M`` for ``M`` (n, c) or (n,), its rows in the samples' order, or in
        :attr:`row_order` with ``ordered``; the result's rows are in family order."""
        M = np.asarray(M, dtype=np.float64)
        vec = M.ndim == 1
        if vec:
            M = M[:, None]
        if not ordered:
            M = np.take(M, self.row_order, axis=0)
        c = M.shape[1]
        out = np.empty(M.shape, order="F")
        for start, stop, b, Li in self._parts:
            src, dst = M[start:stop], out[start:stop]
            if b == 1:
                np.multiply(src, Li[:, 0, :], out=dst)
            else:
                # one batched product per family size: (k, b, b) @ (k, b, c), written
                # straight into the (Fortran) result through a reshaped view
                view = dst.reshape(-1, b, c)
                np.matmul(Li, src.reshape(-1, b, c), out=view)
                if not np.may_share_memory(view, dst):  # reshape had to copy
                    dst[...] = view.reshape(dst.shape)
        return out[:, 0] if vec else out
