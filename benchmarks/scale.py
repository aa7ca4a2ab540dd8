"""Issue 16's scale benchmark: a biobank-like cohort (families, sib pairs, three ancestry
groups, an untested polygenic background, planted variants), and in one run side by side:
glimix (sparse GRM, 10 PCs, null fit, scan with the default tests), plink2 --glm with the
same PCs (linear; logistic with firth-fallback) and BOLT-LMM (--lmm --LDscoresUseChip) on
the Normal trait. Wall time and peak RSS of every step, lambda_GC and type-I error at 1e-3
on the null variants, power at 5e-8 at the planted ones.

    python benchmarks/scale.py --n 20000 --variants 50000 --work benchmarks/work/scale_20k
    python benchmarks/scale.py --n 100000 --variants 200000 --work benchmarks/work/scale_100k

The cohort is written by ``glimix_cli.testing.biobank`` (block by block: no n x m matrix)
and reused when present. Every tool runs as a child process pinned to ``--threads``; its
peak RSS is read from ``/usr/bin/time -f %M``. Results go to ``WORK/results.json`` and a
markdown table on stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import chi2

ROOT = Path(__file__).resolve().parents[1]
TRAITS = {"quant": "normal", "case10": "bernoulli", "case01": "bernoulli"}


def timed(cmd: list[str], log: Path, threads: int, extra_env: dict | None = None) -> dict:
    """Run ``cmd`` under /usr/bin/time; wall seconds and peak RSS (GB)."""
    env = {"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "PATH": str(Path(sys.executable).parent) + ":"
           + "/usr/local/bin:/usr/bin:/bin", **(extra_env or {})}
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        res = subprocess.run(["/usr/bin/time", "-f", "__RSS_KB %M", *cmd], stdout=fh,
                             stderr=subprocess.STDOUT, env=env)
    secs = time.perf_counter() - t0
    text = log.read_text()
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}); see {log}:\n"
                           f"{text[-2000:]}")
    rss = int(re.findall(r"__RSS_KB (\d+)", text)[-1]) / 2**20
    return {"seconds": round(secs, 1), "rss_gb": round(rss, 2)}


def simulate(work: Path, n: int, m: int, seed: int) -> dict:
    from glimix_cli.testing.biobank import BiobankDesign, simulate_biobank

    meta = work / "cohort.json"
    if meta.exists():
        return json.loads(meta.read_text())
    t0 = time.perf_counter()
    info = simulate_biobank(work / "c", BiobankDesign(n=n, m=m, seed=seed))
    info["seconds"] = round(time.perf_counter() - t0, 1)
    meta.write_text(json.dumps(info))
    return info


def metrics(p: np.ndarray, ids: np.ndarray, planted: set[str]) -> dict:
    ok = np.isfinite(p)
    is_planted = np.isin(ids, list(planted))
    null = p[ok & ~is_planted]
    lam = float(np.median(chi2.isf(null, 1)) / chi2.ppf(0.5, 1))
    alt = p[ok & is_planted]
    return {"lambda_gc": round(lam, 4), "typeI_1e-3": round(float(np.mean(null < 1e-3)) / 1e-3, 3),
            "power_5e-8": round(float(np.mean(alt < 5e-8)), 3), "planted_tested": int(alt.size),
            "tested": int(ok.sum())}


def read_glimix(path: Path) -> tuple[np.ndarray, np.ndarray]:
    t = pd.read_csv(path, sep="\t", usecols=["variant_id", "neg_log10_p_value"])
    return 10.0 ** -t["neg_log10_p_value"].to_numpy(), t["variant_id"].to_numpy()


def read_plink2(prefix: Path, trait: str) -> tuple[np.ndarray, np.ndarray]:
    path = next(prefix.parent.glob(f"{prefix.name}.{trait}.glm.*"))
    t = pd.read_csv(path, sep="\t", usecols=["ID", "P"], na_values=["NA"])
    return t["P"].to_numpy(dtype=float), t["ID"].to_numpy()


def read_bolt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(path, "rt") as fh:
        t = pd.read_csv(fh, sep=r"\s+")
    col = "P_BOLT_LMM" if "P_BOLT_LMM" in t else "P_BOLT_LMM_INF"
    return t[col].to_numpy(dtype=float), t["SNP"].to_numpy()


def run_glimix(work: Path, threads: int, pca_every: int, res: dict) -> None:
    glimix = [str(Path(sys.executable).parent / "glimix")]
    bim = pd.read_csv(work / "c.bim", sep="\t", header=None, usecols=[1])[1]
    extract = work / "pca.extract"
    extract.write_text("\n".join(bim.iloc[::pca_every]) + "\n")
    res["glimix pca"] = timed([*glimix, "pca", "--bfile", str(work / "c"), "-k", "10",
                               "--extract", str(extract), "--out", str(work / "c.eigenvec"),
                               "--threads", str(threads)], work / "pca.log", threads)
    res["glimix kinship"] = timed([*glimix, "kinship", "--bfile", str(work / "c"),
                                   "--sparse-cutoff", "0.05", "--out", str(work / "c.kin.npz"),
                                   "--threads", str(threads)], work / "kinship.log", threads)
    for trait, lik in TRAITS.items():
        common = ["--bfile", str(work / "c"), "--pheno", str(work / "c.pheno.tsv"),
                  "--pheno-name", trait, "-l", lik, "--covar", str(work / "c.eigenvec"),
                  "--kinship-cache", str(work / "c.kin.npz"), "--threads", str(threads)]
        res[f"glimix fit {trait}"] = timed([*glimix, "fit", *common, "--out",
                                            str(work / f"g_{trait}")],
                                           work / f"fit_{trait}.log", threads)
        res[f"glimix scan {trait}"] = timed(
            [*glimix, "scan", *common, "--null", str(work / f"g_{trait}.null.json"), "--out",
             str(work / f"g_{trait}.tsv.gz")], work / f"scan_{trait}.log", threads)


def run_plink2(work: Path, threads: int, res: dict, binary: bool = True) -> None:
    for trait, lik in TRAITS.items():
        if lik == "bernoulli" and not binary:
            continue
        cmd = ["plink2", "--bfile", str(work / "c"), "--pheno", str(work / "c.pheno.tsv"),
               "--pheno-name", trait, "--covar", str(work / "c.eigenvec"),
               "--covar-variance-standardize", "--threads", str(threads),
               "--out", str(work / f"p2_{trait}")]
        if lik == "bernoulli":
            cmd += ["--1", "--glm", "firth-fallback", "hide-covar"]
        else:
            cmd += ["--glm", "hide-covar"]
        res[f"plink2 glm {trait}"] = timed(cmd, work / f"p2_{trait}.runlog", threads)


def run_bolt(work: Path, threads: int, res: dict) -> None:
    ev = pd.read_csv(work / "c.eigenvec", sep="\t").rename(columns={"#FID": "FID"})
    ev.to_csv(work / "bolt.covar.tsv", sep="\t", index=False)
    res["bolt quant"] = timed(
        ["bolt", f"--bfile={work / 'c'}", f"--phenoFile={work / 'c.pheno.tsv'}",
         "--phenoCol=quant", f"--covarFile={work / 'bolt.covar.tsv'}", "--qCovarCol=PC{1:10}",
         "--lmm", "--LDscoresUseChip", f"--numThreads={threads}",
         f"--statsFile={work / 'bolt.stats.gz'}"], work / "bolt.log", threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--variants", type=int, default=50_000)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks/work/scale_20k")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pca-every", type=int, default=4,
                    help="PCs from every k-th variant (as from an LD-pruned subset)")
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["glimix", "plink2", "plink2-binary", "bolt"])
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    res: dict = {"n": a.n, "variants": a.variants, "threads": a.threads,
                 "date": time.strftime("%Y-%m-%d %H:%M")}
    res["cohort"] = simulate(a.work, a.n, a.variants, a.seed)
    planted = {f"v{k + 1}" for k in res["cohort"]["planted"]}
    if "glimix" not in a.skip:
        run_glimix(a.work, a.threads, a.pca_every, res)
    if "plink2" not in a.skip and shutil.which("plink2"):
        run_plink2(a.work, a.threads, res, binary="plink2-binary" not in a.skip)
    if "bolt" not in a.skip and shutil.which("bolt"):
        run_bolt(a.work, a.threads, res)
    stats = {}
    for trait in TRAITS:
        if (a.work / f"g_{trait}.tsv.gz").exists():
            stats[f"glimix {trait}"] = metrics(*read_glimix(a.work / f"g_{trait}.tsv.gz"), planted)
        if list(a.work.glob(f"p2_{trait}.{trait}.glm.*")):
            stats[f"plink2 {trait}"] = metrics(*read_plink2(a.work / f"p2_{trait}", trait),
                                               planted)
    if (a.work / "bolt.stats.gz").exists():
        stats["bolt quant"] = metrics(*read_bolt(a.work / "bolt.stats.gz"), planted)
    res["stats"] = stats
    (a.work / "results.json").write_text(json.dumps(res, indent=1))
    print("| step | wall s | peak RSS GB |\n|---|---|---|")
    for k, v in res.items():
        if isinstance(v, dict) and "seconds" in v and "rss_gb" in v:
            print(f"| {k} | {v['seconds']} | {v['rss_gb']} |")
    print("\n| tool trait | lambda_GC | type-I at 1e-3 (x alpha) | power at 5e-8 |")
    print("|---|---|---|---|")
    for k, v in stats.items():
        print(f"| {k} | {v['lambda_gc']} | {v['typeI_1e-3']} | {v['power_5e-8']} |")


if __name__ == "__main__":
    main()
