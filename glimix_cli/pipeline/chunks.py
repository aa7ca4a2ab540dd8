"""Splitting the selected variants: a chunk of an array job (``--chunk I/N``), then the
blocks one process tests at a time."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import InputError


def chunk_range(n: int, i: int, k: int) -> tuple[int, int]:
    """Bounds of chunk ``i`` (1-based) of ``n`` items split into ``k`` contiguous, near-equal
    chunks."""
    if not (1 <= i <= k):
        raise InputError(f"--chunk {i}/{k}: I must be between 1 and N")
    base, extra = divmod(n, k)
    start = (i - 1) * base + min(i - 1, extra)
    stop = start + base + (1 if i <= extra else 0)
    return start, stop


def split_blocks(indices: NDArray[np.intp], block_size: int) -> list[NDArray[np.intp]]:
    """``indices`` in consecutive blocks of ``block_size`` (the last one shorter)."""
    return [indices[lo:lo + block_size] for lo in range(0, indices.size, block_size)]
