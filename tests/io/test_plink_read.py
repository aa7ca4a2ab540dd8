"""PLINK 1 reading: allele convention, parsing rules, block streaming, error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from glimix_cli.errors import InputError
from glimix_cli.io.plink import block_size_for_budget, iter_blocks, open_bfile
from glimix_cli.io.plink_write import encode_bed, write_plink1


def test_counted_allele_is_first_bim_allele_on_hand_written_bytes(tmp_path: Path) -> None:
    # 5 samples, 2 variants; PLINK 1 codes (2 bits, low bits = first sample):
    # 00 hom first allele, 01 missing, 10 het, 11 hom second allele.
    # variant 1: samples 0..3 = 00, 01, 10, 11 -> byte 0b11_10_01_00; sample 4 = 11 -> 0b11
    # variant 2: samples 0..3 = 11, 11, 10, 00 -> byte 0b00_10_11_11; sample 4 = 10 -> 0b10
    (tmp_path / "t.bed").write_bytes(bytes([0x6C, 0x1B, 0x01, 0b11100100, 0b11,
                                            0b00101111, 0b10]))
    (tmp_path / "t.bim").write_text("1 v1 0 10 A C\n1 v2 0 20 G T\n")
    (tmp_path / "t.fam").write_text("".join(f"f{i} i{i} 0 0 0 -9\n" for i in range(5)))
    b = open_bfile(tmp_path / "t")
    G = b.read(0, 2)
    expected = np.array([[2, 0], [np.nan, 0], [1, 1], [0, 2], [0, 1]], dtype=float)
    np.testing.assert_array_equal(G, expected)
    assert G.dtype == np.float64 and G.flags.f_contiguous
    assert b.variants["a1"].tolist() == ["A", "G"]  # counted allele = .bim column 5
    assert b.variants["a2"].tolist() == ["C", "T"]


def test_writer_encodes_the_same_bytes_as_by_hand() -> None:
    G = np.array([[2, 0], [np.nan, 0], [1, 1], [0, 2], [0, 1]], dtype=float)
    assert encode_bed(G) == bytes([0x6C, 0x1B, 0x01, 0b11100100, 0b11, 0b00101111, 0b10])


def test_roundtrip_and_frame_dtypes(fixtures, good_dosage) -> None:
    b = open_bfile(fixtures["good"])
    n, m = good_dosage.shape
    assert (b.n_samples, b.n_variants) == (n, m)
    np.testing.assert_array_equal(b.read(0, m), good_dosage)
    assert list(b.variants.columns) == ["chrom", "variant_id", "cm", "pos", "a1", "a2"]
    assert list(b.samples.columns) == ["fid", "iid", "father", "mother", "sex", "pheno"]
    assert b.variants["pos"].dtype == np.int64 and b.variants["cm"].dtype == np.float64
    assert b.variants["chrom"].map(type).eq(str).all()
    assert b.samples["sex"].map(type).eq(str).all()


@pytest.mark.parametrize("suffix", ["", ".bed", ".bim", ".fam"])
def test_prefix_or_any_file_opens_the_same_set(fixtures, suffix: str) -> None:
    b = open_bfile(f"{fixtures['good']}{suffix}")
    assert b.bed == Path(f"{fixtures['good']}.bed")


def test_sample_subset_and_order(fixtures, good_dosage) -> None:
    b = open_bfile(fixtures["good"])
    idx = np.array([5, 0, 3])
    np.testing.assert_array_equal(b.read(2, 7, idx), good_dosage[idx, 2:7])
    assert b.read(3, 3).shape == (b.n_samples, 0)
    with pytest.raises(IndexError, match=r"variant range 0:99 outside 0:9"):
        b.read(0, 99)


def test_gemma_fam_with_extra_columns_keeps_fid_and_iid(fixtures) -> None:
    b = open_bfile(fixtures["gemma"])
    assert b.samples["fid"].tolist()[:2] == ["F0", "F1"]
    assert b.samples["iid"].tolist()[:2] == ["I0", "I1"]
    assert b.samples["pheno"].tolist()[0] == "-9"
    assert b.samples.shape[1] == 6


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("bad_magic", r"bad_magic\.bed: \.bed must start with magic bytes 0x6c 0x1b 0x01 "
                      r"\(variant-major\); found 0x42 0x41 0x44 - this is not a PLINK 1"),
        ("sample_major", r"sample_major\.bed: .*found 0x6c 0x1b 0x00 - this is a sample-major"),
        ("truncated", r"truncated\.bed: \.bed has 29 bytes, expected 30 = 3 \+ 9 variants x "
                      r"ceil\(11 samples / 4\)"),
        ("bim5", r"bim5\.bim: \.bim must have 6 columns .* found 5"),
        ("fam5", r"fam5\.fam: \.fam must have at least 6 columns .* found 5"),
        ("ragged_fam", r"ragged_fam\.fam: line 11 has fewer fields than the others"),
        ("bad_pos", r"bad_pos\.bim: bp position \(column 4\) must be an integer; found '10x0'"),
    ],
)
def test_broken_filesets_raise_one_line_errors(fixtures, name: str, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern) as info:
        open_bfile(fixtures[name])
    assert "\n" not in str(info.value)


def test_missing_file_and_ragged_bim(tmp_path: Path, fixtures) -> None:
    with pytest.raises(InputError, match=r"nope: PLINK file\(s\) not found: nope\.bed, "
                                         r"nope\.bim, nope\.fam - pass the prefix"):
        open_bfile(tmp_path / "nope")
    prefix = fixtures["good"]
    bim = Path(f"{prefix}.bim")
    lines = bim.read_text().splitlines()
    bim.write_text(lines[0] + "\textra\n" + "\n".join(lines[1:]) + "\n")
    with pytest.raises(InputError, match=r"good\.bim: line 2 has fewer fields than the "
                                         r"others"):
        open_bfile(prefix)
    bim.write_text("\n".join(lines[:-1]) + "\n" + lines[-1] + "\textra\n")
    with pytest.raises(InputError, match=r"good\.bim: \.bim rows have different numbers of "
                                         r"columns \(.*line 9.*\) - every row needs"):
        open_bfile(prefix)
    bim.write_text("")
    with pytest.raises(InputError, match=r"good\.bim: empty \.bim file"):
        open_bfile(prefix)


@pytest.mark.parametrize("block_size", [1, 2, 7, 100])
def test_iter_blocks_arbitrary_order_matches_dense(fixtures, good_dosage, block_size) -> None:
    b = open_bfile(fixtures["good"])
    order = np.array([8, 0, 3, 3, 7, 1, 5])
    sidx = np.array([10, 2, 4])
    seen = []
    for idx, blk in iter_blocks(b, order, block_size, sidx):
        assert blk.flags.f_contiguous and blk.shape == (3, idx.size) and idx.size <= block_size
        np.testing.assert_array_equal(blk, good_dosage[np.ix_(sidx, idx)])
        seen.extend(idx.tolist())
    assert seen == order.tolist()


def test_iter_blocks_far_apart_indices_read_separate_spans(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    G = rng.integers(0, 3, size=(6, 80)).astype(float)
    m = G.shape[1]
    write_plink1(tmp_path / "w", G, chrom=["1"] * m, variant_id=[f"v{j}" for j in range(m)],
                 pos=list(range(m)), a1=["A"] * m, a2=["C"] * m,
                 fid=list("abcdef"), iid=list("abcdef"))
    b = open_bfile(tmp_path / "w")
    idx = np.array([79, 0, 40, 41, 1])
    (got_idx, blk), = list(iter_blocks(b, idx, 10))
    np.testing.assert_array_equal(blk, G[:, idx])
    with pytest.raises(IndexError, match=r"variant indices must lie in 0:80; got range 0\.\.80"):
        next(iter_blocks(b, [0, 80], 4))
    with pytest.raises(ValueError, match=r"block_size must be >= 1; got 0"):
        next(iter_blocks(b, [0], 0))


def test_block_size_for_budget() -> None:
    assert block_size_for_budget(1000, memory_mb=1) == 32
    assert block_size_for_budget(10**9, memory_mb=1) == 1
    assert block_size_for_budget(0) >= 1
    with pytest.raises(ValueError, match=r"memory_mb > 0"):
        block_size_for_budget(10, memory_mb=0)


def test_real_cohort_opens_and_streams() -> None:
    from shared_data import shared_cohort

    prefix = shared_cohort()
    b = open_bfile(prefix)
    assert (b.n_samples, b.n_variants) == (379, 54051)
    assert b.variants["chrom"].unique().tolist() == ["17", "18", "19", "20", "21", "22"]
    G = b.read(0, 100)
    assert G.shape == (379, 100) and set(np.unique(G)) <= {0.0, 1.0, 2.0}
    # scattered variants streamed in blocks agree with single-variant reads
    picks = np.arange(0, 54051, 997)
    total = sum(blk.sum() for _, blk in iter_blocks(b, picks, 7))
    assert total == sum(b.read(j, j + 1).sum() for j in picks)
