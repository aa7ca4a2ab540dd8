"""The PLINK writer the tests and the simulator use to make .bed files."""

from __future__ import annotations

import numpy as np
import pytest

from glimix_cli.io.plink_write import encode_bed


def test_writer_rejects_non_genotype_values() -> None:
    with pytest.raises(ValueError, match=r"dosage values must be 0, 1, 2 or missing"):
        encode_bed(np.array([[0.5]]))
    with pytest.raises(ValueError, match=r"dosage values must be 0, 1, 2 or missing"):
        encode_bed(np.array([[-2.0]]))
    with pytest.raises(ValueError, match=r"dosage must be 2-D"):
        encode_bed(np.zeros(3))
    assert encode_bed(np.array([[-1.0], [np.nan]]))[3] == 0b0101
