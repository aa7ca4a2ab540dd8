"""How much type-I error an exact test can spend with 20-40 cases: the discreteness bound.

    python validation/discreteness_bound.py --out validation/discreteness_bound.json

With a fixed number of cases ``N1`` and a variant whose genotype counts are
``(n0, n1, n2)``, the carrier-allele count among cases ``T = sum_cases g_i`` has, when the
samples are exchangeable, a bivariate hypergeometric law (``h`` heterozygous and ``k``
homozygous cases, ``T = h + 2 k``):

    P(h, k) = C(n1, h) C(n2, k) C(n0, N1 - h - k) / C(n, N1).

The saddlepoint test of ``glimix`` is two-sided about the mean, ``p = P(|S| >= |s|)`` with
``S = T - E[T]`` (``glimix_cli/model/spa.py``); its exact counterpart under this law has
type-I error at level alpha

    size(alpha) = sum_t P(T = t) 1[p(t) <= alpha] <= alpha,

which falls short of alpha because ``T`` takes few values: only outcomes whose exact tail
is below alpha can be rejected. This script computes ``size(alpha) / alpha`` averaged over
the variants of the issue-8 validation cohort (``validation/rare_binary.py``: same
simulation, same seed, same MAC >= 5 filter) at its case counts, for the exact test and for
the mid-p test ``P(|S| > |s|) + P(|S| = |s|) / 2``, and sets them beside the measured type-I
of the saddlepoint test (``validation/rare_binary.json``).

It ignores relatedness and covariates (it is exact for exchangeable samples, the limit
the fitted models of the rare traits reach: v0 < 1e-6 at 1% cases), so it is the bound on
what a valid non-randomised test of this two-sided form can spend, not a simulation of the
GLMM.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.special import gammaln

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rare_binary import ALPHAS, cohort  # noqa: E402

from glimix_cli.pipeline.qc import block_qc  # noqa: E402


def _lchoose(n, k):
    with np.errstate(invalid="ignore"):
        out = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    return np.where((k >= 0) & (k <= n), out, -np.inf)


def carrier_law(counts: np.ndarray, n_cases: int) -> np.ndarray:
    """``P(T = t)``, t = 0..2 N1, one row per variant; ``counts`` is (m, 3): n0, n1, n2."""
    n0, n1, n2 = (counts[:, j][:, None] for j in range(3))
    n = n0 + n1 + n2
    h = np.arange(n_cases + 1)[None, :]
    law = np.zeros((counts.shape[0], 2 * n_cases + 1))
    for k in range(n_cases + 1):
        lp = (_lchoose(n1, h) + _lchoose(n2, np.full_like(h, k)) + _lchoose(n0, n_cases - h - k)
              - _lchoose(n, np.full_like(h, n_cases)))
        top = n_cases - k  # h + k <= N1
        law[:, 2 * k: 2 * k + top + 1] += np.exp(lp[:, :top + 1])
    return law


def sizes(law: np.ndarray, mean: np.ndarray, alphas) -> dict[str, np.ndarray]:
    """Type-I error per variant of the exact and the mid-p two-sided test at each alpha."""
    t = np.arange(law.shape[1])[None, :]
    dev = np.abs(t - mean[:, None])
    tol = 1e-9
    # p(t) = sum over t' with dev(t') >= dev(t): sort each row by deviation, descending
    order = np.argsort(-dev, axis=1, kind="stable")
    d_sorted = np.take_along_axis(dev, order, axis=1)
    p_sorted = np.take_along_axis(law, order, axis=1)
    cum = np.cumsum(p_sorted, axis=1)
    # ties (t and 2E - t at the same deviation): the tail includes every tied outcome
    exact = np.empty_like(cum)
    strict = np.empty_like(cum)
    m = cum.shape[0]
    for i in range(m):
        nd = -d_sorted[i]  # ascending
        # p(t): every outcome at least as far from the mean (ties included) ...
        group_end = np.searchsorted(nd, nd + tol, side="right") - 1
        # ... and, for the mid-p, those strictly farther
        n_strict = np.searchsorted(nd, nd - tol, side="left")
        exact[i] = cum[i, group_end]
        strict[i] = np.where(n_strict > 0, cum[i, np.maximum(n_strict - 1, 0)], 0.0)
    mid = 0.5 * (exact + strict)
    out = {}
    for name, p in (("exact", exact), ("midp", mid)):
        out[name] = np.stack([(p_sorted * (p <= a * (1 + 1e-9))).sum(axis=1) for a in alphas],
                             axis=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", type=int, default=440)
    ap.add_argument("--variants", type=int, default=50_000)
    ap.add_argument("--fractions", default="0.02,0.01",
                    help="case fractions (the law has (N1 + 1)^2 terms per variant: keep N1 small)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--measured", default=str(Path(__file__).parent / "rare_binary.json"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    G, _ = cohort(args.families, args.variants, args.seed)
    n = G.shape[0]
    qc = block_qc(G, 0.0, 5.0, 1.0)
    keep = np.flatnonzero(qc.ok)
    Gk = G[:, keep]
    counts = np.stack([(Gk == v).sum(axis=0) for v in (0, 1, 2)], axis=1).astype(float)
    maf = qc.maf[keep]
    measured = {}
    if Path(args.measured).exists():
        measured = json.loads(Path(args.measured).read_text())
    alphas = [a for a in ALPHAS if a >= 1e-3]
    result = {"n": n, "variants": int(keep.size), "alphas": alphas, "fractions": {}}
    print(f"n = {n}, {keep.size} variants with MAC >= 5")
    print("| cases | test | type-I / alpha at " + " / ".join(f"{a:g}" for a in alphas)
          + " | MAF 1-5% | MAF >= 5% |")
    print("|---|---|---|---|---|")
    for frac in (float(f) for f in args.fractions.split(",")):
        n_cases = int(round(frac * n))
        sz: dict[str, list] = {"exact": [], "midp": []}
        for lo in range(0, keep.size, 2000):
            c = counts[lo:lo + 2000]
            law = carrier_law(c, n_cases)
            mean = n_cases * (c[:, 1] + 2 * c[:, 2]) / n
            s = sizes(law, mean, alphas)
            for k in sz:
                sz[k].append(s[k])
        entry = {"cases": n_cases}
        rare = maf < 0.05
        for k in sz:
            S = np.concatenate(sz[k])
            ratio = S.mean(axis=0) / np.array(alphas)
            entry[k] = {"ratio": ratio.tolist(),
                        "ratio_maf_lt_5pct": (S[rare].mean(axis=0) / np.array(alphas)).tolist(),
                        "ratio_maf_ge_5pct": (S[~rare].mean(axis=0) / np.array(alphas)).tolist()}
            print(f"| {n_cases} ({frac:g}) | {k} test (bound) | "
                  + " / ".join(f"{r:.2f}" for r in ratio)
                  + f" | {entry[k]['ratio_maf_lt_5pct'][-1]:.2f} | "
                  f"{entry[k]['ratio_maf_ge_5pct'][-1]:.2f} |")
        got = measured.get(f"{frac:g}", {})
        if "spa" in got:
            r = [got["spa"][f"type1_{a:g}"] / a for a in alphas]
            lt = got["spa_maf_lt_0.05"][f"type1_{alphas[-1]:g}"] / alphas[-1]
            ge = got["spa_maf_ge_0.05"][f"type1_{alphas[-1]:g}"] / alphas[-1]
            entry["spa_measured"] = {"ratio": r, "ratio_maf_lt_5pct_last": lt,
                                     "ratio_maf_ge_5pct_last": ge,
                                     "n_tests": got["spa"]["n_tests"]}
            print(f"| {n_cases} ({frac:g}) | SPA, measured | " + " / ".join(f"{x:.2f}" for x in r)
                  + f" | {lt:.2f} | {ge:.2f} |")
        result["fractions"][f"{frac:g}"] = entry
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
