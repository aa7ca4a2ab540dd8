"""Step 2: the kinship of the analysed samples (a precomputed matrix, the cache of
``glimix kinship``, or the GRM streamed from the genotypes), and the ``kinship`` command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import InputError
from glimix_cli.io.atomic import check_output
from glimix_cli.io.plink import Bfile, open_bfile
from glimix_cli.kinship import (
    bfile_fingerprint,
    kinship_qs,
    load_kinship_cache,
    save_kinship_cache,
)
from glimix_cli.model.linalg import QSType, economic_qs
from glimix_cli.pipeline.config import InputConfig
from glimix_cli.pipeline.inputs import Inputs, file_fingerprint
from glimix_cli.pipeline.progress import Reporter
from glimix_cli.pipeline.qc import select_variants

F = NDArray[np.float64]


@dataclass
class Kinship:
    """The kinship of the analysed samples, and its eigendecomposition once known."""

    K: F  # analysed samples x analysed samples
    QS: QSType | None  # eigendecomposition of K, when already known
    source: str
    n_variants: int | None = None

    def qs(self) -> QSType:
        if self.QS is None:
            self.QS = economic_qs(self.K)
        return self.QS


def kinship_options(cfg: InputConfig) -> dict[str, Any]:
    """The options that change a GRM (part of the cache's and the null model's identity)."""
    extract = None
    if cfg.kinship_extract is not None:
        extract = file_fingerprint(cfg.kinship_extract)
    return {"kinship_extract": extract, "maf_min": cfg.kinship_maf}


def _kinship_variants(extract: Path | None, bfile: Bfile) -> NDArray[np.intp] | None:
    if extract is None:
        return None
    sel = select_variants(bfile.variants, extract=extract)
    if sel.indices.size == 0:
        raise InputError(f"{extract}: none of its {sel.n_extract_ids} ids are in "
                         f"{bfile.bim} - check the variant ids")
    return sel.indices


def _dense(QS: QSType, rows: NDArray[np.intp] | None = None) -> F:
    """``Q0 S0 Q0^T`` (of the samples ``rows``), symmetrised."""
    (Q0, _), S0 = QS
    Q = Q0 if rows is None else Q0[rows]
    K = (Q * S0) @ Q.T
    return (K + K.T) / 2


def build_kinship(cfg: InputConfig, inputs: Inputs, rep: Reporter) -> Kinship:
    """The kinship of ``inputs``' analysed samples, from the first source ``cfg`` names."""
    bfile, match = inputs.bfile, inputs.match
    idx = match.geno_index
    if inputs.kinship_matrix is not None:
        assert match.kinship_index is not None
        k = match.kinship_index
        rep.info(f"kinship: precomputed matrix {cfg.kinship}")
        return Kinship(np.ascontiguousarray(inputs.kinship_matrix[np.ix_(k, k)]), None,
                       str(cfg.kinship))
    if cfg.kinship_cache is not None and Path(cfg.kinship_cache).exists():
        fp = bfile_fingerprint(bfile, kinship_options(cfg))
        s = bfile.samples
        QS = load_kinship_cache(cfg.kinship_cache, fp, s["fid"].to_numpy(),
                                s["iid"].to_numpy())
        rep.info(f"kinship: cache {cfg.kinship_cache} (rank {QS[1].size})")
        if idx.size == bfile.n_samples:
            return Kinship(_dense(QS), QS, str(cfg.kinship_cache))
        return Kinship(_dense(QS, idx), None, str(cfg.kinship_cache))
    variants = _kinship_variants(cfg.kinship_extract, bfile)
    m = bfile.n_variants if variants is None else variants.size
    rep.start("kinship", m)
    # eigendecomposition deferred (Kinship.qs): only the Normal fit needs it, the EP fit of
    # the other likelihoods works on K itself (saves an n^3 eigh: 25-60 s at n = 5,000)
    res = kinship_qs(bfile, idx, variants, cfg.kinship_maf,
                     progress=lambda done, total: rep.update("kinship", done), eigen=False)
    rep.finish("kinship")
    rep.info(f"kinship: GRM of {match.n:,} samples from {res.n_variants_used:,} variants "
             f"({res.n_skipped_monomorphic:,} monomorphic"
             + (f", {res.n_skipped_maf:,} under MAF {cfg.kinship_maf}" if res.n_skipped_maf else "")
             + ")")
    if res.n_variants_used == 0:
        raise InputError(f"{bfile.bed}: no polymorphic variant left for the kinship matrix - "
                         "check --kinship-extract / --kinship-maf")
    if res.K is not None:
        K = res.K
    else:
        assert res.QS is not None
        K = _dense(res.QS)
    return Kinship(K, res.QS, "GRM", res.n_variants_used)


def run_kinship(bfile_path: Path, extract: Path | None, maf: float, out: Path,
                rep: Reporter) -> dict[str, Any]:
    """``glimix kinship``: the GRM of every sample and its eigendecomposition, cached."""
    check_output(out)
    bfile = open_bfile(bfile_path)
    cfg = InputConfig(bfile=bfile_path, pheno=Path("."), pheno_name="", kinship_extract=extract,
                      kinship_maf=maf)
    variants = _kinship_variants(extract, bfile)
    m = bfile.n_variants if variants is None else variants.size
    rep.start("kinship", m)
    res = kinship_qs(bfile, None, variants, maf,
                     progress=lambda done, total: rep.update("kinship", done))
    rep.finish("kinship")
    if res.n_variants_used == 0 or res.QS is None:
        raise InputError(f"{bfile.bed}: no polymorphic variant left for the kinship matrix - "
                         "check --kinship-extract / --maf")
    fp = bfile_fingerprint(bfile, kinship_options(cfg))
    s = bfile.samples
    save_kinship_cache(out, res.QS, s["fid"].to_numpy(), s["iid"].to_numpy(), fp)
    return {"n_samples": bfile.n_samples, "n_variants_used": res.n_variants_used,
            "rank": int(res.QS[1].size), "monomorphic": res.n_skipped_monomorphic,
            "skipped_maf": res.n_skipped_maf}
