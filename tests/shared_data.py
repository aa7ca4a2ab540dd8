"""The real cohorts of ../shared/data for tests (a uniquely named helper module)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ../shared/data of the project (the real EUR_subset cohort), relative to the project root
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_cohort(name: str = "EUR_subset") -> Path:
    """Prefix of a cohort in ../shared/data; skips where it is absent, but fails in CI
    (``CI`` set), which is given a copy of shared/ beside the clone."""
    prefix = SHARED_DATA / name
    if not Path(f"{prefix}.bed").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{prefix}.bed is missing: CI must provide ../shared/data")
        pytest.skip(f"{prefix} not available")
    return prefix
