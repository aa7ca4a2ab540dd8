"""Principal components of the genotypes (the leading eigenvectors of the standardised GRM)
by randomised subspace iteration over streamed variant blocks: never an n x n or n x m
matrix.

Notes
-----
With ``Z`` the standardised dosages (n x m, :func:`glimix_cli.kinship.grm.standardise`) and
``K = Z Z^T / m`` the GRM, the top ``k`` eigenpairs of ``K`` come from the subspace
iteration (Halko, Martinsson & Tropp 2011, algorithm 4.4 without the intermediate SVD)

    Q_0 = orth(Omega),   Omega ~ N(0, 1)^(n x l),   l = k + oversample
    Y_i = K Q_(i-1) = sum_blocks Z_b (Z_b^T Q_(i-1)) / m,   Q_i = orth(Y_i)

and the Rayleigh-Ritz step on the last one: the eigenpairs ``(w, V)`` of ``Q^T K Q`` give
the eigenvalues ``w`` and eigenvectors ``Q V``. Each product ``K Q`` is one pass over the
genotypes (O(n m l) flops, O(n l) memory); ``iterations`` + 1 passes in all. The error of
the j-th eigenvector decays like ``(lambda_(l+1) / lambda_j)^(2 iterations + 1)``, so the
oversampling and a few iterations make the PCs that carry ancestry (well-separated
eigenvalues) exact to many digits. Eigenvectors have unit norm; each sign is fixed so that
its largest-magnitude entry is positive.

The first pass reads the genotypes; when their dosages fit in :data:`CACHE_BYTES` as int8
(n m bytes: 100,000 samples x 20,000 pruned markers), it keeps them, with each marker's
mean and SD, and the later passes standardise from memory instead of decoding the .bed
again (the decoding was 80% of a 20,000 x 12,000 run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from glimix_cli.io.plink import Bfile, block_size_for_budget, iter_blocks
from glimix_cli.kinship.grm import _check_used, _Counts, standardise

__all__ = ["CACHE_BYTES", "PCAResult", "randomized_pcs"]

F = NDArray[np.float64]
#: Dosages kept in memory (int8) between passes when they fit.
CACHE_BYTES = 2 << 30


@dataclass(frozen=True, eq=False)
class PCAResult:
    """``vectors`` (n, k) unit eigenvectors of the GRM and ``values`` (k,) its eigenvalues,
    largest first; ``n_variants_used`` markers entered the GRM."""

    vectors: F
    values: F
    n_variants_used: int
    n_skipped_monomorphic: int
    n_skipped_maf: int


def randomized_pcs(bfile: Bfile, k: int, sample_index: ArrayLike | None = None,
                   variant_indices: ArrayLike | None = None, maf_min: float = 0.0,
                   oversample: int = 10, iterations: int = 4, seed: int = 1,
                   progress: Callable[[int, int], None] | None = None) -> PCAResult:
    """The top ``k`` principal components of the standardised genotypes (module notes)."""
    n = bfile.n_samples if sample_index is None else len(np.asarray(sample_index))
    m_cand = bfile.n_variants if variant_indices is None else len(np.asarray(variant_indices))
    if not 1 <= k < min(n, m_cand):
        raise ValueError(f"k must lie in 1..{min(n, m_cand) - 1}; got {k}")
    ell = min(k + oversample, n, m_cand)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(n, ell)))
    passes = iterations + 1
    counts = _Counts()
    keep = n * m_cand <= CACHE_BYTES
    cache: list[tuple[NDArray[np.int8], F, F]] = []
    for it in range(passes):
        c = _Counts()

        def tick(done: int, total: int, it: int = it) -> None:
            if progress is not None:
                progress(it * total + done, passes * total)

        Y = np.zeros((n, ell))
        if it and keep:
            for D, mean, sd in cache:
                Z = _from_cache(D, mean, sd)
                Y += Z @ (Z.T @ Q)
            tick(m_cand, m_cand)
        else:
            for Z, D in _blocks(bfile, sample_index, variant_indices, maf_min, tick, c, keep):
                Y += Z @ (Z.T @ Q)
                if keep:
                    cache.append(D)
        if it == 0:
            _check_used(bfile, c, maf_min)
            counts = c
        Y /= counts.used
        if it < passes - 1:
            Q, _ = np.linalg.qr(Y)
    T = Q.T @ Y
    w, V = np.linalg.eigh((T + T.T) / 2)
    order = np.argsort(w)[::-1][:k]
    U = Q @ V[:, order]
    big = np.argmax(np.abs(U), axis=0)
    U *= np.sign(U[big, np.arange(k)])
    return PCAResult(U, w[order], counts.used, counts.mono, counts.maf)


def _blocks(bfile: Bfile, sample_index: ArrayLike | None, variant_indices: ArrayLike | None,
            maf_min: float, tick: Callable[[int, int], None], counts: _Counts, keep: bool):
    """The standardised blocks ``Z`` of one pass (:func:`standardise`), each with its int8
    dosages (-1 missing), mean and SD for :func:`_from_cache` when ``keep``."""
    vidx = (np.arange(bfile.n_variants, dtype=np.intp) if variant_indices is None
            else np.asarray(variant_indices, dtype=np.intp))
    n = bfile.n_samples if sample_index is None else len(np.asarray(sample_index))
    bs = min(block_size_for_budget(n), 4096)
    done = 0
    for _, G in iter_blocks(bfile, vidx, bs, sample_index):
        D = np.where(np.isnan(G), -1, G).astype(np.int8) if keep else None
        st = standardise(G, maf_min)
        counts.mono += int((~st.poly).sum())
        counts.maf += int((st.poly & ~st.use).sum())
        counts.used += int(st.use.sum())
        done += G.shape[1]
        tick(done, vidx.size)
        if not st.use.any():
            continue
        Z = np.asfortranarray(st.Z)
        if D is None:
            yield Z, None
            continue
        D = np.ascontiguousarray(D[:, st.use])
        obs = D >= 0
        n_obs = obs.sum(axis=0)
        mean = np.where(obs, D, 0).sum(axis=0) / n_obs
        dev = np.where(obs, D - mean, 0.0)
        sd = np.sqrt((dev * dev).sum(axis=0) / n)
        yield Z, (D, mean, sd)


def _from_cache(D: NDArray[np.int8], mean: F, sd: F) -> F:
    """``Z`` of a cached block: ``(g - mean) / sd``, 0 for a missing call."""
    Z = D.astype(np.float64)
    Z -= mean
    Z[D < 0] = 0.0
    Z /= sd
    return np.asfortranarray(Z)
