"""BGEN and .pgen readers (issue 18) on files plink2 makes in the test from a hand-written
VCF of dosages: the dosages read back are the ones written (to the format's precision), the
counted allele is the documented one, multi-allelic records are flagged, INFO follows its
formula, and broken files are one-line errors before any decoding."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from glimix_cli.errors import InputError
from glimix_cli.io.genotypes import GenotypeSpec, open_genotypes
from glimix_cli.pipeline.qc import block_qc, dosage_info

pytest.importorskip("bgen")
pytest.importorskip("pgenlib")
PLINK2 = shutil.which("plink2")
pytestmark = pytest.mark.skipif(PLINK2 is None, reason="plink2 not installed (.ci/run "
                                "installs it from Debian)")

N = 12
#: hand-written ALT dosages (rows: variants), NaN = missing
DOSAGES = np.array([
    [0.0, 0.5, 1.0, 1.5, 2.0, 0.25, 1.75, 0.0, 2.0, 1.0, np.nan, 0.9],
    [2.0, 2.0, 1.0, 0.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0, 2.0, 1.0],   # hard calls
    [0.1, 0.2, 0.05, 1.9, 0.4, 0.3, 0.0, 0.6, 1.2, 0.8, 0.7, np.nan],
])
ALLELES = [("A", "G"), ("C", "T"), ("G", "T")]


def write_vcf(path: Path, records: list[tuple[str, str, str, list[str]]]) -> Path:
    """A VCF of (REF, ALT, FORMAT, cells) records on chromosome 1."""
    lines = ["##fileformat=VCFv4.2",
             '##FORMAT=<ID=DS,Number=A,Type=Float,Description="ALT dosage">',
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
             + "\t".join(f"s{i}" for i in range(N))]
    for v, (ref, alt, fmt, cells) in enumerate(records):
        lines.append(f"1\t{100 * (v + 1)}\tv{v}\t{ref}\t{alt}\t.\t.\t.\t{fmt}\t"
                     + "\t".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def dosage_records() -> list[tuple[str, str, str, list[str]]]:
    return [(ref, alt, "DS", ["." if np.isnan(x) else f"{x:g}" for x in d])
            for d, (ref, alt) in zip(DOSAGES, ALLELES, strict=True)]


def plink2(*args: str) -> None:
    subprocess.run([PLINK2, "--silent", "--threads", "1", *args], check=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dosages")
    vcf = write_vcf(d / "hand.vcf", dosage_records())
    plink2("--vcf", str(vcf), "dosage=DS", "--double-id", "--make-pgen", "--out",
           str(d / "hand"))
    plink2("--pfile", str(d / "hand"), "--export", "bgen-1.2", "bits=16", "ref-first",
           "--out", str(d / "hand16"))
    plink2("--pfile", str(d / "hand"), "--export", "bgen-1.3", "bits=8", "ref-first",
           "--out", str(d / "hand8z"))
    plink2("--pfile", str(d / "hand"), "--export", "bgen-1.2", "bits=16", "--out",
           str(d / "handlast"))
    # hard calls with a multi-allelic record in the middle (plink2 2.00a3 keeps
    # multi-allelic hard calls, not multi-allelic dosages)
    gt = [("0/1", "1/1")[k % 2] for k in range(N)]
    multi = write_vcf(d / "multi.vcf", [("A", "G", "GT", gt),
                                        ("A", "C,G", "GT", [("0/1", "0/2")[k % 2]
                                                            for k in range(N)]),
                                        ("C", "T", "GT", gt[::-1])])
    plink2("--vcf", str(multi), "--double-id", "--make-pgen", "--out", str(d / "multi"))
    write_multi_bgen(d / "multi.bgen")  # (plink2 2.00a3 exports biallelic BGEN only)
    return {"pgen": d / "hand", "bgen16": d / "hand16.bgen", "bgen8z": d / "hand8z.bgen",
            "bgenlast": d / "handlast.bgen", "multi_pgen": d / "multi",
            "multi_bgen": d / "multi.bgen", "dir": d}


def write_multi_bgen(path: Path) -> None:
    """With the bgen package's own writer: the records of multi.vcf (the first one phased),
    sample IDs stored, and a bgenix index beside it."""
    from bgen import BgenWriter

    het_hom = np.array([(1.0, 2.0)[k % 2] for k in range(N)])
    unphased = np.zeros((N, 3))
    unphased[np.arange(N), het_hom[::-1].astype(int)] = 1.0
    phased = np.zeros((N, 4))  # haplotype 1: (P first, P second), haplotype 2: same
    phased[:, 0:2] = [0.0, 1.0]
    phased[:, 2] = np.where(het_hom == 2, 0.0, 1.0)
    phased[:, 3] = 1.0 - phased[:, 2]
    tri = np.zeros((N, 6))  # three alleles, six unphased genotypes
    tri[:, 1] = 1.0
    with BgenWriter(str(path), N, [f"s{i}" for i in range(N)], compression="zlib") as w:
        w.add_variant("v0", "v0", "1", 100, ["A", "G"], phased, phased=True, bit_depth=8)
        w.add_variant("v1", "v1", "1", 200, ["A", "C", "G"], tri, bit_depth=8)
        w.add_variant("v2", "v2", "1", 300, ["C", "T"], unphased, bit_depth=8)


def _open(files, name):
    if name.endswith("pgen"):
        return open_genotypes("pgen", files[name])
    sample = files[name].with_suffix(".sample")
    return open_genotypes("bgen", files[name], sample if sample.exists() else None)


#: the .pgen stores dosages to 1/16384; the BGEN exports round those to their bit depth
@pytest.mark.parametrize("name, tol", [("pgen", 1 / 16384), ("bgen16", 1 / 16384 + 1 / 65535),
                                       ("bgen8z", 1 / 16384 + 1 / 255)])
def test_dosages_read_back_as_written(files, name, tol):
    g = _open(files, name)
    assert g.n_samples == N and g.n_variants == 3
    assert list(g.samples["iid"]) == [f"s{i}" for i in range(N)]
    v = g.variants
    assert list(v["a1"]) == ["G", "T", "T"]  # ALT counted (ref-first: the 2nd allele)
    assert list(v["a2"]) == ["A", "C", "G"]
    assert not v["multiallelic"].any()
    G = g.read(0, 3)
    assert G.shape == (N, 3) and G.dtype == np.float64 and G.flags.f_contiguous
    for j in range(3):
        miss = np.isnan(DOSAGES[j])
        assert np.array_equal(np.isnan(G[:, j]), miss)
        np.testing.assert_allclose(G[~miss, j], DOSAGES[j][~miss], atol=tol, rtol=0)
    # a sample subset comes back in the order asked
    np.testing.assert_array_equal(g.read(0, 2, [5, 0, 3]), G[[5, 0, 3], :2])


@pytest.mark.parametrize("name", ["multi_pgen", "multi_bgen"])
def test_multiallelic_records_are_flagged_and_never_decoded(files, name):
    g = _open(files, name)
    assert list(g.variants["multiallelic"]) == [False, True, False]
    assert g.variants["a1"].iat[1] == "C,G" and g.variants["a2"].iat[1] == "A"
    G = g.read(0, 3)
    assert np.isnan(G[:, 1]).all()
    hets = np.array([(1.0, 2.0)[k % 2] for k in range(N)])
    np.testing.assert_allclose(G[:, 0], hets, atol=1 / 255)
    np.testing.assert_allclose(G[:, 2], hets[::-1], atol=1 / 255)


def test_bgen_counts_its_second_allele_whatever_plink2_put_there(files):
    """plink2 --export bgen without ref-first lists ALT first: the counted second allele is
    then REF, and the dosage is 2 minus the ALT dosage."""
    g = _open(files, "bgenlast")
    assert list(g.variants["a1"]) == ["A", "C", "G"]
    G = g.read(0, 2)
    ok = ~np.isnan(DOSAGES[0])
    np.testing.assert_allclose(G[ok, 0], 2 - DOSAGES[0][ok], atol=1 / 16384 + 1 / 65535)


def test_info_is_the_dosage_variance_over_its_binomial_value(files):
    g = _open(files, "pgen")
    want = []
    for j in (0, 1):
        d = DOSAGES[j][~np.isnan(DOSAGES[j])]
        p = d.mean() / 2
        want.append(np.mean((d - d.mean()) ** 2) / (2 * p * (1 - p)))
    G = g.read(0, 3)
    qc = block_qc(G, mac_min=0)
    cut = float(np.mean(want))  # between the two: exactly one is below it
    info = dosage_info(G, qc, np.array([False, False, True]), min_info=cut)
    np.testing.assert_allclose(info[:2], want, rtol=2e-3)
    assert np.isnan(info[2]) and qc.status[2] == "multiallelic"  # as flagged by the reader
    assert [qc.status[j] == "low_info" for j in (0, 1)] == [w < cut for w in want]


def test_a_bgi_index_gives_the_same_variant_table(files, tmp_path):
    import sqlite3

    src = files["bgen16"]
    bgen = tmp_path / "x.bgen"
    shutil.copy(src, bgen)
    plain = open_genotypes("bgen", bgen, src.with_suffix(".sample"))
    from bgen import BgenReader

    with BgenReader(str(bgen), delay_parsing=True) as r:  # offsets/sizes for a bgenix index
        recs = [(v.chrom, v.pos, v.rsid, len(v.alleles), v.alleles[0], v.alleles[1],
                 v.fileoffset, v.next_variant_offset - v.fileoffset) for v in r]
    with sqlite3.connect(f"{bgen}.bgi") as con:
        con.execute("CREATE TABLE Variant (chromosome TEXT, position INT, rsid TEXT, "
                    "number_of_alleles INT, allele1 TEXT, allele2 TEXT, "
                    "file_start_position INT, size_in_bytes INT)")
        con.executemany("INSERT INTO Variant VALUES (?,?,?,?,?,?,?,?)", recs)
    indexed = open_genotypes("bgen", bgen, src.with_suffix(".sample"))
    assert indexed.bim.name == "x.bgen.bgi"
    for c in ("chrom", "pos", "variant_id", "multiallelic"):
        assert list(indexed.variants[c]) == list(plain.variants[c])
    np.testing.assert_array_equal(indexed.read(0, 2), plain.read(0, 2))


def test_a_genotype_spec_pickles_and_reopens(files):
    import pickle

    spec = GenotypeSpec("bgen", str(files["bgen16"]), str(files["bgen16"].with_suffix(".sample")))
    g = pickle.loads(pickle.dumps(spec)).open()
    g.read(0, 1)
    g2 = pickle.loads(pickle.dumps(g))  # the open reader is not shipped, only re-opened
    np.testing.assert_array_equal(g2.read(0, 2), g.read(0, 2))


# -- broken files: one-line errors naming the file, the rule and the fix --------------------

def test_a_truncated_bgen_is_refused_on_opening(files, tmp_path):
    src = files["bgen16"]
    cut = tmp_path / "cut.bgen"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size - 40])
    with pytest.raises(InputError, match=r"cut\.bgen: truncated BGEN file .* re-create"):
        open_genotypes("bgen", cut, src.with_suffix(".sample"))


def test_a_sample_file_that_does_not_match_is_refused(files, tmp_path):
    src = files["bgen16"]
    lines = src.with_suffix(".sample").read_text().splitlines()
    short = tmp_path / "short.sample"
    short.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(InputError, match=r"short\.sample: 11 samples, but hand16\.bgen holds "
                                         r"12 - .*use the \.sample written with this \.bgen"):
        open_genotypes("bgen", src, short)
    swapped = tmp_path / "swapped.sample"
    swapped.write_text("\n".join(lines[:2] + [lines[3], lines[2]] + lines[4:]) + "\n")
    with pytest.raises(InputError, match=r"swapped\.sample: sample 1 is 's1' 's1' but "
                                         r"hand16\.bgen stores 's0_s0' .* does not match"):
        open_genotypes("bgen", src, swapped)
    bad = tmp_path / "bad.sample"
    bad.write_text("FID IID\n" + "\n".join(f"s{i} s{i}" for i in range(N)) + "\n")
    with pytest.raises(InputError, match=r"bad\.sample: the header must start with ID_1 ID_2"):
        open_genotypes("bgen", src, bad)


def test_a_pvar_with_a_missing_line_is_refused(files, tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    for ext in (".pgen", ".psam"):
        shutil.copy(str(files["pgen"]) + ext, d / f"x{ext}")
    lines = Path(str(files["pgen"]) + ".pvar").read_text().splitlines()
    (d / "x.pvar").write_text("\n".join(ln for k, ln in enumerate(lines) if k != len(lines) - 2)
                              + "\n")
    with pytest.raises(InputError, match=r"x\.pvar: 2 variants, but x\.pgen holds 3 - the "
                                         r"\.pvar does not match the \.pgen"):
        open_genotypes("pgen", d / "x")
    (d / "x.pvar").write_text("\n".join(lines[:-1] + [lines[-1].rsplit("\t", 1)[0]]) + "\n")
    with pytest.raises(InputError, match=r"x\.pvar: line \d+ has 4 fields, the header 5"):
        open_genotypes("pgen", d / "x")


def test_a_zstd_pvar_reads_as_the_plain_one(files, tmp_path):
    import zstandard

    for ext in (".pgen", ".psam"):
        shutil.copy(str(files["pgen"]) + ext, tmp_path / f"z{ext}")
    raw = Path(str(files["pgen"]) + ".pvar").read_bytes()
    (tmp_path / "z.pvar.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    z = open_genotypes("pgen", tmp_path / "z")
    assert z.bim.name == "z.pvar.zst"
    assert z.variants.equals(open_genotypes("pgen", files["pgen"]).variants)


def test_a_missing_reader_is_a_one_line_install_hint(monkeypatch, files):
    import builtins

    from glimix_cli.errors import GlimixError

    real = builtins.__import__

    def no_readers(name, *a, **k):
        if name in ("bgen", "pgenlib"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_readers)
    with pytest.raises(GlimixError, match=r"--bgen needs the bgen reader: pip install "
                                          r"'glimix-cli\[bgen\]'"):
        open_genotypes("bgen", files["bgen16"])
    with pytest.raises(GlimixError, match=r"--pgen needs plink2's reader: pip install "
                                          r"'glimix-cli\[pgen\]'"):
        open_genotypes("pgen", files["pgen"])


@pytest.mark.parametrize("name", ["pgen", "bgen16"])
def test_threads_sharing_one_source_read_what_one_thread_reads(files, name):
    """A Dask worker's threads share one unpickled source: its reader is locked."""
    from concurrent.futures import ThreadPoolExecutor

    g = _open(files, name)
    want = [g.read(k % 3, 3, [0, 5, 11, 2]) for k in range(24)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda k: g.read(k % 3, 3, [0, 5, 11, 2]), range(24)))
    for w, x in zip(want, got, strict=True):
        np.testing.assert_array_equal(w, x)
