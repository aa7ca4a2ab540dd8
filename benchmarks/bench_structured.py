"""Structured kinships at biobank n: the Bernoulli EP null fit and the surrogate +
saddlepoint scan on a sparse family kinship, and the fit and scan on a low-rank kinship
(issue 15).

The cohort: n samples, 20% in nuclear families of four (two unrelated parents, two
children: parent-child and sib GRM 0.5), 10% in sib pairs (0.5), the rest unrelated; a
GRM-like diagonal (1 plus N(0, 0.01^2) noise). A 0/1 trait with 10% cases from a logistic
liability with kinship variance v0 = 0.5 and two covariates. Everything in memory (this
times the engine; PLINK reading and the CLI wiring are issue 16's).

    python benchmarks/bench_structured.py --n 100000 --variants 100000 --reps 3
    python benchmarks/bench_structured.py --structure lowrank --n 50000 --rank 2000 --reps 1

Low rank: ``K = G G^T / r`` for a standardised G (n x r, the seed's ``z = X beta + G u``),
its ``QS`` by ``economic_qs_linear`` (timed separately), a 0/1 trait with 10% cases; the
scan reports the whitening cost per variant against a dgemm of the same flop count.

Each measurement runs in a fresh child process, so its peak RSS is its own
(``resource.getrusage(RUSAGE_CHILDREN)`` after it exits). BLAS threads are pinned to the
``--threads`` given (default 2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def family_kinship(n: int, seed: int):
    import numpy as np
    from scipy import sparse

    rng = np.random.default_rng(seed)
    n_nuc = int(0.20 * n) // 4
    n_sib = int(0.10 * n) // 2
    rows, cols, vals = [], [], []
    start = 0
    for _ in range(n_nuc):  # parents start, start+1; children start+2, start+3
        for i, j in ((0, 2), (0, 3), (1, 2), (1, 3), (2, 3)):
            rows += [start + i, start + j]
            cols += [start + j, start + i]
            vals += [0.5, 0.5]
        start += 4
    for _ in range(n_sib):
        rows += [start, start + 1]
        cols += [start + 1, start]
        vals += [0.5, 0.5]
        start += 2
    rows += list(range(n))
    cols += list(range(n))
    vals += list(1.0 + 0.01 * rng.normal(size=n))
    K = sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))
    perm = rng.permutation(n)
    return K[perm][:, perm].tocsr()


def cohort(n: int, seed: int = 1):
    import numpy as np
    from scipy.special import expit, logit

    from glimix_cli.model.covariance import BlockKinship

    K = family_kinship(n, seed)
    kin = BlockKinship(K)
    rng = np.random.default_rng(seed + 1)
    g = np.empty(n)
    for grp in kin.groups:
        L = np.linalg.cholesky(0.5 * grp.K)
        g[grp.idx] = np.einsum("kij,kj->ki", L, rng.normal(size=grp.idx.shape))
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    z = X @ [0.0, 0.3, -0.2] + g
    # intercept for 10% cases
    grid = np.linspace(-6, 2, 801)
    prev = [expit(z + b).mean() for b in grid]
    b0 = grid[int(np.argmin(np.abs(np.array(prev) - 0.10)))]
    y = (rng.random(n) < expit(z + b0)).astype(float)
    return K, X, y, float(logit(y.mean()))


def fit_task(n: int) -> dict:
    import numpy as np

    from glimix_cli.model.glmm import GLMMExpFam

    K, X, y, b0 = cohort(n)
    t0 = time.perf_counter()
    m = GLMMExpFam(y, "bernoulli", X, K=K, n_int=256)
    m.beta = [b0, 0.0, 0.0]
    m.scale_bounds = (1e-8, 30.0)
    m.fit(verbose=False)
    secs = time.perf_counter() - t0
    info = m.fit_info
    return {"seconds": secs, "v0": m.v0, "beta": np.asarray(m.beta).tolist(),
            "lml": m.lml(), "status": info.status, "ep_sweeps": info.ep_sweeps,
            "evaluations": info.evaluations, "cases": int(y.sum())}


def scan_task(n: int, m_variants: int, block: int = 500, pool: int = 1000) -> dict:
    import numpy as np

    from glimix_cli.model.glmm import GLMMExpFam
    from glimix_cli.model.spa import spa_null, spa_pvalues

    K, X, y, b0 = cohort(n)
    m = GLMMExpFam(y, "bernoulli", X, K=K, n_int=256)
    m.beta = [b0, 0.0, 0.0]
    m.scale = 0.5  # the scan's cost does not depend on the fitted values
    normal = m.to_normal()
    t0 = time.perf_counter()
    scanner = normal.get_fixed_scale_scanner()
    spa = spa_null(m.posteriori_mean(), X, "bernoulli", None, y)
    setup = time.perf_counter() - t0
    rng = np.random.default_rng(3)
    maf = rng.uniform(0.01, 0.5, pool)
    G = rng.binomial(2, maf, size=(n, pool)).astype(np.int8)
    # the rows in the scanner's family order, variants contiguous: what `glimix scan`'s
    # reader yields (it takes any sample order at no cost; pipeline.scan.scan_context)
    order = scanner.row_order
    G = np.asfortranarray(G if order is None else G[order])
    if order is not None:
        spa = spa.permuted(order)
    t0 = time.perf_counter()
    done, n_spa, small = 0, 0, 0
    while done < m_variants:
        lo = done % pool
        b = min(block, m_variants - done, pool - lo)
        M = G[:, lo:lo + b].astype(np.float64, order="F")
        M -= M.mean(axis=0)
        r = scanner.fast_scan(M, ordered=order is not None)
        z = r["effsizes1"] / r["effsizes1_se"]
        lp, used = spa_pvalues(spa, M, z)
        n_spa += int(used.sum())
        small += int(np.sum(lp < np.log(1e-3)))
        done += b
    secs = time.perf_counter() - t0
    return {"seconds": secs, "setup_seconds": setup, "variants": done, "spa_used": n_spa,
            "p_below_1e-3": small}


def low_rank_cohort(n: int, r: int, seed: int = 4):
    import numpy as np
    from scipy.special import expit

    from glimix_cli.model.linalg import economic_qs_linear

    rng = np.random.default_rng(seed)
    G = rng.normal(size=(n, r))
    G -= G.mean(axis=0)
    G /= G.std(axis=0)
    G /= np.sqrt(r)
    t0 = time.perf_counter()
    QS = economic_qs_linear(G, return_q1=False)  # Q1 would be n x (n - r)
    qs_secs = time.perf_counter() - t0
    g = G @ rng.normal(size=r) * np.sqrt(0.5)
    del G
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    z = X @ [-2.3, 0.3] + g
    y = (rng.random(n) < expit(z)).astype(float)
    return QS, X, y, qs_secs


def lowrank_fit_task(n: int, r: int) -> dict:
    from scipy.special import logit

    from glimix_cli.model.glmm import GLMMExpFam

    QS, X, y, qs_secs = low_rank_cohort(n, r)
    t0 = time.perf_counter()
    m = GLMMExpFam(y, "bernoulli", X, QS, n_int=256)
    m.beta = [float(logit(y.mean())), 0.0]
    m.scale_bounds = (1e-8, 30.0)
    m.fit(verbose=False)
    secs = time.perf_counter() - t0
    info = m.fit_info
    return {"seconds": secs, "qs_seconds": qs_secs, "v0": m.v0, "lml": m.lml(),
            "status": info.status, "ep_sweeps": info.ep_sweeps,
            "evaluations": info.evaluations, "cases": int(y.sum()),
            "structure": type(m._kin).__name__}


def lowrank_scan_task(n: int, r: int, m_variants: int, block: int = 500) -> dict:
    import numpy as np

    from glimix_cli.model.glmm import GLMMExpFam

    QS, X, y, _ = low_rank_cohort(n, r)
    m = GLMMExpFam(y, "bernoulli", X, QS, n_int=256)
    m.scale = 0.5
    scanner = m.to_normal().get_fixed_scale_scanner()
    rng = np.random.default_rng(5)
    M = rng.binomial(2, 0.3, size=(n, block)).astype(np.float64)
    t0 = time.perf_counter()
    done = 0
    while done < m_variants:
        scanner.fast_scan(M)
        done += block
    secs = time.perf_counter() - t0
    # the whitening's two products (P^T M, P (G P^T M)): 4 n r b flops per block
    A = rng.normal(size=(r, n))
    t0 = time.perf_counter()
    for _ in range(3):
        A @ M
    gemm = (time.perf_counter() - t0) / 3
    flops = 2.0 * r * n * block
    return {"seconds": secs, "variants": done, "ms_per_variant": 1e3 * secs / done,
            "dgemm_gflops": flops / gemm / 1e9,
            "whitening_share_of_dgemm_peak": (2 * flops * done / block) / secs
            / (flops / gemm)}


def child(args: argparse.Namespace) -> None:
    if args.structure == "lowrank":
        out = (lowrank_fit_task(args.n, args.rank) if args.task == "fit"
               else lowrank_scan_task(args.n, args.rank, args.variants))
    elif args.task == "fit":
        out = fit_task(args.n)
    else:
        out = scan_task(args.n, args.variants)
    print(json.dumps(out))


def run_child(task: str, args: argparse.Namespace) -> dict:
    import resource

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, __file__, "--child", task, "--n", str(args.n),
                           "--variants", str(args.variants), "--structure", args.structure,
                           "--rank", str(args.rank)], capture_output=True, text=True,
                          env=env, check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # ru_maxrss of children is the largest child so far: fresh process per call, so a
    # later, smaller child reports the earlier peak; keep the first task's own number
    out["peak_rss_gb"] = max(peak, before) / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--variants", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--task", choices=["fit", "scan", "both"], default="both")
    ap.add_argument("--structure", choices=["blocks", "lowrank"], default="blocks")
    ap.add_argument("--rank", type=int, default=2000)
    ap.add_argument("--child", choices=["fit", "scan"])
    args = ap.parse_args()
    if args.child:
        args.task = args.child
        child(args)
        return
    tasks = ["fit", "scan"] if args.task == "both" else [args.task]
    for task in tasks:
        runs = [run_child(task, args) for _ in range(args.reps)]
        secs = [r["seconds"] for r in runs]
        each = ", ".join(f"{s:.1f}" for s in secs)
        print(f"{args.structure} {task}: n = {args.n:,}: median "
              f"{statistics.median(secs):.1f} s over {len(secs)} runs ({each}); peak RSS "
              f"{max(r['peak_rss_gb'] for r in runs):.2f} GB")
        print(json.dumps(runs[-1]))


if __name__ == "__main__":
    main()
