"""Several traits in one pass (``--pheno-name a,b,c``, ``--all-pheno``).

Each trait has its own samples (its non-missing ones), null model and output file; what
they share is the work on the genotypes. A block is read and decoded once for the union
of the traits' samples; the traits analysed on the same samples (a *group*) share its
QC and mean imputation; and the Normal traits of a group with a dense kinship share the
block's eigenbasis rotation ``Q^T M``: their scan covariances ``(1 - delta) K + delta I``
differ only in ``delta``, i.e. by a diagonal in that basis
(:class:`glimix_cli.model.covariance.EigenWhitener`), so each trait's whitening is a
scaling of the one rotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.io.genotypes import GenotypeSpec
from glimix_cli.io.plink import iter_blocks
from glimix_cli.model.covariance import EigenWhitener
from glimix_cli.model.scanner import FastScanner
from glimix_cli.pipeline.kinship import Kinship
from glimix_cli.pipeline.null import NullModel
from glimix_cli.pipeline.scan import (
    BlockResult,
    ScanContext,
    block_rows,
    case_control_counts,
    qc_block,
)

F = NDArray[np.float64]


def sample_groups(indices: list[NDArray[np.intp]]) -> list[list[int]]:
    """Traits with the same analysed samples (the same ``.fam`` rows in the same order),
    as lists of trait numbers, in order of first appearance."""
    seen: dict[bytes, list[int]] = {}
    for t, idx in enumerate(indices):
        seen.setdefault(np.asarray(idx, dtype=np.intp).tobytes(), []).append(t)
    return list(seen.values())


def share_rotation(nulls: list[NullModel], ys: list[F], Xs: list[F], kin: Kinship,
                   members: list[int]) -> tuple[F, dict[int, F]] | None:
    """Give the Normal traits among ``members`` (one sample group, dense kinship ``kin``)
    scanners that whiten through one eigenbasis; returns ``(Q, {trait: scale})``, or None
    where fewer than two would share it. The scanners equal the single-trait ones (a
    Cholesky of the same covariance) up to rounding."""
    normal = [t for t in members if nulls[t].likelihood == "normal"
              and nulls[t].scanner is not None]
    if len(normal) < 2 or kin.sparse:
        return None
    (Q0, Q1), S0 = kin.qs()
    n = Q0.shape[0]
    Q = Q0 if Q1 is None or Q1.size == 0 else np.concatenate([Q0, Q1], axis=1)
    if Q.shape[1] != n:
        return None
    S = np.concatenate([S0, np.zeros(n - S0.size)])
    scales = {}
    for t in normal:
        w = EigenWhitener(Q, S, nulls[t].delta)
        nulls[t].scanner = FastScanner.from_whitener(ys[t], Xs[t], w)
        scales[t] = w.scale
    return Q, scales


@dataclass
class MultiContext:
    """What one block needs for every trait (shipped once to a Dask worker).

    ``traits[t]`` is trait t's single-trait context (its ``sample_index`` the ``.fam``
    rows it reads); ``union`` the ``.fam`` rows read once for all; ``rows[t]`` where trait
    t's samples sit in that block; ``groups`` the traits that share samples (and so the
    block's QC); ``rotations`` per group, ``(Q, {trait: scale})``: those Normal traits'
    scanners whiten by ``diag(scale) Q^T``.
    """

    geno: GenotypeSpec
    union: NDArray[np.intp]
    traits: list[ScanContext]
    rows: list[NDArray[np.intp]]
    groups: list[list[int]]
    rotations: dict[int, tuple[F, dict[int, F]]] = field(default_factory=dict)
    _bfile: Any = None

    @classmethod
    def build(cls, geno: GenotypeSpec, traits: list[ScanContext],
              rotations: dict[int, tuple[F, dict[int, F]]] | None = None) -> MultiContext:
        groups = sample_groups([c.sample_index for c in traits])
        union = np.unique(np.concatenate([c.sample_index for c in traits]))
        rows = [np.searchsorted(union, c.sample_index) for c in traits]
        return cls(geno, union, traits, rows, groups, dict(rotations or {}))

    def bfile(self) -> Any:
        if self._bfile is None:
            self._bfile = self.geno.open()
        return self._bfile

    def __getstate__(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["_bfile"] = None
        return d


def scan_block_multi(ctx: MultiContext, idx: NDArray[np.intp]) -> list[BlockResult]:
    """Read one block once and test it for every trait: one result per trait."""
    bfile = ctx.bfile()
    (_, raw), = iter_blocks(bfile, idx, max(idx.size, 1), ctx.union)
    out: list[BlockResult | None] = [None] * len(ctx.traits)
    identity = len(ctx.groups) == 1 and np.array_equal(ctx.rows[0], np.arange(raw.shape[0]))
    for g, members in enumerate(ctx.groups):
        lead = ctx.traits[members[0]]
        block = raw if identity else np.asfortranarray(raw[ctx.rows[members[0]]])
        counts = {t: case_control_counts(block, ctx.traits[t].case_status) for t in members
                  if ctx.traits[t].case_status is not None}
        qc_info = qc_block(lead, bfile, idx, block)  # imputes in place: after the counts
        rotated = None
        shared = ctx.rotations.get(g)
        for t in members:
            whitened = None
            if shared is not None and t in shared[1]:
                if rotated is None:
                    rotated = shared[0].T @ block
                whitened = rotated * shared[1][t][:, None]
            out[t] = block_rows(ctx.traits[t], bfile, idx, block, qc_info, counts.get(t),
                                whitened)
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]
