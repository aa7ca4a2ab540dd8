"""The progress sink the pipeline reports through.

Plain Python on purpose: the CLI's console subclasses it, and printing one error line must
not load numpy, scipy or pandas.
"""

from __future__ import annotations


class Reporter:
    """Silent progress sink; the CLI overrides these methods (tests and workers use it
    as is)."""

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def start(self, task: str, total: int | None) -> None:
        pass

    def update(self, task: str, completed: int) -> None:
        pass

    def finish(self, task: str) -> None:
        pass
