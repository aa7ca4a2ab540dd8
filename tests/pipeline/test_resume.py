"""Resumable scans: OUT.partial + ledger, --resume, byte identity with an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import glimix_cli.pipeline.run as run_mod
from glimix_cli.cli.app import app
from glimix_cli.io.results import HEADER
from glimix_cli.pipeline import resume as resume_mod

EX = Path(__file__).resolve().parents[2] / "example_data"
runner = CliRunner()


def scan_args(out: Path, *extra: str) -> list[str]:
    return ["scan", "--bfile", str(EX / "cohort"), "--pheno", str(EX / "cohort.pheno.tsv"),
            "--pheno-name", "quant", "--covar", str(EX / "cohort.covar.tsv"), "--out", str(out),
            "-q", *extra]


def crash_after(monkeypatch, k: int) -> None:
    """Make the scan raise (like a crash) when it starts block k+1."""
    real = run_mod.scan_block
    calls = {"n": 0}

    def flaky(ctx, idx):
        calls["n"] += 1
        if calls["n"] > k:
            raise RuntimeError("simulated crash")
        return real(ctx, idx)

    monkeypatch.setattr(run_mod, "scan_block", flaky)
    monkeypatch.setattr(resume_mod, "CHECKPOINT_SECONDS", 0.0)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, bytes]:
    """Reference outputs of uninterrupted runs, keyed by name."""
    d = tmp_path_factory.mktemp("ref")
    refs = {}
    for name, extra in (("full.tsv.gz", ["--block-size", "700"]),
                        ("full.tsv", ["--block-size", "700"]),
                        ("chunk2.tsv", ["--block-size", "300", "--chunk", "2/3"])):
        res = runner.invoke(app, scan_args(d / name, *extra))
        assert res.exit_code == 0, res.output
        refs[name] = (d / name).read_bytes()
    return refs


@pytest.mark.parametrize(("name", "extra", "k"), [
    ("full.tsv.gz", ["--block-size", "700"], 3),
    ("full.tsv", ["--block-size", "700"], 5),
    ("chunk2.tsv", ["--block-size", "300", "--chunk", "2/3"], 2),
])
def test_crashed_run_resumes_to_the_same_bytes(monkeypatch, tmp_path, uninterrupted, name,
                                               extra, k):
    out = tmp_path / name
    partial, ledger = resume_mod.partial_paths(out)
    with monkeypatch.context() as m:
        crash_after(m, k)
        res = runner.invoke(app, scan_args(out, *extra))
    assert res.exit_code == 1 and "simulated crash" in repr(res.exception)
    assert not out.exists() and partial.exists() and ledger.exists()
    state = json.loads(ledger.read_text())
    assert state["blocks_done"] == k
    assert partial.read_text().startswith(HEADER)
    assert partial.read_text().count("\n") == 1 + state["rows_done"]
    # a block half written when the process died is cut off on resume
    with open(partial, "a") as fh:
        fh.write("1\t123\tA\tC\t0.1")
    res = runner.invoke(app, [a for a in scan_args(out, *extra) if a != "-q"] + ["--resume"])
    assert res.exit_code == 0, res.output
    assert f"{state['rows_done']:,} variants in {k:,} of" in res.output
    assert out.read_bytes() == uninterrupted[name]
    assert not partial.exists() and not ledger.exists()
    assert json.loads(Path(f"{out}.meta.json").read_text())["n_rows"] > 0


def test_resume_summary_matches_an_uninterrupted_run(monkeypatch, tmp_path):
    from glimix_cli.pipeline.run import InputConfig, Reporter, ScanConfig, run_scan

    cfg = InputConfig(bfile=EX / "cohort", pheno=EX / "cohort.pheno.tsv", pheno_name="quant",
                      covar=EX / "cohort.covar.tsv")
    scfg = ScanConfig(block_size=600)
    ref = run_scan(cfg, scfg, tmp_path / "ref.tsv", Reporter())
    out = tmp_path / "r.tsv"
    with monkeypatch.context() as m:
        crash_after(m, 4)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_scan(cfg, scfg, out, Reporter())
    got = run_scan(cfg, ScanConfig(block_size=600, resume=True), out, Reporter())
    assert got.status_counts == ref.status_counts
    assert got.n_imputed == ref.n_imputed
    # resumed blocks are summarised from their rows as written (6 significant digits)
    assert got.lambda_gc == pytest.approx(ref.lambda_gc, rel=1e-5)
    assert got.lambda_gc_common == pytest.approx(ref.lambda_gc_common, rel=1e-5)
    assert [h["variant_id"] for h in got.top] == [h["variant_id"] for h in ref.top]
    assert [h["beta"] for h in got.top] == pytest.approx([h["beta"] for h in ref.top], rel=1e-5)


def test_resume_refuses_a_partial_of_another_run(monkeypatch, tmp_path):
    out = tmp_path / "o.tsv"
    with monkeypatch.context() as m:
        crash_after(m, 2)
        assert runner.invoke(app, scan_args(out, "--block-size", "500")).exit_code == 1
    def no_kinship(*args, **kwargs):
        raise AssertionError("the refusal must come before the kinship is built")

    monkeypatch.setattr(run_mod, "build_kinship", no_kinship)
    for extra, message in ((["--block-size", "400"], "other --block-size (500 then, 400 now)"),
                           (["--block-size", "500", "--maf", "0.05"], "other inputs, selection"),
                           (["--block-size", "500", "--chunk", "1/2"], "other --chunk")):
        res = runner.invoke(app, [*scan_args(out, *extra), "--resume"])
        assert res.exit_code == 1, res.output
        assert message in res.output and "rerun without --resume" in res.output
        assert "Traceback" not in res.output and not out.exists()
    # the partial is still there, untouched, for the right command
    assert resume_mod.partial_paths(out)[0].exists()


def test_without_resume_a_stale_partial_is_replaced(monkeypatch, tmp_path, uninterrupted):
    out = tmp_path / "full.tsv"
    partial, ledger = resume_mod.partial_paths(out)
    with monkeypatch.context() as m:
        crash_after(m, 2)
        assert runner.invoke(app, scan_args(out, "--block-size", "500")).exit_code == 1
    assert partial.exists()
    res = runner.invoke(app, [a for a in scan_args(out, "--block-size", "700") if a != "-q"])
    assert res.exit_code == 0, res.output
    assert "an unfinished earlier run; it is replaced (rerun with --resume" in res.output
    assert out.read_bytes() == uninterrupted["full.tsv"]
    assert not partial.exists() and not ledger.exists()


def test_resume_without_partial_starts_from_scratch(tmp_path, uninterrupted):
    out = tmp_path / "full.tsv.gz"
    res = runner.invoke(app, [*scan_args(out, "--block-size", "700"), "--resume"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == uninterrupted["full.tsv.gz"]


def test_a_crash_before_the_first_block_leaves_nothing(monkeypatch, tmp_path):
    out = tmp_path / "o.tsv"
    with monkeypatch.context() as m:
        crash_after(m, 0)
        assert runner.invoke(app, scan_args(out)).exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_kill_9_then_resume(tmp_path):
    """A real SIGKILL of a running `glimix scan` process, then --resume."""
    out = tmp_path / "full.tsv"
    ref = tmp_path / "ref.tsv"
    partial, ledger = resume_mod.partial_paths(out)
    exe = Path(sys.executable).with_name("glimix")
    # the reference also runs in a subprocess: same environment (BLAS threads), same bits
    res = subprocess.run([str(exe), *scan_args(ref)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    # blocks of 7 variants: the scan takes long enough to be killed in the middle
    proc = subprocess.Popen([str(exe), *scan_args(out, "--block-size", "7")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if ledger.exists() and json.loads(ledger.read_text())["blocks_done"] >= 20:
                break
            assert proc.poll() is None, "the scan ended before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    state = json.loads(ledger.read_text())
    assert 20 <= state["blocks_done"] < state["n_blocks"] and not out.exists()
    res = subprocess.run([str(exe), *scan_args(out, "--block-size", "7"), "--resume"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert not partial.exists() and not ledger.exists()


def test_resume_refuses_rows_of_another_null_model(monkeypatch, tmp_path):
    out = tmp_path / "o.tsv"
    with monkeypatch.context() as m:
        crash_after(m, 2)
        assert runner.invoke(app, scan_args(out, "--block-size", "500")).exit_code == 1
    partial, ledger = resume_mod.partial_paths(out)
    state = json.loads(ledger.read_text())
    state["null_hash"] = "0" * 64  # as if the null fit had moved in its last bits
    ledger.write_text(json.dumps(state))
    res = runner.invoke(app, [*scan_args(out, "--block-size", "500"), "--resume"])
    assert res.exit_code == 1
    assert "the null model fitted now differs" in res.output and "--null" in res.output
