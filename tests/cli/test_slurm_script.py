"""example_data/slurm_scan.sh runs end to end under a stand-in `sbatch`.

The stand-in runs each submitted job at once: `--wrap` commands through bash, array jobs
once per task with SLURM_ARRAY_TASK_ID set. The merged output must equal a single scan.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAKE_SBATCH = r"""#!/usr/bin/env python3
import os, subprocess, sys
args = sys.argv[1:]
wrap, array, script = None, None, None
i = 0
while i < len(args):
    a = args[i]
    if a == "--wrap":
        wrap = args[i + 1]; i += 2; continue
    if a.startswith("--wrap="):
        wrap = a.split("=", 1)[1]
    elif a.startswith("--array="):
        lo, hi = a.split("=", 1)[1].split("-")
        array = range(int(lo), int(hi) + 1)
    elif not a.startswith("-"):
        script = a
    i += 1
if wrap is not None:
    subprocess.run(["bash", "-c", wrap], check=True)
elif array is not None:
    for t in array:
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(t)}
        subprocess.run(["bash", script], check=True, env=env)
print(abs(hash(" ".join(args))) % 100000)
"""


def test_slurm_array_script_gives_the_single_run_output(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    sb = bindir / "sbatch"
    sb.write_text(FAKE_SBATCH)
    sb.chmod(sb.stat().st_mode | stat.S_IEXEC)
    glimix = shutil.which("glimix")
    assert glimix, "the glimix console script is not installed"
    env = {**os.environ, "PATH": f"{bindir}:{Path(glimix).parent}:{os.environ['PATH']}",
           "N": "3", "TRAIT": "quant", "LIK": "normal", "OUT": str(tmp_path / "res" / "quant"),
           "BFILE": str(ROOT / "example_data" / "cohort"),
           "PHENO": str(ROOT / "example_data" / "cohort.pheno.tsv"),
           "COVAR": str(ROOT / "example_data" / "cohort.covar.tsv")}
    proc = subprocess.run(["bash", str(ROOT / "example_data" / "slurm_scan.sh")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    merged = tmp_path / "res" / "quant.tsv.gz"
    assert merged.exists()
    single = tmp_path / "single.tsv.gz"
    proc = subprocess.run([glimix, "scan", "--bfile", env["BFILE"], "--pheno", env["PHENO"],
                           "--pheno-name", "quant", "--covar", env["COVAR"], "--kinship-cache",
                           str(tmp_path / "res" / "quant.kin.npz"), "--out", str(single), "-q"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert merged.read_bytes() == single.read_bytes()
