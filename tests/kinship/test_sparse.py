"""Sparse kinships: the screened sparse GRM against the dense GRM, the GCTA and KING readers,
the per-family PSD projection and the sparse cache."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse
from scipy.special import ndtr

from glimix_cli.errors import InputError
from glimix_cli.io.plink import open_bfile
from glimix_cli.kinship import grm
from glimix_cli.kinship.cache import (
    cache_kind,
    load_kinship_cache,
    load_sparse_kinship_cache,
    save_sparse_kinship_cache,
)
from glimix_cli.kinship.sparse import (
    project_psd,
    read_grm_sp,
    read_kin0,
    read_sparse_kinship,
    restrict,
    sparse_summary,
)
from glimix_cli.kinship.sparse_grm import FALSE_FLAG_BUDGET, _threshold, sparse_grm

EX = Path(__file__).resolve().parents[2] / "example_data"


@pytest.fixture(scope="module")
def bfile():
    return open_bfile(EX / "cohort")


@pytest.fixture(scope="module")
def dense(bfile):
    return grm(bfile).K


def _thresholded(K: np.ndarray, cutoff: float) -> np.ndarray:
    T = np.where(K >= cutoff, K, 0.0)
    T[np.diag_indices_from(T)] = np.diag(K)
    return T


def test_exact_screen_is_the_thresholded_dense_grm(bfile, dense):
    res = sparse_grm(bfile, None, None, 0.0, 0.1, pcs=0)
    assert res.exact_screen and res.detect_at_cutoff == 1.0 and res.pcs == 0
    np.testing.assert_allclose(res.K.toarray(), _thresholded(dense, 0.1), rtol=0, atol=1e-12)
    assert res.n_variants_used == 4996


def test_partial_screen_keeps_exact_values_and_finds_close_relatives(bfile, dense):
    # 1,500 of 5,000 markers: the screen is noisy, the kept values are not
    res = sparse_grm(bfile, None, None, 0.0, 0.2, screen_markers=1500, seed=3, pcs=0)
    assert not res.exact_screen and res.n_screen == 1500
    K = res.K.toarray()
    kept = (K != 0) & ~np.eye(K.shape[0], dtype=bool)
    np.testing.assert_allclose(K[kept], dense[kept], rtol=0, atol=1e-12)
    assert np.all(dense[kept] >= 0.2)
    # every first-degree pair (0.5 in expectation; > 0.35 here) is found
    close = (dense > 0.35) & ~np.eye(K.shape[0], dtype=bool)
    assert close.sum() > 600 and np.all(kept[close])
    np.testing.assert_allclose(np.diag(K), np.diag(dense), atol=1e-12)


def test_screen_threshold_spends_the_false_flag_budget():
    n, m_s, cutoff = 100_000, 5000, 0.05
    t, detect = _threshold(n, m_s, cutoff, exact=False)
    se = 1 / np.sqrt(m_s)
    expected_false = n * (n - 1) / 2 * ndtr(-t / se)
    assert expected_false == pytest.approx(FALSE_FLAG_BUDGET * n, rel=1e-6)
    assert detect == pytest.approx(ndtr((cutoff - t) / se))
    # more markers: a lower threshold in GRM units, every pair at the cutoff found
    t2, d2 = _threshold(n, 40_000, cutoff, exact=False)
    assert t2 < t and d2 > 0.999


def test_sparse_samples_subset(bfile, dense):
    idx = np.arange(0, 610, 2)
    res = sparse_grm(bfile, idx, None, 0.0, 0.1, pcs=0)
    sub = grm(bfile, idx).K
    np.testing.assert_allclose(res.K.toarray(), _thresholded(sub, 0.1), atol=1e-12)


def test_projected_grm_is_exact_for_its_components(bfile, dense):
    res = sparse_grm(bfile, None, None, 0.0, 0.1, pcs=5)
    U = res.U
    assert U.shape == (610, 5)
    np.testing.assert_allclose(U.T @ U, np.eye(5), atol=1e-12)
    P = np.eye(610) - U @ U.T
    want = _thresholded(P @ dense @ P, 0.1)
    np.testing.assert_allclose(res.K.toarray(), want, rtol=0, atol=1e-10)
    # U spans the top of the GRM's spectrum (this cohort has no eigengap, so roughly: the
    # Ritz values lie within 10% below the top eigenvalues)
    w = np.linalg.eigvalsh(dense)[::-1][:5]
    ritz = np.sort(np.linalg.eigvalsh(U.T @ dense @ U))[::-1]
    assert np.all(ritz <= w + 1e-9) and np.all(ritz > 0.9 * w)


def test_pcs_keep_ancestry_out_of_the_relatives(tmp_path):
    """Three groups with Fst 0.2: the pairs within a group have GRM entries around 0.1, so
    the plain sparse GRM at 0.1 keeps a quarter of a million pairs of strangers; beyond 10
    PCs the pedigree's relatives remain (and a handful of strangers in the tails)."""
    from glimix_cli.testing.biobank import BiobankDesign, simulate_biobank

    d = BiobankDesign(n=1200, m=4000, background=200, block=500, populations=3, fst=0.2,
                      planted=1, chromosomes=2, seed=5, maf_range=(0.05, 0.5))
    simulate_biobank(tmp_path / "c", d)
    bf = open_bfile(tmp_path / "c")
    fam = bf.samples["fid"].to_numpy().astype(str)
    iid = bf.samples["iid"].to_numpy().astype(str)
    parent = (np.char.endswith(iid, "_1") | np.char.endswith(iid, "_2"))
    parent &= np.char.startswith(fam, "NUC")
    true_pairs = 240 // 4 * 5 + 120 // 2  # nuclear: 4 parent-child + 1 sib; sib pairs
    counts = {}
    for pcs in (0, 10):
        C = sparse.triu(sparse_grm(bf, None, None, 0.0, 0.1, pcs=pcs).K, 1).tocoo()
        relatives = (fam[C.row] == fam[C.col]) & ~(parent[C.row] & parent[C.col])
        assert int(relatives.sum()) == true_pairs
        counts[pcs] = C.nnz - true_pairs
    assert counts[0] > 200_000 and counts[10] <= 0.05 * true_pairs, counts


