"""Streamed GRM against the dense formula; low-rank vs full QS; precomputed matrices."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glimix_cli.errors import InputError
from glimix_cli.io.plink import open_bfile
from glimix_cli.kinship.grm import grm, kinship_qs, read_kinship_matrix
from glimix_cli.model.linalg import kinship_from_qs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for make_fixtures
from make_fixtures import make_all, random_dosage, write_good  # noqa: E402


@pytest.fixture
def fixtures(tmp_path: Path) -> dict[str, Path]:
    return make_all(tmp_path / "fx")


@pytest.fixture
def good_dosage(fixtures: dict[str, Path]) -> np.ndarray:
    return np.load(fixtures["good"].parent / "good_dosage.npy")


def dense_grm(G: np.ndarray, maf_min: float = 0.0) -> tuple[np.ndarray, int]:
    """Reference: impute, standardise (ddof=0), drop constant / low-MAF columns, Z Z^T / m."""
    G = G.copy()
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in G.T])
    G = np.where(np.isnan(G), mean, G)
    sd = G.std(axis=0)
    eaf = mean / 2
    keep = (sd > 1e-12) & (np.minimum(eaf, 1 - eaf) >= maf_min)
    Z = (G[:, keep] - mean[keep]) / sd[keep]
    return Z @ Z.T / keep.sum(), int(keep.sum())


@pytest.mark.parametrize("block_size", [1, 4, 1000])
def test_streamed_grm_equals_dense(fixtures, good_dosage, block_size) -> None:
    b = open_bfile(fixtures["good"])
    sidx = np.array([0, 2, 3, 5, 6, 7, 9, 10])
    calls = []
    res = grm(b, sidx, block_size=block_size, progress=lambda d, t: calls.append((d, t)))
    K, m = dense_grm(good_dosage[sidx])
    np.testing.assert_allclose(res.K, K, rtol=1e-12, atol=1e-12)
    assert res.n_variants_used == m == 7 and res.n_skipped_monomorphic == 2
    assert res.n_imputed == int(np.isnan(good_dosage[np.ix_(sidx, [0, *range(3, 9)])]).sum())
    assert calls[-1] == (9, 9) and len(calls) == -(-9 // block_size)
    np.testing.assert_allclose(np.trace(res.K) / len(sidx), 1.0)  # unit variance per column


def test_grm_variant_subset_and_maf_filter(fixtures, good_dosage) -> None:
    b = open_bfile(fixtures["good"])
    vidx = np.array([8, 0, 5, 1])
    res = grm(b, variant_indices=vidx, maf_min=0.3)
    K, m = dense_grm(good_dosage[:, vidx], maf_min=0.3)
    np.testing.assert_allclose(res.K, K, rtol=1e-12, atol=1e-12)
    assert res.n_variants_used == m
    assert res.n_skipped_monomorphic == 1 and res.n_skipped_maf == 3 - m


def test_no_usable_variant_is_an_error(fixtures) -> None:
    b = open_bfile(fixtures["good"])
    with pytest.raises(InputError, match=r"good\.bed: no variant is usable for the kinship "
                                         r"matrix \(2 monomorphic or all missing, 0 below maf "
                                         r"0\) - select more variants or lower --kinship-maf"):
        grm(b, variant_indices=[1, 2])


def test_low_rank_and_full_rank_qs_reconstruct_the_same_k(tmp_path: Path) -> None:
    G = random_dosage(30, 60, seed=4)
    write_good(tmp_path / "k", G)
    b = open_bfile(tmp_path / "k")
    few = np.arange(3, 20)  # 17 variants < 30 samples -> SVD path
    calls = []
    low = kinship_qs(b, variant_indices=few, block_size=5,
                     progress=lambda d, t: calls.append((d, t)))
    assert calls == [(5, 17), (10, 17), (15, 17), (17, 17)]
    assert low.K is None and low.QS[0][1].shape == (30, 0)
    assert low.QS[1].size <= low.n_variants_used
    K = grm(b, variant_indices=few).K
    np.testing.assert_allclose(kinship_from_qs(low.QS, 30), K, atol=1e-10)
    full = kinship_qs(b, block_size=7)  # 60 variants >= 30 samples -> eigh path
    assert full.K is not None
    np.testing.assert_allclose(kinship_from_qs(full.QS, 30), full.K, atol=1e-10)
    np.testing.assert_allclose(full.K, dense_grm(G)[0], atol=1e-12)


def _fam(n: int) -> pd.DataFrame:
    return pd.DataFrame({"fid": [f"F{i}" for i in range(n)], "iid": [f"I{i}" for i in range(n)]})


def _write_matrix(path: Path, K: np.ndarray, header: list[str] | None = None) -> Path:
    lines = [] if header is None else [" ".join(header)]
    lines += [" ".join(f"{v:.17g}" for v in row) for row in K]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_kinship_matrix_formats(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 6))
    K = A @ A.T / 6
    fam = _fam(4)
    K1, ids = read_kinship_matrix(_write_matrix(tmp_path / "g.cXX.txt", K), fam)
    np.testing.assert_allclose(K1, K, rtol=1e-15)
    assert ids["iid"].tolist() == fam["iid"].tolist() and ids["fid"].tolist()[0] == "F0"
    K2, ids = read_kinship_matrix(_write_matrix(tmp_path / "h.txt", K, ["I2", "I0", "X", "I1"]),
                                  fam)
    assert ids["fid"].isna().all() and ids["iid"].tolist() == ["I2", "I0", "X", "I1"]
    _, ids = read_kinship_matrix(
        _write_matrix(tmp_path / "j.txt", K, ["F3_I3", "F0_I0", "Q_R", "F1_I1"]), fam)
    assert ids["fid"].tolist() == ["F3", "F0", "Q_R", "F1"]
    assert ids["iid"].tolist() == ["I3", "I0", "", "I1"]


def test_read_kinship_matrix_errors(tmp_path: Path) -> None:
    fam = _fam(3)
    K = np.eye(3)
    with pytest.raises(InputError, match=r"a\.txt: 3 x 3 kinship matrix without ID header, "
                                         r"genotypes have 4 samples - a header-less matrix"):
        read_kinship_matrix(_write_matrix(tmp_path / "a.txt", K), _fam(4))
    with pytest.raises(InputError, match=r"b\.txt: kinship matrix must be square; found 3 rows "
                                         r"with 2 columns"):
        read_kinship_matrix(_write_matrix(tmp_path / "b.txt", K[:, :2]), fam)
    Kb = K.copy()
    Kb[0, 1] = 0.5
    with pytest.raises(InputError, match=r"c\.txt: kinship matrix is not symmetric \(max "
                                         r"\|K - K\^T\| = 0\.5\)"):
        read_kinship_matrix(_write_matrix(tmp_path / "c.txt", Kb), fam)
    Kn = K.copy()
    Kn[1, 1] = np.nan
    with pytest.raises(InputError, match=r"d\.txt: kinship matrix has 1 NaN or infinite"):
        read_kinship_matrix(_write_matrix(tmp_path / "d.txt", Kn), fam)
    with pytest.raises(InputError, match=r"e\.txt: header has 2 IDs but the matrix has 3 rows"):
        read_kinship_matrix(_write_matrix(tmp_path / "e.txt", K, ["I0", "I1"]), fam)
    with pytest.raises(InputError, match=r"f\.txt: ID\(s\) I0 appear more than once"):
        read_kinship_matrix(_write_matrix(tmp_path / "f.txt", K, ["I0", "I1", "I0"]), fam)
    (tmp_path / "g.txt").write_text("1 0 0\n0 x 0\n0 0 1\n")
    with pytest.raises(InputError, match=r"g\.txt: kinship matrix has a non-numeric value"):
        read_kinship_matrix(tmp_path / "g.txt", fam)
    (tmp_path / "h.txt").write_text("\n")
    with pytest.raises(InputError, match=r"h\.txt: empty kinship matrix file"):
        read_kinship_matrix(tmp_path / "h.txt", fam)
    with pytest.raises(InputError, match=r"nothere\.txt: file not found"):
        read_kinship_matrix(tmp_path / "nothere.txt", fam)
