"""Issue 19's LOCO benchmark: ``glimix scan --loco`` against the same scan without it, end
to end (kinship, null fit, per-chromosome refits, scan), on a related cohort where the
binary null is the GLMM (so that LOCO has work to do).

    python benchmarks/loco.py --n 5000 --variants 200000 --work benchmarks/work/loco_5k

The cohort (nuclear families and sib pairs, three ancestry groups, 22 chromosomes) is
written by ``glimix_cli.testing.biobank`` and reused when present; the trait is its
10%-case one (``case10``), fitted with ``-l bernoulli`` (the saddlepoint test, the
default). Both runs are child processes pinned to ``--threads``, one after the other;
wall time and peak RSS from ``/usr/bin/time``, and the time of each step from the run's
own progress log (``GLIMIX_PROGRESS_INTERVAL``). Results go to ``WORK/loco_results.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import simulate, timed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _seconds(text: str) -> float:
    """``1h02m03s`` / ``2m05s`` / ``41s`` in seconds."""
    parts = re.findall(r"(\d+)([hms])", text)
    return float(sum(int(v) * {"h": 3600, "m": 60, "s": 1}[u] for v, u in parts))


def steps(text: str) -> dict[str, float]:
    """Seconds of the steps the run reports: the ``done in`` lines of its plain progress
    (steps longer than the interval), the null fit's ``fit time`` and the LOCO refits."""
    out: dict[str, float] = {}
    for name, dur in re.findall(r"^(.+?): done in (\S+)$", text, re.M):
        out[name] = _seconds(dur)
    m = re.search(r"fit time\s+([0-9.]+) s", text)
    if m:
        out["null model fit"] = float(m.group(1))
    m = re.search(r"refits, [0-9.]+ - [0-9.]+ s each, ([0-9.]+) s in all", text)
    if m:
        out["LOCO refits"] = float(m.group(1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5_000)
    ap.add_argument("--variants", type=int, default=200_000)
    ap.add_argument("--work", type=Path, default=ROOT / "benchmarks/work/loco_5k")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trait", default="case10")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    cohort = simulate(a.work, a.n, a.variants, a.seed)
    glimix = str(Path(sys.executable).parent / "glimix")
    lik = "normal" if a.trait == "quant" else "bernoulli"
    common = [glimix, "scan", "--bfile", str(a.work / "c"), "--pheno",
              str(a.work / "c.pheno.tsv"), "--pheno-name", a.trait, "-l", lik,
              "--threads", str(a.threads)]
    res: dict = {"n": a.n, "variants": a.variants, "trait": a.trait, "threads": a.threads,
                 "cohort": cohort}
    for name, extra in (("plain", []), ("loco", ["--loco"])):
        log = a.work / f"run_{name}.txt"  # not NAME.log: glimix writes its own there
        r = timed([*common, *extra, "--out", str(a.work / f"{name}.tsv.gz")], log, a.threads,
                  {"GLIMIX_PROGRESS_INTERVAL": "20", "GLIMIX_WIDTH": "200"})
        text = log.read_text()
        r["steps"] = steps(text)
        m = re.search(r"lambda_GC = ([0-9.]+)", text)
        r["lambda_gc"] = float(m.group(1)) if m else None
        m = re.search(r"(\d+) refits, ([0-9.]+) - ([0-9.]+) s each, ([0-9.]+) s in all", text)
        if m:
            r["refits"] = {"count": int(m.group(1)), "min_s": float(m.group(2)),
                           "max_s": float(m.group(3)), "total_s": float(m.group(4))}
        res[name] = r
        print(name, json.dumps(r), flush=True)
    res["ratio"] = round(res["loco"]["seconds"] / res["plain"]["seconds"], 2)
    print(f"--loco / plain end to end: {res['ratio']}x")
    (a.work / "loco_results.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
