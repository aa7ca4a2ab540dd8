"""The glimix command end to end on example_data (CliRunner and one real subprocess)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glimix_cli.cli.app import app
from glimix_cli.io.results import BINARY_COLUMNS, BINARY_HEADER, COLUMNS, HEADER

CAUSAL = pd.read_csv(Path(__file__).resolve().parents[2] / "example_data" / "causal.tsv",
                     sep="\t")
TRAIT_OF = {"quant": "quant", "binary": "binary", "count": "count", "successes": "binomial"}


GOLDEN_BINARY = Path(__file__).resolve().parents[1] / "data" / "golden" / "binary.tsv.gz"


def base(ex: Path, trait: str = "quant", *extra: str) -> list[str]:
    return ["--bfile", str(ex / "cohort"), "--pheno", str(ex / "cohort.pheno.tsv"),
            "--pheno-name", trait, "--covar", str(ex / "cohort.covar.tsv"), *extra]


@pytest.mark.parametrize("trait", ["quant", "binary", "count", "successes"])
def test_scan_every_likelihood_reports_and_writes(scans, trait):
    out, text = scans[trait]
    binary = trait == "binary"
    assert out.read_text().startswith(BINARY_HEADER if binary else HEADER)
    df = pd.read_csv(out, sep="\t")
    assert list(df.columns) == list(COLUMNS + (BINARY_COLUMNS if binary else ()))
    assert len(df) == 5000
    assert set(df["status"]) <= {"ok", "low_mac", "monomorphic", "all_missing", "collinear"}
    assert (df["status"] == "monomorphic").sum() == 4
    for key in ("samples", "final", "600", "lambda_GC", "top hits", "wrote"):
        assert key in text, key
    # the planted variants of this trait are the top hits
    planted = set(CAUSAL.loc[CAUSAL["trait"] == TRAIT_OF[trait], "variant_id"])
    top = df.sort_values("neg_log10_p_value", ascending=False).head(len(planted))
    assert len(set(top["variant_id"]) & planted) >= len(planted) - 1, top
    best = df.sort_values("neg_log10_p_value", ascending=False).iloc[0]
    assert best["variant_id"] in planted and best["neg_log10_p_value"] > 7
    # effect signs agree with the planted effects (latent scale, allele a1 counted)
    sub = CAUSAL[CAUSAL["trait"] == TRAIT_OF[trait]].merge(df, on="variant_id")
    assert (np.sign(sub["effect"]) == np.sign(sub["beta"])).all()


def test_p_value_column_agrees_with_chisq(scans):
    from scipy.stats import chi2

    df = pd.read_csv(scans["quant"][0], sep="\t")
    ok = df[df["status"] == "ok"]
    np.testing.assert_allclose(ok["p_value"], chi2.sf(ok["lrt_chisq"], 1), rtol=2e-3)
    np.testing.assert_allclose(ok["neg_log10_p_value"], -np.log10(ok["p_value"]), rtol=1e-3,
                               atol=1e-4)
    bad = df[df["status"] != "ok"]
    assert bad["p_value"].isna().all() and bad["beta"].isna().all()


def test_fit_writes_null_json_and_scan_reuses_it(runner, ex, tmp_path):
    prefix = tmp_path / "bin"
    res = runner.invoke(app, ["fit", *base(ex, "binary"), "-l", "bernoulli", "--out",
                              str(prefix)])
    assert res.exit_code == 0, res.output
    for key in ("null model: bernoulli", "v0", "h2 liability", "log marginal likelihood",
                "EP sweeps", "wrote"):
        assert key in res.output, key
    data = json.loads(Path(f"{prefix}.null.json").read_text())
    assert data["null"]["likelihood"] == "bernoulli"
    assert data["samples"]["counts"]["final"] == 600 and len(data["sites"]["tau"]) == 600
    assert "glimix" in data["software"] and data["inputs"]["bfile"]["bed_size"] > 0
    out = tmp_path / "reuse.tsv"
    res = runner.invoke(app, ["scan", *base(ex, "binary"), "-l", "bernoulli", "--null",
                              f"{prefix}.null.json", "--chrom", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "reused" in res.output
    reused = pd.read_csv(out, sep="\t")
    assert (reused["chromosome"] == 2).all()


def test_null_json_from_other_inputs_is_refused(runner, ex, tmp_path):
    prefix = tmp_path / "q"
    assert runner.invoke(app, ["fit", *base(ex), "--out", str(prefix), "-q"]).exit_code == 0
    out = tmp_path / "x.tsv"
    res = runner.invoke(app, ["scan", *base(ex, "count"), "-l", "poisson", "--null",
                              f"{prefix}.null.json", "--out", str(out)])
    assert res.exit_code == 1
    assert "different pheno-name" in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_chunks_merge_to_the_single_run_byte_for_byte(runner, ex, tmp_path):
    single = tmp_path / "single.tsv.gz"
    assert runner.invoke(app, ["scan", *base(ex), "--out", str(single), "-q",
                               "--block-size", "333"]).exit_code == 0
    parts = []
    for i in (1, 2, 3):
        p = tmp_path / f"part{i}.tsv.gz"
        res = runner.invoke(app, ["scan", *base(ex), "--chunk", f"{i}/3", "--out", str(p),
                                  "-q", "--block-size", "1000"])
        assert res.exit_code == 0, res.output
        parts.append(str(p))
    merged = tmp_path / "merged.tsv.gz"
    res = runner.invoke(app, ["merge", str(merged), parts[2], parts[0], parts[1]])
    assert res.exit_code == 0, res.output
    assert merged.read_bytes() == single.read_bytes()
    # missing or duplicated chunks are refused
    res = runner.invoke(app, ["merge", str(tmp_path / "bad.tsv"), parts[0], parts[1]])
    assert res.exit_code == 1 and "chunk(s) 3 of 3 missing" in res.output
    res = runner.invoke(app, ["merge", str(tmp_path / "bad.tsv"), parts[0], parts[0], parts[1]])
    assert res.exit_code == 1 and "given twice" in res.output
    assert not (tmp_path / "bad.tsv").exists()


def test_block_size_does_not_change_results(runner, ex, tmp_path):
    outs = []
    for bs in ("1", "7", "5000"):
        out = tmp_path / f"b{bs}.tsv"
        res = runner.invoke(app, ["scan", *base(ex), "--chrom", "3", "--to-bp", "3000000",
                                  "--out", str(out), "-q", "--block-size", bs])
        assert res.exit_code == 0, res.output
        outs.append(out.read_text())
    assert outs[0] == outs[1] == outs[2]


def test_kinship_cache_is_built_and_reused(runner, ex, tmp_path):
    cache = tmp_path / "kin.npz"
    res = runner.invoke(app, ["kinship", "--bfile", str(ex / "cohort"), "--out", str(cache)])
    assert res.exit_code == 0, res.output
    assert "rank" in res.output and cache.exists()
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    assert runner.invoke(app, ["scan", *base(ex), "--out", str(a), "-q"]).exit_code == 0
    res = runner.invoke(app, ["scan", *base(ex), "--kinship-cache", str(cache), "--out", str(b)])
    assert res.exit_code == 0, res.output
    assert "kinship: cache" in res.output
    da, db = pd.read_csv(a, sep="\t"), pd.read_csv(b, sep="\t")
    # the cache standardises the GRM over all 610 genotyped samples, a direct build over
    # the 600 analysed ones: nearly the same kinship, nearly the same statistics
    ok = da["status"] == "ok"
    assert np.corrcoef(da.loc[ok, "lrt_chisq"], db.loc[ok, "lrt_chisq"])[0, 1] > 0.999
    # a cache from other genotype files is refused
    other = tmp_path / "other"
    for suffix in (".bed", ".bim", ".fam"):
        shutil.copy(ex / f"cohort{suffix}", f"{other}{suffix}")
    with open(f"{other}.bim", "a") as fh:
        fh.write("")
    Path(f"{other}.fam").write_text(Path(f"{other}.fam").read_text() + "")
    import os

    os.utime(f"{other}.bed", (1, 1))
    res = runner.invoke(app, ["scan", "--bfile", str(other), "--pheno",
                              str(ex / "cohort.pheno.tsv"), "--pheno-name", "quant",
                              "--kinship-cache", str(cache), "--out", str(tmp_path / "c.tsv")])
    assert res.exit_code == 1 and "kinship cache was built from other inputs" in res.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--pheno-name", "nosuch"], 1, "column 'nosuch' not found"),
        ([], 1, "5 phenotype columns (quant, binary, count, successes, trials) - choose one "
         "with --pheno-name"),
        (["--pheno-name", "quant", "-l", "bernoulli"], 1, "bernoulli"),
        (["--pheno-name", "successes", "-l", "binomial"], 1, "--trials-name"),
        (["--pheno-name", "trials", "--trials-name", "trials", "-l", "binomial"], 1,
         "--trials-name trials is also the trait column"),
        (["--pheno-name", "quant", "--chunk", "4/3"], 2, "--chunk 4/3"),
        (["--pheno-name", "quant", "--from-bp", "10"], 2, "need --chr"),
        (["--pheno-name", "quant", "--chrom", "9"], 1, "chromosome 9 not in the genotypes"),
    ],
)
def test_bad_input_gives_one_line_and_no_output(runner, ex, tmp_path, args, code, message):
    out = tmp_path / "out.tsv"
    full = ["scan", "--bfile", str(ex / "cohort"), "--pheno", str(ex / "cohort.pheno.tsv"),
            "--covar", str(ex / "cohort.covar.tsv"), "--out", str(out), *args]
    res = runner.invoke(app, full)
    assert res.exit_code == code, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_single_trait_column_needs_no_pheno_name(runner, ex, tmp_path):
    pheno = tmp_path / "case.tsv"
    pd.read_csv(ex / "cohort.pheno.tsv", sep="\t")[["FID", "IID", "binary"]].to_csv(
        pheno, sep="\t", index=False)
    common = ["--bfile", str(ex / "cohort"), "--pheno", str(pheno), "-l", "bernoulli", "-q"]
    res = runner.invoke(app, ["fit", *common, "--out", str(tmp_path / "n")])
    assert res.exit_code == 0, res.output
    null = tmp_path / "n.null.json"
    assert json.loads(null.read_text())["inputs"]["pheno_name"] == "binary"
    # the scan resolves the same column, so the null model's inputs match
    res = runner.invoke(app, ["scan", *common, "--null", str(null), "--chrom", "3",
                              "--out", str(tmp_path / "o.tsv")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o.tsv").exists()


def test_null_model_notes_tell_the_lower_bound_from_the_glm_route():
    from types import SimpleNamespace

    from glimix_cli.cli.console import _null_notes

    low = _null_notes(SimpleNamespace(status="at_bound", v0=1e-8, likelihood="poisson"))
    assert len(low) == 1 and "lower bound" in low[0] and "plain GLM" in low[0]
    glm = _null_notes(SimpleNamespace(status="converged", v0=0.0, likelihood="bernoulli",
                                      route="glm", route_reason="v0 ran to its cap 30"))
    assert len(glm) == 1 and "no kinship variance is identified (v0 ran to its cap" in glm[0]
    assert "logistic GLM" in glm[0]
    assert _null_notes(SimpleNamespace(status="converged", v0=1e-8, likelihood="bernoulli")) == []


def test_broken_bed_is_a_clear_error(runner, ex, tmp_path):
    for suffix in (".bim", ".fam"):
        shutil.copy(ex / f"cohort{suffix}", tmp_path / f"c{suffix}")
    (tmp_path / "c.bed").write_bytes(b"\x6c\x1b\x01" + b"\x00" * 10)
    res = runner.invoke(app, ["scan", "--bfile", str(tmp_path / "c"), "--pheno",
                              str(ex / "cohort.pheno.tsv"), "--pheno-name", "quant", "--out",
                              str(tmp_path / "o.tsv")])
    assert res.exit_code == 1
    assert "c.bed" in res.output and "Traceback" not in res.output


def test_probit_scan_and_python_dash_m(ex, tmp_path):
    out = tmp_path / "probit.tsv"
    proc = subprocess.run([sys.executable, "-m", "glimix_cli", "scan", *base(ex, "binary"),
                           "-l", "probit", "--chrom", "3", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "null model: probit" in proc.stderr and "h2 liability" in proc.stderr
    df = pd.read_csv(out, sep="\t")
    best = df.sort_values("neg_log10_p_value", ascending=False).iloc[0]
    assert best["variant_id"] == "rs450745"  # the chromosome-3 variant planted for 'binary'


def test_help_has_examples_and_version(runner):
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("glimix ")
    for cmd in ("fit", "scan", "kinship", "merge"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0 and "Example" in res.output, cmd


def test_installed_console_script_runs(ex, tmp_path):
    exe = shutil.which("glimix") or str(Path(sys.executable).with_name("glimix"))
    assert Path(exe).exists(), "the glimix console script is not installed"
    out = tmp_path / "sub.tsv.gz"
    proc = subprocess.run([exe, "scan", *base(ex), "--chrom", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stderr and proc.stdout == ""
    with gzip.open(out, "rt") as fh:
        assert fh.readline() == HEADER
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("glimix ")


def test_help_is_fast_and_imports_no_numerics():
    code = ("import sys; from glimix_cli.cli.app import app; "
            "print(sorted(m for m in ('numpy','scipy','pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_model_layer_imports_no_io_or_cli():
    code = ("import sys, glimix_cli.model; "
            "print(sorted(m for m in ('pandas','rich','typer') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_threads_caps_the_blas_pools_before_numpy_loads(ex, tmp_path):
    code = """
