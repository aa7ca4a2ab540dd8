"""Step 1: read the genotypes' sample list, the trait, the covariates (and a precomputed
kinship's IDs), match the samples, and fingerprint the input files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import InputError
from glimix_cli.io.columns import columns_by_number, expand_columns, table_columns
from glimix_cli.io.genotypes import open_genotypes
from glimix_cli.io.plink import Bfile, open_bfile
from glimix_cli.io.samples import SampleMatch, match_samples, select_samples
from glimix_cli.io.tables import (
    Design,
    design_matrix,
    load_covariates,
    load_trait,
    sole_trait_column,
)
from glimix_cli.kinship import bfile_fingerprint, read_kinship_matrix
from glimix_cli.kinship.sparse import SparseTable, is_sparse_kinship_file, read_sparse_kinship
from glimix_cli.pipeline.config import InputConfig
from glimix_cli.pipeline.progress import Reporter
from glimix_cli.registry import BINARY_LIKELIHOODS, LIKELIHOODS

F = NDArray[np.float64]
#: ``sole_trait_column``: the trait column a table implies when --pheno-name is not given.
__all__ = ["Inputs", "file_fingerprint", "load_inputs", "resolve_trait", "resolve_traits",
           "sole_trait_column"]


def resolve_trait(path: Path, name: str | None, col_nums: str | None, other: list[str],
                  missing: tuple[str, ...], hint: str = "") -> str:
    """The one trait column of ``--pheno-name`` (a name, or a plink2 list/range naming one
    column), ``--pheno-col-nums``, or the table's only data column."""
    names = resolve_traits(path, None if name is None else [name], col_nums, other, missing,
                           hint)
    if len(names) != 1:
        raise InputError(f"{path}: {len(names)} trait columns ({', '.join(names[:5])}"
                         f"{', ...' if len(names) > 5 else ''}) - name one")
    return names[0]


def resolve_traits(path: Path, names: list[str] | None, col_nums: str | None,
                   other: list[str], missing: tuple[str, ...], hint: str = "",
                   all_pheno: bool = False) -> list[str]:
    """The trait columns of ``--pheno-name`` (names, comma lists and plink2 ranges, each
    once), ``--pheno-col-nums``, ``--all-pheno`` (every data column but ``other``), or the
    table's only data column."""
    given = sum(x is not None and x != [] for x in (names, col_nums)) + bool(all_pheno)
    if given > 1:
        raise InputError("--pheno-name, --pheno-col-nums and --all-pheno are alternatives: "
                         "give one")
    if not given:
        return [sole_trait_column(path, other, missing, hint)]
    header, data = table_columns(path, missing)
    if all_pheno:
        found = [c for c in data if c not in other]
        if not found:
            raise InputError(f"{path}: --all-pheno found no trait column (data columns: "
                             f"{', '.join(data) or 'none'})")
        return found
    if col_nums is not None:
        return columns_by_number(header, col_nums, str(path), "--pheno-col-nums")
    assert names is not None
    return expand_columns(data, names, str(path), "--pheno-name")


def _covariate_names(cfg: InputConfig) -> list[str] | None:
    """``--covar-name`` (lists and ranges) and ``--covar-col-nums``, expanded; None for all."""
    if not cfg.covar_names and cfg.covar_col_nums is None:
        return None
    assert cfg.covar is not None
    header, data = table_columns(cfg.covar, cfg.missing_codes)
    names = expand_columns(data, cfg.covar_names, str(cfg.covar), "--covar-name")
    if cfg.covar_col_nums is not None:
        names += columns_by_number(header, cfg.covar_col_nums, str(cfg.covar),
                                   "--covar-col-nums")
    return list(dict.fromkeys(names))


@dataclass
class Inputs:
    """The analysed samples' trait, trials and design, and where they came from.

    ``kinship_matrix`` is the ``--kinship`` matrix as read (all of its samples; the
    kinship step keeps the analysed ones), else None; ``kinship_table`` the ``--kinship``
    sparse table (``.grm.sp``, ``.kin0``), whose samples need not all be listed (the absent
    ones are unrelated), else None.
    """

    bfile: Any  # Bfile, or a Bgen / Pgen (io/genotypes.py)
    match: SampleMatch
    y: F
    trials: F | None
    design: Design
    trait_coding: str
    fingerprint: dict[str, Any]
    kinship_matrix: F | None = None
    kinship_table: SparseTable | None = None
    #: ``--kinship-bfile``: the .bed the kinship is built from (else the scanned genotypes)
    kinship_bfile: Bfile | None = None

    @property
    def kin_source(self) -> Any:
        """The genotypes a GRM is built from: the ``--kinship-bfile``, else the scanned."""
        return self.bfile if self.kinship_bfile is None else self.kinship_bfile

    @property
    def kin_index(self) -> NDArray[np.intp]:
        """The analysed samples' rows in :attr:`kin_source`."""
        if self.kinship_bfile is None:
            return self.match.geno_index
        assert self.match.kinship_index is not None
        return self.match.kinship_index


