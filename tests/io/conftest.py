"""Fixtures shared by the data-layer tests (files generated into tmp_path)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import make_fixtures  # noqa: E402


@pytest.fixture
def fixtures(tmp_path: Path) -> dict[str, Path]:
    """Every fixture of tests/make_fixtures.py, written into tmp_path."""
    return make_fixtures.make_all(tmp_path / "fx")


@pytest.fixture
def good_dosage(fixtures: dict[str, Path]):
    """The (n, m) A1 dosage matrix written to the 'good' fileset."""
    import numpy as np

    return np.load(fixtures["good"].parent / "good_dosage.npy")
