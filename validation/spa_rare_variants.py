"""Why the saddlepoint test is conservative for rare variants when the fitted v0 is large.

    python validation/spa_rare_variants.py --fraction 0.02 --out validation/spa_rare_variants.json

Uses the cohort, null traits and cached null fits of ``validation/rare_binary.py`` (same
``--families/--variants/--seed/--cache``; missing fits are computed and cached). For the
null replicates of one case fraction it tests every variant with MAC >= 5, as the scan
does, and reports type-I / alpha by MAF class for:

``surrogate``
    the Normal reading of the GLMM score ``z`` (the fast scanner's LRT);
``spa``
    the default test: conditional mid-p saddlepoint with independent Bernoulli outcomes
    at ``h(posterior mean)``, the observation placed at ``|z|`` conditional SDs;
``spa_cavity``
    the same with each outcome's probability taken from its EP cavity (the predictive
    probability of ``y_i`` given every other outcome, which does not use ``y_i`` itself:
    ``E[h(f)]`` for ``f`` under the cavity Normal, 64-point Gauss-Hermite);
``spa_marginal``
    the same with the prior-predictive probabilities ``E[h(x beta + u_i)]``,
    ``u_i ~ N(0, v0 K_ii)``, which use no outcome at all;
``spa_at_score``
    the default saddlepoint evaluated at the realised independent-model score
    ``sum a_i (y_i - pi_i)`` instead of at ``|z|`` (no variance-ratio placement).

Also per replicate: the fitted v0, the sum of ``h(posterior mean)`` and of the cavity
probabilities (to compare with the number of cases), and the variance of ``z`` and of the
independent-model standardised score over the rare variants with their correlation.
Results are discussed in docs/calibrated-test.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rare_binary import cohort, fit_or_load
from scipy.special import expit, logit

from glimix_cli.model.glmm import GLMMNormal
from glimix_cli.model.spa import spa_null, spa_pvalues
from glimix_cli.model.stats import chi2_1_logsf
from glimix_cli.pipeline.qc import block_qc
from glimix_cli.testing import simulate_null_binary

ALPHAS = (0.05, 1e-2, 1e-3, 1e-4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--families", type=int, default=440)
    ap.add_argument("--variants", type=int, default=50_000)
    ap.add_argument("--fraction", type=float, default=0.02)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--v0", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--cache", default="/tmp/glimix_rare_binary_cache")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    G, K = cohort(args.families, args.variants, args.seed)
    n = K.shape[0]
    rng = np.random.default_rng(args.seed + 1)  # as rare_binary.py
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    cache = Path(args.cache) / f"n{n}_m{G.shape[1]}_s{args.seed}_v{args.v0:g}"
    qc = block_qc(G, 0.0, 5.0, 1.0)
    cols = np.flatnonzero(qc.ok)
    M = G[:, cols]
    M = np.where(np.isfinite(M), M, np.nanmean(M, axis=0))
    maf = qc.maf[cols]
    gh_x, gh_w = np.polynomial.hermite_e.hermegauss(64)
    gh_w = gh_w / gh_w.sum()
    frac = args.fraction
    tests = ("surrogate", "spa", "spa_cavity", "spa_marginal", "spa_at_score")
    lp = {t: [] for t in tests}
    reps = []
    for rep in range(args.reps):
        trng = np.random.default_rng([args.seed, int(frac * 1e4), rep])
        y = simulate_null_binary(K, X, trng, case_fraction=frac, v0=args.v0,
                                 beta=[0.0, 0.3]).y.astype(np.float64)
        fit = fit_or_load(cache, f"f{frac:g}_r{rep}", y, X, K)
        normal = GLMMNormal(fit["eta"], fit["tau"], X, K=K)
        normal.beta = fit["beta"]
        normal.scale = float(fit["scale"])
        normal.delta = float(fit["delta"])
        pm = normal.posteriori_mean()
        pv = np.diag(normal.posteriori_covariance()).copy()
        tau_c = 1.0 / pv - fit["tau"]  # cavity: the posterior marginal without site i
        m_c = (pm / pv - fit["eta"]) / tau_c
        p_cav = expit(m_c[:, None] + np.sqrt(1.0 / tau_c)[:, None] * gh_x) @ gh_w
        v0 = float(fit["scale"]) * (1 - float(fit["delta"]))
        p_marg = expit((X @ fit["beta"])[:, None]
                       + np.sqrt(v0 * np.diag(K))[:, None] * gh_x) @ gh_w
        r = normal.get_fixed_scale_scanner().fast_scan(M)
        z = r["effsizes1"] / r["effsizes1_se"]
        null = spa_null(pm, X, "bernoulli", y=y)
        null_cav = spa_null(logit(p_cav), X, "bernoulli", y=y)
        # the realised score of the independent model, in its conditional SDs
        pi0 = expit(null.logit_mu + null.conditional[1])
        w0 = pi0 * (1 - pi0)
        A = M - X @ (null.H @ M)
        c01 = A.T @ w0
        cvar = np.einsum("ij,i,ij->j", A, w0, A) - c01 ** 2 / null.conditional[3]
        z_ind = (A.T @ (y - pi0)) / np.sqrt(cvar)
        lp["surrogate"].append(chi2_1_logsf(z * z))
        lp["spa"].append(spa_pvalues(null, M, z)[0])
        lp["spa_cavity"].append(spa_pvalues(null_cav, M, z)[0])
        lp["spa_marginal"].append(spa_pvalues(spa_null(logit(p_marg), X, "bernoulli", y=y),
                                              M, z)[0])
        lp["spa_at_score"].append(spa_pvalues(null, M, z_ind)[0])
        rare = maf < 0.05
        reps.append({"cases": int(y.sum()), "v0": v0,
                     "sum_h_posterior_mean": float(null.mu.sum()),
                     "sum_cavity_p": float(p_cav.sum()), "sum_marginal_p": float(p_marg.sum()),
                     "rare_var_z": float(z[rare].var()), "rare_var_z_ind": float(z_ind[rare].var()),
                     "rare_corr": float(np.corrcoef(z[rare], z_ind[rare])[0, 1])})
        print(json.dumps(reps[-1]), flush=True)
    mf = np.tile(maf, args.reps)
    out = {"fraction": frac, "n": n, "replicates": reps, "type_I_over_alpha": {}}
    for name, mask in (("all", mf >= 0), ("MAF 1-5%", mf < 0.05), ("MAF >= 5%", mf >= 0.05)):
        row = {}
        for t in tests:
            v = np.concatenate(lp[t])[mask]
            row[t] = {f"{a:g}": round(float(np.mean(v < np.log(a))) / a, 3) for a in ALPHAS}
        row["N"] = int(mask.sum())
        out["type_I_over_alpha"][name] = row
        print(name, json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
