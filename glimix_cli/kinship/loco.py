"""Leave-one-chromosome-out (LOCO) kinships, accumulated in one streamed pass.

Notes
-----
With ``Z`` the standardised dosages of :mod:`glimix_cli.kinship.grm` (the same columns the
whole-genome GRM uses), ``S = sum_j z_j z_j^T`` over all ``m`` kinship variants and
``S_c`` the same sum over the ``m_c`` variants of chromosome ``c``,

    K = S / m,    K_-c = (S - S_c) / (m - m_c) = (m K - m_c K_c) / (m - m_c),

the GRM of the variants on every other chromosome. One pass over the kinship variants,
chromosome by chromosome, accumulates each ``S_c`` with ``dsyrk`` into one n x n buffer
and adds it to ``S``. The parts ``S_c`` are kept as float32 (in memory when they fit in
:data:`PARTS_IN_MEMORY` bytes, else in a temporary directory, ``TMPDIR``): rounding
``S_c`` to float32 moves an entry of ``K_-c`` by about ``2^-24 m_c / (m - m_c)``, under
1e-8 of its diagonal for 22 autosomes. A chromosome without kinship variants has
``K_-c = K``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import blas

from glimix_cli.errors import InputError
from glimix_cli.io.plink import Bfile
from glimix_cli.kinship.grm import _check_used, _Counts, _standardised_blocks

__all__ = ["PARTS_IN_MEMORY", "LocoGRM", "chromosome_groups", "loco_grm"]

F = NDArray[np.float64]
#: Bytes of float32 per-chromosome parts held in memory; more go to a temporary directory.
PARTS_IN_MEMORY = 2 * 2**30


def chromosome_groups(chrom: ArrayLike, indices: ArrayLike) -> dict[str, NDArray[np.intp]]:
    """The variants ``indices`` (.bim rows) grouped by their chromosome label ``chrom``,
    in order of first appearance."""
    idx = np.asarray(indices, dtype=np.intp)
    labels = np.asarray(chrom, dtype=object)[idx].astype(str)
    names, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(first)
    return {str(names[k]): idx[inverse == k] for k in order}


@dataclass(eq=False)
class LocoGRM:
    """The whole-genome sum ``S`` and the per-chromosome parts ``S_c`` of the GRM.

    Attributes
    ----------
    S : ndarray of float64, shape (n, n)
        ``sum_j z_j z_j^T`` over every used kinship variant (symmetric).
    n_variants_used : int
        ``m``.
    chrom_counts : dict of str to int
        ``m_c``: used kinship variants per chromosome (chromosomes with none left out).
    """

    S: F
    n_variants_used: int
    chrom_counts: dict[str, int]
    n_skipped_monomorphic: int = 0
    n_skipped_maf: int = 0
    n_imputed: int = 0
    _parts: dict[str, Any] = field(default_factory=dict)
    _tmp: str | None = None

    def whole(self) -> F:
        """The whole-genome GRM ``S / m``."""
        return self.S / self.n_variants_used

    def minus(self, chrom: str) -> F:
        """``K_-c``: the GRM from the kinship variants of every chromosome but ``chrom``."""
        m_c = self.chrom_counts.get(str(chrom), 0)
        if m_c == 0:
            return self.whole()
        K = self.S - self._parts[str(chrom)]
        K /= self.n_variants_used - m_c
        return K

    def close(self) -> None:
        """Remove the temporary directory of the parts (if any)."""
        self._parts.clear()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __del__(self) -> None:
        self.close()


def loco_grm(
    bfile: Bfile,
    sample_index: ArrayLike | None = None,
    variant_indices: ArrayLike | None = None,
    maf_min: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    parts_in_memory: int = PARTS_IN_MEMORY,
) -> LocoGRM:
    """Accumulate the whole-genome GRM and its per-chromosome parts in one pass.

    Parameters are those of :func:`glimix_cli.kinship.grm.grm` (the same variants and
    standardisation, so ``whole()`` equals its ``K``).

    Raises
    ------
    InputError
        Fewer than two chromosomes among the kinship variants (nothing to leave out), no
        usable variant, or too little room in ``TMPDIR`` for the parts.
    """
    vidx = (np.arange(bfile.n_variants, dtype=np.intp) if variant_indices is None
            else np.asarray(variant_indices, dtype=np.intp))
    groups = chromosome_groups(bfile.variants["chrom"].to_numpy(), vidx)
    if len(groups) < 2:
        only = next(iter(groups), "none")
        raise InputError(f"{bfile.bim}: --loco leaves one chromosome out of the kinship at a "
                         f"time, but the kinship variants are all on chromosome {only} - "
                         "drop --loco, or give the genotypes of the other chromosomes")
    n = bfile.n_samples if sample_index is None else len(np.asarray(sample_index))
    part_bytes = 4 * n * n * len(groups)
    tmp = None
    if part_bytes > parts_in_memory:
        base = tempfile.gettempdir()
        free = shutil.disk_usage(base).free
        if part_bytes > 0.9 * free:
            raise InputError(f"--loco: the {len(groups)} per-chromosome kinship parts of "
                             f"{n:,} samples need {part_bytes / 2**30:.1f} GiB of temporary "
                             f"space, {base} has {free / 2**30:.1f} GiB free - point TMPDIR "
                             "at a larger disk")
        tmp = tempfile.mkdtemp(prefix="glimix-loco-")
    counts = _Counts()
    S = np.zeros((n, n), dtype=np.float64, order="F")
    buf = np.zeros((n, n), dtype=np.float64, order="F")
    parts: dict[str, Any] = {}
    chrom_counts: dict[str, int] = {}
    done = 0
    try:
        for chrom, idx in groups.items():
            buf[:] = 0.0
            used0 = counts.used

            def step(d: int, total: int, base: int = done) -> None:
                if progress is not None:
                    progress(base + d, vidx.size)

            for Z in _standardised_blocks(bfile, sample_index, idx, maf_min, None, step,
                                          counts):
                buf = blas.dsyrk(1.0, np.asfortranarray(Z), beta=1.0, c=buf, overwrite_c=1,
                                 lower=1)
            done += idx.size
            m_c = counts.used - used0
            if m_c == 0:
                continue
            full = np.tril(buf) + np.tril(buf, -1).T
            S += full
            chrom_counts[chrom] = m_c
            if tmp is None:
                parts[chrom] = full.astype(np.float32)
            else:
                mm = np.lib.format.open_memmap(Path(tmp) / f"part{len(parts)}.npy", mode="w+",
                                               dtype=np.float32, shape=(n, n))
                mm[:] = full
                mm.flush()
                parts[chrom] = mm
            del full
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    del buf
    _check_used(bfile, counts, maf_min)
    if len(chrom_counts) < 2:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"{bfile.bim}: --loco needs usable kinship variants on two or more "
                         f"chromosomes; only {', '.join(chrom_counts)} has any (after the MAF "
                         "and monomorphism filters) - drop --loco or lower --kinship-maf")
    return LocoGRM(np.ascontiguousarray(S), counts.used, chrom_counts, counts.mono, counts.maf,
                   counts.imputed, parts, tmp)
