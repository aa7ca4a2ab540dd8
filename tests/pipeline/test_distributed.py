"""Variant blocks on a Dask cluster: byte identity, retries, failures, resume, imports."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import glimix_cli.pipeline.run as run_mod
from glimix_cli.cli.app import app
from glimix_cli.pipeline import resume as resume_mod

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

EX = Path(__file__).resolve().parents[2] / "example_data"
BS = "500"  # 10 blocks of the 5,000 example variants
runner = CliRunner()

# Tasks defined here travel to the workers by value (the workers cannot import this file).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def scan_args(out: Path, *extra: str) -> list[str]:
    return ["scan", "--bfile", str(EX / "cohort"), "--pheno", str(EX / "cohort.pheno.tsv"),
            "--pheno-name", "quant", "-l", "normal", "--covar", str(EX / "cohort.covar.tsv"),
            "--out", str(out), "--block-size", BS, *extra]


@pytest.fixture(scope="module", autouse=True)
def _restore_environ():
    """Dask's nanny sets OMP_NUM_THREADS=1 & co. in this process's environment for good."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes; a dead worker's block is retried once."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        c = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None, silence_logs=logging.ERROR)
    with c:
        yield c


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("single") / "single.tsv.gz"
    res = runner.invoke(app, [*scan_args(out), "-q"])
    assert res.exit_code == 0, res.output
    return out.read_bytes()


def _real_block(ctx, idx):
    import glimix_cli.pipeline.scan as s  # on a worker: the module as installed

    return s.scan_block(ctx, idx)


def test_local_cluster_gives_the_single_process_bytes(tmp_path, single):
    out = tmp_path / "dask.tsv.gz"
    res = runner.invoke(app, scan_args(out, "--dask-local", "2"))
    assert res.exit_code == 0, res.output
    assert "dask: 2 workers, 2 threads (local cluster)" in res.output
    assert out.read_bytes() == single
    meta = json.loads(Path(f"{out}.meta.json").read_text())
    assert meta["n_rows"] == 5000
    assert not resume_mod.partial_paths(out)[0].exists()


def test_scheduler_address_and_chunks_merge_to_the_same_bytes(tmp_path, cluster, single):
    parts = []
    for i in (1, 2):
        p = tmp_path / f"part{i}.tsv.gz"
        res = runner.invoke(app, scan_args(p, "--chunk", f"{i}/2", "-q", "--dask-scheduler",
                                           cluster.scheduler_address))
        assert res.exit_code == 0, res.output
        parts.append(str(p))
    merged = tmp_path / "merged.tsv.gz"
    assert runner.invoke(app, ["merge", str(merged), *parts, "-q"]).exit_code == 0
    assert merged.read_bytes() == single


def test_scheduler_file(tmp_path, cluster, single):
    sched = tmp_path / "scheduler.json"
    sched.write_text(json.dumps({"address": cluster.scheduler_address}))
    out = tmp_path / "f.tsv.gz"
    res = runner.invoke(app, scan_args(out, "-q", "--dask-scheduler-file", str(sched)))
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == single


def test_a_worker_dying_mid_block_is_retried(monkeypatch, tmp_path, cluster, single):
    marker = tmp_path / "died-once"

    def dies_once(ctx, idx):
        if int(idx[0]) == 1500 and not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)  # the worker process dies in the middle of block 4
        return _real_block(ctx, idx)

    monkeypatch.setattr(run_mod, "scan_block", dies_once)
    out = tmp_path / "retry.tsv.gz"
    res = runner.invoke(app, scan_args(out, "-q", "--dask-scheduler", cluster.scheduler_address))
    assert res.exit_code == 0, res.output
    assert marker.exists()
    assert out.read_bytes() == single
    cluster.wait_for_workers(2)


def test_a_block_killing_its_worker_twice_aborts(monkeypatch, tmp_path, cluster):
    def always_dies(ctx, idx):
        if int(idx[0]) == 1500:
            os._exit(1)
        return _real_block(ctx, idx)

    monkeypatch.setattr(run_mod, "scan_block", always_dies)
    out = tmp_path / "killed.tsv"
    res = runner.invoke(app, scan_args(out, "-q", "--dask-scheduler", cluster.scheduler_address))
    assert res.exit_code == 1, res.output
    line = " ".join(res.output.split())
    # Block 4 kills both workers within milliseconds, so Dask may report it KilledWorker,
    # or first lose the scattered context (on every worker) and cancel it: then glimix
    # rescatters and resubmits, and blocks running beside block 4 can be killed again. The
    # run stops at the first block it cannot complete, with the blocks before it kept; that
    # is block 4 unless the timing says otherwise (the exact logic is tested below with a
    # scripted client).
    killed = re.search(r"block (\d+)/10 \(variants .*failed twice on the dask cluster: "
                       r"KilledWorker", line)
    lost = re.search(r"block (\d+)/10 \(variants .*could not run: every dask worker "
                     r"holding the scan context died, 4 times - a block at or after this one "
                     r"kills its worker", line)
    assert killed or lost, line
    assert 2 <= int((killed or lost).group(1)) <= 4, line
    assert not out.exists()
    cluster.wait_for_workers(2)


