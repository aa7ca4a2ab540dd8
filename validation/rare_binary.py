"""Calibration and power of the binary-trait tests as cases get rare: surrogate LRT, SPA, LRT.

    python validation/rare_binary.py --fractions 0.5,0.1,0.02,0.01 --reps 3 \
        --power-reps 1 --out validation/rare_binary.json

Cohort: simulated with :func:`glimix_cli.testing.simulate_genotypes` -- nuclear families
(3-6 genotyped members) from two sub-populations (F_ST 0.05), so that both relatedness
and structure make K matter; by default 440 families (about 2,000 samples, so that 1%
cases is about 20 cases) and 50,000 variants with ancestral MAF uniform on [0.01, 0.5].
K is the standardised GRM of all variants. The same cohort is used for every case
fraction and replicate.

Null traits (``--reps`` per fraction): :func:`glimix_cli.testing.simulate_null_binary`
-- the logit GLMM with ``v0 = 1`` on K, a covariate effect, NO variant effect, and
exactly ``round(fraction * n)`` cases. Each replicate fits the null model exactly as
``glimix scan`` does (``fit_null_arrays``) and tests every variant that passes the
default QC (MAC >= 5) through the same per-block code as the scan (``scan_block``'s
statistics: ``FastScanner.fast_scan`` for the surrogate, ``spa_pvalues`` for the
saddlepoint test).

Reported per case fraction and test: lambda_GC (median chi-square of the p-values over
the 1-df median) per replicate, and type-I error at alpha = 0.05, 1e-2, 1e-3, 1e-4 pooled
over the replicates (with the number of tests, so that the Monte-Carlo error can be read
off: the SD of a rate at alpha over N independent tests is sqrt(alpha / N)).

Power (``--power-reps`` per fraction): the same trait model plus ``--planted`` variants
with log odds ratio ``h / sqrt(2 p (1 - p))``, ``h`` set so that the logistic score
test's non-centrality is about 15 at that case fraction. Power of each test at nominal
alpha and at matched type-I (the test's empirical alpha-quantile over the null
replicates' tests of the same fraction).

Route 2 of the issue (likelihood-ratio test of the GLMM with the variant as a fixed
effect, variance components at the null) is measured two ways: where the fitted ``v0``
is below 1e-4 the EP marginal likelihood is the logistic likelihood, so the EP-LRT is the
logistic LRT and is computed for every variant (vectorised Newton); otherwise (and always
for its cost) ``--ep-lrt-variants`` variants with the smallest surrogate p-values are
refitted by EP (``GLMMExpFam``, scale and delta fixed, warm-started from the null sites).

Null fits are cached (``--cache``, one .npz per fraction and replicate): the EP fit of a
rare trait at n = 2,000 takes minutes on two cores, the scan seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.special import expit, log_expit

from glimix_cli.model.glmm import GLMMExpFam, GLMMNormal
from glimix_cli.model.spa import SPA_Z_CUTOFF, spa_null, spa_pvalues
from glimix_cli.model.stats import chi2_1_logsf, genomic_inflation
from glimix_cli.pipeline.kinship import Kinship
from glimix_cli.pipeline.null import EP_N_INT, fit_null_arrays
from glimix_cli.pipeline.qc import block_qc
from glimix_cli.testing import simulate_genotypes, simulate_null_binary, standardised_grm

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
           "status": np.asarray(null.status), "lml": np.asarray(null.lml)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def scan_all(fit, X, K, G, y, likelihood: str = "bernoulli"):
    """Surrogate and SPA log p for every column of G passing MAC >= 5 (block by block)."""
    normal = GLMMNormal(fit["eta"], fit["tau"], X, K=K)
    normal.beta = fit["beta"]
    normal.scale = float(fit["scale"])
    normal.delta = float(fit["delta"])
    scanner = normal.get_fixed_scale_scanner()
    snull = spa_null(normal.posteriori_mean(), X, likelihood, y=y)
    lp_sur, lp_spa, maf, cols = [], [], [], []
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
        cols.append(lo + ok[good])
    return (np.concatenate(lp_sur), np.concatenate(lp_spa), np.concatenate(maf),
            np.concatenate(cols), {"surrogate_s": t_sur, "spa_extra_s": t_spa})


def _logistic_loglik(y, X, G=None, iters: int = 30):
    """Maximised logistic log-likelihood of ``y ~ X`` (+ one column of G at a time).

    Vectorised damped Newton over the columns of G (coordinates capped at 5 per step, so a
    separated variant -- no carrier among the cases -- walks towards its finite limit).
    """
    n, p = X.shape
    k = 1 if G is None else G.shape[1]
    Z = X[:, :, None] if G is None else np.concatenate(
        [np.repeat(X[:, :, None], k, axis=2), G[:, None, :]], axis=1)  # (n, q, k)
    q = Z.shape[1]
    b = np.zeros((q, k))
    b[0] = np.log(y.mean() / (1 - y.mean()))
    for _ in range(iters):
        eta = np.einsum("iqk,qk->ik", Z, b)
        mu = expit(eta)
        grad = np.einsum("iqk,ik->qk", Z, y[:, None] - mu)
        W = mu * (1 - mu)
        H = np.einsum("iak,ik,ibk->kab", Z, W, Z) + 1e-12 * np.eye(q)
        step = np.linalg.solve(H, grad.T[:, :, None])[:, :, 0].T
        b += np.clip(step, -5.0, 5.0)
        if np.max(np.abs(step)) < 1e-8:
            break
    eta = np.einsum("iqk,qk->ik", Z, b)
    return np.sum(y[:, None] * log_expit(eta) + (1 - y[:, None]) * log_expit(-eta), axis=0)


def logistic_lrt_logp(y, X, G, block: int = 512):
    """log p of the logistic LRT (1 df) for every column of G."""
    ll0 = _logistic_loglik(y, X)[0]
    out = []
    for lo in range(0, G.shape[1], block):
        ll1 = _logistic_loglik(y, X, G[:, lo:lo + block])
        out.append(chi2_1_logsf(np.maximum(2 * (ll1 - ll0), 0.0)))
    return np.concatenate(out)


def ep_lrt_logp(fit, y, X, K, G):
    """EP likelihood-ratio test per column of G: the GLMM refitted with the variant as a
    fixed effect (scale and delta fixed at the null, EP warm-started from the null sites).

    Returns log p and the seconds per variant."""
    null = GLMMExpFam(y, "bernoulli", X, K=K, n_int=EP_N_INT)
    null.beta = fit["beta"]
    null.scale = float(fit["scale"])
    null.delta = float(fit["delta"])
    null._warm = (fit["eta"], fit["tau"])
    lml0 = null.lml()
    out, secs = [], []
    for j in range(G.shape[1]):
        t = time.perf_counter()
        alt = GLMMExpFam(y, "bernoulli", np.column_stack([X, G[:, j]]), K=K, n_int=EP_N_INT)
        alt.beta = np.r_[fit["beta"], 0.0]
        alt.scale = float(fit["scale"])
        alt.delta = float(fit["delta"])
        alt.fix("scale")
        alt.fix("delta")
        alt._warm = (fit["eta"], fit["tau"])
        try:
            alt.fit(verbose=False)
            out.append(chi2_1_logsf(max(2 * (alt.lml() - lml0), 0.0)))
        except Exception as exc:  # a failed refit is reported, not fatal
            print(f"    EP-LRT refit failed: {exc}", flush=True)
            out.append(np.nan)
        secs.append(time.perf_counter() - t)
    return np.array(out), secs


def lam(logp):
    from scipy.stats import chi2

    return genomic_inflation(chi2.isf(np.exp(logp), 1))


def summarise(per_rep, key, mask_key=None):
    reps = [r for r in per_rep if key in r]
    lams = [lam(r[key] if mask_key is None else r[key][r[mask_key]]) for r in reps]
    allp = np.concatenate([r[key] if mask_key is None else r[key][r[mask_key]]
                           for r in reps])
    out = {"lambda_gc": [round(x, 4) for x in lams], "n_tests": int(allp.size)}
    for a in ALPHAS:
        out[f"type1_{a:g}"] = float(np.mean(allp < np.log(a)))
    return out


def planted_effects(G, n, frac, n_planted, rng):
    """Indices and log odds ratios of the planted variants (non-centrality about 15)."""
    p = np.nanmean(G, axis=0) / 2
    maf = np.minimum(p, 1 - p)
    cand = np.flatnonzero(maf >= 0.02)
    idx = np.sort(rng.choice(cand, size=n_planted, replace=False))
    h = np.sqrt(15.0 / (n * frac * (1 - frac)))
    b = h / np.sqrt(2 * p[idx] * (1 - p[idx])) * rng.choice([-1.0, 1.0], size=n_planted)
    return idx, np.clip(b, -3.0, 3.0)


def table(path: str) -> str:
    """Markdown tables (type-I as a ratio to alpha; power) from a results JSON."""
    d = json.loads(Path(path).read_text())
    lines = ["| cases | test | variants | N | lambda_GC per replicate | "
             + " | ".join(f"a = {a:g}" for a in ALPHAS) + " |",
             "|---|---|---|---|---|" + "---|" * len(ALPHAS)]
    for frac in sorted(d, key=float, reverse=True):
        r = d[frac]
        for test in ("surrogate", "spa", "lrt"):
            for suffix, label in (("", "all"), ("_maf_ge_0.05", "MAF >= 5%"),
                                  ("_maf_lt_0.05", "MAF 1-5%")):
                k = test + suffix
                if k not in r:
                    continue
                x = r[k]
                ratios = " | ".join(f"{x[f'type1_{a:g}'] / a:.2f}" for a in ALPHAS)
                lams = ", ".join(f"{v:.3f}" for v in x["lambda_gc"])
                lines.append(f"| {float(frac):.0%} ({r['cases']}) | {test} | {label} | "
                             f"{x['n_tests']:,} | {lams} | {ratios} |")
    out = ["\n".join(lines), ""]
    pw = ["| cases | test | power at 1e-2 (nominal / matched) | at 1e-3 (nominal / matched) |",
          "|---|---|---|---|"]
    for frac in sorted(d, key=float, reverse=True):
        p = d[frac].get("power")
        if not p:
            continue
        for test in ("surrogate", "spa", "lrt"):
            if f"{test}_nominal_0.01" in p:
                pw.append(f"| {float(frac):.0%} | {test} | {p[f'{test}_nominal_0.01']:.2f} / "
                          f"{p[f'{test}_matched_0.01']:.2f} | {p[f'{test}_nominal_0.001']:.2f}"
                          f" / {p[f'{test}_matched_0.001']:.2f} |")
    out.append("\n".join(pw))
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", type=int, default=440)
    ap.add_argument("--variants", type=int, default=50_000)
    ap.add_argument("--fractions", default="0.5,0.1,0.02,0.01")
    ap.add_argument("--reps", type=int, default=3, help="null replicates per fraction")
    ap.add_argument("--power-reps", type=int, default=1,
                    help="replicates with planted variants per fraction")
    ap.add_argument("--planted", type=int, default=10)
    ap.add_argument("--ep-lrt-variants", type=int, default=10,
                    help="variants refitted by EP in the first null replicate (smallest "
                         "surrogate p)")
    ap.add_argument("--v0", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--cache", default="/tmp/glimix_rare_binary_cache")
    ap.add_argument("--fit-only", action="store_true", help="only fit (and cache) null models")
    ap.add_argument("--out", default=None)
    ap.add_argument("--table", metavar="JSON", help="print the markdown tables of a results "
                    "file and exit")
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
        return
    t0 = time.perf_counter()
    G, K = cohort(args.families, args.variants, args.seed)
    n = K.shape[0]
    print(f"cohort: {n} samples x {G.shape[1]} variants ({time.perf_counter() - t0:.0f} s); "
          f"SPA beyond |z| > {SPA_Z_CUTOFF}", flush=True)
    rng = np.random.default_rng(args.seed + 1)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    cache = Path(args.cache) / f"n{n}_m{G.shape[1]}_s{args.seed}_v{args.v0:g}"
    for frac in [float(f) for f in args.fractions.split(",")]:
        per_rep, power_rep = [], []
        fit_s, timing, ep_secs = [], [], []
        for rep in range(args.reps + args.power_reps):
            power = rep >= args.reps
            trng = np.random.default_rng([args.seed, int(frac * 1e4), rep])
            Xs, beta = X, [0.0, 0.3]
            if power:
                pidx, pb = planted_effects(G, n, frac, args.planted, trng)
                Xs = np.column_stack([X, np.nan_to_num(G[:, pidx] - np.nanmean(G[:, pidx], 0))])
                beta = np.r_[beta, pb]
            tr = simulate_null_binary(K, Xs, trng, case_fraction=frac, v0=args.v0, beta=beta)
            y = tr.y.astype(np.float64)
            fit = fit_or_load(cache, f"f{frac:g}_{'p' if power else 'r'}{rep}", y, X, K)
            fit_s.append(float(fit["seconds"]))
            v0 = float(fit["scale"]) * (1 - float(fit["delta"]))
            print(f"  fraction {frac:g} {'power' if power else 'null'} rep {rep}: "
                  f"{int(y.sum())} cases, null {fit['status']} v0={v0:.3g} "
                  f"({float(fit['seconds']):.0f} s)", flush=True)
            if args.fit_only:
                continue
            lp_sur, lp_spa, maf, cols, tm = scan_all(fit, X, K, G, y)
            timing.append(tm)
            rec = {"surrogate": lp_sur, "spa": lp_spa, "rare": maf < 0.05,
                   "common": maf >= 0.05, "maf": maf, "v0": v0}
            if v0 < 1e-4:  # EP-LRT == logistic LRT (the prior on the latent is a point mass)
                t = time.perf_counter()
                rec["lrt"] = logistic_lrt_logp(y, X, np.nan_to_num(
                    G[:, cols] - np.nanmean(G[:, cols], 0)) + np.nanmean(G[:, cols], 0))
                timing[-1]["logistic_lrt_s"] = time.perf_counter() - t
            if power:
                is_p = np.isin(cols, pidx)
                rec["planted"] = is_p
                power_rep.append(rec)
                continue
            if args.ep_lrt_variants > 0 and rep == 0:
                top = np.argsort(lp_sur)[:args.ep_lrt_variants]
                Gt = G[:, cols[top]]
                Gt = np.where(np.isfinite(Gt), Gt, np.nanmean(Gt, axis=0))
                lp_ep, secs = ep_lrt_logp(fit, y, X, K, Gt)
                ep_secs += secs
                rec["ep_lrt_top"] = {"surrogate": lp_sur[top].tolist(),
                                     "spa": lp_spa[top].tolist(), "ep_lrt": lp_ep.tolist(),
                                     "maf": maf[top].tolist()}
            per_rep.append(rec)
        if args.fit_only:
            continue
        res = {"cases": int(round(frac * n)), "n": n, "null_fit_seconds": fit_s,
               "timing": timing, "v0_fitted": [r["v0"] for r in per_rep + power_rep]}
        tests = ["surrogate", "spa"] + (["lrt"] if per_rep and all("lrt" in r for r in per_rep)
                                        else [])
        for test in tests:
            res[test] = summarise(per_rep, test)
            res[test + "_maf_lt_0.05"] = summarise(per_rep, test, "rare")
            res[test + "_maf_ge_0.05"] = summarise(per_rep, test, "common")
        if ep_secs:
            res["ep_lrt_seconds_per_variant"] = float(np.median(ep_secs))
            res["ep_lrt_top"] = [r["ep_lrt_top"] for r in per_rep if "ep_lrt_top" in r]
        if power_rep:
            pw = {}
            for test in [t for t in tests if all(t in r for r in power_rep)]:
                # thresholds from null tests in the planted variants' MAF range (>= 2%)
                nullp = np.concatenate([r[test][r["maf"] >= 0.02] for r in per_rep])
                assert np.all(np.isfinite(nullp) | (nullp == -np.inf))
                plant = np.concatenate([r[test][r["planted"]] for r in power_rep])
                for a in (1e-2, 1e-3):
                    thr = np.quantile(nullp, a)
                    pw[f"{test}_nominal_{a:g}"] = float(np.mean(plant < np.log(a)))
                    pw[f"{test}_matched_{a:g}"] = float(np.mean(plant <= thr))
                pw["n_planted"] = int(plant.size)
            res["power"] = pw
        print(f"fraction {frac:g}:", json.dumps({k: res[k] for k in tests + ["power"]
                                                 if k in res}), flush=True)
        if args.out:  # after every fraction, merged into what the file already holds
            res["settings"] = {"n": n, "variants": int(G.shape[1]), "seed": args.seed,
                               "v0": args.v0, "families": args.families}
            out = Path(args.out)
            old = json.loads(out.read_text()) if out.exists() else {}
            if any(v.get("settings") != res["settings"] for v in old.values()):
                raise SystemExit(f"{out}: holds results of other settings - use another --out")
            old[f"{frac:g}"] = res
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
            tmp.replace(out)


if __name__ == "__main__":
    main()
