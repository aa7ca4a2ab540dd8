"""``glimix pca``: the randomised PCs against the exact eigendecomposition of the GRM and
against plink2 --pca, on a cohort of three populations; the file format; the errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from glimix_cli.cli.app import app
from glimix_cli.io.plink import open_bfile
from glimix_cli.io.plink_write import write_plink1
from glimix_cli.kinship import grm
from glimix_cli.kinship.pca import randomized_pcs
from glimix_cli.testing.genotypes import simulate_genotypes

runner = CliRunner()


@pytest.fixture(scope="module")
def structured(tmp_path_factory) -> Path:
    """300 unrelated samples from three populations (Fst 0.05) x 3,000 variants."""
    rng = np.random.default_rng(11)
    sim = simulate_genotypes(0, 3, 3000, 2, rng, n_unrelated=300, n_populations=3, fst=0.05)
    v = sim.variants
    prefix = tmp_path_factory.mktemp("pca") / "pop"
    write_plink1(prefix, sim.dosage, chrom=v.chrom, variant_id=v.variant_id, pos=v.pos,
                 a1=v.a1, a2=v.a2, fid=sim.samples.fid, iid=sim.samples.iid)
    return prefix


def test_randomized_pcs_equal_the_exact_eigenvectors(structured):
    bf = open_bfile(structured)
    res = randomized_pcs(bf, 4)
    w, V = np.linalg.eigh(grm(bf).K)
    w, V = w[::-1], V[:, ::-1]
    # the two ancestry PCs (eigenvalues far above the rest): the error falls like
    # (lambda_(k+11) / lambda_j)^(2 iterations + 1), about 0.17^9 ~ 1e-7 here
    assert w[1] > 3 * w[2]
    np.testing.assert_allclose(res.values[:2], w[:2], rtol=1e-5)
    for j in range(2):
        assert abs(res.vectors[:, j] @ V[:, j]) == pytest.approx(1.0, abs=1e-6)
    more = randomized_pcs(bf, 2, iterations=10)  # 0.17^21 ~ 1e-16
    np.testing.assert_allclose(more.values, w[:2], rtol=1e-12)
    np.testing.assert_allclose(np.abs(more.vectors.T @ V[:, :2]), np.eye(2), atol=1e-10)
    # noise PCs (no eigengap) are not resolved, but Ritz values never exceed the truth
    assert np.all(res.values[2:] <= w[2:4] * (1 + 1e-12))
    np.testing.assert_allclose(np.linalg.norm(res.vectors, axis=0), 1.0)
    assert res.n_variants_used == grm(bf).n_variants_used == 2986  # 14 monomorphic


def test_cli_writes_plink2_files_that_match_plink2(structured, tmp_path):
    out = tmp_path / "p.eigenvec"
    res = runner.invoke(app, ["pca", "--bfile", str(structured), "-k", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ours = pd.read_csv(out, sep="\t")
    assert list(ours.columns) == ["#FID", "IID", "PC1", "PC2", "PC3"] and len(ours) == 300
    assert len(Path(tmp_path / "p.eigenval").read_text().split()) == 3
    if shutil.which("plink2") is None:
        pytest.skip("plink2 not installed (.ci/run installs it)")
    subprocess.run(["plink2", "--bfile", str(structured), "--pca", "3", "--out",
                    str(tmp_path / "p2")], check=True, capture_output=True)
    theirs = pd.read_csv(tmp_path / "p2.eigenvec", sep="\t")
    theirs = theirs.set_index("IID").loc[ours["IID"]]
    # plink2 scales by the allele-frequency SD, glimix by the empirical SD: the ancestry
    # PCs agree up to sign
    for j in (1, 2):
        r = np.corrcoef(ours[f"PC{j}"], theirs[f"PC{j}"])[0, 1]
        assert abs(r) > 0.999, (j, r)


def test_pca_errors(structured, tmp_path):
    res = runner.invoke(app, ["pca", "--bfile", str(structured), "-k", "400", "--out",
                              str(tmp_path / "x.eigenvec")])
    assert res.exit_code == 1 and "k must be below" in res.output
    assert not (tmp_path / "x.eigenvec").exists()
    res = runner.invoke(app, ["pca", "--bfile", str(structured), "--out",
                              str(tmp_path / "nodir" / "x.eigenvec")])
    assert res.exit_code == 1 and "does not exist" in res.output


def test_in_memory_passes_equal_rereading_the_genotypes(structured, monkeypatch):
    import glimix_cli.kinship.pca as pca

    bf = open_bfile(structured)
    cached = randomized_pcs(bf, 3, maf_min=0.05)
    monkeypatch.setattr(pca, "CACHE_BYTES", 0)
    reread = randomized_pcs(bf, 3, maf_min=0.05)
    np.testing.assert_allclose(cached.values, reread.values, rtol=1e-10)
    np.testing.assert_allclose(np.abs(cached.vectors.T @ reread.vectors), np.eye(3), atol=1e-8)
    assert cached.n_variants_used == reread.n_variants_used < 3000
