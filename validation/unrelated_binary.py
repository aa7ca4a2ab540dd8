"""Binary traits in unrelated people: calibration, power and effect sizes on real genotypes.

    python validation/unrelated_binary.py --part null --reps 20 --compare-glmm 5 \
        --out validation/unrelated_binary_null.json
    python validation/unrelated_binary.py --part power --reps 10 \
        --out validation/unrelated_binary_power.json
    python validation/unrelated_binary.py --part family --reps 6 \
        --out validation/unrelated_binary_family.json

Genotypes: ``../shared/data/EUR_subset`` (379 unrelated Europeans of 1000 Genomes, 54,051
variants on chromosomes 17-22), the samples with all of ``QCOV1 QCOV2 CAT_COV`` (366),
those three as covariates; K is the standardised GRM of all variants, as ``glimix scan``
builds it. Every replicate fits the null model with ``fit_null_arrays`` and tests every
variant with ``scan_block`` -- the code path of ``glimix scan`` (default QC: MAC >= 5).

``null``: traits ``y ~ Bernoulli(expit(c + x' b))`` on the covariates (a linear predictor
with SD 0.5) and NO genetic effect, the intercept ``c`` set for 50%, 20%, 10% and 2%
expected cases; each trait is fitted with ``bernoulli`` and ``probit``. Reported per case
fraction and likelihood: how often each null route was chosen, lambda_GC (all tested
variants, and MAF >= 5%) from the reported p-values, and type-I error at 1e-2, 1e-3 and
1e-4 pooled over the replicates. ``--compare-glmm`` adds the same for the GLMM forced
(the previous default: v0 by maximum likelihood up to its cap).

``power``: 20% cases and 10 planted variants (MAF >= 5%, log odds ratio
``h / sqrt(2 f (1 - f))``) per trait; power at 5e-8 of glimix's default and of plink2
``--glm firth-fallback`` run on the same files, and the slope (through the origin) of
glimix's ``beta`` on plink2's log odds ratio over the planted variants.

``family``: the related cohort of ``example_data`` (610 samples in families) with traits
drawn from the logit GLMM (``v0 = 1``), 50% and 10% cases: the route chosen and the
calibration, so that the related case does not regress.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit
from scipy.stats import chi2

from glimix_cli.io.plink import open_bfile
from glimix_cli.io.results import BINARY_COLUMNS, COLUMNS
from glimix_cli.kinship.grm import grm
from glimix_cli.pipeline.kinship import Kinship
from glimix_cli.pipeline.null import fit_null_arrays
from glimix_cli.pipeline.scan import scan_block, scan_context

ROOT = Path(__file__).resolve().parents[1]
EUR = ROOT.parent / "shared" / "data" / "EUR_subset"
ALPHAS = (1e-2, 1e-3, 1e-4)
FRACTIONS = (0.5, 0.2, 0.1, 0.02)


def load_eur():
    bfile = open_bfile(EUR)
    tab = pd.read_csv(f"{EUR}.pheno.covars", sep=r"\s+", na_values=["NA", "-9"], dtype=str)
    for c in ("QCOV1", "QCOV2"):
        tab[c] = pd.to_numeric(tab[c], errors="coerce")
    tab = tab.dropna(subset=["QCOV1", "QCOV2", "CAT_COV"])
    fam = bfile.samples
    pairs_fi = zip(fam["fid"], fam["iid"], strict=True)
    pos = {(str(f), str(i)): j for j, (f, i) in enumerate(pairs_fi)}
    keys = list(zip(tab["FID"].astype(str), tab["IID"].astype(str), strict=True))
    keep = [k in pos for k in keys]
    tab = tab[keep]
    idx = np.array([pos[k] for k, kk in zip(keys, keep, strict=True) if kk], dtype=np.intp)
    X = np.column_stack([np.ones(len(tab)), tab["QCOV1"], tab["QCOV2"],
                         (tab["CAT_COV"] == "B").astype(float)])
    K = grm(bfile, idx).K
    return bfile, idx, tab, X, K


def null_trait(X: np.ndarray, frac: float, rng) -> np.ndarray:
    eta = X[:, 1:] @ np.array([0.3, 0.5, 0.4])
    eta = (eta - eta.mean()) / eta.std() * 0.5
    c = brentq(lambda c: expit(eta + c).mean() - frac, -30, 30)
    return (rng.random(X.shape[0]) < expit(eta + c)).astype(float)


def scan_all(bfile, idx, y, X, K, lik, binary_null="auto"):
    null = fit_null_arrays(y, None, X, ["intercept", "QCOV1", "QCOV2", "CAT_COV_B"],
                           Kinship(K, None, "GRM"), lik, binary_null=binary_null)
    ctx = scan_context(str(bfile.bed), idx, y, null, "spa", bfile=bfile)
    r = scan_block(ctx, np.arange(bfile.n_variants))
    rows = pd.read_csv(__import__("io").StringIO(r.text), sep="\t", header=None,
                       names=list(COLUMNS + BINARY_COLUMNS), keep_default_na=False,
                       na_values=["NA"])
    return null, rows


def rates(p: np.ndarray, maf: np.ndarray) -> dict:
    ok = np.isfinite(p)
    p, maf = p[ok], maf[ok]
    stat = chi2.isf(np.clip(p, 1e-300, 1), 1)
    out = {"tests": int(p.size), "lambda_all": float(np.median(stat) / chi2.ppf(0.5, 1)),
           "lambda_maf05": float(np.median(stat[maf >= 0.05]) / chi2.ppf(0.5, 1))}
    for a in ALPHAS:
        out[f"typeI_{a:g}"] = float(np.mean(p < a) / a)
    return out


def part_null(args) -> dict:
    bfile, idx, tab, X, K = load_eur()
    rng = np.random.default_rng(args.seed)
    res = {}
    for frac in FRACTIONS:
        traits = [null_trait(X, frac, rng) for _ in range(args.reps)]
        for lik in ("bernoulli", "probit"):
            modes = ["auto"] + (["glmm"] if args.compare_glmm else [])
            for mode in modes:
                p_all, maf_all, routes, v0s, t0 = [], [], [], [], time.perf_counter()
                for y in traits[: args.reps if mode == "auto" else args.compare_glmm]:
                    null, rows = scan_all(bfile, idx, y, X, K, lik, mode)
                    ok = rows["status"] == "ok"
                    p_all.append(rows["p_value"][ok].to_numpy(dtype=float))
                    eaf = rows["effect_allele_frequency"][ok].to_numpy(dtype=float)
                    maf_all.append(np.minimum(eaf, 1 - eaf))
                    routes.append(null.route)
                    v0s.append(null.v0_ml)
                r = rates(np.concatenate(p_all), np.concatenate(maf_all))
                r.update(routes={k: routes.count(k) for k in set(routes)},
                         v0_ml=[float(v) for v in v0s],
                         cases=[int(t.sum()) for t in traits[:len(routes)]],
                         seconds=time.perf_counter() - t0)
                key = f"{lik} {frac:g} {mode}"
                res[key] = r
                print(key, {k: (round(v, 3) if isinstance(v, float) else v)
                            for k, v in r.items() if k not in ("v0_ml", "cases")}, flush=True)
    return res


def plink2_logistic(bfile_prefix: Path, fam_keys, y, X, work: Path) -> pd.DataFrame:
    ph = pd.DataFrame({"FID": [k[0] for k in fam_keys], "IID": [k[1] for k in fam_keys],
                       "Y": (y + 1).astype(int)})
    cv = pd.DataFrame({"FID": ph.FID, "IID": ph.IID, "QCOV1": X[:, 1], "QCOV2": X[:, 2],
                       "CATB": X[:, 3]})
    ph.to_csv(work / "y.pheno", sep="\t", index=False)
    cv.to_csv(work / "c.cov", sep="\t", index=False)
    subprocess.run(["plink2", "--bfile", str(bfile_prefix), "--pheno", str(work / "y.pheno"),
                    "--pheno-name", "Y",
                    "--covar", str(work / "c.cov"), "--glm", "firth-fallback", "hide-covar",
                    "--threads", "1", "--out", str(work / "o")], check=True,
                   capture_output=True)
    out = pd.read_csv(work / "o.Y.glm.logistic.hybrid", sep="\t")
    return out


def part_power(args) -> dict:
    if shutil.which("plink2") is None:
        raise SystemExit("plink2 is needed for --part power (apt-get install plink2)")
    bfile, idx, tab, X, K = load_eur()
    rng = np.random.default_rng(args.seed + 1)
    (_, G), = __import__("glimix_cli.io.plink", fromlist=["iter_blocks"]).iter_blocks(
        bfile, np.arange(bfile.n_variants), bfile.n_variants, idx)
    f = np.nanmean(G, axis=0) / 2
    maf = np.minimum(f, 1 - f)
    miss = np.isnan(G).any(axis=0)
    pool = np.flatnonzero((maf >= 0.05) & ~miss)
    keys = list(zip(tab["FID"].astype(str), tab["IID"].astype(str), strict=True))
    hits_g = hits_p = total = 0
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for rep in range(args.reps):
            planted = rng.choice(pool, args.planted, replace=False)
            eta = X[:, 1:] @ np.array([0.3, 0.5, 0.4])
            eta = (eta - eta.mean()) / eta.std() * 0.5
            b = args.h / np.sqrt(2 * f[planted] * (1 - f[planted]))
            b *= rng.choice([-1, 1], planted.size)
            eta = eta + (G[:, planted] - 2 * f[planted]) @ b
            c = brentq(lambda c, eta=eta: expit(eta + c).mean() - 0.2, -30, 30)
            y = (rng.random(X.shape[0]) < expit(eta + c)).astype(float)
            null, rows = scan_all(bfile, idx, y, X, K, "bernoulli")
            pl = plink2_logistic(EUR, keys, y, X, work)
            pl = pl.set_index("ID")
            ids = bfile.variants["variant_id"].to_numpy()[planted]
            pg = rows["p_value"].to_numpy(dtype=float)[planted]
            pp = pl.loc[ids, "P"].to_numpy(dtype=float)
            # plink2's A1 is the counted (effect) allele; glimix counts the .bim A1 too
            assert (pl.loc[ids, "A1"].to_numpy() == rows["effect_allele"].to_numpy()[planted]).all()
            hits_g += int(np.sum(pg < 5e-8))
            hits_p += int(np.sum(pp < 5e-8))
            total += planted.size
            bp = np.log(pl.loc[ids, "OR"].to_numpy(dtype=float)).tolist()
            pairs.extend(zip(rows["beta"].to_numpy(dtype=float)[planted].tolist(), bp,
                             strict=True))
            print(rep, null.route, int(y.sum()), "glimix", int(np.sum(pg < 5e-8)), "plink2",
                  int(np.sum(pp < 5e-8)), flush=True)
    bg, bp = np.array(pairs).T
    fine = np.isfinite(bg) & np.isfinite(bp)
    slope = float(np.sum(bg[fine] * bp[fine]) / np.sum(bp[fine] ** 2))
    return {"planted": total, "power_glimix_5e-8": hits_g / total,
            "power_plink2_5e-8": hits_p / total, "beta_slope_on_plink2": slope,
            "h": args.h, "reps": args.reps}


def part_family(args) -> dict:
    from glimix_cli.kinship import kinship_qs
    from glimix_cli.testing import simulate_null_binary

    bfile = open_bfile(ROOT / "example_data" / "cohort")
    n = bfile.n_samples
    res = kinship_qs(bfile)
    (Q0, _), S0 = res.QS
    K = (Q0 * S0) @ Q0.T
    K = (K + K.T) / 2
    rng = np.random.default_rng(args.seed + 2)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    out = {}
    for frac in (0.5, 0.1):
        for lik in ("bernoulli", "probit"):
            p_all, maf_all, routes = [], [], []
            for _ in range(args.reps):
                y = simulate_null_binary(res.QS, X, rng, case_fraction=frac, v0=1.0,
                                         beta=[0.0, 0.3]).y.astype(float)
                null = fit_null_arrays(y, None, X, ["intercept", "x"],
                                       Kinship(K, res.QS, "GRM"), lik)
                ctx = scan_context(str(bfile.bed), np.arange(n), y, null, "spa", bfile=bfile)
                r = scan_block(ctx, np.arange(bfile.n_variants))
                ok = np.asarray(r.status) == "ok"
                p_all.append(10.0 ** -r.nlp[ok])
                maf_all.append(r.maf[ok])
                routes.append(null.route)
            rr = rates(np.concatenate(p_all), np.concatenate(maf_all))
            rr["routes"] = {k: routes.count(k) for k in set(routes)}
            out[f"{lik} {frac:g}"] = rr
            print(lik, frac, rr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("null", "power", "family"), default="null")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--compare-glmm", type=int, default=0,
                    help="also run this many replicates with the GLMM route forced")
    ap.add_argument("--planted", type=int, default=10)
    ap.add_argument("--h", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    t0 = time.perf_counter()
    res = {"null": part_null, "power": part_power, "family": part_family}[args.part](args)
    res["_meta"] = {"args": vars(args), "seconds": time.perf_counter() - t0}
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
