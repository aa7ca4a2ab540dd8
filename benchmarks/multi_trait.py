"""Issue 17's several-traits benchmark: ``glimix scan`` of 10 traits in one pass against
the scan of one of them, end to end (kinship, null fits, scan), for Normal and for 0/1
traits.

    python benchmarks/multi_trait.py --n 5000 --variants 200000 --work benchmarks/work/loco_5k

The cohort is the LOCO benchmark's (``glimix_cli.testing.biobank``: nuclear families and
sib pairs, three ancestry groups, 22 chromosomes), reused when present. The 10 Normal
traits are its ``quant`` trait plus independent N(0, 1) noise of growing weight (traits
that share the polygenic background, as a biobank's correlated phenotypes do); the 10
binary ones are those traits thresholded at their 90th percentile (10% cases: the GLMM
route, since the cohort is related). Every trait is complete, so all ten share the samples.
Each run is a child process pinned to ``--threads``, one after the other; wall time and
peak RSS from ``/usr/bin/time``. Results go to ``WORK/multi_trait_results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import simulate, timed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def traits(work: Path, k: int, seed: int) -> Path:
    """``k`` Normal traits ``n0..`` and ``k`` 0/1 traits ``b0..`` next to the cohort."""
    base = pd.read_csv(work / "c.pheno.tsv", sep="\t")
    rng = np.random.default_rng(seed)
    q = base["quant"].to_numpy(dtype=float)
    q = (q - np.nanmean(q)) / np.nanstd(q)
    out = base[["FID", "IID"]].copy()
    for j in range(k):
        t = q + (0.2 + 0.1 * j) * rng.normal(size=q.size)
        out[f"n{j}"] = t
        out[f"b{j}"] = (t > np.nanquantile(t, 0.9)).astype(float)
    path = work / "multi.pheno.tsv"
    out.to_csv(path, sep="\t", index=False, na_rep="NA")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5_000)
    ap.add_argument("--variants", type=int, default=200_000)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks/work/loco_5k")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--traits", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kinds", nargs="+", default=["normal", "bernoulli"])
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    cohort = simulate(a.work, a.n, a.variants, a.seed)
    pheno = traits(a.work, a.traits, a.seed)
    glimix = str(Path(sys.executable).parent / "glimix")
    res: dict = {"n": a.n, "variants": a.variants, "traits": a.traits, "threads": a.threads,
                 "cohort": cohort}
    for kind in a.kinds:
        p = "n" if kind == "normal" else "b"
        common = [glimix, "scan", "--bfile", str(a.work / "c"), "--pheno", str(pheno),
                  "-l", kind, "--threads", str(a.threads)]
        one = timed([*common, "--pheno-name", f"{p}0", "--out",
                     str(a.work / f"one_{kind}.tsv.gz")], a.work / f"run_one_{kind}.txt",
                    a.threads, {"GLIMIX_WIDTH": "200"})
        many = timed([*common, "--pheno-name", f"{p}0-{p}{a.traits - 1}", "--out",
                      str(a.work / f"many_{kind}")], a.work / f"run_many_{kind}.txt",
                     a.threads, {"GLIMIX_WIDTH": "200"})
        res[kind] = {"one": one, "many": many,
                     "ratio": round(many["seconds"] / one["seconds"], 2)}
        print(kind, json.dumps(res[kind]), flush=True)
    (a.work / "multi_trait_results.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
