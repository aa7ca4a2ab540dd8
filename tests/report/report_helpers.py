"""Helpers shared by the plot/report tests (a uniquely named module, unlike conftest)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from glimix_cli.io.results import HEADER, atomic_text_writer, format_rows
from glimix_cli.model.stats import chi2_1_pvalue

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_data"
#: Environment for CliRunner: fixed terminal width, no colour codes.
ENV = {"GLIMIX_WIDTH": "200", "COLUMNS": "200", "NO_COLOR": "1"}


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (after checking the signature)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def write_results(path: Path, chrom, pos, chisq, *, status=None, variant_id=None) -> Path:
    """Write a results TSV in glimix's own format from per-variant chi-square statistics."""
    chisq = np.asarray(chisq, dtype=float)
    m = chisq.size
    status = np.array(["ok"] * m, dtype=object) if status is None else np.asarray(status,
                                                                                  dtype=object)
    chisq = np.where(status == "ok", chisq, np.nan)
    _, nlp = chi2_1_pvalue(chisq)
    ids = [f"rs{i}" for i in range(m)] if variant_id is None else list(variant_id)
    rows = {
        "chromosome": list(chrom), "base_pair_location": np.asarray(pos),
        "effect_allele": ["A"] * m, "other_allele": ["G"] * m,
        "beta": np.sqrt(np.nan_to_num(chisq)) * 0.01, "standard_error": np.full(m, 0.01),
        "effect_allele_frequency": np.full(m, 0.3), "neg_log10_p_value": nlp,
        "variant_id": ids, "n": np.full(m, 1000), "lrt_chisq": chisq, "status": status,
    }
    with atomic_text_writer(path) as fh:
        fh.write(HEADER)
        fh.write(format_rows(rows))
    return path