# -- readers ---------------------------------------------------------------------------------
def _write_grm_sp(prefix: Path, K: np.ndarray, fid, iid, both: bool = False) -> Path:
    i, j = np.nonzero(np.tril(K) if not both else K)
    with open(f"{prefix}.grm.sp", "w") as fh:
        for a, b in zip(i, j, strict=True):
            fh.write(f"{a} {b} {K[a, b]:.10g}\n")
    with open(f"{prefix}.grm.id", "w") as fh:
        for f, s in zip(fid, iid, strict=True):
            fh.write(f"{f}\t{s}\n")
    return Path(f"{prefix}.grm.sp")


def test_grm_sp_round_trip_and_absent_samples(tmp_path, bfile, dense):
    s = bfile.samples
    T = _thresholded(dense, 0.1)
    listed = np.arange(0, 600)  # the last 10 samples are not in the file
    path = _write_grm_sp(tmp_path / "k", T[np.ix_(listed, listed)], s["fid"].iloc[listed],
                         s["iid"].iloc[listed])
    K, named = restrict(read_sparse_kinship(path), s["fid"].to_numpy(), s["iid"].to_numpy())
    assert named == 600
    want = T.copy()
    want[600:, :] = 0
    want[:, 600:] = 0
    want[np.arange(600, 610), np.arange(600, 610)] = 1.0
    np.testing.assert_allclose(K.toarray(), want, atol=1e-9)
    # both triangles given: the same matrix
    path2 = _write_grm_sp(tmp_path / "b", T, s["fid"], s["iid"], both=True)
    K2, _ = restrict(read_grm_sp(path2), s["fid"].to_numpy(), s["iid"].to_numpy())
    np.testing.assert_allclose(K2.toarray(), T, atol=1e-9)


def test_grm_sp_errors(tmp_path):
    sp = tmp_path / "x.grm.sp"
    sp.write_text("0 0 1.0\n1 0 0.5\n")
    with pytest.raises(InputError, match=r"x\.grm\.id is missing"):
        read_grm_sp(sp)
    (tmp_path / "x.grm.id").write_text("F1 A\n")
    with pytest.raises(InputError, match="lists 1 samples"):
        read_grm_sp(sp)
    (tmp_path / "x.grm.id").write_text("F1 A\nF2 B\n")
    sp.write_text("0 0 1.0\n1 0\n")
    with pytest.raises(InputError, match="3 columns"):
        read_grm_sp(sp)
    sp.write_text("0 0 1.0\n1 0 0.5\n0 1 0.4\n")
    t = read_grm_sp(sp)
    with pytest.raises(InputError, match="listed twice with different values"):
        restrict(t, np.array(["F1", "F2"], dtype=object), np.array(["A", "B"], dtype=object))
    (tmp_path / "bin.grm.sp").write_bytes(b"\x89\xff\x00\x13" * 10)
    (tmp_path / "bin.grm.id").write_text("F1 A\n")
    with pytest.raises(InputError):
        read_grm_sp(tmp_path / "bin.grm.sp")


