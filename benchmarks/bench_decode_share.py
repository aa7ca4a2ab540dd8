"""Issue 18's reader target: decoding (any format) below 20% of the scan phase at n = 5,000.

plink2 ``--dummy`` genotypes with dosages are written as .bed (hard calls), .pgen and BGEN
1.2 8-bit; the kinship is cached once (``glimix kinship`` on the .bed), then ``glimix scan``
runs in this process for each format (``--kinship-cache``, the dosage formats with
``--kinship-bfile``), with the genotype source's ``read`` timed inside the scan phase.

    python benchmarks/bench_decode_share.py --n 5000 --m 6000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make(d: Path, n: int, m: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    base = d / "dummy"
    if not (d / "dummy8.bgen").exists():
        run = ["plink2", "--silent", "--threads", "1"]
        subprocess.run([*run, "--dummy", str(n), str(m), "0.01", "dosage-freq=0.8", "--seed",
                        "5", "--make-pgen", "--out", str(base)], check=True)
        subprocess.run([*run, "--pfile", str(base), "--make-bed", "--out", str(base)],
                       check=True)
        subprocess.run([*run, "--pfile", str(base), "--export", "bgen-1.2", "bits=8",
                        "ref-first", "--out", str(d / "dummy8")], check=True)
        import numpy as np

        rng = np.random.default_rng(5)
        iids = [ln.split()[1] for ln in Path(f"{base}.fam").read_text().splitlines()]
        (d / "pheno.tsv").write_text("FID\tIID\ty\n" + "".join(
            f"0\t{i}\t{v:.5f}\n" for i, v in zip(iids, rng.normal(size=len(iids)), strict=True)))
    return base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--m", type=int, default=6000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(a.threads)
    sys.path.insert(0, str(HERE.parent))
    d = HERE / "work" / f"share_n{a.n}_m{a.m}"
    base = make(d, a.n, a.m)
    cache = d / "kin.npz"
    from glimix_cli.pipeline.config import InputConfig, ScanConfig
    from glimix_cli.pipeline.kinship import run_kinship
    from glimix_cli.pipeline.progress import Reporter
    from glimix_cli.pipeline.run import run_scan

    if not cache.exists():
        t = time.perf_counter()
        run_kinship(base, None, 0.0, cache, Reporter())
        print(f"kinship cache: {time.perf_counter() - t:.1f} s", flush=True)

    class Phases(Reporter):
        def __init__(self) -> None:
            self.t: dict[str, float] = {}

        def start(self, task: str, total: int | None) -> None:
            self.t[task] = -time.perf_counter()

        def finish(self, task: str) -> None:
            self.t[task] += time.perf_counter()

    from glimix_cli.io.bgen import Bgen
    from glimix_cli.io.pgen import Pgen
    from glimix_cli.io.plink import Bfile

    spent = {"read": 0.0}

    def timed(cls):
        real = cls.read

        def read(self, *args, **kw):
            t0 = time.perf_counter()
            try:
                return real(self, *args, **kw)
            finally:
                spent["read"] += time.perf_counter() - t0
        cls.read = read

    for cls in (Bfile, Bgen, Pgen):
        timed(cls)
    results = {}
    for fmt, path, extra in (("bed", base, {}),
                             ("pgen", base, {"kinship_bfile": base}),
                             ("bgen", d / "dummy8.bgen",
                              {"kinship_bfile": base, "sample": d / "dummy8.sample"})):
        cfg = InputConfig(bfile=Path(path), pheno=d / "pheno.tsv", pheno_name="y",
                          kinship_cache=cache, geno_format=fmt, **extra)
        out = d / f"scan_{fmt}.tsv"
        out.unlink(missing_ok=True)
        rep = Phases()
        spent["read"] = 0.0
        t = time.perf_counter()
        run_scan(cfg, ScanConfig(), out, rep)
        total = time.perf_counter() - t
        scan = rep.t["scan"]
        results[fmt] = {"total_s": total, "scan_phase_s": scan, "decode_s": spent["read"],
                        "decode_share": spent["read"] / scan}
        print(f"{fmt:5s} scan phase {scan:7.2f} s, decoding {spent['read']:6.2f} s = "
              f"{100 * spent['read'] / scan:5.1f}% (target < 20%); whole run {total:.1f} s",
              flush=True)
    if a.out:
        a.out.write_text(json.dumps({"n": a.n, "m": a.m, "threads": a.threads,
                                     "load": os.getloadavg(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
