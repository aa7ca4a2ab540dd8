"""What a run was asked to do: the validated options of ``fit`` and ``scan``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from glimix_cli.io.tables import DEFAULT_MISSING


@dataclass(frozen=True)
class InputConfig:
    """The inputs of a model: genotypes, trait, covariates and kinship options."""

    bfile: Path
    pheno: Path
    pheno_name: str
    likelihood: str = "normal"
    trials_name: str | None = None
    covar: Path | None = None
    covar_names: tuple[str, ...] = ()
    #: plink2 --covar-col-nums: 1-based column numbers and ranges, e.g. "3-12"
    covar_col_nums: str | None = None
    covar_cat: tuple[str, ...] = ()
    missing_codes: tuple[str, ...] = DEFAULT_MISSING
    kinship: Path | None = None  # precomputed matrix (text) or sparse table (.grm.sp, .kin0)
    kinship_cache: Path | None = None  # .npz from `glimix kinship`
    kinship_extract: Path | None = None
    kinship_maf: float = 0.0
    #: build a sparse GRM keeping the pairs at or above this GRM value (None: dense)
    sparse_cutoff: float | None = None
    #: markers that screen the pairs for the sparse GRM (None: automatic)
    screen_markers: int | None = None
    #: principal components projected out of the sparse GRM (relatedness beyond ancestry)
    sparse_pcs: int = 10
    #: plink2 --keep / --remove: sample lists (FID IID or IID per line)
    keep: Path | None = None
    remove: Path | None = None
    #: leave-one-chromosome-out kinships and null models (pipeline/loco.py)
    loco: bool = False
    #: the per-chromosome null models: ``fixed`` keeps the whole-genome variance components
    #: (SAIGE's way), ``full`` re-estimates them
    loco_fit: str = "fixed"
    #: format of ``bfile``: "bed" (a PLINK 1 prefix), "bgen" (a .bgen), "pgen" (a PLINK 2
    #: prefix); see io/genotypes.py
    geno_format: str = "bed"
    #: --sample: the Oxford .sample of a BGEN
    sample: Path | None = None
    #: --kinship-bfile: the kinship's genotypes, when not the scanned ones (same people,
    #: matched by FID IID)
    kinship_bfile: Path | None = None


@dataclass(frozen=True)
class ScanConfig:
    """Which variants a scan tests, how, and where its blocks run."""

    chrom: str | None = None
    from_bp: int | None = None
    to_bp: int | None = None
    extract: Path | None = None
    #: plink2 --exclude: variant IDs to leave out
    exclude: Path | None = None
    maf: float = 0.0
    mac: float = 5.0
    max_missing: float = 1.0
    #: --min-info: dosage inputs' INFO (MaCH R^2) floor; status low_info below it
    min_info: float = 0.0
    chunk: tuple[int, int] = (1, 1)
    block_size: int | None = None
    null: Path | None = None
    #: p-value test: "auto" (saddlepoint for bernoulli/probit, else surrogate), "spa",
    #: "surrogate" (see pipeline.scan.resolve_test)
    test: str = "auto"
    #: continue OUT.partial of an interrupted run of the same scan (see pipeline/resume.py)
    resume: bool = False
    #: Dask: scheduler address, scheduler file, or N local worker processes (at most one)
    dask_scheduler: str | None = None
    dask_scheduler_file: Path | None = None
    dask_local: int | None = None

    @property
    def uses_dask(self) -> bool:
        return (self.dask_scheduler is not None or self.dask_scheduler_file is not None
                or self.dask_local is not None)
