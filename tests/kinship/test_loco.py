"""LOCO kinships: the one-pass accumulation against the GRM of the other chromosomes'
variants computed directly, in memory and through the temporary directory; the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glimix_cli.errors import InputError
from glimix_cli.io.plink import open_bfile
from glimix_cli.io.plink_write import write_plink1
from glimix_cli.kinship.cache import (
    load_kinship_cache,
    load_loco_chromosome,
    loco_chromosomes,
    save_loco_kinship_cache,
)
from glimix_cli.kinship.grm import grm
from glimix_cli.kinship.loco import chromosome_groups, loco_grm
from glimix_cli.model.linalg import economic_qs

EX = Path(__file__).resolve().parents[2] / "example_data"


@pytest.fixture(scope="module")
def bfile():
    return open_bfile(EX / "cohort")


@pytest.mark.parametrize("in_memory", [True, False])
def test_loco_kinships_equal_the_grm_of_the_other_chromosomes(bfile, in_memory) -> None:
    rng = np.random.default_rng(3)
    sidx = np.sort(rng.choice(bfile.n_samples, 300, replace=False))
    vidx = np.sort(rng.choice(bfile.n_variants, 2500, replace=False))
    res = loco_grm(bfile, sidx, vidx, maf_min=0.02,
                   parts_in_memory=(1 << 40) if in_memory else 0)
    try:
        assert (res._tmp is None) == in_memory
        whole = grm(bfile, sidx, vidx, maf_min=0.02)
        np.testing.assert_allclose(res.whole(), whole.K, rtol=0, atol=1e-12)
        assert res.n_variants_used == whole.n_variants_used
        chrom = bfile.variants["chrom"].to_numpy().astype(str)
        assert sorted(res.chrom_counts) == ["1", "2", "3"]
        for c in ("1", "2", "3"):
            other = vidx[chrom[vidx] != c]
            direct = grm(bfile, sidx, other, maf_min=0.02)
            # the parts are stored as float32: an entry moves by ~2^-24 m_c / (m - m_c)
            np.testing.assert_allclose(res.minus(c), direct.K, rtol=0, atol=1e-7)
            assert res.n_variants_used - res.chrom_counts[c] == direct.n_variants_used
        # a chromosome without kinship variants keeps the whole-genome kinship
        np.testing.assert_allclose(res.minus("X"), whole.K, atol=1e-12)
    finally:
        tmp = res._tmp
        res.close()
        assert tmp is None or not Path(tmp).exists()


def test_chromosome_groups_keep_first_appearance_order() -> None:
    g = chromosome_groups(np.array(["2", "1", "2", "X", "1"]), [4, 3, 0, 1, 2])
    assert list(g) == ["1", "X", "2"]
    assert [list(v) for v in g.values()] == [[4, 1], [3], [0, 2]]


def test_one_chromosome_is_an_error(bfile) -> None:
    chrom = bfile.variants["chrom"].to_numpy().astype(str)
    with pytest.raises(InputError, match="all on chromosome 2 - drop --loco"):
        loco_grm(bfile, None, np.flatnonzero(chrom == "2"))


def test_usable_variants_on_one_chromosome_is_an_error(tmp_path) -> None:
    rng = np.random.default_rng(0)
    G = rng.binomial(2, 0.3, size=(20, 6)).astype(float)
    G[:, 3:] = 0  # chromosome 2 monomorphic
    write_plink1(tmp_path / "p", G, chrom=["1"] * 3 + ["2"] * 3,
                 variant_id=[f"v{j}" for j in range(6)], pos=list(range(1, 7)),
                 a1=["A"] * 6, a2=["G"] * 6, fid=[f"f{i}" for i in range(20)],
                 iid=[f"i{i}" for i in range(20)])
    with pytest.raises(InputError, match="two or more chromosomes; only 1 has any"):
        loco_grm(open_bfile(tmp_path / "p"))


def test_loco_cache_round_trip(bfile, tmp_path) -> None:
    res = loco_grm(bfile)
    QS = economic_qs(res.whole())
    s = bfile.samples
    fp = {"x": 1}
    chroms = save_loco_kinship_cache(
        tmp_path / "k.npz", QS, ((c, res.chrom_counts[c], economic_qs(res.minus(c)))
                                 for c in res.chrom_counts),
        s["fid"].to_numpy(), s["iid"].to_numpy(), fp)
    assert chroms == ["1", "2", "3"]
    assert loco_chromosomes(tmp_path / "k.npz") == res.chrom_counts
    (Q0, _), S0 = load_kinship_cache(tmp_path / "k.npz", fp, s["fid"].to_numpy(),
                                     s["iid"].to_numpy())
    np.testing.assert_allclose((Q0 * S0) @ Q0.T, res.whole(), atol=1e-10)
    (Qc, _), Sc = load_loco_chromosome(tmp_path / "k.npz", "2")
    np.testing.assert_allclose((Qc * Sc) @ Qc.T, res.minus("2"), atol=1e-10)
    with pytest.raises(InputError, match="no kinship leaving chromosome 7 out"):
        load_loco_chromosome(tmp_path / "k.npz", "7")
