"""glimix: genetic association scans with generalised linear mixed models.

The public API is imported lazily (PEP 562), so ``import glimix_cli`` and ``glimix --help``
do not pay for numpy and scipy until a model class is used.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("glimix-cli")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

_LAZY = {
    "LMM": "glimix_cli.model.lmm",
    "FastScanner": "glimix_cli.model.scanner",
    "GLMMExpFam": "glimix_cli.model.glmm",
    "GLMMNormal": "glimix_cli.model.glmm",
    "economic_qs": "glimix_cli.model.linalg",
    "economic_qs_linear": "glimix_cli.model.linalg",
    "GlimixError": "glimix_cli.errors",
    "InputError": "glimix_cli.errors",
    "SampleMatchError": "glimix_cli.errors",
    "ConvergenceError": "glimix_cli.errors",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'glimix_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
