"""`glimix export-ssf` through Typer's CliRunner: exit codes, summary lines, red errors."""

from __future__ import annotations

import gzip
import os

import numpy as np
from typer.testing import CliRunner

from glimix_cli.cli.app import app
from glimix_cli.io.results import HEADER, format_rows

os.environ.setdefault("GLIMIX_WIDTH", "120")


def write_results(path, chrom, ids, status=None, ea=None, oa=None):
    m = len(chrom)
    rows = {
        "chromosome": chrom, "base_pair_location": list(range(100, 100 + m)),
        "effect_allele": ea or ["A"] * m, "other_allele": oa or ["C"] * m,
        "beta": np.full(m, -0.2), "standard_error": np.full(m, 0.1),
        "effect_allele_frequency": np.full(m, 0.4), "neg_log10_p_value": np.full(m, 1.5),
        "variant_id": ids, "n": np.full(m, 300), "lrt_chisq": np.full(m, 4.0),
        "status": status or ["ok"] * m,
    }
    with gzip.open(path, "wt") as fh:
        fh.write(HEADER + format_rows(rows))
    return path


def autosomes(tmp_path, extra_status=("monomorphic", "low_mac", "low_mac")):
    chrom = [str(c) for c in range(1, 23)] + ["chrX"] * len(extra_status)
    ids = [f"rs{c}" for c in range(1, 23)] + [f"{c}:1" for c in range(len(extra_status))]
    ids[0] = "1:100:C:A"
    status = ["ok"] * 22 + list(extra_status)
    return write_results(tmp_path / "res.tsv.gz", chrom, ids, status)


def test_export_ssf_writes_and_summarises(tmp_path):
    res = autosomes(tmp_path)
    out = tmp_path / "gwas.tsv.gz"
    r = CliRunner().invoke(app, ["export-ssf", str(res), "--out", str(out),
                                 "--genome-assembly", "GRCh37", "--ancestry", "European"])
    assert r.exit_code == 0, r.output
    assert out.exists() and (tmp_path / "gwas.tsv.gz-meta.yaml").exists()
    text = " ".join(r.output.split())
    for key in ("gwas.tsv.gz: 22 of 25 variants, chromosomes 1, 2, 3,",
                "left out 3 rows (status not ok): low_mac 2, monomorphic 1",
                "variant ids rewritten to CHR_POS_OTHER_EFFECT: 1; rs numbers kept in rsid: 21",
                "gwas.tsv.gz-meta.yaml", "note: 22 rows: the GWAS Catalog validator requires "
                "at least 100,000"):
        assert key in text, key
    assert "genome_assembly is NR" not in text
    with gzip.open(out, "rt") as fh:
        lines = fh.read().splitlines()
    assert lines[0].split("\t")[:8] == ["chromosome", "base_pair_location", "effect_allele",
                                        "other_allele", "beta", "standard_error",
                                        "effect_allele_frequency", "p_value"]
    assert lines[1].split("\t") == ["1", "100", "A", "C", "-0.2", "0.1", "0.4", "0.03162",
                                    "1_100_C_A", "#NA", "300"]


def test_export_ssf_quiet_prints_nothing(tmp_path):
    res = autosomes(tmp_path, extra_status=())
    r = CliRunner().invoke(app, ["export-ssf", str(res), "--out", str(tmp_path / "o.tsv"),
                                 "--quiet"])
    assert r.exit_code == 0 and r.output == ""


def test_export_ssf_error_is_one_red_line_and_exit_1(tmp_path):
    res = write_results(tmp_path / "res.tsv.gz", [str(c) for c in range(1, 23)],
                        [f"rs{c}" for c in range(1, 23)], oa=["B"] * 22)
    r = CliRunner().invoke(app, ["export-ssf", str(res), "--out", str(tmp_path / "o.tsv.gz")])
    assert r.exit_code == 1
    assert r.output.startswith("error: ") and "alleles 'B' (22)" in r.output
    assert len(r.output.strip().splitlines()) <= 3  # one soft-wrapped line
    assert not (tmp_path / "o.tsv.gz").exists()


def test_export_ssf_missing_autosomes_and_override(tmp_path):
    res = write_results(tmp_path / "res.tsv.gz", ["1", "2"], ["rs1", "rs2"])
    out = tmp_path / "o.tsv"
    r = CliRunner().invoke(app, ["export-ssf", str(res), "--out", str(out)])
    assert r.exit_code == 1 and "autosomes 3-22 are missing" in r.output
    r = CliRunner().invoke(app, ["export-ssf", str(res), "--out", str(out),
                                 "--allow-missing-autosomes"])
    assert r.exit_code == 0 and "autosomes 3-22 absent" in " ".join(r.output.split())


def test_export_ssf_usage_errors(tmp_path):
    r = CliRunner().invoke(app, ["export-ssf", str(tmp_path / "nope.tsv"), "--out", "x.tsv"])
    assert r.exit_code == 2
    res = autosomes(tmp_path)
    r = CliRunner().invoke(app, ["export-ssf", str(res), "--out", str(tmp_path / "o.txt")])
    assert r.exit_code == 1 and "must be named .tsv or .tsv.gz" in r.output


def test_export_ssf_help_has_example():
    r = CliRunner().invoke(app, ["export-ssf", "--help"])
    assert r.exit_code == 0
    assert "Example: glimix export-ssf" in r.output and "--null" in r.output
