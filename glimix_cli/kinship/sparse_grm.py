"""A sparse GRM at biobank n without the O(n^2 m) dense GRM: screen every pair with a random
subset of the kinship markers, then compute the flagged pairs exactly from all of them.

Notes
-----
The GRM entry of samples i and j is ``K_ij = sum_v z_iv z_jv / m`` with the standardised
dosages of :func:`glimix_cli.kinship.grm.standardise` (the dense GRM's definition). The
sparse GRM keeps the diagonal and the pairs with ``K_ij >= cutoff``.

1. **Screen.** ``m_s`` markers drawn at random (seeded) from the kinship markers give the
   estimate ``S_ij = sum_{v in screen} z_iv z_jv / m_s`` of every pair, in float32 tiles
   of a GEMM (``n^2 m_s`` flops; the screen matrix, n x m_s float32, is the memory).
   For an unrelated pair ``S_ij`` is about ``N(0, 1 / m_s)``, so a pair is flagged when
   ``S_ij >= t`` with ``t = z SE``, ``SE = 1 / sqrt(m_s)`` and ``z`` the Normal quantile
   at which the expected number of falsely flagged pairs among the ``n (n - 1) / 2`` is
   :data:`FALSE_FLAG_BUDGET` n (the exact step's cost bound). A pair exactly at the cutoff
   is then flagged with probability ``Phi((cutoff - t) / SE)``, reported; closer relatives
   (first and second degree: 0.5, 0.25) are flagged with probability 1 to many digits.
   When the screen holds every kinship marker it is exact, and ``t`` is the cutoff.
2. **Exact.** A second pass over all kinship markers accumulates ``sum_v z_iv z_jv`` for the
   flagged pairs only (O(flagged x m)) and the diagonal; pairs below the cutoff are dropped.

This is SAIGE's two-step construction (a few thousand random markers to find the related
pairs, then their GRM from all markers), with the screening threshold derived from the
screen's standard error instead of fixed.

**Ancestry.** In a cohort of several ancestry groups every pair within a group has a
positive GRM entry (about Fst), so a plain screen flags millions of pairs that are not
relatives, and a cutoff of 0.05 keeps many of them. With ``pcs = k > 0`` (the default 10)
the relatedness is taken beyond ancestry: the GRM of the genotypes with their top ``k``
principal components projected out, ``(I - U U^T) K (I - U U^T)``, ``U`` (n x k, the top
left singular vectors of the screening matrix, by randomised subspace iteration). The
screen projects its matrix; the exact step accumulates ``K U`` in the same pass and
forms each kept entry as ``K_ij - U_i A_j - A_i U_j + U_i (U^T A) U_j`` with
``A = K U`` (exact for the ``U`` used). The PCs themselves belong in the model as
covariates (``glimix pca``), so the kinship need not carry ancestry twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr, ndtri

from glimix_cli.errors import InputError
from glimix_cli.io.plink import Bfile, block_size_for_budget, iter_blocks
from glimix_cli.kinship.grm import standardise

__all__ = ["FALSE_FLAG_BUDGET", "SCREEN_MEMORY_BYTES", "SparseGRMResult", "auto_screen_markers",
           "sparse_grm"]

F = NDArray[np.float64]
#: Expected falsely flagged pairs per sample that the screen may pass to the exact step.
FALSE_FLAG_BUDGET = 2.0
#: Memory for the screen matrix (n x m_s float32) when the number of markers is automatic.
SCREEN_MEMORY_BYTES = 2 << 30
#: Rows per screening tile (a tile of the GEMM is TILE x TILE float32).
_TILE = 2048
#: Pair x marker products per gather of the exact step (bounds its work arrays).
_GATHER = 1 << 24

Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class SparseGRMResult:
    """A sparse GRM and how it was built.

    ``K`` (CSR, n x n) holds the diagonal and the pairs at or above ``cutoff``;
    ``n_screen`` markers screened the pairs with threshold ``threshold``, flagging
    ``flagged`` of them; ``detect_at_cutoff`` is the probability that a pair exactly at
    the cutoff was flagged (1 for an exact screen).
    """

    K: object
    cutoff: float
    n_variants_used: int
    n_skipped_monomorphic: int
    n_skipped_maf: int
    n_screen: int
    threshold: float
    flagged: int
    exact_screen: bool
    detect_at_cutoff: float
    #: the principal components projected out, n x pcs (pcs = 0: the plain GRM)
    U: F | None = None

    @property
    def pcs(self) -> int:
        return 0 if self.U is None else int(self.U.shape[1])


def auto_screen_markers(n: int, cutoff: float, m: int) -> int:
    """Screening markers when not given: ``(8 / cutoff)^2`` (a pair at the cutoff eight
    screen SEs from 0), at least 2,000, at most the kinship markers and what fits in
    :data:`SCREEN_MEMORY_BYTES`."""
    want = max(2000, math.ceil((8.0 / cutoff) ** 2))
    fits = max(500, SCREEN_MEMORY_BYTES // (4 * max(n, 1)))
    return int(min(want, fits, m))


def _threshold(n: int, m_s: int, cutoff: float, exact: bool) -> tuple[float, float]:
    """The screening threshold and the probability of flagging a pair at the cutoff."""
    if exact:
        return cutoff - 1e-4, 1.0  # float32 rounding of an exact screen
    pairs = n * (n - 1) / 2.0
    budget = FALSE_FLAG_BUDGET * n
    if budget >= pairs:
        return -np.inf, 1.0
    se = 1.0 / math.sqrt(m_s)
    t = float(-ndtri(budget / pairs)) * se
    return t, float(ndtr((cutoff - t) / se))


def sparse_grm(bfile: Bfile, sample_index: ArrayLike | None, variant_indices: ArrayLike | None,
               maf_min: float, cutoff: float, screen_markers: int | None = None,
               seed: int = 1, progress: Progress | None = None,
               pcs: int = 10, part: tuple[int, int] = (1, 1)) -> SparseGRMResult:
    """The sparse GRM of the samples ``sample_index`` (all when None) from the kinship
    markers ``variant_indices`` (all when None): see the module notes.

    ``part = (i, N)`` screens only the i-th of N interleaved shares of the pair tiles (an
    array job's task; the screen matrix, its PCs and the threshold are the same in every
    part, as they depend on the seed only): ``K`` then holds that share's pairs and the
    full diagonal, and the parts' matrices add up (off the diagonal) to the whole.
    """
    i_part, n_parts = part
    if not 1 <= i_part <= n_parts:
        raise ValueError(f"part must be (i, N) with 1 <= i <= N; got {part}")
    if not 0 < cutoff < 1:
        raise ValueError(f"cutoff must lie in (0, 1); got {cutoff}")
    vidx = (np.arange(bfile.n_variants, dtype=np.intp) if variant_indices is None
            else np.asarray(variant_indices, dtype=np.intp))
    sidx = None if sample_index is None else np.asarray(sample_index, dtype=np.intp)
    n = bfile.n_samples if sidx is None else sidx.size
    m_cand = vidx.size
    m_s = (auto_screen_markers(n, cutoff, m_cand) if screen_markers is None
           else int(min(screen_markers, m_cand)))
    if m_s < 1:
        raise ValueError("screen_markers must be >= 1")
    exact = m_s >= m_cand
    rng = np.random.default_rng(seed)
    screen_idx = vidx if exact else np.sort(rng.choice(vidx, m_s, replace=False))
    n_tiles = -(-n // _TILE)
    # progress in units of one marker read (about 10 ns per sample); a tile of the screen
    # is 2 TILE^2 m_s float32 flops (about 1e11 per second)
    tile_w = max(1, round(2.0 * _TILE * min(_TILE, n) * screen_idx.size / 1e11 / (n * 1e-8)))
    total = (screen_idx.size + tile_w * -(-n_tiles * (n_tiles + 1) // 2 // n_parts) + m_cand)
    done = [0]

    def step(k: int) -> None:
        done[0] += k
        if progress is not None:
            progress(done[0], total)

    Zs = _screen_matrix(bfile, sidx, screen_idx, maf_min, n, step)
    if Zs.shape[1] == 0:
        raise InputError(f"{bfile.bed.name}: no usable marker among the {screen_idx.size:,} "
                         "screening markers (monomorphic or below --kinship-maf) - select "
                         "more variants or lower the MAF filter")
    t, detect = _threshold(n, Zs.shape[1], cutoff, exact)
    U = None
    if pcs > 0:
        U = _top_vectors(Zs, min(pcs, n - 1, Zs.shape[1] - 1), rng)
        Uf = U.astype(np.float32)
        for lo in range(0, Zs.shape[1], 1024):  # in place, a slab at a time
            Zs[:, lo:lo + 1024] -= Uf @ (Uf.T @ Zs[:, lo:lo + 1024])
    rows, cols = _screen_pairs(Zs, t, lambda k: step(k * tile_w), part)
    del Zs
    val, diag, counts = _exact_pairs(bfile, sidx, vidx, maf_min, rows, cols, n, step, U)
    keep = val >= cutoff
    from scipy import sparse

    upper = sparse.coo_matrix((val[keep], (rows[keep], cols[keep])), shape=(n, n))
    K = (upper + upper.T + sparse.diags(diag)).tocsr()
    return SparseGRMResult(K, cutoff, counts[0], counts[1], counts[2], int(screen_idx.size),
                           float(t), int(rows.size), exact, detect, U)


def _top_vectors(Z: NDArray[np.float32], k: int, rng: np.random.Generator,
                 iterations: int = 4) -> F:
    """The top ``k`` left singular vectors of ``Z`` (n x m, in memory), orthonormal."""
    if k < 1:
        return np.zeros((Z.shape[0], 0))
    ell = min(k + 10, Z.shape[1], Z.shape[0])
    Q, _ = np.linalg.qr(Z @ rng.normal(size=(Z.shape[1], ell)).astype(np.float32))
    for _ in range(iterations):
        Q, _ = np.linalg.qr(Z @ (Z.T @ Q))
    Ub, _, _ = np.linalg.svd((Q.T @ Z).astype(np.float64), full_matrices=False)
    U, _ = np.linalg.qr(Q.astype(np.float64) @ Ub[:, :k])
    return U


def _screen_matrix(bfile: Bfile, sidx: NDArray[np.intp] | None, idx: NDArray[np.intp],
                   maf_min: float, n: int, step: Callable[[int], None]) -> NDArray[np.float32]:
    """The standardised screening markers, n x (used) float32, scaled by 1 / sqrt(used)."""
    Z = np.empty((n, idx.size), dtype=np.float32, order="F")
    j = 0
    bs = min(block_size_for_budget(n), 4096)
    for _, G in iter_blocks(bfile, idx, bs, sidx):
        st = standardise(G, maf_min)
        u = st.Z.shape[1]
        Z[:, j:j + u] = st.Z
        j += u
        step(G.shape[1])
    Z = Z[:, :j]
    if j:
        Z *= np.float32(1.0 / math.sqrt(j))
    return np.ascontiguousarray(Z)


def _screen_pairs(Z: NDArray[np.float32], t: float, step: Callable[[int], None],
                  part: tuple[int, int] = (1, 1)) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Pairs ``i < j`` with ``(Z Z^T)_ij >= t``, tile by tile (upper triangle); of the tiles
    numbered in order, those numbered ``i - 1`` modulo ``N`` for ``part = (i, N)``."""
    n = Z.shape[0]
    rows, cols = [], []
    tile = -1
    for i0 in range(0, n, _TILE):
        A = Z[i0:i0 + _TILE]
        for j0 in range(i0, n, _TILE):
            tile += 1
            if tile % part[1] != part[0] - 1:
                continue
            S = A @ Z[j0:j0 + _TILE].T
            if j0 == i0:
                S[np.tril_indices(S.shape[0], 0, S.shape[1])] = -np.inf
            a, b = np.nonzero(S >= t)
            rows.append(a + i0)
            cols.append(b + j0)
            step(1)
    if not rows:
        return np.empty(0, np.intp), np.empty(0, np.intp)
    return np.concatenate(rows).astype(np.intp), np.concatenate(cols).astype(np.intp)


