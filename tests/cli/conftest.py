"""Shared CLI fixtures: scans of example_data, run once per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
from make_golden import EX, TRAITS, scan_args  # noqa: E402

os.environ.setdefault("GLIMIX_WIDTH", "120")


@pytest.fixture(scope="session")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def scans(tmp_path_factory, runner) -> dict[str, tuple[Path, str]]:
    """trait -> (results path, console output) of a full example_data scan."""
    from glimix_cli.cli.app import app

    out_dir = tmp_path_factory.mktemp("scans")
    done = {}
    for trait in TRAITS:
        out = out_dir / f"{trait}.tsv"
        args = [a for a in scan_args(trait, out) if a != "--quiet"]
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        done[trait] = (out, res.output)
    return done


@pytest.fixture
def ex() -> Path:
    return EX
