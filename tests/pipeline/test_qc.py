"""Variant selection and per-block QC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glimix_cli.errors import InputError
from glimix_cli.pipeline.qc import block_qc, select_variants


@pytest.fixture
def variants() -> pd.DataFrame:
    return pd.DataFrame({
        "chrom": ["1", "1", "1", "chr2", "2", "X"],
        "variant_id": ["a", "b", "c", "d", "e", "f"],
        "pos": np.array([100, 200, 300, 100, 500, 10], dtype=np.int64),
    })


def test_select_by_chrom_and_range(variants) -> None:
    assert select_variants(variants).indices.tolist() == [0, 1, 2, 3, 4, 5]
    assert select_variants(variants, chrom="2").indices.tolist() == [3, 4]
    assert select_variants(variants, chrom="chr2").indices.tolist() == [3, 4]
    assert select_variants(variants, chrom=["CHRX", 1]).indices.tolist() == [0, 1, 2, 5]
    assert select_variants(variants, chrom=1, from_bp=150, to_bp=300).indices.tolist() == [1, 2]
    assert select_variants(variants, chrom="2", to_bp=100).indices.tolist() == [3]
    assert select_variants(variants, chrom="1", from_bp=301).indices.size == 0


def test_select_errors(variants, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--from-bp/--to-bp need exactly one chromosome \(as "
                                         r"in plink2\); got none - add --chrom"):
        select_variants(variants, from_bp=1)
    with pytest.raises(InputError, match=r"need exactly one chromosome .*; got 2 - add --chrom"):
        select_variants(variants, chrom=["1", "2"], to_bp=1)
    with pytest.raises(InputError, match=r"--from-bp 300 is after --to-bp 100 - swap them"):
        select_variants(variants, chrom="1", from_bp=300, to_bp=100)
    with pytest.raises(InputError, match=r"chromosome 3 not in the genotypes \(chromosomes: "
                                         r"1, 2, X\) - check --chr"):
        select_variants(variants, chrom="chr3")
    with pytest.raises(InputError, match=r"nofile: extract file not found - check --extract"):
        select_variants(variants, extract=tmp_path / "nofile")


def test_extract_file_reports_missing_ids(variants, tmp_path: Path) -> None:
    p = tmp_path / "ids.txt"
    p.write_text("e a\nzz\n a\n\nyy\n")
    sel = select_variants(variants, extract=p)
    assert sel.indices.tolist() == [0, 4]  # input (.bim) order, not file order
    assert (sel.n_extract_ids, sel.n_extract_not_found) == (4, 2)
    assert sel.extract_not_found_examples == ("zz", "yy")
    assert select_variants(variants, chrom="2", extract=p).indices.tolist() == [4]


def test_block_qc_statuses_counts_and_imputation() -> None:
    nan = np.nan
    G = np.array(
        [
            # ok, all_missing, monomorphic, low_mac, failed(maf), failed(missing), all-het
            [0, nan, 2, 0, 0, 0, 1],
            [1, nan, 2, 0, 0, nan, 1],
            [2, nan, nan, 0, 1, nan, 1],
            [nan, nan, 2, 0, 0, nan, 1],
            [1, nan, 2, 1, 0, 2, nan],
            [0, nan, 2, 0, 0, 1, 1],
            [2, nan, 2, 0, 0, 1, 1],
            [1, nan, 2, 0, 0, 2, 1],
        ]
        * 4,
        dtype=float,
    )
    G[:, 3] = 0.0
    G[5, 3] = 1.0  # one minor allele in 64: mac 1
    # column 4: mac 4 (passes mac_min=3) but maf 4/64 = 0.0625 < 0.07
    q = block_qc(G, maf_min=0.07, mac_min=3, max_missing=0.3)
    assert q.status.tolist() == ["ok", "all_missing", "monomorphic", "low_mac", "failed_qc",
                                 "failed_qc", "monomorphic"]
    assert q.n_obs.tolist() == [28, 0, 28, 32, 32, 20, 28]
    assert q.n_missing.tolist() == [4, 32, 4, 0, 0, 12, 4]
    np.testing.assert_allclose(q.eaf[[0, 3]], [0.5, 1 / 64])
    np.testing.assert_allclose(q.mac[[0, 3, 4, 5]], [28, 1, 4, 16])
    assert np.isnan(q.eaf[1]) and np.isnan(q.mac[1])
    np.testing.assert_allclose(q.maf[4], 4 / 64)
    assert q.ok.tolist() == [True] + [False] * 6
    # mean-imputed in place, except the all-missing column
    assert q.n_imputed == 4 + 4 + 12 + 4
    assert not np.isnan(G[:, [0, 2, 3, 4, 5, 6]]).any() and np.isnan(G[:, 1]).all()
    np.testing.assert_allclose(G[3, 0], 1.0)
    np.testing.assert_allclose(G[1, 5], 1.2)
    # failed_qc by MAF only when maf_min asks for it; low MAC only with mac_min
    q2 = block_qc(G.copy(), maf_min=0.0, mac_min=0, max_missing=1.0)
    assert q2.status.tolist()[3:6] == ["ok", "ok", "ok"]


def test_block_qc_is_vectorised_on_a_large_block() -> None:
    rng = np.random.default_rng(1)
    G = rng.integers(0, 3, size=(500, 5000)).astype(float)
    G[rng.random(G.shape) < 0.01] = np.nan
    n_nan = int(np.isnan(G).sum())
    q = block_qc(G)
    assert q.n_imputed == n_nan and not np.isnan(G).any()
    assert (q.status == "ok").all()
    with pytest.raises(ValueError, match=r"block must be 2-D"):
        block_qc(np.zeros(3))
