"""Engine benchmark: Bernoulli EP null fit and the fast scanner (issue 2 targets).

    python benchmarks/bench_engine.py --n 2000 --m-kin 2000 --m-scan 100000 --reps 3

Simulates related-ish genotypes (K from ``--m-kin`` standardised variants), a Bernoulli
trait with intercept + 1 covariate, fits the null GLMM by EP, hands off to GLMMNormal and
scans ``--m-scan`` variants in blocks. Prints medians over ``--reps`` runs and writes JSON
to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from glimix_cli import GLMMExpFam, economic_qs


def simulate(n: int, m: int, rng: np.random.Generator):
    f = rng.uniform(0.05, 0.5, size=m)
    G = rng.binomial(2, f, size=(n, m)).astype(float)
    Z = (G - 2 * f) / np.sqrt(2 * f * (1 - f))
    K = Z @ Z.T / m
    return K


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--m-kin", type=int, default=2000)
    ap.add_argument("--m-scan", type=int, default=100_000)
    ap.add_argument("--block", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--case-fraction", type=float, default=0.5)
    ap.add_argument("--n-int", type=int, default=1000,
                    help="EP integration points (library default 1000; glimix scan uses 256)")
    ap.add_argument("--reference", action="store_true",
                    help="also fit once with n_int=4000 and tight EP/optimiser tolerances and "
                         "report how far the timed fit's lml is from that reference")
    ap.add_argument("--no-scan", action="store_true", help="time the null fit only")
    ap.add_argument("--library-defaults", action="store_true",
                    help="fit exactly as GLMMExpFam(y, 'bernoulli', X, QS).fit() with every "
                         "default (n_int 1000; delta fixed at 0 by default for 0/1 traits) "
                         "and report the fit time as a multiple of numpy's eigh of K")
    ap.add_argument("--related", action="store_true",
                    help="families (3-6 members, half-sibs) from two sub-populations "
                         "(F_ST 0.05) instead of unrelated samples: a structured, "
                         "full-rank K like a related animal cohort")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    n = args.n
    if args.related:
        from glimix_cli.testing import simulate_genotypes, standardised_grm

        sg = simulate_genotypes(n // 3, (3, 6), args.m_kin, 10, rng, n_populations=2,
                                fst=0.05, half_sib_rate=0.3)
        K = standardised_grm(sg.dosage[:n])
    else:
        K = simulate(n, args.m_kin, rng)
    t = time.perf_counter()
    np.linalg.eigh(K)
    t_np_eigh = time.perf_counter() - t
    t = time.perf_counter()
    QS = economic_qs(K)
    t_eig = time.perf_counter() - t
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    # (a standardised GRM is singular along the intercept: jitter for the Cholesky)
    g = np.linalg.cholesky(K + 1e-6 * np.eye(n)) @ rng.normal(size=n) * np.sqrt(0.5)
    liab = X @ [0.0, 0.3] + g + rng.logistic(size=n)
    y = (liab > np.quantile(liab, 1 - args.case_fraction)).astype(float)
    fit_times, scan_times = [], []
    info = None
    for _ in range(args.reps):
        t = time.perf_counter()
        if args.library_defaults:
            glmm = GLMMExpFam(y, "bernoulli", X, QS)
        else:
            glmm = GLMMExpFam(y, "bernoulli", X, QS, n_int=args.n_int)
            glmm.delta = 0.0
            glmm.fix("delta")
        glmm.fit(verbose=False)
        fit_times.append(time.perf_counter() - t)
        info = glmm.fit_info
        lml = glmm.lml()
        if args.no_scan:
            continue
        scanner = glmm.to_normal().get_fixed_scale_scanner()
        t = time.perf_counter()
        done = 0
        block_rng = np.random.default_rng(2)
        while done < args.m_scan:
            b = min(args.block, args.m_scan - done)
            M = np.asfortranarray(block_rng.binomial(2, 0.3, size=(b, n)).T.astype(float))
            t0 = time.perf_counter()
            scanner.fast_scan(M)
            scan_times.append(time.perf_counter() - t0)
            done += b
    per_rep_scan = sum(scan_times) / args.reps
    ref = None
    if args.reference:
        t = time.perf_counter()
        r = GLMMExpFam(y, "bernoulli", X, QS, n_int=4000, rtol=1e-9, atol=1e-11)
        r.delta = 0.0
        r.fix("delta")
        r.fit(verbose=False, factr=10.0, pgtol=1e-10)
        ref = {"lml": r.lml(), "v0": r.v0, "seconds": time.perf_counter() - t,
               "status": r.fit_info.status, "timed_fit_lml": lml,
               "abs_diff_lml": abs(lml - r.lml())}
    out = {
        "n": n, "n_int": args.n_int, "case_fraction": args.case_fraction,
        "m_kin": args.m_kin, "m_scan": args.m_scan,
        "related": args.related, "load_end": list(os.getloadavg()),
        "cores": os.cpu_count(),
        "machine": platform.machine(), "eigh_s": t_eig, "numpy_eigh_s": t_np_eigh,
        "library_defaults": args.library_defaults,
        "fit_s_median": statistics.median(fit_times), "fit_s_all": fit_times,
        "fit_over_numpy_eigh": statistics.median(fit_times) / t_np_eigh,
        "scan_s_per_run_mean": per_rep_scan,
        "fit_info": None if info is None else info.__dict__,
        "reference": ref,
    }
    print(json.dumps(out, indent=1, default=str))
    res = Path(__file__).parent / "results"
    res.mkdir(exist_ok=True)
    tag = (("_related" if args.related else "") + ("_ref" if ref else "")
           + ("_libdefaults" if args.library_defaults else "")
           + (f"_cases{args.case_fraction:g}" if args.case_fraction != 0.5 else ""))
    path = res / f"engine_n{n}_nint{args.n_int}{tag}.json"
    path.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
