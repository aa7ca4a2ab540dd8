"""``glimix pca``: the leading principal components of the genotypes, in plink2's format,
to go in as covariates (``--covar P.eigenvec``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from glimix_cli.errors import InputError
from glimix_cli.io.atomic import check_output
from glimix_cli.io.eigenvec import eigenval_path, write_eigenvec
from glimix_cli.io.plink import open_bfile
from glimix_cli.io.samples import select_samples
from glimix_cli.kinship.pca import randomized_pcs
from glimix_cli.pipeline.progress import Reporter
from glimix_cli.pipeline.qc import select_variants


def run_pca(bfile_path: Path, k: int, out: Path, rep: Reporter, extract: Path | None = None,
            maf: float = 0.0, keep: Path | None = None, remove: Path | None = None,
            iterations: int = 4, seed: int = 1) -> dict[str, Any]:
    """Write ``out`` (.eigenvec) and its ``.eigenval``; returns what was done."""
    check_output(out)
    check_output(eigenval_path(out))
    bfile = open_bfile(bfile_path)
    sidx = None
    mask = np.ones(bfile.n_samples, dtype=bool)
    for _, m in select_samples(bfile.samples, keep, remove):
        mask &= m
    if not mask.all():
        sidx = np.flatnonzero(mask)
    n = int(mask.sum())
    variants = None
    if extract is not None:
        sel = select_variants(bfile.variants, extract=extract)
        if sel.indices.size == 0:
            raise InputError(f"{extract}: none of its {sel.n_extract_ids} ids are in "
                             f"{bfile.bim} - check the variant ids")
        variants = sel.indices
    m = bfile.n_variants if variants is None else variants.size
    if not 1 <= k < min(n, m):
        raise InputError(f"{bfile.bed}: -k {k} principal components of {n:,} samples x "
                         f"{m:,} variants - k must be below both")
    rep.start("pca", 100)
    res = randomized_pcs(bfile, k, sidx, variants, maf, iterations=iterations, seed=seed,
                         progress=lambda done, total: rep.update("pca", 100 * done // total))
    rep.finish("pca")
    s = bfile.samples.iloc[np.flatnonzero(mask)]
    vec, val = write_eigenvec(out, s["fid"], s["iid"], res.vectors, res.values)
    return {"n_samples": n, "n_variants_used": res.n_variants_used, "k": k,
            "eigenvalues": res.values.tolist(), "eigenval": val}
