"""Pure numerics: likelihoods, EP, GLMMs, LMM and the fast scanner (numpy and scipy only)."""

from glimix_cli.model.glmm import FitInfo, GLMMExpFam, GLMMNormal
from glimix_cli.model.linalg import economic_qs, economic_qs_linear
from glimix_cli.model.lmm import LMM
from glimix_cli.model.scanner import FastScanner

__all__ = [
    "FastScanner",
    "FitInfo",
    "GLMMExpFam",
    "GLMMNormal",
    "LMM",
    "economic_qs",
    "economic_qs_linear",
]