import ctypes, glob, os, sys
from glimix_cli.cli.common import limit_threads
limit_threads(1)
import numpy, scipy.linalg
counts = []
for pkg in (numpy, scipy):
    libs = os.path.join(os.path.dirname(pkg.__file__), '..', pkg.__name__ + '.libs')
    for path in glob.glob(os.path.join(libs, '*openblas*')):
        lib = ctypes.CDLL(path)
        for sym in ('openblas_get_num_threads64_', 'scipy_openblas_get_num_threads',
                    'openblas_get_num_threads'):
            if hasattr(lib, sym):
                counts.append(getattr(lib, sym)())
                break
print(counts)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OPENBLAS_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout)
    if not counts:
        pytest.skip("no bundled OpenBLAS to query")
    assert set(counts) == {1}, counts  # numpy's and scipy's own OpenBLAS copies
    # end to end, as a command
    exe = Path(sys.executable).with_name("glimix")
    proc = subprocess.run([str(exe), "kinship", "--bfile", str(ex / "cohort"), "--out",
                           str(tmp_path / "k.npz"), "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr and (tmp_path / "k.npz").exists()


def test_threads_in_process_says_it_is_too_late(runner, ex, tmp_path):
    before = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    res = runner.invoke(app, ["kinship", "--bfile", str(ex / "cohort"), "--out",
                              str(tmp_path / "k.npz"), "--threads", "1", "-q"])
    assert res.exit_code == 0, res.output
    assert "--threads has no effect here" in " ".join(res.output.split())
    # and the environment is left alone (it would only reach child processes)
    assert {k: os.environ.get(k) for k in before} == before


def test_a_shared_pheno_and_covar_table_never_uses_the_trait_as_covariate(runner, ex, tmp_path):
    both = tmp_path / "both.tsv"
    ph = pd.read_csv(ex / "cohort.pheno.tsv", sep="\t")[["FID", "IID", "quant"]]
    cv = pd.read_csv(ex / "cohort.covar.tsv", sep="\t")
    ph.merge(cv, on=["FID", "IID"]).to_csv(both, sep="\t", index=False)
    common = ["fit", "--bfile", str(ex / "cohort"), "--pheno", str(both), "--covar", str(both)]
    res = runner.invoke(app, [*common, "--pheno-name", "quant", "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "but quant (the trait)" in " ".join(res.output.split())
    # the same fit as with the separate files
    ref = runner.invoke(app, ["fit", "--bfile", str(ex / "cohort"), "--pheno",
                              str(ex / "cohort.pheno.tsv"), "--pheno-name", "quant", "--covar",
                              str(ex / "cohort.covar.tsv"), "--out", str(tmp_path / "b"), "-q"])
    assert ref.exit_code == 0, ref.output
    a = json.loads((tmp_path / "a.null.json").read_text())["null"]
    b = json.loads((tmp_path / "b.null.json").read_text())["null"]
    assert a["covariates"] == b["covariates"] and "quant" not in a["covariates"]
    assert a["beta"] == pytest.approx(b["beta"], rel=1e-9) and a["lml"] == pytest.approx(b["lml"])
    # not named: the error says how to name them
    res = runner.invoke(app, [*common, "--out", str(tmp_path / "e")])
    assert res.exit_code == 1
    assert "(or name the covariates with --covar-name / --covar-cat)" in " ".join(
        res.output.split())
    # with the covariates named, the one column left is the trait: no --pheno-name needed
    res = runner.invoke(app, [*common, *[a for c in ("age", "sex") for a in ("--covar-name", c)],
                              "--covar-cat", "site", "--out", str(tmp_path / "d"), "-q"])
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "d.null.json").read_text())
    assert d["inputs"]["pheno_name"] == "quant" and d["null"]["lml"] == pytest.approx(b["lml"])
    # named explicitly: refused, nothing written
    res = runner.invoke(app, [*common, "--pheno-name", "quant", "--covar-name", "quant",
                              "--out", str(tmp_path / "c")])
    assert res.exit_code == 1
    assert "covariate 'quant' is the trait column" in " ".join(res.output.split())
    assert not (tmp_path / "c.null.json").exists()


@pytest.mark.parametrize("trait", ["binary", "count", "successes"])
def test_scan_with_a_stored_ep_null_equals_a_fresh_scan(scans, runner, tmp_path, trait):
    """`scan --null` rebuilds the EP surrogate (sites, scale, delta) from the null JSON: a
    wrong stored scale once left every test green while -log10 p moved by up to 2.7."""
    from make_golden import scan_args

    fit = ["fit", *scan_args(trait, tmp_path / "x")[1:-3], "--out", str(tmp_path / "f"),
           "--quiet"]
    res = runner.invoke(app, fit)
    assert res.exit_code == 0, res.output
    out = tmp_path / "reused.tsv"
    args = [*scan_args(trait, out), "--null", str(tmp_path / "f.null.json")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == scans[trait][0].read_bytes()
    # and the stored scale matters: a doubled one changes the p-values
    data = json.loads((tmp_path / "f.null.json").read_text())
    data["null"]["scale"] *= 2
    (tmp_path / "f.null.json").write_text(json.dumps(data))
    res = runner.invoke(app, [*scan_args(trait, tmp_path / "bad.tsv"), "--null",
                              str(tmp_path / "f.null.json")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "bad.tsv").read_bytes() != out.read_bytes()


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_bad_outputs_are_refused_before_any_work(runner, ex, tmp_path, monkeypatch):
    """A directory as --out, a missing directory, an unwritable one: one line, exit 1, no
    file left, and before the genotypes are read (plink2 users meet these daily)."""
    import glimix_cli.pipeline.kinship as kinship_mod
    import glimix_cli.pipeline.run as run_mod

    def no_work(*args, **kwargs):
        raise AssertionError("the output check must come before the inputs are read")

    monkeypatch.setattr(run_mod, "load_inputs", no_work)
    monkeypatch.setattr(kinship_mod, "open_bfile", no_work)
    (tmp_path / "adir").mkdir()
    cases = [
        (["scan", *base(ex), "--out", str(tmp_path / "adir")],
         "is a directory - --out names a file"),
        (["scan", *base(ex), "--out", str(tmp_path / "no" / "o.tsv")], "does not exist"),
        (["scan", *base(ex), "--out", "/proc/glimix.tsv"], "cannot write in /proc"),
        (["fit", *base(ex), "--out", "/proc/glimix"], "/proc/glimix.null.json: cannot write"),
        (["kinship", "--bfile", str(ex / "cohort"), "--out", "/proc/k.npz"], "cannot write"),
        (["kinship", "--bfile", str(ex / "cohort"), "--out", str(tmp_path / "no" / "k.npz")],
         "does not exist"),
    ]
    before = _listing(tmp_path)
    for args, message in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 1, (args, res.output)
        assert message in res.output and "Traceback" not in res.output, res.output
    assert _listing(tmp_path) == before == ["adir"]
    assert _listing(tmp_path / "adir") == []


def test_binary_files_as_tables_and_too_many_covariates_are_one_line_errors(runner, ex,
                                                                           tmp_path):
    for opt in ("--pheno", "--covar"):
        args = ["fit", *base(ex), "--quiet"]
        args[args.index(opt) + 1] = str(ex / "cohort.bed")
        res = runner.invoke(app, args)
        assert res.exit_code == 1, res.output
        assert "cohort.bed: not a text table" in res.output and "Traceback" not in res.output
    ph = pd.read_csv(ex / "cohort.pheno.tsv", sep="\t").head(50)
    ph[["FID", "IID", "quant"]].to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    cov = ph[["FID", "IID"]].copy()
    rng = np.random.default_rng(0)
    for j in range(60):
        cov[f"c{j}"] = rng.normal(size=len(cov))
    cov.to_csv(tmp_path / "c.tsv", sep="\t", index=False)
    res = runner.invoke(app, ["scan", "--bfile", str(ex / "cohort"), "--pheno",
                              str(tmp_path / "p.tsv"), "--covar", str(tmp_path / "c.tsv"),
                              "--out", str(tmp_path / "o.tsv")])
    assert res.exit_code == 1, res.output
    assert "60 covariates (and the intercept) for 49 analysed samples" in res.output
    assert "Traceback" not in res.output and "warning" not in res.output
    assert not (tmp_path / "o.tsv").exists() and not (tmp_path / "o.tsv.partial").exists()


def test_dash_h_is_help(runner):
    for args in (["-h"], ["scan", "-h"], ["fit", "-h"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.output, args


def test_missing_code_adds_to_the_defaults(runner, ex, tmp_path):
    """plink2 habit: --missing-code 999 makes 999 missing and keeps NA/-9 missing too."""
    ph = pd.read_csv(ex / "cohort.pheno.tsv", sep="\t", dtype=str)
    ph.loc[:9, "quant"] = "999"  # 10 more missing values, the NA ones stay
    ph.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    res = runner.invoke(app, ["fit", "--bfile", str(ex / "cohort"), "--pheno",
                              str(tmp_path / "p.tsv"), "--pheno-name", "quant",
                              "--missing-code", "999", "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    counts = json.loads((tmp_path / "f.null.json").read_text())["samples"]["counts"]
    n_na = int(pd.read_csv(ex / "cohort.pheno.tsv", sep="\t")["quant"].iloc[10:].isna().sum())
    assert counts["phenotype non-missing"] == 610 - 10 - n_na


def test_plot_and_report_refuse_an_unwritable_output_first(runner, tmp_path):
    res = runner.invoke(app, ["plot", str(GOLDEN_BINARY), "--out", "/proc/p"])
    assert res.exit_code == 1 and "cannot write in /proc" in res.output, res.output
    res = runner.invoke(app, ["report", str(GOLDEN_BINARY), "--out", str(tmp_path)])
    assert res.exit_code == 1 and "is a directory" in res.output, res.output


def test_kinship_maf_has_the_name_fit_and_scan_use(runner, ex, tmp_path):
    """`glimix kinship --kinship-maf X` (the scan's name for the GRM's MAF floor) builds the
    same cache as `--maf X`, and a scan given `--kinship-maf X` accepts it."""
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    for flag, out in (("--kinship-maf", a), ("--maf", b)):
        res = runner.invoke(app, ["kinship", "--bfile", str(ex / "cohort"), flag, "0.2",
                                  "--out", str(out)])
        assert res.exit_code == 0, res.output
    za, zb = np.load(a), np.load(b)
    assert sorted(za.files) == sorted(zb.files)
    for key in za.files:
        assert np.array_equal(za[key], zb[key]), key
    res = runner.invoke(app, ["scan", *base(ex), "--kinship-cache", str(a), "--kinship-maf",
                              "0.2", "--out", str(tmp_path / "s.tsv"), "-q"])
    assert res.exit_code == 0, res.output
