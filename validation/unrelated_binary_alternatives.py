"""The alternatives measured before choosing the GLM null for unrelated 0/1 traits.

    python validation/unrelated_binary_alternatives.py --reps 3

On ``../shared/data/EUR_subset`` (see ``unrelated_binary.py``), null traits at 50/20/10/2%
cases, each fitted by bernoulli and probit, and tested five ways:

* ``ml_sur``: the GLMM with v0 by maximum likelihood (up to its cap), surrogate LRT;
* ``ml_spa``: the same, saddlepoint on the EP posterior-mean probabilities (the default
  before issue 14);
* ``ml_cav``: the same, saddlepoint on EP's leave-one-out (cavity) predictive
  probabilities ``E[h(f_i) | y_-i]``, which do not contain the person's own outcome;
* ``glm_sur``/``glm_spa``: v0 = 0 (the GLM), the EP surrogate's z and its saddlepoint;
* ``glm_fisher``: v0 = 0, the expected-information score z (``spa.glm_score``) and its
  saddlepoint -- what glimix ships for the GLM route.

Type-I error at 1e-2/1e-3/1e-4 pooled over the replicates, and lambda_GC.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy.special import expit, logit
from scipy.stats import chi2

from glimix_cli.io.plink import iter_blocks
from glimix_cli.model.glmm import GLMMExpFam
from glimix_cli.model.spa import glm_score, spa_null, spa_pvalues
from glimix_cli.model.stats import chi2_1_logsf
from glimix_cli.pipeline.qc import block_qc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from unrelated_binary import FRACTIONS, load_eur, null_trait  # noqa: E402


def cavity_latent(glmm: GLMMExpFam, lik: str) -> np.ndarray:
    """``h^-1(E[h(f_i)])`` under each EP cavity (leave-one-out predictive)."""
    st = glmm._ep()
    s2 = st.core.posterior_diag()
    with np.errstate(divide="ignore", invalid="ignore"):
        ct = 1 / s2 - st.tau
        ok = np.isfinite(ct) & (ct > 0)
        v = np.where(ok, 1 / np.where(ok, ct, 1.0), s2)
        m = np.where(ok, (st.post_mean / s2 - st.eta) * v, st.post_mean)
    if lik == "probit":
        return m / np.sqrt(1 + v)
    x, w = np.polynomial.hermite_e.hermegauss(64)
    p = (expit(m[:, None] + np.sqrt(v)[:, None] * x) * w).sum(1) / w.sum()
    return logit(p)


def fit(y, X, K, lik, v0=None):
    g = GLMMExpFam(y, lik, X, K=K, n_int=256)
    g.delta = 0.0
    g.fix("delta")
    g.scale_bounds = (1e-8, 30.0)
    if v0 is not None:
        g.scale = v0
        g.fix("scale")
    g.fit(verbose=False)
    return g


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    bfile, idx, _, X, K = load_eur()
    (_, G), = iter_blocks(bfile, np.arange(bfile.n_variants), bfile.n_variants, idx)
    qc = block_qc(G, 0.0, 5.0, 1.0)
    G = G[:, qc.ok]
    rng = np.random.default_rng(args.seed)
    for lik in ("probit", "bernoulli"):
        for frac in FRACTIONS:
            acc: dict[str, list] = {}
            for _ in range(args.reps):
                y = null_trait(X, frac, rng)
                g, g0 = fit(y, X, K, lik), fit(y, X, K, lik, 1e-8)
                for name, model in (("ml", g), ("glm", g0)):
                    r = model.to_normal().get_fixed_scale_scanner().fast_scan(G)
                    z = r["effsizes1"] / r["effsizes1_se"]
                    acc.setdefault(f"{name}_sur", []).append(chi2_1_logsf(z * z))
                    sn = spa_null(model.posteriori_mean(), X, lik, y=y)
                    acc.setdefault(f"{name}_spa", []).append(spa_pvalues(sn, G, z)[0])
                    if name == "ml":
                        sc = spa_null(cavity_latent(g, lik), X, lik, y=y)
                        acc.setdefault("ml_cav", []).append(spa_pvalues(sc, G, z)[0])
                    else:
                        S, V = glm_score(sn, G)
                        acc.setdefault("glm_fisher", []).append(
                            spa_pvalues(sn, G, S / np.sqrt(V))[0])
            for k, v in acc.items():
                p = np.exp(np.concatenate(v))
                p = p[np.isfinite(p)]
                lam = np.median(chi2.isf(p, 1)) / chi2.ppf(0.5, 1)
                t = " ".join(f"{np.mean(p < a) / a:.2f}" for a in (1e-2, 1e-3, 1e-4))
                print(f"{lik:9s} {frac:4g} {k:10s} lambda {lam:.3f}  typeI/alpha {t}",
                      flush=True)


if __name__ == "__main__":
    main()