def file_fingerprint(path: Path | None, hash_limit: int = 64 << 20) -> dict[str, Any] | None:
    """Size, mtime and (for files up to 64 MiB) the SHA-256 of a file."""
    if path is None:
        return None
    p = Path(path)
    st = p.stat()
    fp: dict[str, Any] = {"name": p.name, "size": st.st_size, "mtime": int(st.st_mtime)}
    if st.st_size <= hash_limit:
        fp["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return fp


def _check_options(cfg: InputConfig) -> None:
    if cfg.likelihood not in LIKELIHOODS:
        raise InputError(f"--likelihood {cfg.likelihood}: unknown; use one of "
                         f"{', '.join(LIKELIHOODS)}")
    if cfg.trials_name and cfg.trials_name == cfg.pheno_name:
        raise InputError(f"{cfg.pheno}: --trials-name {cfg.trials_name} is also the trait column "
                         "- give the successes in --pheno-name and the trials in another column")
    if cfg.likelihood == "binomial" and not cfg.trials_name:
        raise InputError(f"{cfg.pheno}: the binomial likelihood needs the number of trials - "
                         "add --trials-name COLUMN")


def load_inputs(cfg: InputConfig, rep: Reporter) -> Inputs:
    """Read and match every input of ``cfg``; nothing heavy (no genotype is read)."""
    _check_options(cfg)
    bfile = open_genotypes(cfg.geno_format, cfg.bfile, cfg.sample)
    rep.info(f"genotypes: {bfile.n_samples:,} samples x {bfile.n_variants:,} variants "
             f"({bfile.bed})")
    kin_bfile = None
    if cfg.kinship_bfile is not None:
        kin_bfile = open_bfile(cfg.kinship_bfile)
        rep.info(f"kinship genotypes: {kin_bfile.n_samples:,} samples x "
                 f"{kin_bfile.n_variants:,} variants ({kin_bfile.bed})")
    trait = load_trait(cfg.pheno, cfg.pheno_name, cfg.likelihood, cfg.trials_name,
                       cfg.missing_codes)
    if trait.coding:
        rep.info(f"trait {cfg.pheno_name}: {trait.coding}")
    cov = None
    if cfg.covar is not None:
        cov = load_covariates(cfg.covar, _covariate_names(cfg), cfg.covar_cat,
                              cfg.missing_codes, exclude=[cfg.pheno_name])
        if cov.left_out:
            rep.info(f"covariates: every column of {cfg.covar} but {', '.join(cov.left_out)} "
                     "(the trait)")
    kin_ids = None
    kin_matrix = None
    kin_table = None
    if cfg.kinship is not None and is_sparse_kinship_file(cfg.kinship):
        kin_table = read_sparse_kinship(cfg.kinship)
    elif cfg.kinship is not None:
        kin_matrix, kin_ids = read_kinship_matrix(cfg.kinship, bfile.samples)
    elif kin_bfile is not None:
        kin_ids = (kin_bfile.samples["fid"].to_numpy(), kin_bfile.samples["iid"].to_numpy())
    selected = select_samples(bfile.samples, cfg.keep, cfg.remove)
    for step, mask in selected:
        rep.info(f"samples: {int(mask.sum()):,} of {bfile.n_samples:,} genotyped {step[6:]}"
                 f" {cfg.keep if step == 'after --keep' else cfg.remove}")
    match = match_samples(bfile.samples, trait, cov, kin_ids, selected)
    y = np.asarray(trait.y, dtype=np.float64)[match.trait_index]
    trials = None if trait.trials is None else np.asarray(trait.trials)[match.trait_index]
    design = _design(cfg, cov, match)
    for name, why in design.dropped:
        rep.warn(f"covariate {name} dropped: {why} in the analysed samples")
    _check_trait_variation(y, cfg, match.n)
    fp = {
        "bfile": bfile_fingerprint(bfile, {}),
        "pheno": file_fingerprint(cfg.pheno),
        "covar": file_fingerprint(cfg.covar),
        "kinship": file_fingerprint(cfg.kinship),
        "pheno_name": cfg.pheno_name,
        "likelihood": cfg.likelihood,
        "trials_name": cfg.trials_name,
        "covar_names": list(cfg.covar_names),
        "covar_col_nums": cfg.covar_col_nums,
        "covar_cat": list(cfg.covar_cat),
        "missing_codes": list(cfg.missing_codes),
        "keep": file_fingerprint(cfg.keep),
        "remove": file_fingerprint(cfg.remove),
    }
    if cfg.geno_format != "bed":  # (absent for .bed: fingerprints of older runs still match)
        fp["format"] = cfg.geno_format
    if kin_bfile is not None:
        fp["kinship_bfile"] = bfile_fingerprint(kin_bfile, {})
    return Inputs(bfile, match, y, trials, design, trait.coding, fp, kin_matrix, kin_table,
                  kin_bfile)


def _design(cfg: InputConfig, cov: Any, match: SampleMatch) -> Design:
    """The design matrix of the analysed samples (intercept, covariates, indicators)."""
    n = match.n
    if cov is not None:
        table = cov.table.iloc[match.cov_index].reset_index(drop=True)
        n_cols = table.shape[1]
        if n_cols + 1 >= n:
            raise InputError(f"{cfg.covar}: {n_cols} covariates (and the intercept) for "
                             f"{n} analysed samples - a model needs more samples than "
                             "covariates; name fewer with --covar-name or add samples")
        design = design_matrix(table, cov.cat_columns)
    else:
        import pandas as pd

        design = design_matrix(pd.DataFrame(index=range(n)), ())
    if design.X.shape[1] >= n - 1:
        raise InputError(f"{cfg.covar}: {design.X.shape[1]} design columns (intercept, "
                         f"covariates and category indicators) for {n} analysed samples "
                         "- a model needs more samples than covariates; name fewer with "
                         "--covar-name or add samples")
    return design


def _check_trait_variation(y: F, cfg: InputConfig, n: int) -> None:
    if n < 3:
        raise InputError(f"{cfg.pheno}: only {n} samples remain after matching - need at least 3")
    if np.all(y == y[0]) and cfg.likelihood in ("normal", *BINARY_LIKELIHOODS):
        raise InputError(f"{cfg.pheno}: trait {cfg.pheno_name} has the single value {y[0]:g} "
                         "in all analysed samples - nothing to model; check the coding")
