"""Pure numerics: likelihoods, EP, GLMMs, LMM and the fast scanner (numpy and scipy only)."""

from glimix_cli.model.linalg import economic_qs, economic_qs_linear

__all__ = ["economic_qs", "economic_qs_linear"]
