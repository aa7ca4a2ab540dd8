"""Fixtures for the plot/report tests: a real scan of example_data and synthetic results."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_helpers import EXAMPLE


@pytest.fixture(scope="session")
def example_run(tmp_path_factory) -> dict[str, Path]:
    """`glimix fit` + `glimix scan` of example_data (quantitative trait): TSV and null JSON."""
    from glimix_cli.pipeline.run import InputConfig, Reporter, ScanConfig, run_fit, run_scan

    d = tmp_path_factory.mktemp("example_run")
    cfg = InputConfig(bfile=EXAMPLE / "cohort", pheno=EXAMPLE / "cohort.pheno.tsv",
                      pheno_name="quant", covar=EXAMPLE / "cohort.covar.tsv")
    run_fit(cfg, d / "quant", Reporter())
    run_scan(cfg, ScanConfig(null=d / "quant.null.json"), d / "quant.tsv", Reporter())
    return {"results": d / "quant.tsv", "null": d / "quant.null.json", "dir": d}
