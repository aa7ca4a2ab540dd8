"""Sample matching across genotypes, phenotype, covariates and kinship."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glimix_cli.errors import SampleMatchError
from glimix_cli.io.samples import match_samples
from glimix_cli.io.tables import Covariates, Trait


def _fam(fid, iid) -> pd.DataFrame:
    return pd.DataFrame({"fid": list(fid), "iid": list(iid)})


def _trait(fid, iid, y, source="pheno.tsv") -> Trait:
    return Trait(fid=None if fid is None else np.array(fid, dtype=object),
                 iid=np.array(iid, dtype=object), y=np.asarray(y, dtype=float), trials=None,
                 name="y", likelihood="normal", coding="numeric", source=source)


def _cov(fid, iid, x, source="cov.tsv") -> Covariates:
    return Covariates(fid=None if fid is None else np.array(fid, dtype=object),
                      iid=np.array(iid, dtype=object), table=pd.DataFrame({"x": x}),
                      cat_columns=(), source=source)


def test_counts_and_indices() -> None:
    fam = _fam(["a", "a", "b", "c", "d"], ["1", "2", "3", "4", "5"])
    trait = _trait(["d", "a", "b", "a", "z"], ["5", "2", "3", "1", "9"],
                   [1.0, np.nan, 3.0, 4.0, 0.0])
    cov = _cov(["b", "a", "d"], ["3", "1", "5"], [0.5, 1.5, np.nan])
    kin = pd.DataFrame({"fid": ["a", "b", "c"], "iid": ["1", "3", "4"]})
    m = match_samples(fam, trait, cov, kin)
    assert m.counts == {"in genotypes": 5, "with phenotype": 4, "phenotype non-missing": 3,
                        "with covariates": 2, "with kinship": 2, "final": 2}
    assert list(m.counts) == ["in genotypes", "with phenotype", "phenotype non-missing",
                              "with covariates", "with kinship", "final"]
    assert m.geno_index.tolist() == [0, 2] and m.iid.tolist() == ["1", "3"]
    assert trait.y[m.trait_index].tolist() == [4.0, 3.0]
    assert m.cov_index.tolist() == [1, 0] and m.kinship_index.tolist() == [0, 1]


def test_iid_only_tables_and_kinship_list() -> None:
    fam = _fam(["f1", "f2", "f3"], ["a", "b", "c"])
    m = match_samples(fam, _trait(None, ["c", "a"], [1, 2]), kinship_ids=["a", "b", "c"])
    assert m.iid.tolist() == ["a", "c"] and m.trait_index.tolist() == [1, 0]
    assert m.kinship_index.tolist() == [0, 2]
    assert list(m.counts) == ["in genotypes", "with phenotype", "phenotype non-missing",
                              "with kinship", "final"]


def test_errors() -> None:
    fam = _fam(["1", "2"], ["HG1", "HG2"])
    with pytest.raises(SampleMatchError, match=r"pheno\.tsv: 2 samples, genotypes: 2 samples, "
                       r"0 in common - IDs are matched on FID\+IID \(e\.g\. genotypes 1:HG1, "
                       r"2:HG2; pheno\.tsv HG1:HG1, HG2:HG2\); check the ID columns and the "
                       r"FID column"):
        match_samples(fam, _trait(["HG1", "HG2"], ["HG1", "HG2"], [1, 2]))
    with pytest.raises(SampleMatchError, match=r"genotypes \(\.fam\): 1 duplicated sample "
                                               r"key\(s\) \(FID IID\), e\.g\. 1:HG1"):
        match_samples(_fam(["1", "1"], ["HG1", "HG1"]), _trait(None, ["HG1"], [1]))
    with pytest.raises(SampleMatchError, match=r"pheno\.tsv: has no FID column, so samples are "
                       r"matched on IID, but IID 'HG1' appears twice in the genotypes \.fam "
                       r"\(FIDs 1 and 2\) - add an FID column to pheno\.tsv"):
        match_samples(_fam(["1", "2"], ["HG1", "HG1"]), _trait(None, ["HG1"], [1]))
    with pytest.raises(SampleMatchError, match=r"cov\.tsv: 1 duplicated sample key\(s\) \(IID\)"
                                               r", e\.g\. HG2 - each sample must appear once"):
        match_samples(fam, _trait(None, ["HG1", "HG2"], [1, 2]),
                      _cov(None, ["HG2", "HG2"], [1.0, 2.0]))
    with pytest.raises(SampleMatchError, match=r"no sample is complete in every input \(in "
                       r"genotypes: 2, with phenotype: 2, phenotype non-missing: 0, final: 0\)"):
        match_samples(fam, _trait(None, ["HG1", "HG2"], [np.nan, np.nan]))
    with pytest.raises(SampleMatchError, match=r"kinship: 1 samples, .*0 in common - IDs are "
                                               r"matched on IID \(e\.g\. genotypes HG1, HG2; "
                                               r"kinship X\); check the ID columns$"):
        match_samples(fam, _trait(None, ["HG1", "HG2"], [1, 2]), kinship_ids=["X"])


ids = st.lists(st.sampled_from([f"s{i}" for i in range(12)]), min_size=1, max_size=12,
               unique=True)


@settings(max_examples=60, deadline=None)
@given(geno=ids, pheno=ids, cov=ids, seed=st.integers(0, 2**16))
def test_matching_is_order_invariant_and_exact(geno, pheno, cov, seed) -> None:
    rng = np.random.default_rng(seed)
    fam = _fam([f"F{g}" for g in geno], geno)
    y = np.where(rng.random(len(pheno)) < 0.2, np.nan, rng.normal(size=len(pheno)))
    x = np.where(rng.random(len(cov)) < 0.2, np.nan, rng.normal(size=len(cov)))
    expected = [g for g in geno
                if g in pheno and np.isfinite(y[pheno.index(g)])
                and g in cov and np.isfinite(x[cov.index(g)])]
    trait = _trait([f"F{p}" for p in pheno], pheno, y)
    covs = _cov([f"F{c}" for c in cov], cov, x)
    if not expected:
        with pytest.raises(SampleMatchError):
            match_samples(fam, trait, covs)
        return
    m = match_samples(fam, trait, covs)
    assert m.iid.tolist() == expected  # .fam order, exactly the complete overlap
    assert trait.iid[m.trait_index].tolist() == expected
    assert covs.iid[m.cov_index].tolist() == expected
    # permuting the rows of the phenotype and covariate tables changes nothing
    pp, pc = rng.permutation(len(pheno)), rng.permutation(len(cov))
    trait2 = _trait([f"F{pheno[i]}" for i in pp], [pheno[i] for i in pp], y[pp])
    covs2 = _cov([f"F{cov[i]}" for i in pc], [cov[i] for i in pc], x[pc])
    m2 = match_samples(fam, trait2, covs2)
    assert m2.iid.tolist() == expected and m2.counts == m.counts
    np.testing.assert_array_equal(trait2.y[m2.trait_index], trait.y[m.trait_index])


@settings(max_examples=30, deadline=None)
@given(pheno=ids, dup=st.integers(0, 11))
def test_duplicated_ids_are_rejected(pheno, dup) -> None:
    fam = _fam(["F"] * 12, [f"s{i}" for i in range(12)])
    dup_id = pheno[dup % len(pheno)]
    trait = _trait(None, [*pheno, dup_id], np.ones(len(pheno) + 1))
    with pytest.raises(SampleMatchError, match=rf"duplicated sample key\(s\) \(IID\), e\.g\. "
                                               rf"{dup_id} "):
        match_samples(fam, trait)
