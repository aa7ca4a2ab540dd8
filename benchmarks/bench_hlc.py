"""Issue 18's end-to-end targets on GEMMA's HLC example (427 people x 358,499 variants):
``glimix scan`` next to ``plink2 --glm`` and GEMMA (``-gk 1`` then ``-lmm 2``) in one run,
every tool with the same pinned thread count, repetitions interleaved, medians reported.
The same scan from BGEN (8-bit, zlib) and .pgen copies made by plink2 shows what the dosage
readers cost end to end.

    python benchmarks/bench_hlc.py --reps 3 --threads 1 [--out benchmarks/results/hlc.json]

Targets: glimix <= 5x plink2 --glm, and >= 10x faster than GEMMA (-gk 1 plus -lmm 2).
The data come from Debian's gemma-doc (/usr/share/doc/gemma/example); the trait is the
.fam's sixth column (GEMMA's and plink2's default), written as a table for glimix.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = Path("/usr/share/doc/gemma/example")


def prepare(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    base = d / "HLC"
    for ext in ("bed", "bim", "fam"):
        target = Path(f"{base}.{ext}")
        if not target.exists():
            with gzip.open(EXAMPLE / f"HLC.{ext}.gz", "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
    pheno = d / "HLC.pheno.tsv"
    if not pheno.exists():
        rows = [line.split() for line in Path(f"{base}.fam").read_text().splitlines()]
        pheno.write_text("FID\tIID\ty\n" + "".join(f"{r[0]}\t{r[1]}\t{r[5]}\n" for r in rows))
    if not (d / "HLC8.bgen").exists():
        run = ["plink2", "--silent", "--threads", "1", "--bfile", str(base)]
        subprocess.run([*run, "--export", "bgen-1.2", "bits=8", "ref-first", "--out",
                        str(d / "HLC8")], check=True)
        subprocess.run([*run, "--make-pgen", "--out", str(d / "HLCp")], check=True)
    return base


def commands(d: Path, base: Path, threads: int) -> dict[str, list[list[str]]]:
    t = str(threads)
    glimix = [sys.executable, "-m", "glimix_cli", "scan", "--pheno", str(d / "HLC.pheno.tsv"),
              "--threads", t, "-q"]
    return {
        "glimix-bed": [[*glimix, "--bfile", str(base), "--out", str(d / "g_bed.tsv")]],
        # --baseline DIR: another glimix_cli tree (e.g. `git archive OLD glimix_cli`), same
        # command; its PYTHONPATH is set in main()
        "glimix-baseline": [[*glimix, "--bfile", str(base), "--out", str(d / "g_base.tsv")]],
        "glimix-bgen8": [[*glimix, "--bgen", str(d / "HLC8.bgen"), "--sample",
                          str(d / "HLC8.sample"), "--kinship-bfile", str(base), "--out",
                          str(d / "g_bgen.tsv")]],
        "glimix-pgen": [[*glimix, "--pgen", str(d / "HLCp"), "--out", str(d / "g_pgen.tsv")]],
        "plink2-glm": [["plink2", "--bfile", str(base), "--glm", "allow-no-covars",
                        "--threads", t, "--silent", "--out", str(d / "p")]],
        "gemma": [["gemma", "-bfile", str(base), "-gk", "1", "-outdir", str(d / "gemma"),
                   "-o", "hlc"],
                  ["gemma", "-bfile", str(base), "-k", str(d / "gemma" / "hlc.cXX.txt"),
                   "-lmm", "2", "-outdir", str(d / "gemma"), "-o", "hlc"]],
    }


def timed(steps: list[list[str]], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    for cmd in steps:
        p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"{' '.join(cmd[:4])}...: exit {p.returncode}\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tools", default="glimix-bed,plink2-glm,gemma,glimix-bgen8,glimix-pgen")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--baseline", type=Path, default=None,
                    help="directory holding another glimix_cli/ to time as glimix-baseline")
    a = ap.parse_args()
    d = HERE / "work" / "hlc"
    base = prepare(d)
    # GEMMA and numpy read the BLAS thread count from the environment
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads),
           "OPENBLAS_NUM_THREADS": str(a.threads), "PYTHONPATH": str(HERE.parent)}
    cmds = commands(d, base, a.threads)
    tools = a.tools.split(",")
    times: dict[str, list[float]] = {k: [] for k in tools}
    loads = []
    for rep in range(a.reps):
        for tool in tools:  # interleaved: a load spike hits every tool alike
            loads.append(os.getloadavg()[0])
            if tool == "glimix-baseline" and a.baseline is None:
                raise SystemExit("glimix-baseline needs --baseline DIR")
            s = timed(cmds[tool], env if tool != "glimix-baseline" else
                      {**env, "PYTHONPATH": str(a.baseline)}, d)
            times[tool].append(s)
            print(f"rep {rep + 1} {tool:13s} {s:7.2f} s  (load {loads[-1]:.2f})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("\nmedians:")
    for k, v in med.items():
        print(f"  {k:13s} {v:7.2f} s")
    if "plink2-glm" in med and "glimix-bed" in med:
        print(f"glimix / plink2 --glm = {med['glimix-bed'] / med['plink2-glm']:.1f}x "
              "(target <= 5x)")
    if "glimix-baseline" in med and "glimix-bed" in med:
        print(f"baseline / glimix = {med['glimix-baseline'] / med['glimix-bed']:.2f}x")
    if "gemma" in med and "glimix-bed" in med:
        print(f"GEMMA / glimix = {med['gemma'] / med['glimix-bed']:.1f}x (target >= 10x)")
    if a.out:
        a.out.write_text(json.dumps({"threads": a.threads, "reps": a.reps, "seconds": times,
                                     "median_s": med, "load_before_each": loads,
                                     "cores": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