@pytest.mark.skipif(shutil.which("plink2") is None, reason="plink2 not installed")
def test_king_table_from_plink2(tmp_path, bfile):
    """plink2 --make-king-table, read as GRM entries 2 phi (the command is the script)."""
    subprocess.run(["plink2", "--bfile", str(EX / "cohort"), "--make-king-table",
                    "--king-table-filter", "0.1", "--out", str(tmp_path / "king")],
                   check=True, capture_output=True)
    path = tmp_path / "king.kin0"
    lines = [ln.split("\t") for ln in path.read_text().splitlines()]
    assert lines[0][0] == "#FID1" and lines[0][-1] == "KINSHIP"
    s = bfile.samples
    K, named = restrict(read_kin0(path), s["fid"].to_numpy(), s["iid"].to_numpy())
    pos = {(f, i): k for k, (f, i) in enumerate(zip(s["fid"], s["iid"], strict=True))}
    for ln in lines[1:]:
        a, b = pos[(ln[0], ln[1])], pos[(ln[2], ln[3])]
        assert K[a, b] == K[b, a] == pytest.approx(2 * float(ln[-1]))
    assert sparse.triu(K, 1).nnz == len(lines) - 1
    np.testing.assert_array_equal(K.diagonal(), 1.0)
    summ = sparse_summary(K)
    assert summ["pairs"] == len(lines) - 1 and summ["largest"] <= 5  # nuclear families


def test_kin0_iid_only_and_errors(tmp_path):
    p = tmp_path / "rel.dat"  # UK Biobank's layout
    p.write_text("ID1 ID2 HetHet IBS0 Kinship\nA B 0.1 0 0.25\nB C 0.1 0.01 -0.01\n")
    t = read_kin0(p)
    K, named = restrict(t, np.array(["f", "f", "f"], dtype=object),
                        np.array(["A", "B", "C"], dtype=object))
    assert named == 2  # C's only pair has phi <= 0: dropped
    np.testing.assert_allclose(K.toarray(), [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]])
    bad = tmp_path / "bad.kin0"
    bad.write_text("FID1 IID1 FID2 IID2 PHI\nf A f B 0.2\n")
    with pytest.raises(InputError, match="KINSHIP"):
        read_kin0(bad)
    bad.write_text("IID1 IID2 KINSHIP\nA B x\n")
    with pytest.raises(InputError, match="non-numeric"):
        read_kin0(bad)
    bad.write_text("IID1 IID2 KINSHIP\nA A 0.5\n")
    with pytest.raises(InputError, match="with itself"):
        read_kin0(bad)
    with pytest.raises(InputError, match="IIDs repeat"):
        restrict(t, np.array(["f", "g"], dtype=object), np.array(["A", "A"], dtype=object))


def test_project_psd_fixes_only_indefinite_families():
    good = np.array([[1, 0.5], [0.5, 1]])
    bad = np.array([[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]])  # eigenvalue -0.8
    K = sparse.block_diag([good, bad, np.eye(2)]).tocsr()
    P, n_adj, worst = project_psd(K)
    assert n_adj == 1 and worst == pytest.approx(np.linalg.eigvalsh(bad).min())
    D = P.toarray()
    np.testing.assert_array_equal(D[:2, :2], good)
    np.testing.assert_array_equal(D[5:, 5:], np.eye(2))
    w = np.linalg.eigvalsh(D[2:5, 2:5])
    assert w.min() > -1e-12
    # the projection is the nearest PSD matrix: the positive part of the spectrum
    wb, V = np.linalg.eigh(bad)
    np.testing.assert_allclose(D[2:5, 2:5], (V * np.maximum(wb, 0)) @ V.T, atol=1e-12)
    assert project_psd(sparse.csr_matrix(good))[1] == 0


def test_sparse_cache_round_trip(tmp_path, bfile, dense):
    T = sparse.csr_matrix(_thresholded(dense, 0.1))
    s = bfile.samples
    out = tmp_path / "k.npz"
    save_sparse_kinship_cache(out, T, s["fid"], s["iid"], {"a": 1}, {"cutoff": 0.1})
    assert cache_kind(out) == "sparse"
    K, info = load_sparse_kinship_cache(out, {"a": 1}, s["fid"], s["iid"])
    assert info == {"cutoff": 0.1}
    assert abs(K - T).max() == 0
    with pytest.raises(InputError, match="holds a sparse kinship"):
        load_kinship_cache(out, None, s["fid"], s["iid"])
    with pytest.raises(InputError, match="other inputs"):
        load_sparse_kinship_cache(out, {"a": 2}, s["fid"], s["iid"])
