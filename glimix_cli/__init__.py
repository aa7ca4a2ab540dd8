"""glimix: genetic association scans with generalised linear mixed models."""

from importlib.metadata import PackageNotFoundError, version

from glimix_cli.errors import ConvergenceError, GlimixError, InputError, SampleMatchError
from glimix_cli.model import (
    LMM,
    FastScanner,
    GLMMExpFam,
    GLMMNormal,
    economic_qs,
    economic_qs_linear,
)

try:
    __version__ = version("glimix-cli")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "LMM",
    "ConvergenceError",
    "FastScanner",
    "GLMMExpFam",
    "GLMMNormal",
    "GlimixError",
    "InputError",
    "SampleMatchError",
    "__version__",
    "economic_qs",
    "economic_qs_linear",
]
