"""Kinship: the standardised GRM, its economic eigendecomposition, and an on-disk cache."""

from glimix_cli.kinship.cache import bfile_fingerprint, load_kinship_cache, save_kinship_cache
from glimix_cli.kinship.grm import GRMResult, grm, kinship_qs, read_kinship_matrix

__all__ = [
    "GRMResult",
    "bfile_fingerprint",
    "grm",
    "kinship_qs",
    "load_kinship_cache",
    "read_kinship_matrix",
    "save_kinship_cache",
]
