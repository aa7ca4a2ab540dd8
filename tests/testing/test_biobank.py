"""The streaming biobank simulator: readable PLINK files, the pedigree's relatedness in the
GRM, ancestry groups, trait prevalences and the planted variants."""

from __future__ import annotations

import numpy as np
import pandas as pd

from glimix_cli.io.plink import open_bfile
from glimix_cli.kinship import grm
from glimix_cli.testing.biobank import BiobankDesign, _encode, simulate_biobank


def test_encode_matches_the_reference_writer():
    from glimix_cli.io.plink_write import encode_bed

    D = np.random.default_rng(0).integers(0, 3, size=(7, 13)).astype(np.int8)
    assert b"\x6c\x1b\x01" + _encode(D) == encode_bed(D.T.astype(float))


def test_cohort_files_and_relatedness(tmp_path):
    d = BiobankDesign(n=1000, m=3000, background=500, block=400, populations=3, fst=0.05,
                      planted=5, chromosomes=3, seed=4)
    info = simulate_biobank(tmp_path / "c", d)
    bf = open_bfile(tmp_path / "c")
    assert bf.n_samples == 1000 and bf.n_variants == 3000
    assert list(bf.variants["chrom"].unique()) == ["1", "2", "3"]
    K = grm(bf).K
    fam = bf.samples
    # nuclear family 1: parents 0, 1 unrelated; children 2, 3 of both
    for a, b in ((0, 2), (0, 3), (1, 2), (1, 3), (2, 3)):
        assert abs(K[a, b] - 0.5) < 0.1
    assert abs(K[0, 1]) < 0.1
    sib = int(np.flatnonzero(fam["fid"].str.startswith("SIB"))[0])
    assert abs(K[sib, sib + 1] - 0.5) < 0.1
    unr = np.flatnonzero(fam["fid"].str.startswith("UNR"))
    off = K[np.ix_(unr[:50], unr[50:100])]
    assert abs(off.mean()) < 0.05
    assert (fam["fid"].str.startswith("NUC").sum(), fam["fid"].str.startswith("SIB").sum()) \
        == (200, 100)
    ph = pd.read_csv(tmp_path / "c.pheno.tsv", sep="\t")
    assert list(ph.columns) == ["FID", "IID", "quant", "case10", "case01"]
    assert ph["case10"].sum() == 100 and ph["case01"].sum() == 10
    planted = pd.read_csv(tmp_path / "c.planted.tsv", sep="\t")
    assert planted["variant_id"].tolist() == [f"v{k + 1}" for k in info["planted"]]
    assert sum(info["populations"]) == 1000 and min(info["populations"]) > 250