def _exact_pairs(bfile: Bfile, sidx: NDArray[np.intp] | None, vidx: NDArray[np.intp],
                 maf_min: float, rows: NDArray[np.intp], cols: NDArray[np.intp], n: int,
                 step: Callable[[int], None],
                 U: F | None = None) -> tuple[F, F, tuple[int, int, int]]:
    """``K_ij`` of the pairs ``(rows, cols)`` and the diagonal, from every kinship marker
    (of ``(I - U U^T) K (I - U U^T)`` when ``U`` is given: see the module notes)."""
    acc = np.zeros(rows.size)
    diag = np.zeros(n)
    KU = None if U is None else np.zeros_like(U)
    used = mono = low = 0
    bs = min(block_size_for_budget(n, 1024), 4096)
    for _, G in iter_blocks(bfile, vidx, bs, sidx):
        st = standardise(G, maf_min)
        mono += int((~st.poly).sum())
        low += int((st.poly & ~st.use).sum())
        u = st.Z.shape[1]
        used += u
        if u:
            Z = np.ascontiguousarray(st.Z)
            diag += np.einsum("ij,ij->i", Z, Z)
            if KU is not None:
                KU += Z @ (Z.T @ U)
            per = max(1, _GATHER // u)
            for lo in range(0, rows.size, per):
                r, c = rows[lo:lo + per], cols[lo:lo + per]
                acc[lo:lo + per] += np.einsum("ij,ij->i", Z[r], Z[c])
        step(G.shape[1])
    if used == 0:
        raise InputError(f"{bfile.bed.name}: no variant is usable for the kinship matrix "
                         f"({mono} monomorphic or all missing, {low} below maf {maf_min:g}) "
                         "- select more variants or lower the MAF filter")
    val, diag = acc / used, diag / used
    if U is not None and KU is not None:
        A = KU / used
        M = U.T @ A
        Ur, Uc = U[rows], U[cols]
        val += (np.einsum("ij,ij->i", Ur @ M, Uc) - np.einsum("ij,ij->i", Ur, A[cols])
                - np.einsum("ij,ij->i", A[rows], Uc))
        diag += np.einsum("ij,ij->i", U @ M, U) - 2.0 * np.einsum("ij,ij->i", U, A)
    return val, diag, (used, mono, low)
