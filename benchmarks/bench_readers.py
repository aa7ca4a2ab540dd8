"""Genotype decoders side by side (issue 18): the BGEN readers on PyPI, pgenlib on .pgen, and
pandas-plink's .bed kernel against its alternatives, each decoding the same file into
float64 dosage blocks (samples x variants), as the scan consumes them.

The data are plink2 ``--dummy`` genotypes with dosages (``dosage-freq``), written once as
.pgen (plink2's own dosage precision), .bed (hard calls), BGEN 1.2 8-bit zlib (UK Biobank's
layout) and BGEN 1.3 16-bit zstd. Every reader runs in a child process with one thread
(``OMP_NUM_THREADS=1``, the readers' own thread options at 1), so the numbers are per core;
the readers that need another numpy run under another interpreter (``--python``).

    python benchmarks/bench_readers.py --n 10000 --m 2000 --reps 3 \
        --python bgen-limix=/tmp/bgenlimix/bin/python \
        --python bgen-reader=/tmp/bgenreader/bin/python

Each child also checks its dosages against pgenlib's reading of the .pgen (the source of the
exports): the largest absolute difference is printed next to the speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BLOCK = 256
#: reader -> files it decodes
READERS = {
    "bgen": ("bgen8", "bgen16z"),
    "cbgen": ("bgen8", "bgen16z"),
    "bgen-limix": ("bgen8", "bgen16z"),
    "bgen-reader": ("bgen8", "bgen16z"),
    "glimix": ("bgen8", "bgen16z", "pgen", "bed"),
    "pgenlib": ("pgen", "bed"),
    "pandas-plink": ("bed",),
    "bed-reader": ("bed",),
}


def make_data(d: Path, n: int, m: int, seed: int) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    base = d / "dummy"
    files = {"pgen": base, "bed": base, "bgen8": d / "dummy8.bgen",
             "bgen16z": d / "dummy16z.bgen"}
    if not (d / "dummy16z.bgen").exists():
        run = ["plink2", "--threads", "1", "--silent"]
        subprocess.run([*run, "--dummy", str(n), str(m), "0.01", "dosage-freq=0.8",
                        "--seed", str(seed), "--make-pgen", "--out", str(base)], check=True)
        subprocess.run([*run, "--pfile", str(base), "--make-bed", "--out", str(base)],
                       check=True)
        # ref-first: the second allele (the one BGEN readers count) is ALT, as in the .pgen
        subprocess.run([*run, "--pfile", str(base), "--export", "bgen-1.2", "bits=8",
                        "ref-first", "--out", str(d / "dummy8")], check=True)
        subprocess.run([*run, "--pfile", str(base), "--export", "bgen-1.3", "bits=16",
                        "ref-first", "--out", str(d / "dummy16z")], check=True)
    return files


# -- one reader per function: open, then yield float64 (n, b) blocks of the counted allele --

def _blocks(m: int):
    for lo in range(0, m, BLOCK):
        yield lo, min(m, lo + BLOCK)


def read_bgen(path: Path, n: int, m: int):
    from bgen import BgenReader

    with BgenReader(str(path), str(path.with_suffix(".sample")), delay_parsing=True) as r:
        it = iter(r)
        for lo, hi in _blocks(m):
            out = np.empty((n, hi - lo), order="F")
            for j in range(hi - lo):
                p = next(it).probabilities
                out[:, j] = p[:, 1] + 2.0 * p[:, 2]
            yield out


def _cbgen_offsets(path: Path) -> tuple[object, np.ndarray]:
    import tempfile

    from cbgen import bgen_file, bgen_metafile

    f = bgen_file(str(path))
    meta = Path(tempfile.mkdtemp()) / "x.metafile"
    f.create_metafile(str(meta), verbose=False)
    mf = bgen_metafile(str(meta))
    offs = np.concatenate([np.asarray(mf.read_partition(i).variants.offset)
                           for i in range(mf.npartitions)])
    return f, offs


def read_cbgen(path: Path, n: int, m: int):
    f, offs = _cbgen_offsets(path)
    for lo, hi in _blocks(m):
        out = np.empty((n, hi - lo), order="F")
        for j in range(hi - lo):
            p = f.read_probability(int(offs[lo + j]), precision=64)
            out[:, j] = p[:, 1] + 2.0 * p[:, 2]
        yield out


def read_bgen_reader(path: Path, n: int, m: int):
    from bgen_reader import open_bgen

    b = open_bgen(str(path), verbose=False)
    for lo, hi in _blocks(m):
        p = b.read(np.s_[:, lo:hi], dtype=np.float64, num_threads=1)
        yield np.asfortranarray(p[:, :, 1] + 2.0 * p[:, :, 2])


def read_glimix(path: Path, n: int, m: int, kind: str):
    from glimix_cli.io.genotypes import open_genotypes

    if kind.startswith("bgen"):
        src = open_genotypes("bgen", str(path), str(path.with_suffix(".sample")))
    else:
        src = open_genotypes(kind, str(path))
    for lo, hi in _blocks(m):
        yield src.read(lo, hi)


def read_pgenlib(path: Path, n: int, m: int, kind: str):
    import pgenlib

    if kind == "pgen":
        r = pgenlib.PgenReader(str(path).encode() + b".pgen")
        for lo, hi in _blocks(m):
            buf = np.empty((hi - lo, n), dtype=np.float64)
            r.read_dosages_range(lo, hi, buf)
            yield buf.T
        return
    r = pgenlib.PgenReader(str(path).encode() + b".bed", raw_sample_ct=n)
    for lo, hi in _blocks(m):
        buf = np.empty((hi - lo, n), dtype=np.int8)
        r.read_range(lo, hi, buf)
        G = buf.T.astype(np.float64)
        G[G < 0] = np.nan
        yield G  # pgenlib counts .bim column 5 (ALT), as the others here


def read_pandas_plink(path: Path, n: int, m: int):
    from pandas_plink._allele import Allele
    from pandas_plink._bed_read import _read_bed_chunk

    buff = np.memmap(str(path) + ".bed", np.uint8, "r", offset=3)
    for lo, hi in _blocks(m):
        raw = _read_bed_chunk(buff, m, n, lo, hi, 0, n, Allele.a0)
        yield raw.T.astype(np.float64, order="F")


def read_bed_reader(path: Path, n: int, m: int):
    from bed_reader import open_bed

    b = open_bed(str(path) + ".bed", num_threads=1, count_A1=True)
    for lo, hi in _blocks(m):
        yield b.read(np.s_[:, lo:hi], dtype=np.float64, order="F", num_threads=1)


def child(reader: str, kind: str, path: Path, n: int, m: int, reps: int) -> dict:
    fn = {"bgen": read_bgen, "cbgen": read_cbgen, "bgen-limix": read_cbgen,
          "bgen-reader": read_bgen_reader, "pandas-plink": read_pandas_plink,
          "bed-reader": read_bed_reader}.get(reader)
    if reader in ("glimix", "pgenlib"):
        fn = {"glimix": read_glimix, "pgenlib": read_pgenlib}[reader]

        def gen(p, n, m, f=fn):
            return f(p, n, m, kind)
    else:
        gen = fn
    t_imp = time.perf_counter()
    gen(path, n, 0)  # (generator: nothing runs) - imports happen on first next()
    times, first = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        total = 0.0
        for k, G in enumerate(gen(path, n, m)):
            total += float(G[0, 0]) if G.size else 0.0
            if first is None and k == 0:
                first = np.array(G[:, :50])
        times.append(time.perf_counter() - t0)
    ref = reference_dosages(path if kind != "bed" else path, kind, n)
    diff = float(np.nanmax(np.abs(first - ref))) if first is not None else float("nan")
    med = statistics.median(times)
    return {"reader": reader, "file": kind, "n": n, "m": m, "seconds": times,
            "median_s": med, "variants_per_s": m / med, "ns_per_genotype": 1e9 * med / (n * m),
            "max_abs_diff_vs_pgen": diff, "setup_s": time.perf_counter() - t_imp - sum(times)}


def reference_dosages(path: Path, kind: str, n: int) -> np.ndarray:
    """pgenlib's dosages of the first 50 variants of the source .pgen (hard calls for .bed)."""
    import importlib.util

    base = path.parent / "dummy"
    if importlib.util.find_spec("pgenlib") is None:
        return np.full((n, 50), np.nan)
    import pgenlib

    r = pgenlib.PgenReader(str(base).encode() + b".pgen")
    buf = np.empty((50, n), dtype=np.float64)
    if kind == "bed":
        raw = np.empty((50, n), dtype=np.int32)
        r.read_range(0, 50, raw)
        buf = raw.astype(np.float64)
        buf[buf < 0] = np.nan
    else:
        r.read_dosages_range(0, 50, buf)
    return buf.T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--m", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--readers", default=",".join(READERS))
    ap.add_argument("--python", action="append", default=[],
                    help="READER=PYTHON: run this reader under another interpreter")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", nargs=3, metavar=("READER", "KIND", "PATH"),
                    help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        r, kind, p = a.child
        print(json.dumps(child(r, kind, Path(p), a.n, a.m, a.reps)))
        return
    files = make_data(HERE / "work" / f"readers_n{a.n}_m{a.m}", a.n, a.m, a.seed)
    pythons = dict(x.split("=", 1) for x in a.python)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": str(HERE.parent)}
    results = []
    for reader in a.readers.split(","):
        for kind in READERS[reader]:
            cmd = [pythons.get(reader, sys.executable), __file__, "--n", str(a.n), "--m",
                   str(a.m), "--reps", str(a.reps), "--child", reader, kind, str(files[kind])]
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if p.returncode:
                err = (p.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{reader:13s} {kind:8s} FAILED: {err}")
                results.append({"reader": reader, "file": kind, "error": err})
                continue
            res = json.loads(p.stdout.strip().splitlines()[-1])
            results.append(res)
            print(f"{reader:13s} {kind:8s} {res['median_s']:7.3f} s  "
                  f"{res['variants_per_s']:9,.0f} variants/s  "
                  f"{res['ns_per_genotype']:6.2f} ns/genotype  setup {res['setup_s']:.2f} s  "
                  f"max |diff| vs .pgen {res['max_abs_diff_vs_pgen']:.2g}", flush=True)
    if a.out:
        a.out.write_text(json.dumps({"n": a.n, "m": a.m, "block": BLOCK, "results": results,
                                     "load": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
