"""Several traits in one pass (issue 17): ``--pheno-name a,b,c`` / repeated / ``--all-pheno``
give each trait the file a single-trait run writes (to printing precision: Normal traits on
the same samples whiten through a shared eigenbasis instead of a Cholesky), with chunks,
merge, resume and ``fit`` + ``--null`` per trait, and clear errors before any work."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import glimix_cli.pipeline.multi as multi_mod
import glimix_cli.pipeline.run as run_mod
from glimix_cli.cli.app import app
from glimix_cli.pipeline import resume as resume_mod

EX = Path(__file__).resolve().parents[2] / "example_data"
runner = CliRunner()
NUMERIC = ["beta", "standard_error", "effect_allele_frequency", "p_value", "lrt_chisq",
           "neg_log10_p_value"]


@pytest.fixture(scope="module")
def pheno(tmp_path_factory) -> Path:
    """Three Normal traits (q3 with 10% missing: other samples) and two 0/1 traits."""
    d = pd.read_csv(EX / "cohort.pheno.tsv", sep="\t")
    rng = np.random.default_rng(0)
    out = d[["FID", "IID"]].copy()
    out["q1"] = d["quant"]
    out["q2"] = d["quant"] + rng.normal(size=len(d))
    q3 = rng.normal(size=len(d))
    q3[rng.random(len(d)) < 0.1] = np.nan
    out["q3"] = q3
    out["b1"] = d["binary"]
    out["b2"] = (rng.random(len(d)) < 0.3).astype(float)
    path = tmp_path_factory.mktemp("multi") / "multi.tsv"
    out.to_csv(path, sep="\t", index=False, na_rep="NA")
    return path


def _scan(pheno: Path, out: Path, *extra: str) -> None:
    res = runner.invoke(app, ["scan", "--bfile", str(EX / "cohort"), "--pheno", str(pheno),
                              "--covar", str(EX / "cohort.covar.tsv"), "--out", str(out), "-q",
                              *extra])
    assert res.exit_code == 0, res.output


def _same(a: Path, b: Path, exact: bool) -> None:
    if exact:
        assert gzip.open(a).read() == gzip.open(b).read()
        return
    x, y = pd.read_csv(a, sep="\t"), pd.read_csv(b, sep="\t")
    assert list(x.columns) == list(y.columns)
    text = [c for c in x.columns if c not in NUMERIC]
    assert (x[text].astype(str) == y[text].astype(str)).all(axis=None)
    for c in NUMERIC:
        np.testing.assert_allclose(x[c], y[c], rtol=2e-5, atol=1e-9, err_msg=c)


@pytest.fixture(scope="module")
def singles(pheno, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("singles")
    out = {}
    for t, lik in (("q1", "normal"), ("q2", "normal"), ("q3", "normal"), ("b1", "bernoulli"),
                   ("b2", "bernoulli")):
        out[t] = d / f"{t}.tsv.gz"
        _scan(pheno, out[t], "--pheno-name", t, "-l", lik)
    return out


def test_normal_traits_in_one_pass_equal_their_single_runs(pheno, singles, tmp_path):
    _scan(pheno, tmp_path / "m.tsv.gz", "--pheno-name", "q1-q3")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "m.log", "m.q1.tsv.gz", "m.q1.tsv.gz.meta.json", "m.q2.tsv.gz",
        "m.q2.tsv.gz.meta.json", "m.q3.tsv.gz", "m.q3.tsv.gz.meta.json"]
    _same(tmp_path / "m.q1.tsv.gz", singles["q1"], exact=False)  # shared eigenbasis
    _same(tmp_path / "m.q2.tsv.gz", singles["q2"], exact=False)
    _same(tmp_path / "m.q3.tsv.gz", singles["q3"], exact=True)  # its own samples
    log = (tmp_path / "m.log").read_text()
    assert "== trait q1 ==" in log and "== trait q3 ==" in log


def test_binary_traits_repeated_option_and_all_pheno(pheno, singles, tmp_path):
    _scan(pheno, tmp_path / "b", "--pheno-name", "b1", "--pheno-name", "b2", "-l",
          "bernoulli")
    for t in ("b1", "b2"):
        _same(tmp_path / f"b.{t}.tsv.gz", singles[t], exact=True)
    only_q = tmp_path / "q.tsv"
    pd.read_csv(pheno, sep="\t")[["FID", "IID", "q1", "q3"]].to_csv(only_q, sep="\t",
                                                                   index=False)
    _scan(only_q, tmp_path / "all.tsv", "--all-pheno")
    assert (tmp_path / "all.q1.tsv").exists() and (tmp_path / "all.q3.tsv").exists()
    _same(tmp_path / "all.q3.tsv", singles["q3"], exact=False)


def test_chunks_merge_fit_and_null_per_trait(pheno, singles, tmp_path):
    for i in (1, 2):
        _scan(pheno, tmp_path / f"c{i}.tsv.gz", "--pheno-name", "b1,b2", "-l", "bernoulli",
              "--chunk", f"{i}/2")
    for t in ("b1", "b2"):
        res = runner.invoke(app, ["merge", str(tmp_path / f"all.{t}.tsv.gz"),
                                  str(tmp_path / f"c1.{t}.tsv.gz"),
                                  str(tmp_path / f"c2.{t}.tsv.gz"), "-q"])
        assert res.exit_code == 0, res.output
        _same(tmp_path / f"all.{t}.tsv.gz", singles[t], exact=True)
    res = runner.invoke(app, ["fit", "--bfile", str(EX / "cohort"), "--pheno", str(pheno),
                              "--pheno-name", "q1,q3", "--covar", str(EX / "cohort.covar.tsv"),
                              "--out", str(tmp_path / "fit"), "-q"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "fit.q1.null.json").exists() and (tmp_path / "fit.q3.null.json").exists()
    _scan(pheno, tmp_path / "n.tsv.gz", "--pheno-name", "q1,q3", "--null", str(tmp_path / "fit"))
    _same(tmp_path / "n.q1.tsv.gz", singles["q1"], exact=False)
    _same(tmp_path / "n.q3.tsv.gz", singles["q3"], exact=False)


def test_a_crashed_multi_trait_scan_resumes_to_the_same_files(pheno, monkeypatch, tmp_path):
    args = ("--pheno-name", "q1,q3", "--block-size", "700")
    _scan(pheno, tmp_path / "ref.tsv.gz", *args)
    real = multi_mod.scan_block_multi
    calls = {"n": 0}

    def flaky(ctx, idx):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("simulated crash")
        return real(ctx, idx)

    with monkeypatch.context() as m:
        m.setattr(run_mod, "scan_block_multi", flaky)
        m.setattr(resume_mod, "CHECKPOINT_SECONDS", 0.0)
        res = runner.invoke(app, ["scan", "--bfile", str(EX / "cohort"), "--pheno",
                                  str(pheno), "--covar", str(EX / "cohort.covar.tsv"), "--out",
                                  str(tmp_path / "r.tsv.gz"), "-q", *args])
        assert res.exit_code != 0
    assert (tmp_path / "r.q1.tsv.gz.partial").exists()
    _scan(pheno, tmp_path / "r.tsv.gz", *args, "--resume")
    for t in ("q1", "q3"):
        assert (gzip.open(tmp_path / f"r.{t}.tsv.gz").read()
                == gzip.open(tmp_path / f"ref.{t}.tsv.gz").read())


def test_errors_come_before_any_work(pheno, tmp_path):
    def usage(*extra: str) -> str:
        res = runner.invoke(app, ["scan", "--bfile", str(EX / "cohort"), "--pheno",
                                  str(pheno), "--out", str(tmp_path / "e"), *extra])
        assert res.exit_code in (1, 2), res.output
        assert "Traceback" not in res.output
        assert not list(tmp_path.iterdir())
        return res.output

    assert "fit --out PREFIX" in usage("--pheno-name", "q1,q2", "--null",
                                       str(tmp_path / "nofit"))
    assert "alternatives" in usage("--pheno-name", "q1", "--all-pheno")
    assert "one binomial trait" in usage("--pheno-name", "q1,q2", "-l", "binomial",
                                         "--trials-name", "q3")


@pytest.mark.slow
def test_dask_multi_trait_scan_gives_the_same_bytes(pheno, tmp_path):
    pytest.importorskip("distributed")
    _scan(pheno, tmp_path / "here.tsv.gz", "--pheno-name", "q1-q3")
    _scan(pheno, tmp_path / "dask.tsv.gz", "--pheno-name", "q1-q3", "--dask-local", "1")
    for t in ("q1", "q2", "q3"):
        assert (gzip.open(tmp_path / f"dask.{t}.tsv.gz").read()
                == gzip.open(tmp_path / f"here.{t}.tsv.gz").read())
