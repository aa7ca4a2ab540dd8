"""Smoke test of ``benchmarks/run.py`` (issue 5): the tiny mode runs end to end.

The full benchmark is not run by CI (minutes to hours); this runs ``--n 200 --m 2000``
once, skipping GEMMA / plink2 when they are not installed, and checks the JSON it writes.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "benchmarks" / "run.py"


def _load_run_module():
    spec = importlib.util.spec_from_file_location("glimix_bench_run", RUN)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_simulated_bed_reads_back(tmp_path):
    """The benchmark's chunked .bed writer agrees with glimix's reader (A1 dosages)."""
    from glimix_cli.io.plink import open_bfile

    run = _load_run_module()
    rng = np.random.default_rng(3)
    ped = run.make_pedigree(23, 0.5, rng)
    D, _ = run.simulate_chunk(ped, 17, rng)
    D[0, 0] = -1
    prefix = tmp_path / "x"
    with open(f"{prefix}.bed", "wb") as fh:
        fh.write(bytes([0x6C, 0x1B, 0x01]) + run.pack_bed(D))
    Path(f"{prefix}.bim").write_text("".join(f"1\trs{j}\t0\t{j + 1}\tA\tC\n" for j in range(17)))
    Path(f"{prefix}.fam").write_text("".join(f"{f} {i} 0 0 1 -9\n"
                                             for f, i in zip(ped.fid, ped.iid, strict=True)))
    G = open_bfile(prefix).read(0, 17)
    expect = D.astype(float)
    expect[D < 0] = np.nan
    np.testing.assert_array_equal(G, expect)
    # children inherit one allele from each parent: no parent-child pair is opposite homozygous
    kids, fathers = ped.child_rows, ped.founder_rows[ped.father]
    assert not np.any(np.abs(D[kids] - D[fathers]) == 2)


def test_benchmark_smoke(tmp_path):
    cmd = [sys.executable, str(RUN), "--n", "200", "--m", "2000", "--reps", "1",
           "--pieces-m", "2000", "--skip-missing-peers", "--no-bernoulli-piece",
           "--tools", "glimix-normal,gemma,plink2-linear",
           "--workdir", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = list((tmp_path / "results").glob("run_n200_m2000_*.json"))
    assert len(out) == 1
    res = json.loads(out[0].read_text())
    assert res["machine"]["cores"] >= 1
    assert len(res["machine"]["load_start"]) == 3
    g = res["summary"]["glimix-normal"]
    assert g["ok"] and g["rows"] == 2000 and g["wall_s"] > 0 and g["max_rss_mb"] > 0
    assert res["pieces"]["scan"]["variants"] > 1900
    assert res["pieces"]["scan"]["whiten_gflops"] > 0
    assert res["numpy_gemm"]["gemm_n_n_b"]["gflops"] > 0
    assert res["memcheck"]["rss_small_mb"] > 0
    for peer in ("gemma", "plink2-linear"):
        assert peer in res["summary"] or peer in res["skipped"]
    assert "glimix-normal" in proc.stdout and "wall s (median)" in proc.stdout
