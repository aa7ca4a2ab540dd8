"""Calibration of the binary-trait tests as cases get rare: surrogate LRT vs SPA.

    python validation/rare_binary.py --fractions 0.5,0.1,0.02,0.01 --reps 2 \
        --out validation/rare_binary.json

Cohort: simulated with :func:`glimix_cli.simulate.simulate_genotypes` -- nuclear families
(3-6 genotyped members) from two sub-populations (F_ST 0.05), so that both relatedness
and structure make K matter; by default 440 families (about 2,000 samples, so that 1%
cases is about 20 cases) and 50,000 variants with ancestral MAF uniform on [0.01, 0.5].
K is the standardised GRM of all variants. The same cohort is used for every case
fraction and replicate.

Traits: :func:`glimix_cli.simulate.simulate_null_binary` -- the logit GLMM with
``v0 = 1`` on K, a covariate effect, NO variant effect, and exactly
``round(fraction * n)`` cases. Each replicate fits the null model exactly as
``glimix scan`` does (``fit_null_arrays``) and tests every variant that passes the
default QC (MAC >= 5) through the same per-block code as the scan (``scan_block``'s
statistics: ``FastScanner.fast_scan`` for the surrogate, ``spa_pvalues`` for the
saddlepoint test).

Reported per case fraction and test: lambda_GC (median chi-square of the p-values over
the 1-df median) per replicate, and type-I error at alpha = 0.05, 1e-2, 1e-3, 1e-4 pooled
over the replicates (with the number of tests, so that the Monte-Carlo error can be read
off: the SD of a rate at alpha over N independent tests is sqrt(alpha / N)).

Null fits are cached (``--cache``, one .npz per fraction and replicate): the EP fit of a
rare trait at n = 2,000 takes minutes on two cores, the scan seconds.

Power at matched type-I is not measured here yet (each planted replicate needs its own
null fit); see docs/calibrated-test.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from glimix_cli.model.glmm import GLMMNormal
from glimix_cli.model.spa import SPA_Z_CUTOFF, spa_null, spa_pvalues
from glimix_cli.model.stats import chi2_1_logsf, genomic_inflation
from glimix_cli.pipeline.qc import block_qc
from glimix_cli.pipeline.run import Kinship, fit_null_arrays
from glimix_cli.simulate import simulate_genotypes, simulate_null_binary, standardised_grm

ALPHAS = (0.05, 1e-2, 1e-3, 1e-4)
BLOCK = 4096


def cohort(n_families: int, n_variants: int, seed: int):
    rng = np.random.default_rng(seed)
    sg = simulate_genotypes(n_families, (3, 6), n_variants, 10, rng, n_populations=2,
                            fst=0.05, maf_range=(0.01, 0.5))
    G = sg.dosage
    K = standardised_grm(G)
    return G, K


def fit_or_load(cache: Path, tag: str, y, X, K):
    path = cache / f"{tag}.npz"
    if path.exists():
        d = np.load(path)
        if np.array_equal(d["y"], y):
            return {k: d[k] for k in d.files}
    t0 = time.perf_counter()
    null = fit_null_arrays(y, None, X, ["intercept", "x"], Kinship(K, None, "GRM"), "bernoulli")
    out = {"y": y, "eta": np.asarray(null.eta), "tau": np.asarray(null.tau),
           "beta": np.asarray(null.beta), "scale": np.asarray(null.scale),
           "delta": np.asarray(null.delta), "seconds": np.asarray(time.perf_counter() - t0),
           "status": np.asarray(null.status)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def scan_all(fit, X, K, G, likelihood: str = "bernoulli"):
    """Surrogate and SPA -log10 p for every column of G passing MAC >= 5 (block by block)."""
    normal = GLMMNormal(fit["eta"], fit["tau"], X, K=K)
    normal.beta = fit["beta"]
    normal.scale = float(fit["scale"])
    normal.delta = float(fit["delta"])
    scanner = normal.get_fast_scanner()
    snull = spa_null(normal.posteriori_mean(), X, likelihood)
    lp_sur, lp_spa, maf = [], [], []
    t_sur = t_spa = 0.0
    for lo in range(0, G.shape[1], BLOCK):
        blk = G[:, lo:lo + BLOCK]
        qc = block_qc(blk, 0.0, 5.0, 1.0)
        ok = np.flatnonzero(qc.ok)
        M = blk[:, ok]
        M = np.where(np.isfinite(M), M, np.nanmean(M, axis=0))
        t = time.perf_counter()
        r = scanner.fast_scan(M)
        good = ~r["collinear"]
        z = r["effsizes1"][good] / r["effsizes1_se"][good]
        t_sur += time.perf_counter() - t
        t = time.perf_counter()
        lp, _ = spa_pvalues(snull, M[:, good], z)
        t_spa += time.perf_counter() - t
        lp_sur.append(chi2_1_logsf(z * z))
        lp_spa.append(lp)
        maf.append(qc.maf[ok][good])
    return (np.concatenate(lp_sur), np.concatenate(lp_spa), np.concatenate(maf),
            {"surrogate_s": t_sur, "spa_extra_s": t_spa})


def lam(logp):
    from scipy.stats import chi2

    return genomic_inflation(chi2.isf(np.exp(logp), 1))


def summarise(per_rep, key, mask_key=None):
    lams = [lam(r[key] if mask_key is None else r[key][r[mask_key]]) for r in per_rep]
    allp = np.concatenate([r[key] if mask_key is None else r[key][r[mask_key]]
                           for r in per_rep])
    out = {"lambda_gc": [round(x, 4) for x in lams], "n_tests": int(allp.size)}
    for a in ALPHAS:
        out[f"type1_{a:g}"] = float(np.mean(allp < np.log(a)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", type=int, default=440)
    ap.add_argument("--variants", type=int, default=50_000)
    ap.add_argument("--fractions", default="0.5,0.1,0.02,0.01")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--v0", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--cache", default="/tmp/glimix_rare_binary_cache")
    ap.add_argument("--fit-only", action="store_true", help="only fit (and cache) null models")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    G, K = cohort(args.families, args.variants, args.seed)
    n = K.shape[0]
    print(f"cohort: {n} samples x {G.shape[1]} variants ({time.perf_counter() - t0:.0f} s); "
          f"SPA beyond |z| > {SPA_Z_CUTOFF}", flush=True)
    rng = np.random.default_rng(args.seed + 1)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    cache = Path(args.cache) / f"n{n}_m{G.shape[1]}_s{args.seed}_v{args.v0:g}"
    results = {}
    for frac in [float(f) for f in args.fractions.split(",")]:
        per_rep = []
        fit_s, timing = [], []
        for rep in range(args.reps):
            trng = np.random.default_rng([args.seed, int(frac * 1e4), rep])
            tr = simulate_null_binary(K, X, trng, case_fraction=frac, v0=args.v0,
                                      beta=[0.0, 0.3])
            y = tr.y.astype(np.float64)
            fit = fit_or_load(cache, f"f{frac:g}_r{rep}", y, X, K)
            fit_s.append(float(fit["seconds"]))
            print(f"  fraction {frac:g} rep {rep}: {int(y.sum())} cases, null "
                  f"{fit['status']} v0={float(fit['scale']) * (1 - float(fit['delta'])):.3g} "
                  f"({float(fit['seconds']):.0f} s)", flush=True)
            if args.fit_only:
                continue
            lp_sur, lp_spa, maf, tm = scan_all(fit, X, K, G)
            timing.append(tm)
            per_rep.append({"surrogate": lp_sur, "spa": lp_spa, "rare": maf < 0.05,
                            "common": maf >= 0.05})
        if args.fit_only:
            continue
        res = {"cases": int(round(frac * n)), "n": n, "null_fit_seconds": fit_s,
               "timing": timing}
        for test in ("surrogate", "spa"):
            res[test] = summarise(per_rep, test)
            res[test + "_maf_lt_0.05"] = summarise(per_rep, test, "rare")
            res[test + "_maf_ge_0.05"] = summarise(per_rep, test, "common")
        results[f"{frac:g}"] = res
        print(f"fraction {frac:g}:", json.dumps({k: res[k] for k in ("surrogate", "spa")}),
              flush=True)
    if args.out and results:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
