"""End-to-end benchmark of ``glimix scan`` against GEMMA and plink2 (issue 5).

    python benchmarks/run.py --n 5000 --m 200000 --reps 3
    python benchmarks/run.py --n 200 --m 2000 --reps 1 --skip-missing-peers   # smoke

One run

1. simulates a related cohort (nuclear families + unrelated samples from two slightly
   diverged populations, Mendelian transmission with recombination, 0.1 % missing calls)
   straight into PLINK 1 files, one variant chunk at a time (memory O(n * chunk), not
   O(n * m)), plus a phenotype table with a Normal trait (h2 = 0.5, 1,000 causal
   variants) and a binary trait (liability threshold, 30 % cases). The .fam column 6
   holds the Normal trait for GEMMA;
2. measures numpy's own matrix-multiply GFLOP/s (the ceiling for the kernels);
3. times the pieces of glimix by calling the library directly: read/decode, GRM
   (standardise vs. BLAS accumulation), eigendecomposition, null fit (LMM, and Bernoulli
   EP unless --no-bernoulli), scanner set-up and the scan kernel (whitening ``dtrsm``,
   n^2 b flops per block of b variants, vs. the rest), on the first ``--pieces-m``
   variants (eigh and the null fits do not depend on m);
4. runs, ``--reps`` times and interleaved, every command under ``/usr/bin/time -v``:
   ``glimix scan`` (normal, bernoulli), GEMMA ``-gk 1`` then ``-lmm 2``, plink2 ``--glm``
   (linear and logistic), recording wall time, peak RSS, the load average and the number
   of result rows;
5. checks that peak memory is flat in m: ``glimix scan`` on the first m/4 variants vs m;
6. prints a table of medians and glimix/peer ratios and writes JSON to
   ``benchmarks/results/`` (with the core count and load averages).

Generated data go to ``benchmarks/work/`` (gitignored); ``--clean`` deletes them at the end.
Not run by CI; ``tests/test_benchmarks_smoke.py`` runs the tiny smoke mode.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


def _blas_threads_from_argv(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a == "--blas-threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--blas-threads="):
            return a.split("=", 1)[1]
    return None


# BLAS reads its thread count when loaded, so --blas-threads is applied before numpy is
# imported; the subprocesses (glimix, GEMMA) inherit it through the environment.
if (_bt := _blas_threads_from_argv(sys.argv)) is not None:
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = _bt

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ALLELES = np.array([("A", "C"), ("A", "G"), ("C", "T"), ("G", "T")])
#: .bed 2-bit code of dosage d (index d + 1; -1 = missing): 2 -> 00, 1 -> 10, 0 -> 11, NA -> 01
_BED_CODE = np.array([0b01, 0b11, 0b10, 0b00], dtype=np.uint8)


# ------------------------------------------------------------------------------------------
# simulation
# ------------------------------------------------------------------------------------------
@dataclass
class Pedigree:
    n: int
    founder_pop: np.ndarray  # (n_founders,) population of each founder
    founder_rows: np.ndarray  # (n_founders,) output row of each founder
    father: np.ndarray  # (n_children,) founder index of each child's father
    mother: np.ndarray
    child_rows: np.ndarray
    fid: list[str]
    iid: list[str]


def make_pedigree(n: int, related: float, rng: np.random.Generator) -> Pedigree:
    """Families of 4 (both parents and two children genotyped) for ``related`` of the
    samples, the rest unrelated founders; each family / founder in one of two populations."""
    n_fam = int(n * related) // 4
    n_unrel = n - 4 * n_fam
    fid, iid = [], []
    f_rows, c_rows, father, mother, f_pop = [], [], [], [], []
    row = 0
    for k in range(n_fam):
        pop = int(rng.integers(2))
        fa, mo = len(f_rows), len(f_rows) + 1
        for j in range(4):
            fid.append(f"F{k:06d}")
            iid.append(f"F{k:06d}_{j + 1}")
        f_rows += [row, row + 1]
        f_pop += [pop, pop]
        c_rows += [row + 2, row + 3]
        father += [fa, fa]
        mother += [mo, mo]
        row += 4
    for k in range(n_unrel):
        fid.append(f"U{k:06d}")
        iid.append(f"U{k:06d}")
        f_rows.append(row)
        f_pop.append(int(rng.integers(2)))
        row += 1
    return Pedigree(n, np.array(f_pop), np.array(f_rows), np.array(father, dtype=np.intp),
                    np.array(mother, dtype=np.intp), np.array(c_rows, dtype=np.intp), fid, iid)


def simulate_chunk(ped: Pedigree, b: int, rng: np.random.Generator, fst: float = 0.01,
                   recomb: float = 2e-3) -> tuple[np.ndarray, np.ndarray]:
    """Dosages (n, b) int8 of the first allele and the ancestral frequencies (b,)."""
    f = rng.uniform(0.05, 0.5, size=b)
    f = np.where(rng.random(b) < 0.5, f, 1.0 - f)
    a, c = f * (1 - fst) / fst, (1 - f) * (1 - fst) / fst
    pp = rng.beta(a, c, size=(2, b)).astype(np.float32)
    nf = ped.founder_pop.size
    p_f = pp[ped.founder_pop]  # (nf, b)
    H0 = rng.random((nf, b), dtype=np.float32) < p_f
    H1 = rng.random((nf, b), dtype=np.float32) < p_f
    D = np.empty((ped.n, b), dtype=np.int8)
    D[ped.founder_rows] = H0.astype(np.int8) + H1
    nc = ped.child_rows.size
    if nc:
        kid = np.zeros((nc, b), dtype=np.int8)
        for parent in (ped.father, ped.mother):
            start = rng.integers(0, 2, size=(nc, 1), dtype=np.uint16)
            sw = rng.random((nc, b), dtype=np.float32) < recomb
            phase = (np.cumsum(sw, axis=1, dtype=np.uint16) + start) & 1
            kid += np.where(phase == 0, H0[parent], H1[parent])
        D[ped.child_rows] = kid
    return D, f


def pack_bed(D: np.ndarray) -> bytes:
    """Variant-major .bed bytes (no magic) for int8 dosages (n, b), -1 = missing."""
    n, b = D.shape
    nbytes = (n + 3) // 4
    codes = np.zeros((b, nbytes * 4), dtype=np.uint8)
    codes[:, :n] = _BED_CODE[D.T.astype(np.intp) + 1]
    q = codes.reshape(b, nbytes, 4)
    return (q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)).tobytes()


def simulate_cohort(prefix: Path, n: int, m: int, seed: int = 1, chunk: int = 4096,
                    related: float = 0.5, n_causal: int = 1000, h2: float = 0.5,
                    missing: float = 1e-3, prevalence: float = 0.3) -> dict:
    """Write ``prefix.{bed,bim,fam}`` and ``prefix.pheno.tsv``; memory O(n * chunk)."""
    rng = np.random.default_rng(seed)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    ped = make_pedigree(n, related, rng)
    causal = np.sort(rng.choice(m, size=min(n_causal, m), replace=False))
    beta = rng.normal(size=causal.size)
    g = np.zeros(n)
    with open(f"{prefix}.bed", "wb") as fh:
        fh.write(bytes([0x6C, 0x1B, 0x01]))
        for lo in range(0, m, chunk):
            b = min(chunk, m - lo)
            D, f = simulate_chunk(ped, b, rng)
            sel = causal[(causal >= lo) & (causal < lo + b)]
            if sel.size:
                Dc = D[:, sel - lo].astype(np.float64)
                sd = Dc.std(axis=0)
                sd[sd == 0] = 1.0
                g += ((Dc - Dc.mean(axis=0)) / sd) @ beta[np.searchsorted(causal, sel)]
            k = rng.binomial(n * b, missing)
            if k:
                D.reshape(-1)[rng.choice(n * b, size=k, replace=False)] = -1
            fh.write(pack_bed(D))
    j = np.arange(m)
    chrom = 1 + (j * 22) // m
    pos = 1000 + 1000 * (j - np.searchsorted(chrom, chrom))
    al = ALLELES[rng.integers(0, 4, size=m)]
    flip = rng.random(m) < 0.5
    a1 = np.where(flip, al[:, 1], al[:, 0])
    a2 = np.where(flip, al[:, 0], al[:, 1])
    with open(f"{prefix}.bim", "w") as fh:
        fh.write("".join(f"{c}\trs{i}\t0\t{p}\t{x}\t{y}\n"
                         for i, c, p, x, y in zip(j, chrom, pos, a1, a2, strict=True)))
    g = (g - g.mean()) / (g.std() or 1.0) * np.sqrt(h2)
    liab = g + rng.normal(scale=np.sqrt(1 - h2), size=n)
    quant = np.round(liab, 5)
    case = liab > np.quantile(liab, 1 - prevalence)
    sex = rng.integers(1, 3, size=n)
    with open(f"{prefix}.fam", "w") as fh:
        fh.write("".join(f"{a} {b} 0 0 {s} {q}\n"
                         for a, b, s, q in zip(ped.fid, ped.iid, sex, quant, strict=True)))
    with open(f"{prefix}.pheno.tsv", "w") as fh:
        fh.write("FID\tIID\tquant\tbinary\n")
        fh.write("".join(f"{a}\t{b}\t{q}\t{2 if c else 1}\n"
                         for a, b, q, c in zip(ped.fid, ped.iid, quant, case, strict=True)))
    return {"n": n, "m": m, "seed": seed, "related_fraction": related, "n_causal": int(causal.size),
            "h2": h2, "missing_rate": missing, "prevalence": prevalence,
            "n_families": int(ped.child_rows.size // 2)}


def subset_fileset(src: Path, dst: Path, m_sub: int) -> None:
    """First ``m_sub`` variants of a fileset (the .bed is variant-major: a byte prefix)."""
    n = sum(1 for _ in open(f"{src}.fam"))
    nbytes = 3 + m_sub * ((n + 3) // 4)
    with open(f"{src}.bed", "rb") as fi, open(f"{dst}.bed", "wb") as fo:
        fo.write(fi.read(nbytes))
    with open(f"{src}.bim") as fi, open(f"{dst}.bim", "w") as fo:
        for i, line in enumerate(fi):
            if i >= m_sub:
                break
            fo.write(line)
    shutil.copy(f"{src}.fam", f"{dst}.fam")


# ------------------------------------------------------------------------------------------
# measurement helpers
# ------------------------------------------------------------------------------------------
def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def numpy_gemm_gflops(n: int, b: int, reps: int = 5) -> dict:
    """Best-of-``reps`` GFLOP/s of float64 ``(n, n) @ (n, b)`` and of a square product
    (side ``min(2000, max(n, 500))``, so the smoke mode stays fast)."""
    rng = np.random.default_rng(0)
    out = {}
    sq = min(2000, max(n, 500))
    for name, (p, q, r) in {"gemm_n_n_b": (n, n, b), "gemm_square": (sq, sq, sq)}.items():
        A = rng.normal(size=(p, q))
        B = np.asfortranarray(rng.normal(size=(q, r)))
        A @ B
        best = min(_timed(lambda A=A, B=B: A @ B) for _ in range(reps))  # the ceiling
        out[name] = {"shape": [p, q, r], "seconds": best, "gflops": 2.0 * p * q * r / best / 1e9}
    return out


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@dataclass
class Timed:
    tool: str
    cmd: list[str]
    wall_s: float
    max_rss_mb: float
    rc: int
    load_before: list[float]
    load_after: list[float]
    rows: int | None = None
    extra: dict = field(default_factory=dict)


def run_timed(tool: str, cmd: list[str], cwd: Path, log: Path, env: dict | None = None,
              timeout: float | None = None) -> Timed:
    """Run ``cmd`` under ``/usr/bin/time -v``; wall time and peak RSS from its report."""
    tfile = log.with_suffix(".time")
    full = ["/usr/bin/time", "-v", "-o", str(tfile), *cmd]
    lb = loadavg()
    t = time.perf_counter()
    timed_out = False
    with open(log, "w") as fh:
        proc = subprocess.Popen(full, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own session: the command and its children
            rc = proc.wait()
            timed_out = True
    wall = time.perf_counter() - t
    text = tfile.read_text() if tfile.exists() else ""
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    cpu = [re.search(rf"{k} time \(seconds\): ([\d.]+)", text) for k in ("User", "System")]
    pct = re.search(r"Percent of CPU this job got: (\d+)%", text)
    extra: dict = {"cpu_s": sum(float(c.group(1)) for c in cpu if c),
                   "cpu_percent": int(pct.group(1)) if pct else None}
    if rc != 0:
        tail = log.read_text()[-2000:]
        why = f"timed out after {timeout} s" if timed_out else f"rc={rc}"
        print(f"  !! {tool} failed ({why}); log {log}:\n{tail}", file=sys.stderr)
    return Timed(tool, cmd, wall, int(rss.group(1)) / 1024 if rss else float("nan"),
                 rc, lb, loadavg(), extra={**extra, "timed_out": timed_out})


def count_rows(path: Path, header: int = 1) -> int | None:
    """Data lines of a result file (``header`` lines skipped; glimix's ``#`` meta too)."""
    if not path.exists():
        return None
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip() and not line.startswith(b"##")) - header


