"""GWAS-SSF export: conversion rules, metadata, errors, and the GWAS Catalog's own validator.

The slow test installs gwas-sumstats-tools 1.0.25 (``gwas-ssf validate``) into its own venv
under ``$GLIMIX_TEST_CACHE`` (default ``~/.cache/glimix-tests``) and runs it unchanged on an
export of over 100,000 variants on the 22 autosomes, X, PLINK's XY and MT.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glimix_cli.errors import InputError
from glimix_cli.io.results import HEADER, format_rows
from glimix_cli.io.ssf import (
    SSF_COLUMNS,
    _ranges,
    export_ssf,
    metadata_path,
    ssf_chromosome,
    to_yaml,
)

VALIDATOR_ORDER = ["chromosome", "base_pair_location", "effect_allele", "other_allele",
                   "beta", "standard_error", "effect_allele_frequency", "p_value"]
TODAY = dt.date(2024, 5, 17)


def results_rows(chrom, pos, ids, *, ea=None, oa=None, status=None, nlp=None, beta=None,
                 n=None) -> dict:
    m = len(chrom)
    return {
        "chromosome": list(chrom), "base_pair_location": list(pos),
        "effect_allele": ea or ["A"] * m, "other_allele": oa or ["G"] * m,
        "beta": beta if beta is not None else np.full(m, 0.125),
        "standard_error": np.full(m, 0.05), "effect_allele_frequency": np.full(m, 0.3),
        "neg_log10_p_value": nlp if nlp is not None else np.full(m, 2.0),
        "variant_id": list(ids), "n": n if n is not None else np.full(m, 500),
        "lrt_chisq": np.full(m, 9.0), "status": status or ["ok"] * m,
    }


def write_results(path: Path, rows: dict, meta: dict | None = None) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt") as fh:
        fh.write(HEADER)
        fh.write(format_rows(rows))
    if meta is not None:
        Path(f"{path}.meta.json").write_text(json.dumps(meta))
    return path


def genome(extra_chrom=(), extra_ids=(), per_chrom: int = 1) -> dict:
    """per_chrom ok variants on each autosome, named rs<k>, then the extra rows."""
    chrom = [str(c) for c in range(1, 23) for _ in range(per_chrom)]
    pos = [1000 + 10 * i for c in range(1, 23) for i in range(per_chrom)]
    ids = [f"rs{k + 1}" for k in range(len(chrom))]
    chrom += list(extra_chrom)
    pos += [5000 + i for i in range(len(extra_chrom))]
    ids += list(extra_ids) or [f"x{i}" for i in range(len(extra_chrom))]
    return results_rows(chrom, pos, ids)


def read_ssf(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


# ------------------------------------------------------------------------------------------
# conversion rules


@pytest.mark.parametrize(("name", "code"), [
    ("1", 1), ("22", 22), ("01", 1), ("chr7", 7), ("CHR7", 7), ("X", 23), ("chrX", 23),
    ("x", 23), ("Y", 24), ("MT", 25), ("chrM", 25), ("XY", 23),
    ("23", 23), ("24", 24), ("25", 23), ("26", 25),  # PLINK: 25 = XY -> X, 26 = MT
    ("0", None), ("27", None), ("2L", None), ("Un", None), ("", None),
])
def test_chromosome_codes(name, code):
    assert ssf_chromosome(name) == code


def test_ranges():
    assert _ranges([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"
    assert _ranges([4]) == "4"


def test_columns_in_validator_order_and_rows_converted(tmp_path):
    rows = results_rows(
        ["1", "1", "chr2", "X", "25", "26", "1", "1"],
        [100, 200, 300, 400, 500, 600, 700, 800],
        ["1:100:A:G", "rs42", "snp_3", "rs9", "kgp-5", "MT.6", "rs7", "rs8"],
        ea=["a", "A", "C", "T", "G", "A", "A", "A"],
        oa=["g", "G", "T", "C", "A", "G", "0", "G"],
        status=["ok", "ok", "ok", "ok", "ok", "ok", "monomorphic", "low_mac"],
        nlp=np.array([2.0, 412.5, 1.0, 0.0, 300.2, 5.0, np.nan, np.nan]),
    )
    res = write_results(tmp_path / "res.tsv.gz", rows)
    info = export_ssf(res, tmp_path / "out.tsv.gz", allow_missing_autosomes=True, today=TODAY)
    with gzip.open(tmp_path / "out.tsv.gz", "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
    assert header[:8] == VALIDATOR_ORDER
    assert header == list(SSF_COLUMNS) == [*VALIDATOR_ORDER, "variant_id", "rsid", "n"]
    df = read_ssf(tmp_path / "out.tsv.gz")
    assert df["chromosome"].tolist() == ["1", "1", "2", "23", "23", "25"]
    assert df["effect_allele"].tolist() == ["A", "A", "C", "T", "G", "A"]
    assert df["other_allele"].tolist() == ["G", "G", "T", "C", "A", "G"]
    # ids outside [A-Za-z0-9_]+ become CHR_POS_OTHER_EFFECT; rs numbers also go to rsid
    assert df["variant_id"].tolist() == ["1_100_G_A", "rs42", "snp_3", "rs9", "23_500_A_G",
                                         "25_600_G_A"]
    assert df["rsid"].tolist() == ["#NA", "rs42", "#NA", "rs9", "#NA", "#NA"]
    # p-values below the float64 range stay exact text, never 0
    assert df["p_value"].tolist() == ["0.01", "3.162e-413", "0.1", "1", "6.31e-301", "1e-05"]
    assert df["beta"].tolist() == ["0.125"] * 6 and df["n"].tolist() == ["500"] * 6
    assert info.rows_read == 8 and info.rows_written == 6
    assert info.left_out == {"monomorphic": 1, "low_mac": 1}
    assert info.ids_rewritten == 3 and info.rsids == 2
    assert info.chromosomes == {1: 2, 2: 1, 23: 2, 25: 1}
    assert info.renamed_chromosomes == {"chr2 -> 2": 1, "X -> 23": 1, "25 -> 23": 1,
                                        "26 -> 25": 1}
    assert info.is_sorted
    assert info.meta == metadata_path(tmp_path / "out.tsv.gz")
    assert info.meta.name == "out.tsv.gz-meta.yaml"


def test_ok_rows_with_missing_statistics_are_left_out_and_counted(tmp_path):
    rows = genome(["1"], ["rs999"])
    rows["beta"] = np.r_[np.full(22, 0.1), np.nan]
    res = write_results(tmp_path / "res.tsv", rows)
    info = export_ssf(res, tmp_path / "out.tsv", today=TODAY)
    assert info.rows_written == 22 and info.left_out == {"missing value": 1}
    assert "rs999" not in (tmp_path / "out.tsv").read_text()


def test_unsorted_input_is_reported_in_metadata(tmp_path):
    rows = genome()
    for key in rows:
        rows[key] = list(rows[key])[::-1]
    res = write_results(tmp_path / "res.tsv", rows)
    info = export_ssf(res, tmp_path / "out.tsv", today=TODAY)
    assert not info.is_sorted
    assert "is_sorted: false" in info.meta.read_text()


def test_export_reads_in_blocks_like_all_at_once(tmp_path):
    rows = genome(per_chrom=7)
    rows["variant_id"] = [f"{c}:{p}" for c, p in zip(rows["chromosome"],
                                                     rows["base_pair_location"], strict=True)]
    res = write_results(tmp_path / "res.tsv", rows)
    a = export_ssf(res, tmp_path / "a.tsv", chunksize=5, today=TODAY)
    b = export_ssf(res, tmp_path / "b.tsv", today=TODAY)
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    assert a.ids_rewritten == b.ids_rewritten == 154 and a.is_sorted


# ------------------------------------------------------------------------------------------
# errors


def test_non_nucleotide_alleles_are_an_error_listing_them(tmp_path):
    rows = genome()
    rows["effect_allele"] = ["A"] * 20 + ["B", "I"]
    rows["other_allele"] = ["B"] * 20 + ["A", "D"]
    res = write_results(tmp_path / "res.tsv", rows)
    out = tmp_path / "out.tsv.gz"
    with pytest.raises(InputError, match=r"res\.tsv: cannot be expressed in GWAS-SSF .*"
                       r"alleles 'B' \(21\), 'I' \(1\), 'D' \(1\) \(GWAS-SSF alleles are "
                       r"nucleotide strings of A, C, G, T\); 23 values in all.*nothing was "
                       r"written"):
        export_ssf(res, out)
    assert not out.exists() and not metadata_path(out).exists()
    assert list(tmp_path.iterdir()) == [res]


def test_non_human_chromosomes_are_an_error(tmp_path):
    res = write_results(tmp_path / "res.tsv", results_rows(
        ["2L", "2L", "3R", "1"], [1, 2, 3, 4], ["a", "b", "c", "d"]))
    with pytest.raises(InputError, match=r"chromosome names '2L' \(2\), '3R' \(1\) \(GWAS-SSF "
                       r"codes human chromosomes only: 1-22, X=23, Y=24, MT=25\)"):
        export_ssf(res, tmp_path / "out.tsv")


def test_problems_in_left_out_rows_do_not_count(tmp_path):
    rows = genome(["0"], ["unplaced"])
    rows["status"] = ["ok"] * 22 + ["monomorphic"]
    rows["other_allele"] = ["G"] * 22 + ["0"]
    res = write_results(tmp_path / "res.tsv", rows)
    assert export_ssf(res, tmp_path / "out.tsv").rows_written == 22


def test_missing_autosomes_are_an_error_unless_allowed(tmp_path):
    res = write_results(tmp_path / "res.tsv", results_rows(["1", "2", "5"], [1, 2, 3],
                                                            ["a", "b", "c"]))
    with pytest.raises(InputError, match=r"autosomes 3-4, 6-22 are missing .*requires all "
                       r"of 1-22 .*--allow-missing-autosomes"):
        export_ssf(res, tmp_path / "out.tsv")
    info = export_ssf(res, tmp_path / "out.tsv", allow_missing_autosomes=True)
    assert any("autosomes 3-4, 6-22 absent" in n for n in info.notes)


def test_x_only_file_is_accepted(tmp_path):
    res = write_results(tmp_path / "res.tsv", results_rows(["X", "X"], [1, 2], ["a", "b"]))
    assert export_ssf(res, tmp_path / "out.tsv").chromosomes == {23: 2}


@pytest.mark.parametrize("name", ["out.txt", "out.tsv.bgz", "out.csv.gz", "out"])
def test_output_name_must_be_tsv(tmp_path, name):
    res = write_results(tmp_path / "res.tsv", genome())
    with pytest.raises(InputError, match=r"GWAS-SSF files must be named \.tsv or \.tsv\.gz"):
        export_ssf(res, tmp_path / name)


def test_not_a_results_file(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text("a\tb\n1\t2\n")
    with pytest.raises(InputError, match=r"x\.tsv: not a glimix results file \(missing "
                       r"columns chromosome, "):
        export_ssf(p, tmp_path / "out.tsv")


def test_nothing_testable_is_an_error(tmp_path):
    rows = genome()
    rows["status"] = ["monomorphic"] * 22
    res = write_results(tmp_path / "res.tsv", rows)
    with pytest.raises(InputError, match=r"no row with status ok among 22"):
        export_ssf(res, tmp_path / "out.tsv")


# ------------------------------------------------------------------------------------------
# metadata


def make_null(tmp_path: Path, n_case: int = 3, n_ctrl: int = 5, likelihood="bernoulli"):
    fid = [f"F{i}" for i in range(n_case + n_ctrl + 1)]
    iid = [f"I{i}" for i in range(n_case + n_ctrl + 1)]
    y = [1] * n_case + [0] * n_ctrl + [1]  # the last sample is not analysed
    pheno = tmp_path / "pheno.tsv"
    pheno.write_text("FID\tIID\tdisease\n" + "".join(
        f"{f}\t{i}\t{v}\n" for f, i, v in zip(fid, iid, y, strict=True)))
    n = n_case + n_ctrl
    null = {
        "format": 1,
        "software": {"glimix": "9.9.9"},
        "inputs": {"pheno": {"path": str(pheno),
                             "sha256": hashlib.sha256(pheno.read_bytes()).hexdigest()},
                   "pheno_name": "disease", "likelihood": likelihood, "trials_name": None,
                   "missing_codes": ["NA"]},
        "kinship": {"source": "GRM", "n_variants": 1234},
        "samples": {"fid": fid[:n], "iid": iid[:n]},
        "trait_coding": "0/1 (1 = case)",
        "case_control": {"cases": n_case, "controls": n_ctrl},
        "null": {"likelihood": likelihood, "n": n, "covariates": ["intercept", "age",
                                                                  "site=a", "site=b"],
                 "v0": 0.5, "v1": 0.25, "h2_latent": 0.667, "status": "converged"},
    }
    path = tmp_path / "fit.null.json"
    path.write_text(json.dumps(null))
    return path


def test_metadata_from_null_json(tmp_path):
    yaml = pytest.importorskip("yaml")
    res = write_results(tmp_path / "res.tsv.gz", genome(), {"likelihood": "bernoulli",
                                                            "samples": 8})
    out = tmp_path / "gwas.tsv.gz"
    info = export_ssf(res, out, null=make_null(tmp_path), genome_assembly="GRCh38",
                      ancestry=["European"], today=TODAY)
    meta = yaml.safe_load(info.meta.read_text())
    assert meta["data_file_name"] == "gwas.tsv.gz"
    assert meta["data_file_md5sum"] == hashlib.md5(out.read_bytes()).hexdigest()
    assert meta["file_type"] == "GWAS-SSF v1.0"
    assert meta["date_metadata_last_modified"] == TODAY
    assert meta["genome_assembly"] == "GRCh38" and meta["coordinate_system"] == "1-based"
    assert meta["trait_description"] == ["disease"]
    assert meta["genotyping_technology"] == ["Genome-wide genotyping array"]
    assert meta["samples"] == [{"sample_size": 8, "sample_ancestry_category": ["European"],
                                "case_control_study": True, "case_count": 3,
                                "control_count": 5}]
    assert meta["analysis_software"] == "glimix 9.9.9"
    assert meta["adjusted_covariates"] == ["age", "site"]
    assert meta["is_harmonised"] is False and meta["is_sorted"] is True
    notes = meta["author_notes"]
    for key in ("bernoulli with logit link", "Effect statistic: beta", "first allele of the "
                "PLINK .bim", "likelihood-ratio test", "GRM from 1234 variants"):
        assert key in notes, key
    assert not any("genome_assembly" in n or "ancestry" in n for n in info.notes)
    assert any("100,000" in n for n in info.notes)


def test_metadata_without_null_uses_the_scan_sidecar(tmp_path):
    yaml = pytest.importorskip("yaml")
    res = write_results(tmp_path / "res.tsv", genome(), {"likelihood": "normal",
                                                         "samples": 612})
    info = export_ssf(res, tmp_path / "out.tsv", trait="height", today=TODAY)
    meta = yaml.safe_load(info.meta.read_text())
    assert meta["samples"] == [{"sample_size": 612, "sample_ancestry_category": ["NR"],
                                "case_control_study": False}]
    assert meta["trait_description"] == ["height"] and meta["genome_assembly"] == "NR"
    assert "adjusted_covariates" not in meta
    assert any(n.startswith("genome_assembly is NR - pass --genome-assembly") for n in
               info.notes)


def test_case_counts_skipped_when_the_null_json_has_none(tmp_path):
    null = make_null(tmp_path)
    data = json.loads(null.read_text())
    del data["case_control"]
    null.write_text(json.dumps(data))
    res = write_results(tmp_path / "res.tsv", genome())
    info = export_ssf(res, tmp_path / "out.tsv", null=null, today=TODAY)
    assert any("null JSON has none" in n for n in info.notes)
    assert "case_count" not in info.meta.read_text()


def test_metadata_from_a_real_glimix_fit(tmp_path):
    """The null JSON as `glimix fit` writes it (a hand-made one once hid that the case and
    control counts never reached the metadata)."""
    yaml = pytest.importorskip("yaml")
    from typer.testing import CliRunner

    from glimix_cli.cli.app import app

    ex = Path(__file__).resolve().parents[2] / "example_data"
    r = CliRunner().invoke(app, [
        "fit", "--bfile", str(ex / "cohort"), "--pheno", str(ex / "cohort.pheno.tsv"),
        "--pheno-name", "binary", "-l", "bernoulli", "--covar", str(ex / "cohort.covar.tsv"),
        "--out", str(tmp_path / "fit"), "--quiet"])
    assert r.exit_code == 0, r.output
    fit = json.loads((tmp_path / "fit.null.json").read_text())
    table = pd.read_csv(ex / "cohort.pheno.tsv", sep="\t", dtype=str)
    value = dict(zip(zip(table["FID"], table["IID"], strict=True), table["binary"],
                     strict=True))
    ys = [value[k] for k in zip(fit["samples"]["fid"], fit["samples"]["iid"], strict=True)]
    res = write_results(tmp_path / "res.tsv", genome())
    info = export_ssf(res, tmp_path / "out.tsv", null=tmp_path / "fit.null.json", today=TODAY)
    sample = yaml.safe_load(info.meta.read_text())["samples"][0]
    assert sample["case_count"] == ys.count("1") and sample["control_count"] == ys.count("0")
    assert not any("case/control" in n for n in info.notes)
def test_null_json_from_another_scan_is_an_error(tmp_path):
    res = write_results(tmp_path / "res.tsv", genome(), {"likelihood": "bernoulli",
                                                         "samples": 99})
    with pytest.raises(InputError, match=r"fit\.null\.json: fitted on 8 samples but .*res\.tsv "
                       r"was scanned on 99 - pass the null\.json of this scan"):
        export_ssf(res, tmp_path / "out.tsv", null=make_null(tmp_path))
    res2 = write_results(tmp_path / "res2.tsv", genome(), {"likelihood": "poisson"})
    with pytest.raises(InputError, match=r"fitted with the bernoulli likelihood but .*poisson"):
        export_ssf(res2, tmp_path / "out.tsv", null=tmp_path / "fit.null.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match=r"bad\.json: not a glimix null-model file"):
        export_ssf(res, tmp_path / "out.tsv", null=bad)


def test_to_yaml_quotes_strings_that_yaml_would_misread():
    yaml = pytest.importorskip("yaml")
    data = {"a": "yes", "b": "1.0", "c": "x: y # z", "d": "line\nbreak \"q\" é",
            "e": ["NR", "no"], "f": [{"g": 1, "h": False}], "skip": None, "i": 0.001}
    assert yaml.safe_load(to_yaml(data)) == {k: v for k, v in data.items() if v is not None}


# ------------------------------------------------------------------------------------------
# the GWAS Catalog's validator


VALIDATOR = "gwas-sumstats-tools==1.0.25"
VALIDATOR_PINS = ("click<8.2", "numpy<2", "six")


def validator_venv() -> Path:
    """A venv with gwas-sumstats-tools 1.0.25, created once under the test cache."""
    cache = Path(os.environ.get("GLIMIX_TEST_CACHE", Path.home() / ".cache" / "glimix-tests"))
    venv = cache / "gwas-sumstats-tools-1.0.25"
    exe = venv / "bin" / "gwas-ssf"
    if exe.exists():
        return venv
    cache.mkdir(parents=True, exist_ok=True)
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", VALIDATOR, *VALIDATOR_PINS]]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"cannot install the GWAS-SSF validator ({' '.join(cmd[-5:])}): "
                        f"{(proc.stderr or proc.stdout)[-2000:]}", pytrace=False)
    if not exe.exists():
        pytest.fail(f"{VALIDATOR} installed but {exe} is missing", pytrace=False)
    return venv


def catalog_cohort(path: Path) -> dict:
    """104,400 variants (over 100,000 testable) on 22 autosomes, X, PLINK XY (25), MT (26)."""
    rng = np.random.default_rng(20240517)
    per = 4700
    chrom = [str(c) for c in range(1, 23) for _ in range(per)]
    chrom += ["X"] * 800 + ["25"] * 100 + ["26"] * 100
    m = len(chrom)
    pos = np.concatenate([np.sort(rng.choice(10**8, per, replace=False)) + 1
                          for _ in range(22)] + [np.arange(1, 1001) * 1000])
    pairs = np.array([("A", "C"), ("A", "G"), ("C", "T"), ("G", "T")])[rng.integers(0, 4, m)]
    ids = np.array([f"rs{k}" for k in rng.choice(10**8, m, replace=False)], dtype=object)
    ids[::7] = [f"{c}:{p}:{a}:{b}" for c, p, (a, b) in
                zip(np.array(chrom)[::7], pos[::7], pairs[::7], strict=True)]
    nlp = rng.exponential(0.434, m)
    nlp[[10, 2000, 50_000]] = [412.5, 1500.0, 301.0]  # below the float64 range
    status = np.array(["ok"] * m, dtype=object)
    status[rng.choice(m, 1500, replace=False)] = "low_mac"
    status[rng.choice(m, 200, replace=False)] = "monomorphic"
    nlp[status != "ok"] = np.nan
    beta = rng.normal(0, 0.05, m)
    beta[status != "ok"] = np.nan
    rows = results_rows(chrom, pos, ids, ea=pairs[:, 0].tolist(), oa=pairs[:, 1].tolist(),
                        status=status.tolist(), nlp=nlp, beta=beta,
                        n=rng.integers(950, 1001, m))
    rows["effect_allele_frequency"] = rng.uniform(0.01, 0.99, m)
    m_ok = int((status == "ok").sum())
    write_results(path, rows, {"likelihood": "normal", "samples": 1000})
    return {"rows": m, "ok": m_ok}


@pytest.mark.slow
def test_export_passes_the_gwas_catalog_validator(tmp_path):
    venv = validator_venv()
    res = tmp_path / "cohort.tsv.gz"
    facts = catalog_cohort(res)
    out = tmp_path / "GCST_glimix.tsv.gz"
    # the real command, in a subprocess, as a user runs it
    proc = subprocess.run(
        [sys.executable, "-m", "glimix_cli", "export-ssf", str(res), "--out", str(out),
         "--genome-assembly", "GRCh38", "--trait", "simulated height", "--ancestry",
         "European"],
        capture_output=True, text=True, env={**os.environ, "GLIMIX_WIDTH": "200"},
        timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"{facts['ok']:,} of {facts['rows']:,} variants" in proc.stderr
    df = read_ssf(out)
    assert len(df) == facts["ok"] >= 100_000
    assert {"3.162e-413", "1e-1500"} <= set(df["p_value"])

    for flags in ([], ["--infer-from-metadata"]):
        val = subprocess.run([str(venv / "bin" / "gwas-ssf"), "validate", str(out), *flags],
                             capture_output=True, text=True, timeout=600)
        assert val.returncode == 0, val.stdout + val.stderr
        assert "Validation status: True" in val.stdout
        assert "All chromosomes, including X, Y, and MT, exist." not in val.stdout  # no Y
        assert "All autosomes exist." in val.stdout

    # the metadata satisfies the Catalog's own pydantic model, and the md5 matches
    check = (
        "import sys, yaml, hashlib\n"
        "from gwas_sumstats_tools.schema.metadata import SumStatsMetadata\n"
        "m = SumStatsMetadata.parse_obj(yaml.safe_load(open(sys.argv[1])))\n"
        "assert m.data_file_md5sum == hashlib.md5(open(sys.argv[2], 'rb').read()).hexdigest()\n"
        "assert m.data_file_name == sys.argv[3] and m.file_type == 'GWAS-SSF v1.0'\n"
        "print(m.samples[0].sample_size, m.genome_assembly, m.is_sorted)\n"
    )
    meta = subprocess.run([str(venv / "bin" / "python"), "-c", check,
                           str(metadata_path(out)), str(out), out.name],
                          capture_output=True, text=True, timeout=120)
    assert meta.returncode == 0, meta.stderr
    assert meta.stdout.split() == ["1000", "GRCh38", "True"]

    # and the validator does catch what the exporter fixes: the raw glimix file fails
    raw = tmp_path / "raw.tsv.gz"
    raw.write_bytes(res.read_bytes())
    val = subprocess.run([str(venv / "bin" / "gwas-ssf"), "validate", str(raw)],
                         capture_output=True, text=True, timeout=600)
    assert val.returncode != 0 and "Validation status: False" in val.stdout


def test_author_notes_say_which_test_gave_the_p_values(tmp_path):
    """From the results' test column: a binary scan mixes the surrogate LRT and the
    saddlepoint (it once said every p-value was a likelihood-ratio test)."""
    yaml = pytest.importorskip("yaml")
    rows = genome()
    rows["test"] = ["spa"] * 3 + ["surrogate_lrt"] * (len(rows["variant_id"]) - 3)
    res = write_results(tmp_path / "res.tsv", rows)
    null = make_null(tmp_path)
    data = json.loads(null.read_text())
    data["null"]["h2_liability"] = 0.25
    data["kinship"]["n_variants"] = None  # a precomputed kinship: no variant count
    null.write_text(json.dumps(data))
    info = export_ssf(res, tmp_path / "out.tsv", null=null, today=TODAY)
    notes = yaml.safe_load(info.meta.read_text())["author_notes"]
    assert "19 of 22 rows by the likelihood-ratio test of the heterogeneous-Normal" in notes
    assert "3 of 22 rows by the saddlepoint approximation" in notes
    assert "liability h2 = 0.25" in notes and "latent h2" not in notes
    assert "None" not in notes and "Random effect: kinship GRM; v0" in notes
