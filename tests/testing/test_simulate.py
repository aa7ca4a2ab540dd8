"""Tests of the cohort and trait simulator (glimix_cli.testing)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from glimix_cli.model.linalg import economic_qs
from glimix_cli.testing import (
    effect_for_variance,
    simulate_genotypes,
    simulate_null_binary,
    simulate_traits,
    standardised_grm,
)


@pytest.fixture(scope="module")
def cohort():
    """100 families of 4 (two parents, two full sibs) and 200 unrelated samples."""
    return simulate_genotypes(
        100, 4, 3000, (1, 2, 3), np.random.default_rng(11), n_unrelated=200,
        missing_rate=0.01, ld_copy=0.3,
    )


@pytest.fixture(scope="module")
def grm(cohort):
    return standardised_grm(cohort.dosage)


def _pairs(samples):
    """Index pairs: full sibs, parent-offspring, spouses, unrelated founders."""
    index = {iid: i for i, iid in enumerate(samples.iid)}
    kids = [i for i, f in enumerate(samples.father) if f != "0"]
    full_sibs = [(i, j) for i, j in itertools.combinations(kids, 2)
                 if samples.father[i] == samples.father[j]
                 and samples.mother[i] == samples.mother[j]]
    parent_child = [(i, index[samples.father[i]]) for i in kids if samples.father[i] in index]
    parent_child += [(i, index[samples.mother[i]]) for i in kids]
    founders = [i for i, f in enumerate(samples.father) if f == "0"]
    unrelated = [(i, j) for i, j in itertools.combinations(founders, 2)
                 if samples.fid[i] != samples.fid[j]]
    return full_sibs, parent_child, unrelated


def test_shapes_and_tables(cohort):
    n, m = cohort.dosage.shape
    assert (n, m) == (100 * 4 + 200, 3000)
    s, v = cohort.samples, cohort.variants
    assert len({(f, i) for f, i in zip(s.fid, s.iid, strict=True)}) == n
    assert set(s.sex.tolist()) == {1, 2}
    assert set(v.chrom.tolist()) == {"1", "2", "3"}
    assert len(set(v.variant_id.tolist())) == m
    assert all(vid.startswith("rs") and vid[2:].isdigit() for vid in v.variant_id)
    for c in ("1", "2", "3"):
        assert np.all(np.diff(v.pos[v.chrom == c]) > 0)
    assert set(v.a1.tolist()) | set(v.a2.tolist()) <= set("ACGT")
    assert np.all(v.a1 != v.a2)
    # founders have no parents; children's parents are in the same family
    kids = s.father != "0"
    assert np.all(s.mother[kids] != "0")
    assert all(f.startswith(fid) for f, fid in zip(s.father[kids], s.fid[kids], strict=True))


def test_reproducible_with_seed():
    a = simulate_genotypes(5, (3, 5), 200, 2, np.random.default_rng(3), n_unrelated=4,
                           missing_rate=0.02, ld_copy=0.5, half_sib_rate=0.5)
    b = simulate_genotypes(5, (3, 5), 200, 2, np.random.default_rng(3), n_unrelated=4,
                           missing_rate=0.02, ld_copy=0.5, half_sib_rate=0.5)
    np.testing.assert_array_equal(a.dosage, b.dosage)
    np.testing.assert_array_equal(a.samples.iid, b.samples.iid)
    np.testing.assert_array_equal(a.variants.variant_id, b.variants.variant_id)
    K = standardised_grm(a.dosage)
    ta = simulate_traits(a.dosage, K, None, np.random.default_rng(5), causal=[(1, 0.3)])
    tb = simulate_traits(b.dosage, K, None, np.random.default_rng(5), causal=[(1, 0.3)])
    for name in ("quant", "binary", "count", "successes", "trials"):
        np.testing.assert_array_equal(getattr(ta, name), getattr(tb, name))


def test_allele_frequencies_in_range(cohort):
    v = cohort.variants
    maf = np.minimum(v.freq, 1 - v.freq)
    assert maf.min() >= 0.01 and maf.max() <= 0.5
    assert np.any(v.freq > 0.5) and np.any(v.freq < 0.5)  # a1 is not always the minor allele
    G = cohort.dosage
    p = np.nanmean(G, axis=0) / 2
    assert np.all((p >= 0) & (p <= 1))
    # the sample frequency tracks the ancestral one (families add some noise)
    assert np.abs(p - v.freq).max() < 0.12
    assert np.corrcoef(p, v.freq)[0, 1] > 0.98


def test_dosage_values_and_missing_rate(cohort):
    G = cohort.dosage
    ok = np.isfinite(G)
    assert set(np.unique(G[ok]).tolist()) <= {0.0, 1.0, 2.0}
    assert abs((~ok).mean() - 0.01) < 0.002
    np.testing.assert_array_equal(G[ok], cohort.true_dosage[ok])


def test_mendelian_consistency(cohort):
    s, G = cohort.samples, cohort.true_dosage
    index = {iid: i for i, iid in enumerate(s.iid)}
    for i in np.flatnonzero(s.father != "0")[:50]:
        dad, mum = G[index[s.father[i]]], G[index[s.mother[i]]]
        # a child's a1 count lies between what the parents can transmit
        lo = (dad == 2).astype(int) + (mum == 2)
        hi = (dad > 0).astype(int) + (mum > 0)
        assert np.all((G[i] >= lo) & (G[i] <= hi))


def test_grm_relatedness(cohort, grm):
    full_sibs, parent_child, unrelated = _pairs(cohort.samples)
    assert len(full_sibs) == 100 and len(parent_child) == 400
    fs = np.array([grm[i, j] for i, j in full_sibs])
    po = np.array([grm[i, j] for i, j in parent_child])
    un = np.array([grm[i, j] for i, j in unrelated])
    assert abs(fs.mean() - 0.5) < 0.1
    assert abs(po.mean() - 0.5) < 0.1
    assert abs(un.mean()) < 0.02
    assert abs(np.diag(grm).mean() - 1) < 0.05


def test_half_sibs_and_populations():
    sim = simulate_genotypes(60, 5, 3000, 3, np.random.default_rng(2), half_sib_rate=0.5,
                             n_populations=2, fst=0.1, n_unrelated=60)
    s = sim.samples
    assert set(s.population.tolist()) == {0, 1}
    K = standardised_grm(sim.dosage)
    kids = np.flatnonzero(s.father != "0")
    half = [(i, j) for i, j in itertools.combinations(kids, 2)
            if s.mother[i] == s.mother[j] and s.father[i] != s.father[j]]
    assert len(half) > 20
    # structure inflates relatedness within a population; compare to unrelated in-pop pairs
    un = np.flatnonzero(s.fid == s.iid)
    base = np.mean([K[i, j] for i, j in itertools.combinations(un, 2)
                    if s.population[i] == s.population[j]])
    assert base > 0.03  # Fst = 0.1 shows up
    assert abs(np.mean([K[i, j] for i, j in half]) - base - 0.25) < 0.1


def test_case_fraction(cohort, grm):
    # logit: the expected fraction is solved exactly; the realised one has binomial noise
    # (sd 0.6% at n = 6000), so test it on a large unrelated sample
    n = 6000
    rng = np.random.default_rng(0)
    G = rng.binomial(2, 0.3, size=(n, 20)).astype(float)
    X = np.column_stack([np.ones(n), rng.standard_normal(n)])
    for seed, f in enumerate((0.1, 0.3, 0.5)):
        tr = simulate_traits(G, None, X, np.random.default_rng(seed), beta=[1.0, 0.5],
                             v1=1.5, causal=[(0, 0.5)], case_fraction=f)
        assert abs(tr.binary.mean() - f) < 0.02
        assert set(np.unique(tr.binary).tolist()) == {0, 1}
    # probit (liability threshold): exact, also with kinship
    m = cohort.dosage.shape[0]
    for seed, f in enumerate((0.1, 0.3, 0.5)):
        tr = simulate_traits(cohort.dosage, grm, None, np.random.default_rng(seed),
                             case_fraction=f, binary_link="probit")
        assert tr.binary.sum() == round(f * m)


def test_count_and_binomial_outcomes(cohort, grm):
    tr = simulate_traits(cohort.dosage, grm, None, np.random.default_rng(1),
                         causal=[(10, 0.4), (20, -0.3)], count_mean=3.0, max_trials=7)
    assert tr.count.dtype.kind == "i" and np.all(tr.count >= 0)
    assert abs(tr.count.mean() - 3.0) < 0.5
    assert tr.successes.dtype.kind == "i" and tr.trials.dtype.kind == "i"
    assert np.all((tr.successes >= 0) & (tr.successes <= tr.trials))
    assert tr.trials.min() == 1 and tr.trials.max() == 7
    np.testing.assert_allclose(tr.z, tr.fixed + tr.genetic + tr.causal + tr.residual)
    np.testing.assert_array_equal(tr.quant, tr.z)


def test_polygenic_variance_matches_v0(cohort, grm):
    QS = economic_qs(grm)
    draws = [simulate_traits(cohort.dosage, QS, None, np.random.default_rng(s), v0=2.0,
                             v1=0.0).genetic for s in range(30)]
    assert abs(np.mean([np.var(g) for g in draws]) - 2.0) < 0.3


def test_null_trait_has_no_causal_component(cohort, grm):
    tr = simulate_traits(cohort.dosage, grm, None, np.random.default_rng(4))
    assert np.all(tr.causal == 0)


def test_planted_effect_sign_recovered():
    sim = simulate_genotypes(0, 3, 50, 1, np.random.default_rng(8), n_unrelated=3000,
                             maf_range=(0.2, 0.5))
    G = sim.true_dosage.astype(float)
    causal = [(5, 0.4), (30, -0.4)]
    tr = simulate_traits(G, None, None, np.random.default_rng(9), v0=0.0, v1=1.0,
                         causal=causal, case_fraction=0.3)
    for outcome in (tr.quant, tr.binary, tr.count, tr.successes / tr.trials):
        for j, b in causal:
            slope = np.polyfit(G[:, j], outcome, 1)[0]
            assert np.sign(slope) == np.sign(b)
    # effect_for_variance gives the requested share
    b = effect_for_variance(G[:, 5], 0.05, 1.0)
    assert np.var(b * G[:, 5]) == pytest.approx(0.05)


def test_null_binary_exact_fraction(grm):
    t = simulate_null_binary(grm, None, np.random.default_rng(0), case_fraction=0.1, v0=1.0)
    assert t.y.sum() == t.n_cases == round(0.1 * grm.shape[0])
    t = simulate_null_binary(grm, None, np.random.default_rng(0), case_fraction=0.8)
    assert t.y.sum() == round(0.8 * grm.shape[0])


def test_conditional_bernoulli_matches_enumeration():
    # n = 4, k = 2: P(subset) is proportional to the product of its odds
    from glimix_cli.testing.traits import _conditional_bernoulli

    log_odds = np.array([-1.0, 0.0, 0.5, 2.0])
    subsets = list(itertools.combinations(range(4), 2))
    w = np.array([np.exp(log_odds[list(s)].sum()) for s in subsets])
    expected = w / w.sum()
    rng = np.random.default_rng(0)
    counts = dict.fromkeys(subsets, 0)
    n_draws = 4000
    for _ in range(n_draws):
        y = _conditional_bernoulli(log_odds, 2, rng)
        counts[tuple(np.flatnonzero(y).tolist())] += 1
    observed = np.array([counts[s] for s in subsets]) / n_draws
    se = np.sqrt(expected * (1 - expected) / n_draws)
    assert np.all(np.abs(observed - expected) < 4 * se)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="family_size"):
        simulate_genotypes(2, 2, 10, 1, rng)
    with pytest.raises(ValueError, match="maf_range"):
        simulate_genotypes(2, 3, 10, 1, rng, maf_range=(0.0, 0.5))
    G = np.ones((5, 3))
    with pytest.raises(ValueError, match="out of range"):
        simulate_traits(G, None, None, rng, causal=[(3, 1.0)])
    with pytest.raises(ValueError, match="binary_link"):
        simulate_traits(G, None, None, rng, binary_link="cloglog")
    with pytest.raises(ValueError, match="expected \\(5, 5\\)"):
        simulate_traits(G, np.eye(4), None, rng)
    with pytest.raises(ValueError, match="no polymorphic variant"):
        standardised_grm(np.zeros((5, 3)))
