"""One exception family for glimix.

Library code raises these with messages that name the input, the rule that was broken,
the values found and the fix. Only the CLI turns them into a red line and an exit code.
"""

from __future__ import annotations


class GlimixError(Exception):
    """Base class of every error glimix raises on purpose."""

    exit_code = 1


class InputError(GlimixError, ValueError):
    """A user-supplied file, option or array breaks a rule (shape, coding, values)."""


class SampleMatchError(InputError):
    """Samples could not be matched across genotypes, phenotypes, covariates, kinship."""


class ConvergenceError(GlimixError, RuntimeError):
    """An iterative fit (EP, the optimiser) did not converge within its limits."""
