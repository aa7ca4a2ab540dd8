"""The io layer reads and writes files and never imports the model layer."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import glimix_cli.io
from glimix_cli.io.plink_write import encode_bed


def test_io_never_imports_model() -> None:
    for path in Path(glimix_cli.io.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.startswith("glimix_cli.model") for n in names), path.name


def test_writer_rejects_non_genotype_values() -> None:
    with pytest.raises(ValueError, match=r"dosage values must be 0, 1, 2 or missing"):
        encode_bed(np.array([[0.5]]))
    with pytest.raises(ValueError, match=r"dosage values must be 0, 1, 2 or missing"):
        encode_bed(np.array([[-2.0]]))
    with pytest.raises(ValueError, match=r"dosage must be 2-D"):
        encode_bed(np.zeros(3))
    assert encode_bed(np.array([[-1.0], [np.nan]]))[3] == 0b0101
