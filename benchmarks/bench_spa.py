"""Cost of the saddlepoint test next to the surrogate scan (issue 8's timing target).

    python benchmarks/bench_spa.py --prefix benchmarks/work/sim_n5000_m200000_s1/cohort \
        --fraction 0.02 --chunk 1/2 --reps 3

Uses the cohort written by ``benchmarks/run.py`` (n samples x m variants; ``--chunk 1/2``
of m = 200,000 scans 100,000 variants). A rare binary trait is made from the cohort's
Normal trait by a liability threshold (the top ``--fraction`` are cases), the kinship is
built once into a cache and the null model fitted once (``glimix kinship``, ``glimix
fit``); then ``glimix scan --null ... --test surrogate`` and ``--test spa`` run ``--reps``
times each, interleaved, and their wall times are compared (medians). Both scans do the
same reading, whitening and writing; the difference is the saddlepoint work.
Results go to ``benchmarks/results/spa_n{n}_{time}.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def run(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}): {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return wall, res.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prefix", type=Path, required=True, help="PLINK prefix from run.py")
    ap.add_argument("--fraction", type=float, default=0.02, help="case fraction")
    ap.add_argument("--chunk", default="1/2", help="part of the variants scanned")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    args = ap.parse_args()
    work = args.prefix.parent / "spa_bench"
    work.mkdir(exist_ok=True)
    glimix = [sys.executable, "-m", "glimix_cli"]
    ph = pd.read_csv(f"{args.prefix}.pheno.tsv", sep="\t")
    q = ph["quant"].to_numpy(float)
    k = int(round(args.fraction * q.size))
    rare = np.zeros(q.size, dtype=int)
    rare[np.argsort(-q)[:k]] = 1
    pheno = work / "rare.pheno.tsv"
    text = pd.DataFrame({"FID": ph["FID"], "IID": ph["IID"], "rare": rare}).to_csv(
        sep="\t", index=False)
    if not pheno.exists() or pheno.read_text() != text:  # keep the null fit's fingerprint
        pheno.write_text(text)
    base = ["--bfile", str(args.prefix), "--pheno", str(pheno), "--pheno-name", "rare",
            "-l", "bernoulli"]
    out: dict = {"n": int(q.size), "cases": k, "chunk": args.chunk, "cores": os.cpu_count(),
                 "load_start": list(os.getloadavg())}
    kin = work / "kinship.npz"
    if not kin.exists():
        out["kinship_s"], _ = run(glimix + ["kinship", "--bfile", str(args.prefix),
                                            "--out", str(kin), "-q"])
    null = work / "rare.null.json"  # glimix fit --out PREFIX writes PREFIX.null.json
    if not null.exists():
        out["null_fit_s"], _ = run(glimix + ["fit", *base, "--kinship-cache", str(kin),
                                             "--out", str(work / "rare"), "-q"])
    walls: dict[str, list[float]] = {"surrogate": [], "spa": []}
    scan_s: dict[str, list[float]] = {"surrogate": [], "spa": []}
    for rep in range(args.reps):
        for test in ("surrogate", "spa"):
            res = work / f"scan_{test}.tsv"
            wall, err = run(glimix + ["scan", *base, "--kinship-cache", str(kin),
                                      "--null", str(null), "--chunk", args.chunk,
                                      "--test", test, "--out", str(res)])
            m = re.search(r"wrote\s.*?:\s+([\d,]+)\s+variants\s+in\s+([\d.]+)\s+s", err, re.S)
            walls[test].append(wall)
            if m:
                scan_s[test].append(float(m.group(2)))
                out["variants"] = int(m.group(1).replace(",", ""))
            print(f"rep {rep + 1} {test:9s} wall {wall:7.1f} s  scan phase "
                  f"{scan_s[test][-1] if m else float('nan'):7.1f} s", flush=True)
    spa_rows = pd.read_csv(work / "scan_spa.tsv", sep="\t", usecols=["test"])["test"]
    out.update({
        "wall_s": walls, "scan_phase_s": scan_s,
        "median_wall_s": {t: statistics.median(v) for t, v in walls.items()},
        "median_scan_phase_s": {t: statistics.median(v) for t, v in scan_s.items() if v},
        "spa_rows": int((spa_rows == "spa").sum()), "load_end": list(os.getloadavg()),
    })
    mw, ms = out["median_wall_s"], out.get("median_scan_phase_s", {})
    out["ratio_wall"] = mw["spa"] / mw["surrogate"]
    if len(ms) == 2:
        out["ratio_scan_phase"] = ms["spa"] / ms["surrogate"]
    print(json.dumps({k: out[k] for k in ("median_wall_s", "median_scan_phase_s",
                                          "ratio_wall", "spa_rows") if k in out}))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.results_dir / f"spa_n{q.size}_{stamp}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
