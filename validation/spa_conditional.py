"""The saddlepoint test with a fitted intercept against the exact conditional test.

    python validation/spa_conditional.py

Part 1 (exact conditional law): n = 2,000 samples, 20 cases, intercept-only null model
(mu = 20 / n, the fitted value), 50,000 variants with MAF uniform on [0.05, 0.5]. Given
the number of cases the score ``S = sum g y - mean(g) sum y`` is the genotype sum of a
random 20-subset (multivariate hypergeometric), enumerated exactly. For every variant
with saddlepoint p < 2e-3 it prints the median ratio to the exact conditional tail
``P(|S| >= |s|)`` and to the conditional mid-p value of: the shipped SPA (conditional on
the number of cases, Skovgaard's double saddlepoint), the unconditional SPA (the earlier
default), and the earlier mid-p attempt ``(SPA(s) + SPA(s + 1)) / 2`` on the latter.

Part 2 (type-I error): 100,000 variants per setting, 20 cases, the logistic null model
fitted per 2,000-variant block on a fresh trait; settings ``x_fixed`` (intercept and a
covariate with effect 0.3, exactly 20 cases) and ``random`` (intercept only, y ~
Bernoulli(0.01)). Type-I / alpha of the Normal test, the SPA as shipped, the
unconditional SPA, and the mid-p attempt, applied where |z| > 2 (the Normal p-value
elsewhere, as in the scan).
Results are discussed in docs/calibrated-test.md.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from scipy import stats
from scipy.special import expit

from glimix_cli.model.spa import SPA_Z_CUTOFF, spa_null, spa_pvalues
from glimix_cli.model.stats import chi2_1_logsf

ALPHAS = (0.05, 1e-2, 1e-3, 1e-4)


def _conditional_law(n: int, n_cases: int, n1: int, n2: int) -> np.ndarray:
    """P(T = t), T = X1 + 2 X2 the genotype sum of a random ``n_cases``-subset."""
    pt = np.zeros(2 * n_cases + 1)
    for x2 in range(min(n2, n_cases) + 1):
        for x1 in range(min(n1, n_cases - x2) + 1):
            if n_cases - x1 - x2 > n - n1 - n2:
                continue
            pt[x1 + 2 * x2] += np.exp(stats.hypergeom.logpmf(x2, n, n2, n_cases)
                                      + stats.hypergeom.logpmf(x1, n - n2, n1, n_cases - x2))
    return pt


def _uncond(null):
    """The same null without conditioning on the number of cases (the earlier default)."""
    return dataclasses.replace(null, conditional=None)


def _midp_logp(null, G, z, V):
    """(SPA(s) + SPA(s + 1)) / 2 of the unconditional SPA beyond the cut-off, the Normal
    p-value below it: an earlier attempt at a mid-p value."""
    null = _uncond(null)
    lp0, _ = spa_pvalues(null, G, z)
    z1 = np.sign(z) * (np.abs(z) + 1.0 / np.sqrt(V))
    lp1, _ = spa_pvalues(null, G, z1)
    out = np.minimum(np.logaddexp(lp0, lp1) - np.log(2), 0.0)
    return np.where(np.abs(z) > SPA_Z_CUTOFF, out, lp0)


def part1(rng, n=2000, n_cases=20, blocks=25, b=2000) -> dict:
    X = np.ones((n, 1))
    y = np.zeros(n)
    y[:n_cases] = 1
    mu = np.full(n, n_cases / n)
    W = mu * (1 - mu)
    null = spa_null(np.log(mu / (1 - mu)), X, "bernoulli", y=y)
    rows = []
    for _ in range(blocks):
        G = rng.binomial(2, rng.uniform(0.05, 0.5, size=b), size=(n, b)).astype(float)
        Gt = G - G.mean(0)
        V = (Gt * Gt * W[:, None]).sum(0)
        z = (Gt.T @ (y - mu)) / np.sqrt(V)
        lp, _ = spa_pvalues(null, G, z)
        lpu, _ = spa_pvalues(_uncond(null), G, z)
        lpm = _midp_logp(null, G, z, V)
        for j in np.flatnonzero(np.minimum(lp, lpu) < np.log(2e-3)):
            g = G[:, j]
            pt = _conditional_law(n, n_cases, int((g == 1).sum()), int((g == 2).sum()))
            mean, t = n_cases * g.mean(), float(g @ y)
            d = np.abs(np.arange(pt.size) - mean)
            s = abs(t - mean)
            exact = pt[d >= s - 1e-9].sum()
            mid = exact - 0.5 * pt[np.abs(d - s) < 1e-9].sum()
            rows.append((lp[j] - np.log(exact), lp[j] - np.log(mid),
                         lpu[j] - np.log(exact), lpu[j] - np.log(mid), lpm[j] - np.log(mid)))
    r = np.exp(np.median(np.array(rows), axis=0))
    return {"variants_p_lt_2e-3": len(rows), "tested": blocks * b,
            "median_spa_over_exact": float(r[0]), "median_spa_over_midp": float(r[1]),
            "median_unconditional_spa_over_exact": float(r[2]),
            "median_unconditional_spa_over_midp": float(r[3]),
            "median_midp_approx_over_midp": float(r[4])}


def part2(rng, setting: str, n=2000, n_cases=20, m=100_000, b=2000) -> dict:
    res = {"normal": [], "spa": [], "unconditional_spa": [], "midp_approx": []}
    for _ in range(0, m, b):
        if setting == "x_fixed":
            X = np.column_stack([np.ones(n), rng.normal(size=n)])
            y = np.zeros(n)
            y[np.argsort(-(0.3 * X[:, 1] + rng.gumbel(size=n)))[:n_cases]] = 1
        else:
            X = np.ones((n, 1))
            y = (rng.random(n) < n_cases / n).astype(float)
        beta = np.zeros(X.shape[1])
        beta[0] = np.log(y.mean() / (1 - y.mean()))
        for _ in range(50):
            mu = expit(X @ beta)
            beta += np.linalg.solve(X.T @ (X * (mu * (1 - mu))[:, None]), X.T @ (y - mu))
        mu = expit(X @ beta)
        W = mu * (1 - mu)
        null = spa_null(X @ beta, X, "bernoulli", y=y)
        G = rng.binomial(2, rng.uniform(0.05, 0.5, size=b), size=(n, b)).astype(float)
        Gt = G - X @ (null.H @ G)
        V = np.einsum("ij,i,ij->j", Gt, W, Gt)
        z = (Gt.T @ (y - mu)) / np.sqrt(V)
        res["normal"].append(chi2_1_logsf(z * z))
        res["spa"].append(spa_pvalues(null, G, z)[0])
        res["unconditional_spa"].append(spa_pvalues(_uncond(null), G, z)[0])
        res["midp_approx"].append(_midp_logp(null, G, z, V))
    out = {}
    for k, v in res.items():
        lp = np.concatenate(v)
        out[k] = {f"{a:g}": round(float(np.mean(lp < np.log(a))) / a, 3) for a in ALPHAS}
    return out


def main() -> None:
    rng = np.random.default_rng(3)
    res = {"part1": part1(rng)}
    print("part 1:", json.dumps(res["part1"]), flush=True)
    for setting in ("x_fixed", "random"):
        res[setting] = part2(np.random.default_rng(0), setting)
        print(f"part 2 {setting}:", json.dumps(res[setting]), flush=True)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
