"""One door to every genotype format: a :class:`GenotypeSpec` names a source (PLINK 1
.bed, BGEN, PLINK 2 .pgen) and :func:`open_genotypes` opens it.

Every opened source has the interface of :class:`glimix_cli.io.plink.Bfile`: ``variants``
(``chrom``, ``variant_id``, ``cm``, ``pos``, ``a1`` = the counted allele, ``a2``),
``samples`` (.fam columns), ``n_samples``, ``n_variants``, ``read(start, stop,
sample_index)`` returning float64 dosages of ``a1`` (NaN = missing), and ``bed``/``bim``/
``fam`` naming the genotype, variant and sample files. BGEN and .pgen sources add
``kind`` and a ``multiallelic`` variant column, and their dosages need not be integers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FORMATS", "GenotypeSpec", "has_dosages", "open_genotypes"]

#: Genotype formats and the command-line option that names each.
FORMATS = {"bed": "--bfile", "bgen": "--bgen", "pgen": "--pgen"}


@dataclass(frozen=True)
class GenotypeSpec:
    """Where a run's genotypes are: small and picklable, re-opened by each Dask worker."""

    kind: str
    path: str
    sample: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FORMATS:
            raise ValueError(f"GenotypeSpec.kind must be one of {tuple(FORMATS)}; got "
                             f"{self.kind!r}")

    def open(self) -> Any:
        return open_genotypes(self.kind, self.path, self.sample)


def open_genotypes(kind: str, path: str | os.PathLike[str],
                   sample: str | os.PathLike[str] | None = None) -> Any:
    """Open genotypes of format ``kind`` (``bed``: a PLINK 1 prefix, ``bgen``: a .bgen with
    an optional .sample, ``pgen``: a PLINK 2 prefix)."""
    if kind == "bed":
        from glimix_cli.io.plink import open_bfile

        return open_bfile(path)
    if kind == "bgen":
        from glimix_cli.io.bgen import open_bgen

        return open_bgen(Path(path), sample)
    if kind == "pgen":
        from glimix_cli.io.pgen import open_pgen

        return open_pgen(path)
    raise ValueError(f"unknown genotype format {kind!r}; use one of {tuple(FORMATS)}")


def has_dosages(source: Any) -> bool:
    """True for a BGEN or .pgen source (dosages, an ``info`` column, multi-allelic rows)."""
    return getattr(source, "kind", "bed") != "bed"
