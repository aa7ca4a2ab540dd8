"""Make the committed example cohort in example_data/ (deterministic: fixed seed).

Run from the repository root:

    python example_data/make_example_data.py

Writes cohort.bed/.bim/.fam, cohort.pheno.tsv, cohort.covar.tsv and causal.tsv next to
this script. Re-running gives byte-identical files on the same numpy version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from glimix_cli.io.plink_write import write_plink1
from glimix_cli.testing import (
    effect_for_variance,
    simulate_genotypes,
    simulate_traits,
    standardised_grm,
)

SEED = 20240607
OUT = Path(__file__).resolve().parent

N_FAMILIES = 120
FAMILY_SIZE = (4, 5)  # two genotyped parents + 2-3 children
N_UNRELATED = 65
N_VARIANTS = 5000
CHROMOSOMES = (1, 2, 3)
MAF_RANGE = (0.002, 0.5)  # the low end gives a few very rare and monomorphic variants
MISSING_RATE = 0.005
N_NA_PER_TRAIT = 6

SITES = ("north", "south", "east")



@dataclass(frozen=True)
class TraitDesign:
    total: float  # latent variance
    h2: float  # polygenic share v0 / total
    causal: tuple[tuple[int, float, int], ...]  # (slot, share of latent variance, sign)


# Latent-scale design per trait. A slot indexes the N_SLOTS causal variants chosen by
# pick_causal, so a slot used by two traits is a shared causal variant. Binary, count and
# binomial traits lose information through their observation noise, so their planted
# variants need larger latent shares to reach p < 1e-8 at n ~ 600.
TRAITS = {
    "quant": TraitDesign(1.0, 0.40, ((0, 0.090, +1), (1, 0.085, -1), (2, 0.080, +1),
                                     (3, 0.075, -1))),
    "binary": TraitDesign(8.0, 0.25, ((0, 0.18, +1), (4, 0.17, -1), (5, 0.16, +1))),
    "count": TraitDesign(1.0, 0.30, ((1, 0.15, -1), (6, 0.14, +1), (7, 0.13, +1))),
    "binomial": TraitDesign(3.0, 0.30, ((2, 0.14, +1), (4, 0.13, -1), (8, 0.12, +1),
                                        (3, 0.11, -1))),
}
N_SLOTS = 9
# Covariate effects on the latent scale, in units of the trait's latent sd:
# (age per 10 years, female vs male, south vs north, east vs north)
COVAR_EFFECTS = np.array([0.12, 0.15, 0.20, -0.15])


def pick_causal(dosage: np.ndarray, chrom: np.ndarray, rng: np.random.Generator) -> list[int]:
    """Common, well-called variants spread over the chromosomes, far from each other."""
    p = np.nanmean(dosage, axis=0) / 2
    maf = np.minimum(p, 1 - p)
    missing = np.isnan(dosage).sum(axis=0)
    ok = np.flatnonzero((maf > 0.2) & (missing <= 3))
    chosen: list[int] = []
    labels = np.unique(chrom)
    while len(chosen) < N_SLOTS:
        c = labels[len(chosen) % len(labels)]
        pool = ok[chrom[ok] == c]
        j = int(rng.choice(pool))
        if all(abs(j - k) > 200 for k in chosen):
            chosen.append(j)
    return chosen


def fmt(x: float, digits: int) -> str:
    return "NA" if not np.isfinite(x) else f"{x:.{digits}f}"


def main() -> None:
    rng = np.random.default_rng(SEED)

    # ---- genotypes --------------------------------------------------------------------
    geno = simulate_genotypes(
        N_FAMILIES, FAMILY_SIZE, N_VARIANTS, CHROMOSOMES, rng, n_unrelated=N_UNRELATED,
        maf_range=MAF_RANGE, missing_rate=MISSING_RATE, half_sib_rate=0.1, ld_copy=0.5,
    )
    s, v = geno.samples, geno.variants
    n = s.iid.shape[0]
    dosage = geno.dosage
    true_dosage = geno.true_dosage.astype(np.float64)

    # ---- covariates -------------------------------------------------------------------
    is_parent = (s.father == "0") & (s.fid != s.iid)
    is_child = s.father != "0"
    age = rng.integers(18, 81, size=n).astype(float)
    age[is_parent] = rng.integers(40, 76, size=int(is_parent.sum()))
    age[is_child] = rng.integers(18, 40, size=int(is_child.sum()))
    families = {f: i for i, f in enumerate(dict.fromkeys(s.fid))}
    family_site = rng.integers(len(SITES), size=len(families))
    site_index = family_site[[families[f] for f in s.fid]]  # families live at one site
    female = (s.sex == 2).astype(float)
    Xcov = np.column_stack([
        (age - 50) / 10, female, (site_index == 1).astype(float),
        (site_index == 2).astype(float),
    ])
    X = np.column_stack([np.ones(n), Xcov])

    # ---- traits -----------------------------------------------------------------------
    K = standardised_grm(dosage)
    slots = pick_causal(dosage, v.chrom, rng)
    causal_rows = []
    outcome: dict[str, np.ndarray] = {}
    for trait, spec in TRAITS.items():
        total = spec.total
        sd = np.sqrt(total)
        causal = []
        for slot, share, sign in spec.causal:
            j = slots[slot]
            b = sign * effect_for_variance(true_dosage[:, j], share, total)
            causal.append((j, b))
            causal_rows.append((trait, j, b))
        beta = np.concatenate([[0.0], COVAR_EFFECTS * sd])
        fixed_var = float(np.var(Xcov @ (COVAR_EFFECTS * sd)))
        v0 = spec.h2 * total
        v1 = total - v0 - fixed_var - sum(share * total for _, share, _ in spec.causal)
        if v1 <= 0:
            raise SystemExit(f"{trait}: the variance budget leaves no residual variance")
        tr = simulate_traits(
            true_dosage, K, X, rng, beta=beta, v0=v0, v1=v1, causal=causal,
            case_fraction=0.3, count_mean=3.0, max_trials=10, success_fraction=0.4,
        )
        if trait == "quant":
            outcome["quant"] = tr.quant
        elif trait == "binary":
            outcome["binary"] = tr.binary.astype(float)
        elif trait == "count":
            outcome["count"] = tr.count.astype(float)
        else:
            outcome["successes"] = tr.successes.astype(float)
            outcome["trials"] = tr.trials.astype(float)

    # a few missing phenotype values per trait (successes and trials go missing together)
    for trait in ("quant", "binary", "count", "successes"):
        na = rng.choice(n, size=N_NA_PER_TRAIT, replace=False)
        outcome[trait][na] = np.nan
        if trait == "successes":
            outcome["trials"][na] = np.nan
    age_na = rng.choice(n, size=2, replace=False)
    site_na = rng.choice(n, size=2, replace=False)
    age_out = age.copy()
    age_out[age_na] = np.nan
    site_out = np.array(SITES, dtype=object)[site_index]
    site_out[site_na] = "NA"

    # ---- two monomorphic variants, for the QC statuses ---------------------------------
    # (the MAF range already yields some naturally; these are explicit, one per
    # homozygote, on variants that are not causal)
    dosage = dosage.copy()
    causal_set = set(slots)
    mono = [j for j in (1234, 3456) if j not in causal_set]
    for j, value in zip(mono, (0.0, 2.0), strict=False):
        dosage[:, j] = np.where(np.isnan(dosage[:, j]), np.nan, value)

    # ---- write ------------------------------------------------------------------------
    write_plink1(
        OUT / "cohort", dosage, chrom=v.chrom.tolist(), variant_id=v.variant_id.tolist(),
        pos=v.pos.tolist(), a1=v.a1.tolist(), a2=v.a2.tolist(), fid=s.fid.tolist(),
        iid=s.iid.tolist(), sex=s.sex.tolist(),
    )
    with open(OUT / "cohort.pheno.tsv", "w", newline="\n") as fh:
        fh.write("FID\tIID\tquant\tbinary\tcount\tsuccesses\ttrials\n")
        for i in range(n):
            fh.write("\t".join([
                s.fid[i], s.iid[i], fmt(outcome["quant"][i], 4), fmt(outcome["binary"][i], 0),
                fmt(outcome["count"][i], 0), fmt(outcome["successes"][i], 0),
                fmt(outcome["trials"][i], 0),
            ]) + "\n")
    with open(OUT / "cohort.covar.tsv", "w", newline="\n") as fh:
        fh.write("FID\tIID\tage\tsex\tsite\n")
        for i in range(n):
            fh.write(f"{s.fid[i]}\t{s.iid[i]}\t{fmt(age_out[i], 0)}\t{s.sex[i]}\t"
                     f"{site_out[i]}\n")
    with open(OUT / "causal.tsv", "w", newline="\n") as fh:
        fh.write("trait\tvariant_id\tchromosome\tbase_pair_location\teffect\n")
        for trait, j, b in causal_rows:
            fh.write(f"{trait}\t{v.variant_id[j]}\t{v.chrom[j]}\t{v.pos[j]}\t{b:.4f}\n")


if __name__ == "__main__":
    main()