def test_a_block_failing_twice_names_its_variants_and_keeps_the_partial(monkeypatch, tmp_path,
                                                                         cluster, single):
    def always_fails(ctx, idx):
        if int(idx[0]) == 2000:
            raise ValueError("bad block\nsecond line")
        return _real_block(ctx, idx)

    monkeypatch.setattr(run_mod, "scan_block", always_fails)
    monkeypatch.setattr(resume_mod, "CHECKPOINT_SECONDS", 0.0)
    out = tmp_path / "fail.tsv.gz"
    args = scan_args(out, "--dask-scheduler", cluster.scheduler_address)
    res = runner.invoke(app, args)
    assert res.exit_code == 1, res.output
    line = " ".join(res.output.split())
    assert "block 5/10 (variants rs" in line and ".bim rows 2001-2500)" in line
    assert "failed twice on the dask cluster: ValueError: bad block second line" in line
    assert "Traceback" not in res.output
    assert not out.exists() and not Path(f"{out}.meta.json").exists()
    partial, ledger = resume_mod.partial_paths(out)
    assert json.loads(ledger.read_text())["blocks_done"] == 4
    # fixed: --resume runs the missing blocks only and gives the single-process bytes
    monkeypatch.setattr(run_mod, "scan_block", _real_block)
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    assert "2,000 variants in 4 of 10 blocks already done" in res.output
    assert out.read_bytes() == single
    assert not partial.exists() and not ledger.exists()


def test_dask_options_are_alternatives(tmp_path):
    res = runner.invoke(app, scan_args(tmp_path / "o.tsv", "--dask-local", "2",
                                       "--dask-scheduler", "tcp://127.0.0.1:8786"))
    assert res.exit_code == 2 and "alternatives" in res.output


def test_missing_scheduler_file_is_a_clear_error(tmp_path):
    res = runner.invoke(app, scan_args(tmp_path / "o.tsv", "--dask-scheduler-file",
                                       str(tmp_path / "nosuch.json")))
    assert res.exit_code == 1
    assert "nosuch.json: file not found" in res.output and "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == []


def test_a_plain_scan_imports_no_distributed(tmp_path):
    code = ("import sys; from glimix_cli.pipeline.run import *; from pathlib import Path; "
            f"ex = Path({str(EX)!r}); "
            "cfg = InputConfig(bfile=ex / 'cohort', pheno=ex / 'cohort.pheno.tsv', "
            "pheno_name='quant'); "
            f"run_scan(cfg, ScanConfig(chrom='3', resume=True), Path({str(tmp_path)!r}) / "
            "'o.tsv', Reporter()); "
            "print('distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


class _CountedContext:
    """Appends a line to ``log`` each time it is unpickled (i.e. shipped somewhere)."""

    def __init__(self, log: str) -> None:
        self.log = log

    def __getstate__(self) -> dict:
        return {"log": self.log}

    def __setstate__(self, state: dict) -> None:
        self.log = state["log"]
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()}\n")


def _ctx_block(ctx, idx):
    return os.getpid(), int(idx.sum())


def test_the_context_is_shipped_once_per_worker_and_blocks_come_back_in_order(tmp_path,
                                                                             cluster):
    import numpy as np

    from glimix_cli.pipeline.distributed import iter_blocks_dask

    log = tmp_path / "unpickled.txt"
    blocks = [np.arange(i, i + 3) for i in range(0, 60, 3)]
    with distributed.Client(cluster) as client:
        got = list(iter_blocks_dask(client, _ctx_block, _CountedContext(str(log)), blocks,
                                    start=2, window=3))
    assert [b for b, _ in got] == list(range(2, 20))
    assert [r[1] for _, r in got] == [int(blk.sum()) for blk in blocks[2:]]
    shipped = log.read_text().split()
    # once per worker, not once per task (18 here); a worker that has just restarted can
    # be sent it a second time by Dask's own bookkeeping, seen once in 8 runs
    assert len(set(shipped)) <= 2 and len(shipped) <= 4