# ------------------------------------------------------------------------------------------
# glimix pieces, in process
# ------------------------------------------------------------------------------------------
def glimix_pieces(prefix: Path, m_sub: int, bernoulli: bool, ref_gflops: float) -> dict:
    """Time read/decode, GRM, eigh, null fits and the scan kernel on the first ``m_sub``
    variants by calling the library functions the pipeline calls."""
    from scipy.linalg import blas

    from glimix_cli.io.plink import _decode, block_size_for_budget, iter_blocks, open_bfile
    from glimix_cli.kinship.grm import _Counts, _standardised_blocks, grm
    from glimix_cli.model.linalg import economic_qs
    from glimix_cli.pipeline.kinship import Kinship
    from glimix_cli.pipeline.null import fit_null_arrays
    from glimix_cli.pipeline.qc import block_qc

    out: dict = {"m_sub": m_sub, "load_start": loadavg()}
    t = time.perf_counter()
    bfile = open_bfile(prefix)
    out["open_bfile_s"] = time.perf_counter() - t
    n = bfile.n_samples
    vidx = np.arange(m_sub)
    bs_kin = min(block_size_for_budget(n), 4096)
    bs_scan = min(block_size_for_budget(n, 256), 4096)
    out["block_size_kinship"], out["block_size_scan"] = bs_kin, bs_scan

    # read / decode: the lookup-table decoder alone, then the full iter_blocks
    t = time.perf_counter()
    for lo in range(0, m_sub, bs_kin):
        _decode(bfile.bed, n, lo, min(lo + bs_kin, m_sub), None)
    out["decode_kernel_f32_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for _ in iter_blocks(bfile, vidx, bs_kin):
        pass
    out["read_blocks_f64_s"] = time.perf_counter() - t

    # GRM as the pipeline computes it (kinship.grm.grm: in-place dsyrk per block) ...
    t0 = time.perf_counter()
    K = grm(bfile, None, vidx).K
    t_grm = time.perf_counter() - t0
    # ... and its two halves (read + standardise, dsyrk) timed apart
    counts = _Counts()
    C = np.zeros((n, n), order="F")
    t_prod = 0.0
    t0 = time.perf_counter()
    Zkeep = None
    for Z in _standardised_blocks(bfile, None, vidx, 0.0, None, None, counts):
        t = time.perf_counter()
        C = blas.dsyrk(1.0, np.asfortranarray(Z), beta=1.0, c=C, overwrite_c=1, lower=1)
        t_prod += time.perf_counter() - t
        if Zkeep is None:
            Zkeep = Z
    t_seq = time.perf_counter() - t0
    del C
    flops_sym = float(n) * n * counts.used  # useful flops of Z Z^T (symmetric: n^2 m)
    out["grm"] = {
        "total_s": t_grm, "sequential_total_s": t_seq, "product_s": t_prod, "add_s": 0.0,
        "standardise_and_read_s": t_seq - t_prod, "variants_used": counts.used,
        "product_gflops_as_gemm": 2 * flops_sym / t_prod / 1e9,
        "product_gflops_useful_syrk": flops_sym / t_prod / 1e9,
        "accumulation_gflops_as_gemm": 2 * flops_sym / t_prod / 1e9,
        "accumulation_vs_numpy_gemm": 2 * flops_sym / t_prod / 1e9 / ref_gflops,
        "useful_vs_numpy_gemm": flops_sym / t_prod / 1e9 / ref_gflops,
    }
    # the accumulation used before (Z Z^T into a temporary, then +=), one block
    if Zkeep is not None:
        C = np.zeros((n, n), order="F")
        Zt = np.asfortranarray(Zkeep)
        blas.dsyrk(1.0, Zt, beta=1.0, c=C, overwrite_c=1, lower=1)
        t_syrk = min(_timed(lambda: blas.dsyrk(1.0, Zt, beta=1.0, c=C, overwrite_c=1, lower=1))
                     for _ in range(2))
        t_mm = min(_timed(lambda: Zt @ Zt.T) for _ in range(2))
        t_mmadd = min(_timed(lambda: C.__iadd__(Zt @ Zt.T)) for _ in range(2))
        out["grm_one_block_alternatives"] = {
            "b": int(Zt.shape[1]), "Z_ZT_s": t_mm, "Z_ZT_plus_add_s": t_mmadd,
            "dsyrk_inplace_s": t_syrk}
        del C, Zt, Zkeep

    t = time.perf_counter()
    QS = economic_qs(K)
    out["eigh_s"] = time.perf_counter() - t
    kin = Kinship(K, QS, "GRM", counts.used)

    import pandas as pd

    ph = pd.read_csv(f"{prefix}.pheno.tsv", sep="\t")
    X = np.ones((n, 1))
    t = time.perf_counter()
    null = fit_null_arrays(ph["quant"].to_numpy(float), None, X, ["intercept"], kin, "normal")
    out["null_normal_s"] = time.perf_counter() - t  # LMM fit + scanner set-up (Cholesky)
    scanner = null.scanner
    assert scanner is not None

    # scan kernel
    t_read = t_qc = t_white = t_rest = 0.0
    done = 0
    t0 = time.perf_counter()
    it = iter_blocks(bfile, vidx, bs_scan)
    while True:
        t = time.perf_counter()
        nxt = next(it, None)
        t_read += time.perf_counter() - t
        if nxt is None:
            break
        _, block = nxt
        t = time.perf_counter()
        qc = block_qc(block, 0.0, 5.0, 1.0)
        ok = np.flatnonzero(qc.ok)
        M = block[:, ok] if ok.size < block.shape[1] else block
        t_qc += time.perf_counter() - t
        t = time.perf_counter()
        Mw = scanner.whiten(M)
        t_white += time.perf_counter() - t
        t = time.perf_counter()
        scanner.fast_scan(Mw, whitened=True)
        t_rest += time.perf_counter() - t
        done += M.shape[1]
    flops = float(n) * n * done
    out["scan"] = {
        "total_s": time.perf_counter() - t0, "read_s": t_read, "qc_impute_s": t_qc,
        "whiten_dtrsm_s": t_white, "stats_s": t_rest, "variants": done,
        "whiten_gflops": flops / t_white / 1e9,
        "kernel_gflops": flops / (t_white + t_rest) / 1e9,
        "whiten_vs_numpy_gemm": flops / t_white / 1e9 / ref_gflops,
        "kernel_vs_numpy_gemm": flops / (t_white + t_rest) / 1e9 / ref_gflops,
    }
    # cost of one EP sweep at this n (a full fit takes tens of sweeps): the posterior
    # factorisation (dpotrf + dtrtri, 2 n^3 / 3 flops) and the tilted moments (n_int points)
    from glimix_cli.model.gaussian import DenseCore
    from glimix_cli.model.likelihoods import make_likelihood

    yb = (ph["binary"].to_numpy(float) == 2).astype(float)
    tau = np.full(n, 0.2)
    t = time.perf_counter()
    core = DenseCore(K, tau)
    core.posterior_diag()
    core.posterior_apply(np.ones(n))
    t_core = time.perf_counter() - t
    del core
    lik = make_likelihood(yb, "bernoulli")
    t = time.perf_counter()
    lik.tilted_moments(np.zeros(n), np.ones(n), 1000)
    t_tm = time.perf_counter() - t
    out["ep_sweep"] = {"posterior_factorisation_s": t_core, "tilted_moments_s": t_tm,
                       "factorisation_gflops": (2 * float(n) ** 3 / 3) / t_core / 1e9}
    if bernoulli:
        y = yb
        t = time.perf_counter()
        nb = fit_null_arrays(y, None, X, ["intercept"], kin, "bernoulli")
        out["null_bernoulli_s"] = time.perf_counter() - t
        out["null_bernoulli"] = {"status": nb.status, "iterations": nb.iterations,
                                 "evaluations": nb.evaluations, "ep_sweeps": nb.ep_sweeps,
                                 "h2_liability": nb.h2_liability}
    out["load_end"] = loadavg()
    return out


# ------------------------------------------------------------------------------------------
# the peers
# ------------------------------------------------------------------------------------------
def tool_commands(prefix: Path, outdir: Path, tools: list[str], threads: int) -> dict:
    """name -> list of (step, argv, result file) run in sequence (GEMMA has two steps)."""
    glimix = [sys.executable, "-m", "glimix_cli", "scan", "--bfile", str(prefix),
              "--pheno", f"{prefix}.pheno.tsv", "--quiet"]
    cmds: dict = {}
    if "glimix-normal" in tools:
        o = outdir / "glimix_normal.tsv"
        cmds["glimix-normal"] = [("scan", [*glimix, "--pheno-name", "quant", "--out", str(o)], o)]
    if "glimix-bernoulli" in tools:
        o = outdir / "glimix_bernoulli.tsv"
        cmds["glimix-bernoulli"] = [("scan", [*glimix, "--pheno-name", "binary", "-l",
                                              "bernoulli", "--out", str(o)], o)]
    if "gemma" in tools:
        kin = outdir / "gemma_kin.cXX.txt"
        cmds["gemma"] = [
            ("gk", ["gemma", "-bfile", str(prefix), "-gk", "1", "-outdir", str(outdir),
                    "-o", "gemma_kin"], kin),
            ("lmm", ["gemma", "-bfile", str(prefix), "-k", str(kin), "-lmm", "2",
                     "-outdir", str(outdir), "-o", "gemma_lmm"], outdir / "gemma_lmm.assoc.txt"),
        ]
    p2 = ["plink2", "--bfile", str(prefix), "--pheno", f"{prefix}.pheno.tsv",
          "--glm", "allow-no-covars", "--threads", str(threads)]
    if "plink2-linear" in tools:
        cmds["plink2-linear"] = [("glm", [*p2, "--pheno-name", "quant", "--out",
                                          str(outdir / "p2")], outdir / "p2.quant.glm.linear")]
    if "plink2-logistic" in tools:
        cmds["plink2-logistic"] = [("glm", [*p2, "--pheno-name", "binary", "--out",
                                            str(outdir / "p2b")],
                                    outdir / "p2b.binary.glm.logistic.hybrid")]
    return cmds


def run_tool(name: str, steps: list, outdir: Path, timeout: float | None = None) -> Timed:
    parts = []
    for step, argv, result in steps:
        if result.exists() and step != "gk":
            result.unlink()
        r = run_timed(f"{name}:{step}", argv, REPO, outdir / f"{name}_{step}.log",
                      timeout=timeout)
        r.rows = count_rows(result, header=0 if step == "gk" else 1)
        parts.append(r)
        if r.rc != 0:
            break
    tot = Timed(name, [" ".join(p.cmd) for p in parts], sum(p.wall_s for p in parts),
                max(p.max_rss_mb for p in parts), max(p.rc for p in parts),
                parts[0].load_before, parts[-1].load_after, parts[-1].rows,
                extra={"cpu_s": sum(p.extra["cpu_s"] for p in parts),
                       "timed_out": any(p.extra["timed_out"] for p in parts)})
    if len(parts) > 1:
        tot.extra["steps"] = {p.tool.split(":")[1]: {"wall_s": p.wall_s,
                                                     "max_rss_mb": p.max_rss_mb} for p in parts}
    return tot


def med(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


# ------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------
ALL_TOOLS = ["glimix-normal", "glimix-bernoulli", "gemma", "plink2-linear", "plink2-logistic"]
PEERS = {"gemma": "gemma", "plink2-linear": "plink2", "plink2-logistic": "plink2"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="samples")
    ap.add_argument("--m", type=int, default=200_000, help="variants")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of every command")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS),
                    help=f"comma-separated subset of {','.join(ALL_TOOLS)}")
    ap.add_argument("--skip-missing-peers", action="store_true",
                    help="skip GEMMA / plink2 when not on PATH (else it is an error)")
    ap.add_argument("--pieces-m", type=int, default=50_000,
                    help="variants used for the in-process piece timings (<= m)")
    ap.add_argument("--no-pieces", action="store_true", help="skip the in-process pieces")
    ap.add_argument("--no-bernoulli-piece", action="store_true",
                    help="skip the in-process Bernoulli EP null fit")
    ap.add_argument("--no-memcheck", action="store_true", help="skip the m/4 vs m RSS check")
    ap.add_argument("--reps-memcheck", type=int, default=1,
                    help="repetitions of the m/4 run of the memory check")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="plink2 --threads")
    ap.add_argument("--reps-bernoulli", type=int, default=None,
                    help="repetitions of glimix-bernoulli (default --reps; it is the slow one)")
    ap.add_argument("--timeout", type=float, default=None,
                    help="kill a command after this many seconds (recorded as failed)")
    ap.add_argument("--blas-threads", default=None,
                    help="OPENBLAS_NUM_THREADS for this process, glimix and GEMMA "
                         "(default: the environment's, i.e. all cores)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=HERE / "work")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results")
    ap.add_argument("--tag", default="", help="suffix of the JSON file name")
    ap.add_argument("--clean", action="store_true", help="delete the generated data at the end")
    args = ap.parse_args(argv)

    if args.reps_bernoulli is None:
        args.reps_bernoulli = args.reps
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = sorted(set(tools) - set(ALL_TOOLS))
    if bad:
        ap.error(f"--tools: unknown {', '.join(bad)}; choose from {', '.join(ALL_TOOLS)}")
    skipped = {}
    for t in list(tools):
        exe = PEERS.get(t)
        if exe and shutil.which(exe) is None:
            if not args.skip_missing_peers:
                ap.error(f"{exe} not on PATH: apt-get install -y {exe}, or --skip-missing-peers")
            skipped[t] = f"{exe} not installed"
            tools.remove(t)
    if not Path("/usr/bin/time").exists():
        ap.error("/usr/bin/time not found: apt-get install -y time")

    n, m = args.n, args.m
    data = args.workdir / f"sim_n{n}_m{m}_s{args.seed}"
    prefix = data / "cohort"
    outdir = data / "out"
    outdir.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(args.workdir).free / 2**30
    need_gb = (1.25 * m * ((n + 3) // 4) + 30.0 * n * n + 400.0 * m) / 2**30
    if free_gb < need_gb + 2:
        ap.error(f"{args.workdir}: {free_gb:.1f} GiB free, need about {need_gb:.1f} GiB")

    res: dict = {
        "issue": 5, "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "numpy": np.__version__,
                    "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
                    "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
                    "load_start": loadavg()},
        "skipped": skipped,
    }
    print(f"# glimix benchmark n={n:,} m={m:,} reps={args.reps} cores={os.cpu_count()} "
          f"load={loadavg()}", flush=True)

    meta_file = data / "sim.json"
    if meta_file.exists() and json.loads(meta_file.read_text()).get("complete"):
        sim = json.loads(meta_file.read_text())
        print(f"simulation: reusing {prefix}", flush=True)
    else:
        t = time.perf_counter()
        sim = simulate_cohort(prefix, n, m, seed=args.seed)
        sim["seconds"] = time.perf_counter() - t
        sim["complete"] = True
        meta_file.write_text(json.dumps(sim))
        print(f"simulation: {sim['seconds']:.1f} s -> {prefix}.bed "
              f"({Path(f'{prefix}.bed').stat().st_size / 2**20:.0f} MiB)", flush=True)
    res["simulation"] = sim

    from glimix_cli.io.plink import block_size_for_budget

    bs_scan = min(block_size_for_budget(n, 256), 4096)
    res["numpy_gemm"] = numpy_gemm_gflops(n, bs_scan)
    ref = res["numpy_gemm"]["gemm_n_n_b"]["gflops"]
    print(f"numpy dgemm: {ref:.1f} GFLOP/s at ({n},{n})x({n},{bs_scan}); "
          f"{res['numpy_gemm']['gemm_square']['gflops']:.1f} at "
          f"{res['numpy_gemm']['gemm_square']['shape'][0]}^3", flush=True)

    if not args.no_pieces:
        m_sub = min(args.pieces_m, m)
        print(f"pieces: in-process on the first {m_sub:,} variants ...", flush=True)
        res["pieces"] = glimix_pieces(prefix, m_sub, not args.no_bernoulli_piece, ref)
        _print_pieces(res["pieces"], m)

    cmds = tool_commands(prefix, outdir, tools, args.threads)
    runs: dict[str, list[Timed]] = {t: [] for t in cmds}
    for rep in range(args.reps):
        for name, steps in cmds.items():
            if name == "glimix-bernoulli" and rep >= args.reps_bernoulli:
                continue
            r = run_tool(name, steps, outdir, args.timeout)
            runs[name].append(r)
            print(f"  rep {rep + 1}: {name:17s} {r.wall_s:8.2f} s  {r.max_rss_mb:8.0f} MB  "
                  f"rows={r.rows} load={r.load_before}", flush=True)
    res["runs"] = {k: [asdict(r) for r in v] for k, v in runs.items()}
    summary = {k: {"wall_s": med([r.wall_s for r in v]), "max_rss_mb": med([r.max_rss_mb
                                                                           for r in v]),
                   "cpu_s": med([r.extra["cpu_s"] for r in v]),
                   "rows": v[-1].rows, "reps": len(v), "ok": all(r.rc == 0 for r in v)}
               for k, v in runs.items()}
    for k, v in runs.items():
        if v and "steps" in v[0].extra:
            summary[k]["steps"] = {s: med([r.extra["steps"][s]["wall_s"] for r in v
                                           if s in r.extra["steps"]])
                                   for s in v[0].extra["steps"]}
    res["summary"] = summary

    if not args.no_memcheck and "glimix-normal" in cmds:
        m4 = max(m // 4, 1)
        sub = data / f"first{m4}"
        sub.mkdir(exist_ok=True)
        sprefix = sub / "cohort"
        if not Path(f"{sprefix}.bed").exists():
            subset_fileset(prefix, sprefix, m4)
            shutil.copy(f"{prefix}.pheno.tsv", f"{sprefix}.pheno.tsv")
        small = tool_commands(sprefix, sub, ["glimix-normal"], args.threads)["glimix-normal"]
        rs = [run_tool("glimix-normal-m4", small, sub, args.timeout)
              for _ in range(args.reps_memcheck)]
        big = summary["glimix-normal"]
        rss_small = med([r.max_rss_mb for r in rs])
        res["memcheck"] = {
            "m_small": m4, "m_big": m, "rss_small_mb": rss_small, "rss_big_mb": big["max_rss_mb"],
            "rss_increase": big["max_rss_mb"] / rss_small - 1.0,
            "wall_small_s": med([r.wall_s for r in rs]), "wall_big_s": big["wall_s"],
            "runs_small": [asdict(r) for r in rs]}
        print(f"memcheck: peak RSS {rss_small:.0f} MB at m={m4:,}, {big['max_rss_mb']:.0f} MB "
              f"at m={m:,} (+{100 * res['memcheck']['rss_increase']:.1f} %)", flush=True)

    res["machine"]["load_end"] = loadavg()
    _print_table(res)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.results_dir / f"run_n{n}_m{m}{'_' + args.tag if args.tag else ''}_{stamp}.json"
    path.write_text(json.dumps(res, indent=1, default=str))
    print(f"wrote {path}")
    if args.clean:
        shutil.rmtree(data, ignore_errors=True)
    failed = [k for k, v in summary.items() if not v["ok"]]
    return 1 if failed else 0


def _print_pieces(p: dict, m: int) -> None:
    k = m / p["m_sub"]
    g, s = p["grm"], p["scan"]
    rows = [
        ("read/decode .bed (lookup table)", p["decode_kernel_f32_s"], True),
        ("read blocks -> float64", p["read_blocks_f64_s"], True),
        ("GRM as in the pipeline (kinship.grm.grm)", g["total_s"], True),
        ("GRM timed in halves: total", g.get("sequential_total_s", g["total_s"]), True),
        ("  GRM standardise + read", g["standardise_and_read_s"], True),
        ("  GRM dsyrk product", g["product_s"], True),
        ("eigendecomposition (eigh)", p["eigh_s"], False),
        ("null fit normal (LMM + scanner Cholesky)", p["null_normal_s"], False),
        ("scan total", s["total_s"], True),
        ("  scan read", s["read_s"], True),
        ("  scan QC + impute", s["qc_impute_s"], True),
        ("  scan whiten (dtrsm)", s["whiten_dtrsm_s"], True),
        ("  scan statistics", s["stats_s"], True),
    ]
    e = p["ep_sweep"]
    rows.append(("EP sweep: posterior factorisation", e["posterior_factorisation_s"], False))
    rows.append(("EP sweep: tilted moments (n_int=1000)", e["tilted_moments_s"], False))
    if "null_bernoulli_s" in p:
        rows.append(("null fit bernoulli (EP)", p["null_bernoulli_s"], False))
    print(f"\n  glimix piece                                 measured(m={p['m_sub']:,})  "
          f"scaled to m={m:,}")
    for name, sec, scales in rows:
        print(f"  {name:44s} {sec:10.2f} s  {sec * (k if scales else 1):10.2f} s")
    print(f"  GRM dsyrk {g['product_gflops_useful_syrk']:.1f} GFLOP/s useful (n^2 m), "
          f"{g['product_gflops_as_gemm']:.1f} counted as gemm (2 n^2 m; "
          f"{100 * g['accumulation_vs_numpy_gemm']:.0f} % of numpy dgemm); scan whiten "
          f"{s['whiten_gflops']:.1f} GFLOP/s ({100 * s['whiten_vs_numpy_gemm']:.0f} %), "
          f"kernel {s['kernel_gflops']:.1f} GFLOP/s ({100 * s['kernel_vs_numpy_gemm']:.0f} %)\n",
          flush=True)


def _print_table(res: dict) -> None:
    s = res["summary"]
    print(f"\n{'tool':18s} {'wall s (median)':>16s} {'CPU s':>9s} {'peak RSS MB':>12s} "
          f"{'rows':>9s} {'reps':>5s}")
    for k, v in s.items():
        steps = ""
        if "steps" in v:
            steps = "  (" + ", ".join(f"{a} {b:.1f} s" for a, b in v["steps"].items()) + ")"
        print(f"{k:18s} {v['wall_s']:16.2f} {v['cpu_s']:9.1f} {v['max_rss_mb']:12.0f} "
              f"{v['rows']!s:>9s} "
              f"{v['reps']:5d}{steps}")
    ratios = {}
    pairs = [("glimix-normal", "gemma"), ("glimix-normal", "plink2-linear"),
             ("glimix-bernoulli", "plink2-logistic")]
    for a, b in pairs:
        if a in s and b in s:
            r = ratios[f"{a}/{b}"] = {"wall": s[a]["wall_s"] / s[b]["wall_s"],
                                      "cpu": s[a]["cpu_s"] / s[b]["cpu_s"],
                                      "rss": s[a]["max_rss_mb"] / s[b]["max_rss_mb"]}
            print(f"ratio {a}/{b}: wall {r['wall']:.2f}x, CPU {r['cpu']:.2f}x, "
                  f"peak RSS {r['rss']:.2f}x")
    res["ratios"] = ratios


if __name__ == "__main__":
    sys.exit(main())
