"""Throughput of the variant scan on Dask: 1 vs 2 local workers, and the cost of a task.

    python benchmarks/bench_dask.py [--bfile example_data/cohort --pheno ... --trait quant]
                                    [--block-sizes 25,100,500,2000] [--repeats 3]
                                    [--out benchmarks/results/dask.json]

The null model and the scan context are built once; then the same blocks are scanned
(a) in this process with ``scan_block``, (b) on a LocalCluster of 1 and (c) 2 worker
processes with one thread each, through ``iter_blocks_dask`` exactly as ``glimix scan
--dask-local N`` does (cluster start-up excluded; reported separately). Each timing is the
median of ``--repeats`` runs. The per-block overhead is (1-worker time - in-process time)
/ number of blocks: the price of a task round trip (scheduling, transfer of the block's
rows back, ordering), which a block must take much longer than to be hidden.
The overhead is also measured directly with empty tasks: one at a time (a round trip)
and pipelined (the window ``glimix scan`` uses). For a per-core comparison run with
``OMP_NUM_THREADS=1`` (Dask workers use one BLAS thread each; the in-process scan would
otherwise use all cores). The machine's load average is recorded: on a shared machine
the numbers are noisy.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glimix_cli.pipeline.config import InputConfig  # noqa: E402
from glimix_cli.pipeline.distributed import iter_blocks_dask  # noqa: E402
from glimix_cli.pipeline.inputs import load_inputs  # noqa: E402
from glimix_cli.pipeline.kinship import build_kinship  # noqa: E402
from glimix_cli.pipeline.null import fit_null  # noqa: E402
from glimix_cli.pipeline.progress import Reporter  # noqa: E402
from glimix_cli.pipeline.scan import ScanContext, scan_block  # noqa: E402


def build_context(bfile: Path, pheno: Path, trait: str, covar: Path | None):
    cfg = InputConfig(bfile=bfile, pheno=pheno, pheno_name=trait, covar=covar)
    rep = Reporter()
    inputs = load_inputs(cfg, rep)
    kin = build_kinship(cfg, inputs, rep)
    null = fit_null(inputs, kin, "normal", rep)
    b = inputs.bfile
    ctx = ScanContext(str(b.bed), inputs.match.geno_index, null.scanner, 0.0, 5.0, 1.0, b)
    return ctx, b.n_variants, inputs.match.n


def blocks_of(m: int, bs: int):
    import numpy as np

    idx = np.arange(m)
    return [idx[i:i + bs] for i in range(0, m, bs)]


def time_local(ctx, blocks) -> float:
    t = time.perf_counter()
    for blk in blocks:
        scan_block(ctx, blk)
    return time.perf_counter() - t


def _noop(ctx, idx):
    return None


def task_overhead(client, n_tasks: int = 200) -> dict[str, float]:
    """Seconds per block of a do-nothing task: one at a time, and pipelined (default window)."""
    import numpy as np

    blocks = [np.arange(1) for _ in range(n_tasks)]
    out = {}
    for label, window in (("round_trip_s", 1), ("pipelined_s", None)):
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            for _ in iter_blocks_dask(client, _noop, None, blocks, window=window):
                pass
            runs.append((time.perf_counter() - t) / n_tasks)
        out[label] = statistics.median(runs)
    return out


def time_dask(client, ctx, blocks) -> float:
    t = time.perf_counter()
    for _ in iter_blocks_dask(client, scan_block, ctx, blocks):
        pass
    return time.perf_counter() - t


def main() -> None:
    ex = ROOT / "example_data"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bfile", type=Path, default=ex / "cohort")
    ap.add_argument("--pheno", type=Path, default=ex / "cohort.pheno.tsv")
    ap.add_argument("--covar", default=str(ex / "cohort.covar.tsv"), help="'' for none")
    ap.add_argument("--trait", default="quant")
    ap.add_argument("--block-sizes", default="25,100,500,2000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()

    import distributed

    load0 = os.getloadavg()
    ctx, m, n = build_context(a.bfile, a.pheno, a.trait, Path(a.covar) if a.covar else None)
    sizes = [int(s) for s in a.block_sizes.split(",")]
    res: dict = {"bfile": str(a.bfile), "n_samples": n, "n_variants": m, "repeats": a.repeats,
                 "cpus": os.cpu_count(), "python": platform.python_version(),
                 "distributed": distributed.__version__, "load_before": load0, "runs": []}
    scan_block(ctx, blocks_of(m, 10)[0])  # warm caches
    for bs in sizes:
        blocks = blocks_of(m, bs)
        t = statistics.median(time_local(ctx, blocks) for _ in range(a.repeats))
        res["runs"].append({"mode": "in-process", "workers": 0, "block_size": bs,
                            "n_blocks": len(blocks), "seconds": t, "variants_per_s": m / t})
        print(f"in-process  bs={bs:5d} blocks={len(blocks):4d}  {t:7.2f} s  "
              f"{m / t:9.0f} variants/s", flush=True)
    for w in (int(x) for x in a.workers.split(",")):
        t0 = time.perf_counter()
        with distributed.LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                      dashboard_address=None,
                                      silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster) as client:
            startup = time.perf_counter() - t0
            time_dask(client, ctx, blocks_of(m, 500)[:2])  # workers import glimix once
            lat = task_overhead(client)
            res.setdefault("task_overhead", {})[str(w)] = lat
            print(f"dask w={w}     empty task: {lat['round_trip_s'] * 1e3:.1f} ms one at a "
                  f"time, {lat['pipelined_s'] * 1e3:.1f} ms per task pipelined", flush=True)
            for bs in sizes:
                blocks = blocks_of(m, bs)
                t = statistics.median(time_dask(client, ctx, blocks) for _ in range(a.repeats))
                local = next(r["seconds"] for r in res["runs"]
                             if r["workers"] == 0 and r["block_size"] == bs)
                over = (t - local) / len(blocks) if w == 1 else None
                res["runs"].append({"mode": "dask", "workers": w, "block_size": bs,
                                    "n_blocks": len(blocks), "seconds": t,
                                    "variants_per_s": m / t, "cluster_start_s": startup,
                                    "overhead_per_block_s": over})
                extra = f"  overhead/block {over * 1e3:6.1f} ms" if over is not None else ""
                print(f"dask w={w}     bs={bs:5d} blocks={len(blocks):4d}  {t:7.2f} s  "
                      f"{m / t:9.0f} variants/s{extra}  (cluster start {startup:.1f} s)",
                      flush=True)
    # dask time - in-process time = fixed cost per scan + overhead per block * blocks
    import numpy as np

    for w in {r["workers"] for r in res["runs"] if r["workers"]}:
        rows = [(r["n_blocks"], r["seconds"] - next(
            q["seconds"] for q in res["runs"] if q["workers"] == 0
            and q["block_size"] == r["block_size"])) for r in res["runs"] if r["workers"] == w]
        if w == 1 and len(rows) >= 2:
            nb, extra = np.array(rows, dtype=float).T
            slope, intercept = np.polyfit(nb, extra, 1)
            res["fit_1_worker"] = {"per_block_s": slope, "per_scan_s": intercept}
            print(f"1 worker vs in-process: {slope * 1e3:.1f} ms per block + "
                  f"{intercept:.2f} s per scan (scatter, workers opening the PLINK files)")
    res["load_after"] = os.getloadavg()
    print(f"load average before {load0}, after {res['load_after']}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1) + "\n")
        print("wrote", a.out)


if __name__ == "__main__":
    main()