class _FakeFuture:
    def __init__(self, outcome):
        self.outcome = outcome
        self.status = "error" if isinstance(outcome, BaseException) else "finished"

    def result(self):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome

    def exception(self):
        return self.outcome if self.status == "error" else None

    def cancel(self):
        pass

    def release(self):
        pass


class _ScriptedClient:
    """Runs block j's k-th submission as ``script[j][k]`` (default: returns j)."""

    def __init__(self, script):
        self.script = script
        self.submitted: list[int] = []
        self.scatters = 0

    def nthreads(self):
        return {"w": 1}

    def scatter(self, ctx, broadcast, hash):
        self.scatters += 1
        return _FakeFuture(ctx)

    def submit(self, fn, ctx_f, block, retries, pure, key):
        j = int(block[0])
        k = self.submitted.count(j)
        self.submitted.append(j)
        plan = self.script.get(j, [])
        return _FakeFuture(plan[k] if k < len(plan) else j)


class _Worker:
    address = "tcp://10.0.0.1:1234"


def test_a_block_dask_blames_for_a_neighbours_deaths_is_run_again(monkeypatch):
    """Dask declares KilledWorker on every task queued on a dying worker: the innocent
    block before the one at fault is resubmitted and the error names the one at fault."""
    import numpy as np

    from glimix_cli.pipeline.distributed import BlockError, iter_blocks_dask

    monkeypatch.setattr(distributed, "wait", lambda f: None)

    def killed(j):
        return distributed.KilledWorker(f"glimix-block-{j}", _Worker(), 1)

    client = _ScriptedClient({1: [killed(1)], 3: [killed(3), killed(3)]})
    got = []
    with pytest.raises(BlockError) as err:
        for b, res in iter_blocks_dask(client, None, object(), [np.array([j]) for j in range(6)],
                                       window=4, describe=lambda b: f"block {b + 1}/6"):
            got.append((b, res))
    assert got == [(0, 0), (1, 1), (2, 2)]
    assert str(err.value).startswith("block 4/6 failed twice on the dask cluster: KilledWorker")
    assert client.submitted.count(1) == 2 and client.submitted.count(3) == 2


def test_losing_the_context_too_often_says_so(monkeypatch):
    from concurrent.futures import CancelledError

    import numpy as np

    from glimix_cli.pipeline import distributed as dist_mod

    monkeypatch.setattr(distributed, "wait", lambda f: None)
    client = _ScriptedClient({2: [CancelledError()] * 10})
    with pytest.raises(dist_mod.BlockError) as err:
        list(dist_mod.iter_blocks_dask(client, None, object(), [np.array([j]) for j in range(4)],
                                       describe=lambda b: f"block {b + 1}/4"))
    assert client.scatters == 1 + dist_mod.MAX_RESCATTER
    assert str(err.value).startswith("block 3/4 could not run: every dask worker holding the "
                                     "scan context died, 4 times")


def test_sparse_kinship_blocks_on_the_cluster_give_the_same_bytes(tmp_path, cluster):
    """The per-family whitener travels to the workers like the dense one."""
    kin = ["--sparse-cutoff", "0.15", "-q"]
    here, there = tmp_path / "here.tsv.gz", tmp_path / "there.tsv.gz"
    res = runner.invoke(app, [*scan_args(here), *kin])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*scan_args(there), *kin, "--dask-scheduler",
                              cluster.scheduler_address])
    assert res.exit_code == 0, res.output
    assert here.read_bytes() == there.read_bytes()


def test_loco_blocks_ship_their_chromosome_model_and_give_the_local_bytes(tmp_path, cluster):
    """--loco: each block's context is its chromosome's model, scattered with its first
    block and released after its last; the output is the single-process one."""
    local = tmp_path / "local.tsv.gz"
    res = runner.invoke(app, scan_args(local, "--loco", "-q"))
    assert res.exit_code == 0, res.output
    out = tmp_path / "dask.tsv.gz"
    res = runner.invoke(app, scan_args(out, "--loco", "-q", "--dask-scheduler",
                                       cluster.scheduler_address))
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == local.read_bytes()
    from distributed import Client

    with Client(cluster.scheduler_address) as c:  # nothing of the run is left on the cluster
        assert not c.who_has()
