"""Leave-one-chromosome-out: calibration and power with and without ``--loco``.

    python validation/loco.py --cohort mouse --reps 10 --binary-reps 2 \
        --out validation/loco_mouse_fixed.json
    python validation/loco.py --cohort mouse --reps 10 --binary-reps 2 --loco-fit full \
        --out validation/loco_mouse.json
    python validation/loco.py --cohort family --reps 30 --binary-reps 6 \
        --out validation/loco_family.json

Cohorts: ``mouse`` is GEMMA's heterogeneous-stock mice (``mouse_hs1940`` of Debian's
``gemma-doc``: 1,940 mice, 12,226 variants on chromosomes 1-19; strong, genome-wide
relatedness and long LD); ``family`` is ``example_data`` (600 people in nuclear families
plus unrelated, 5,000 variants on 3 chromosomes). The kinships are those ``glimix scan``
builds: the standardised GRM ``K`` of every variant, and ``K_-c`` without chromosome ``c``
(:func:`glimix_cli.kinship.loco.loco_grm`). Every replicate fits the null model with
``fit_null_arrays`` and tests with ``scan_block``, the code path of ``glimix scan``
(LOCO, as ``glimix scan --loco`` does: ``--loco-fit fixed``, the default, keeps the
whole-genome fit's variance components and refits the effects and EP sites on ``K_-c``;
``--loco-fit full`` refits everything, warm-started from the whole-genome fit).

``null``: for each chromosome ``c`` and replicate, a trait whose polygenic background
comes from the other chromosomes, ``g ~ N(0, h2 K_-c)`` (h2 = 0.5) -- the model LOCO fits
for ``c``, so these traits are model-consistent -- plus iid noise; Normal, and binary
(``Bernoulli(expit(-1.5 + g))`` with ``v0 = 1``, about 25% cases). The variants of ``c``
are null; they are tested with the whole-genome kinship (without LOCO) and with ``K_-c``.
Reported: lambda_GC of the pooled p-values and type-I error at 1e-2 and 1e-3.

``power``: the same background plus one planted variant on ``c`` (MAF >= 0.1) explaining
1.5% of the trait variance (Normal traits); and ``power_all``: the background from every
chromosome (``N(0, h2 K)``, the realistic case) plus the planted variant. Reported:
the mean chi-square at the planted variants and the fraction significant at 0.05 / m.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
from scipy.stats import chi2

from glimix_cli.io.plink import iter_blocks, open_bfile
from glimix_cli.kinship.loco import loco_grm
from glimix_cli.model.linalg import economic_qs
from glimix_cli.pipeline.kinship import Kinship
from glimix_cli.pipeline.null import fit_null_arrays
from glimix_cli.pipeline.scan import scan_block, scan_context

ROOT = Path(__file__).resolve().parents[1]
GEMMA = Path("/usr/share/doc/gemma/example")


def mouse_prefix(work: Path) -> Path:
    """The mice as a PLINK fileset with a 6-column .fam (GEMMA's has the traits appended)."""
    work.mkdir(parents=True, exist_ok=True)
    prefix = work / "mouse_hs1940"
    if not Path(f"{prefix}.bed").exists():
        import gzip

        for ext in ("bed", "bim"):
            with gzip.open(GEMMA / f"mouse_hs1940.{ext}.gz", "rb") as src, \
                    open(f"{prefix}.{ext}", "wb") as dst:
                shutil.copyfileobj(src, dst)
        with gzip.open(GEMMA / "mouse_hs1940.fam.gz", "rt") as src, \
                open(f"{prefix}.fam", "w") as dst:
            for line in src:
                f = line.split()
                dst.write("\t".join([*f[:4], "0", "-9"]) + "\n")
    return prefix


def _draw(rng: np.random.Generator, QS) -> np.ndarray:
    (Q0, _), S0 = QS
    return Q0 @ (np.sqrt(np.maximum(S0, 0)) * rng.normal(size=S0.size))


def _scan(bed: str, sidx, y, X, kin, lik, idx, start=None, fixed=False):
    null = fit_null_arrays(y, None, X, ["intercept"], kin, lik, binary_null="glmm",
                           start=start, fixed_variance=fixed)
    test = "spa" if lik == "bernoulli" else "surrogate"
    ctx = scan_context(bed, sidx, y, null, test, 0.0, 5.0, 1.0)
    r = scan_block(ctx, idx)
    ok = r.status == "ok"
    return null, np.power(10.0, -r.nlp[ok])


def _calib(p: np.ndarray) -> dict:
    p = np.asarray(p)
    lam = float(np.median(chi2.isf(p, 1)) / chi2.ppf(0.5, 1))
    return {"n": int(p.size), "lambda_gc": round(lam, 4),
            "type1_1e-2": round(float(np.mean(p < 1e-2)) / 1e-2, 3),
            "type1_1e-3": round(float(np.mean(p < 1e-3)) / 1e-3, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", choices=["mouse", "family"], default="mouse")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--binary-reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--loco-fit", choices=["fixed", "full"], default="fixed",
                    help="the LOCO null: the whole-genome variance components kept (glimix's "
                    "default, as SAIGE) or re-estimated on K_-c")
    a = ap.parse_args()
    fixed = a.loco_fit == "fixed"
    prefix = (mouse_prefix(ROOT / "benchmarks" / "work" / "mouse") if a.cohort == "mouse"
              else ROOT / "example_data" / "cohort")
    bf = open_bfile(prefix)
    sidx = np.arange(bf.n_samples)
    n = sidx.size
    X = np.ones((n, 1))
    t0 = time.perf_counter()
    res = loco_grm(bf)
    K = res.whole()
    QS = economic_qs(K)
    whole = Kinship(K, QS, "GRM")
    chrom = bf.variants["chrom"].to_numpy().astype(str)
    chroms = list(res.chrom_counts)
    loco = {}
    for c in chroms:
        Kc = res.minus(c)
        loco[c] = Kinship(Kc, economic_qs(Kc), f"-{c}")
    print(f"kinships in {time.perf_counter() - t0:.0f} s", flush=True)
    rng = np.random.default_rng(a.seed)
    bed = str(bf.bed)
    m = bf.n_variants
    out: dict = {"cohort": a.cohort, "n": n, "m": m, "chromosomes": len(chroms),
                 "reps": a.reps, "binary_reps": a.binary_reps, "seed": a.seed,
                 "loco_fit": a.loco_fit}
    # candidate planted variants per chromosome (MAF >= 0.1)
    planted_pool = {}
    for c in chroms:
        idx = np.flatnonzero(chrom == c)
        (_, G), = iter_blocks(bf, idx, idx.size, sidx)
        f = np.nanmean(G, axis=0) / 2
        planted_pool[c] = (idx, G, np.flatnonzero(np.minimum(f, 1 - f) >= 0.1))
    h2 = 0.5
    bonf = 0.05 / m
    for design in ("null", "power", "power_all"):
        p_plain, p_loco, chi_plain, chi_loco = [], [], [], []
        for c in chroms:
            idx, G, pool = planted_pool[c]
            for _ in range(a.reps):
                g = _draw(rng, (loco[c] if design != "power_all" else whole).QS)
                y = math.sqrt(h2) * g + math.sqrt(1 - h2) * rng.normal(size=n)
                if design != "null":
                    j = int(rng.choice(pool))
                    x = G[:, j] - np.nanmean(G[:, j])
                    x = np.nan_to_num(x) / np.nanstd(G[:, j])
                    y = y + math.sqrt(0.015 / (1 - 0.015)) * x
                if design == "null":
                    nw, pw = _scan(bed, sidx, y, X, whole, "normal", idx)
                    p_plain.append(pw)
                    p_loco.append(_scan(bed, sidx, y, X, loco[c], "normal", idx, nw, fixed)[1])
                else:  # the planted variant's row (the QC keeps every MAF >= 0.1 variant)
                    one = np.array([idx[j]])
                    nw, pw1 = _scan(bed, sidx, y, X, whole, "normal", one)
                    _, pl1 = _scan(bed, sidx, y, X, loco[c], "normal", one, nw, fixed)
                    chi_plain.append(float(chi2.isf(pw1[0], 1)))
                    chi_loco.append(float(chi2.isf(pl1[0], 1)))
        if design == "null":
            out["normal_null"] = {"without_loco": _calib(np.concatenate(p_plain)),
                                  "with_loco": _calib(np.concatenate(p_loco))}
        else:
            cp, cl = np.array(chi_plain), np.array(chi_loco)
            out[f"normal_{design}"] = {
                "planted": int(cp.size),
                "mean_chi2_without_loco": round(float(cp.mean()), 2),
                "mean_chi2_with_loco": round(float(cl.mean()), 2),
                "power_bonferroni_without_loco": round(float(np.mean(chi2.sf(cp, 1) < bonf)), 3),
                "power_bonferroni_with_loco": round(float(np.mean(chi2.sf(cl, 1) < bonf)), 3)}
        print(design, json.dumps({k: v for k, v in out.items() if k.startswith("normal_")
                                  and k.endswith(design)}), flush=True)
    # binary null traits
    p_plain, p_loco = [], []
    cases = []
    for c in chroms:
        idx = planted_pool[c][0]
        for _ in range(a.binary_reps):
            g = _draw(rng, loco[c].QS)
            y = (rng.random(n) < 1 / (1 + np.exp(-(-1.5 + g)))).astype(float)
            cases.append(float(y.mean()))
            nw, pw = _scan(bed, sidx, y, X, whole, "bernoulli", idx)
            nl, pl = _scan(bed, sidx, y, X, loco[c], "bernoulli", idx, nw, fixed)
            p_plain.append(pw)
            p_loco.append(pl)
    out["binary_null"] = {"case_fraction": round(float(np.mean(cases)), 3),
                          "without_loco": _calib(np.concatenate(p_plain)),
                          "with_loco": _calib(np.concatenate(p_loco))}
    print("binary", json.dumps(out["binary_null"]), flush=True)
    out["seconds"] = round(time.perf_counter() - t0)
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
