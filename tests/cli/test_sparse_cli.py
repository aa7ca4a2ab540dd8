"""The sparse-kinship route end to end: ``--kinship FILE.grm.sp / .kin0``, ``--sparse-cutoff``,
``glimix kinship --sparse-cutoff`` and ``--kinship-cache`` of a sparse cache, through fit,
scan, ``--null``, ``--chunk`` + merge and ``--resume``; and its errors.

The reference is the dense engine on the same matrix: a block-diagonal kinship given as a
dense text matrix runs the dense Cholesky path, given as a ``.grm.sp`` the per-family one.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glimix_cli.cli.app import app
from glimix_cli.io.plink import open_bfile
from glimix_cli.kinship import grm

EX = Path(__file__).resolve().parents[2] / "example_data"
TRAITS = {"quant": ["-l", "normal"], "binary": ["-l", "bernoulli"],
          "count": ["-l", "poisson"]}


def _base(trait: str, out: Path, *extra: str) -> list[str]:
    return ["scan", "--bfile", str(EX / "cohort"), "--pheno", str(EX / "cohort.pheno.tsv"),
            "--pheno-name", trait, *TRAITS[trait], "--covar", str(EX / "cohort.covar.tsv"),
            "--chr", "2", "--out", str(out), "-q", *extra]


def _table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t")


@pytest.fixture(scope="module")
def family_files(tmp_path_factory) -> tuple[Path, Path]:
    """The example cohort's GRM kept at >= 0.15 (its nuclear families, exactly block
    diagonal), written as a GCTA .grm.sp/.grm.id and as a dense matrix with an ID header."""
    d = tmp_path_factory.mktemp("fam")
    bf = open_bfile(EX / "cohort")
    K = grm(bf).K
    T = np.where(K >= 0.15, K, 0.0)
    T[np.diag_indices_from(T)] = np.diag(K)
    s = bf.samples
    i, j = np.nonzero(np.tril(T))
    with open(d / "fam.grm.sp", "w") as fh:
        fh.writelines(f"{a}\t{b}\t{T[a, b]!r}\n" for a, b in zip(i, j, strict=True))
    s[["fid", "iid"]].to_csv(d / "fam.grm.id", sep="\t", header=False, index=False)
    dense = d / "fam.dense.txt"
    with open(dense, "w") as fh:
        fh.write(" ".join(s["iid"]) + "\n")
        fh.writelines(" ".join(repr(v) for v in row) + "\n" for row in T)
    return d / "fam.grm.sp", dense


@pytest.mark.parametrize("trait", list(TRAITS))
def test_grm_sp_scan_equals_the_dense_engine_on_the_same_matrix(runner, tmp_path, family_files,
                                                                trait):
    sp, dense = family_files
    a, b = tmp_path / "sparse.tsv", tmp_path / "dense.tsv"
    for out, kin in ((a, sp), (b, dense)):
        res = runner.invoke(app, _base(trait, out, "--kinship", str(kin)))
        assert res.exit_code == 0, res.output
    ta, tb = _table(a), _table(b)
    assert list(ta.columns) == list(tb.columns) and len(ta) == len(tb) > 1000
    for col in ta.columns:
        if ta[col].dtype.kind == "f":
            np.testing.assert_allclose(ta[col], tb[col], rtol=2e-5, atol=2e-5, err_msg=col)
        else:
            assert ta[col].equals(tb[col]), col


def test_kinship_cache_sparse_equals_on_the_fly_and_null_reuse(runner, tmp_path):
    cache = tmp_path / "k.npz"
    res = runner.invoke(app, ["kinship", "--bfile", str(EX / "cohort"), "--sparse-cutoff",
                              "0.15", "--out", str(cache)])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "sparse GRM of 610 samples" in out and "120 families (largest 5)" in out
    assert "screened with 2,845 markers" in out  # (8 / 0.15)^2
    fly, cached, reused = (tmp_path / f"{k}.tsv" for k in ("fly", "cached", "reused"))
    res = runner.invoke(app, _base("binary", fly, "--sparse-cutoff", "0.15"))
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, _base("binary", cached, "--kinship-cache", str(cache)))
    assert res.exit_code == 0, res.output
    # the cache standardises over all 610 genotyped samples, the run over its 600 analysed
    # ones (as for a dense cache): close, not equal
    a, b = _table(fly), _table(cached)
    np.testing.assert_allclose(a["neg_log10_p_value"], b["neg_log10_p_value"], atol=0.05)
    fit = ["fit", *_base("binary", tmp_path / "x", "--kinship-cache", str(cache))[1:]]
    fit[fit.index("--out") + 1] = str(tmp_path / "null")
    fit.remove("--chr")
    fit.remove("2")
    res = runner.invoke(app, fit)
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, _base("binary", reused, "--kinship-cache", str(cache), "--null",
                                   str(tmp_path / "null.null.json")))
    assert res.exit_code == 0, res.output
    assert reused.read_bytes() == cached.read_bytes()
    # the null model knows it was sparse: reusing it on the dense kinship is refused
    res = runner.invoke(app, _base("binary", tmp_path / "no.tsv", "--null",
                                   str(tmp_path / "null.null.json"), "--sparse-cutoff", "0.2"))
    assert res.exit_code == 1 and "other kinship options" in res.output
    res = runner.invoke(app, _base("binary", tmp_path / "no.tsv", "--null",
                                   str(tmp_path / "null.null.json")))
    assert res.exit_code == 1 and "fitted with a sparse kinship" in res.output


def test_chunks_merge_and_resume_on_the_sparse_path(runner, tmp_path, family_files):
    sp, _ = family_files
    whole = tmp_path / "whole.tsv.gz"
    res = runner.invoke(app, _base("binary", whole, "--kinship", str(sp)))
    assert res.exit_code == 0, res.output
    parts = []
    for i in (1, 2):
        p = tmp_path / f"part{i}.tsv.gz"
        res = runner.invoke(app, _base("binary", p, "--kinship", str(sp), "--chunk", f"{i}/2"))
        assert res.exit_code == 0, res.output
        parts.append(str(p))
    merged = tmp_path / "merged.tsv.gz"
    res = runner.invoke(app, ["merge", str(merged), *parts])
    assert res.exit_code == 0, res.output
    assert gzip.decompress(merged.read_bytes()) == gzip.decompress(whole.read_bytes())
    resumed = tmp_path / "resumed.tsv.gz"
    res = runner.invoke(app, _base("binary", resumed, "--kinship", str(sp), "--resume"))
    assert res.exit_code == 0, res.output
    assert gzip.decompress(resumed.read_bytes()) == gzip.decompress(whole.read_bytes())


def test_summary_reports_the_families(runner, tmp_path, family_files):
    sp, _ = family_files
    res = runner.invoke(app, [a for a in _base("quant", tmp_path / "q.tsv", "--kinship",
                                               str(sp)) if a != "-q"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if "kinship:" in ln)
    assert "120 families" in line and "the largest 5" in line and "unrelated" in line


def test_sparse_errors_are_one_line_and_early(runner, tmp_path, family_files):
    sp, dense = family_files
    lone = tmp_path / "lone.grm.sp"
    lone.write_text(sp.read_text())
    out = tmp_path / "o.tsv"
    res = runner.invoke(app, _base("quant", out, "--kinship", str(lone)))
    assert res.exit_code == 1 and "lone.grm.id is missing" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not out.exists()
    res = runner.invoke(app, _base("quant", out, "--kinship", str(sp), "--sparse-cutoff", "0.1"))
    assert res.exit_code == 2 and "alternatives" in res.output
    res = runner.invoke(app, _base("quant", out, "--screen-markers", "100"))
    assert res.exit_code == 2 and "needs --sparse-cutoff" in res.output
    dense_cache = tmp_path / "d.npz"
    res = runner.invoke(app, ["kinship", "--bfile", str(EX / "cohort"), "--out",
                              str(dense_cache), "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, _base("quant", out, "--kinship-cache", str(dense_cache),
                                   "--sparse-cutoff", "0.1"))
    assert res.exit_code == 1 and "holds a dense kinship" in res.output
    assert not out.exists()


def test_dense_kinship_beyond_memory_is_refused_before_work(monkeypatch, runner, tmp_path):
    import glimix_cli.pipeline.kinship as pk

    monkeypatch.setattr(pk, "available_memory", lambda: 10 << 20)  # 10 MiB
    calls = []
    monkeypatch.setattr(pk, "kinship_qs", lambda *a, **k: calls.append(1))
    out = tmp_path / "o.tsv"
    res = runner.invoke(app, _base("quant", out))
    assert res.exit_code == 1 and "--sparse-cutoff" in res.output and "GiB" in res.output
    assert not calls and not out.exists()
    res = runner.invoke(app, _base("quant", out, "--sparse-cutoff", "0.2"))
    assert res.exit_code == 0, res.output


def test_a_family_above_the_block_cap_is_an_error(monkeypatch, runner, tmp_path, family_files):
    import glimix_cli.pipeline.kinship as pk

    monkeypatch.setattr(pk, "MAX_BLOCK", 4)
    sp, _ = family_files
    res = runner.invoke(app, _base("quant", tmp_path / "o.tsv", "--kinship", str(sp)))
    assert res.exit_code == 1
    assert "5 samples into one family" in res.output and "--sparse-cutoff" in res.output


def test_kinship_parts_merge_to_the_whole(runner, tmp_path):
    from glimix_cli.kinship.cache import load_sparse_kinship_cache

    common = ["kinship", "--bfile", str(EX / "cohort"), "--sparse-cutoff", "0.15",
              "--screen-markers", "1500", "-q"]
    whole = tmp_path / "whole.npz"
    res = runner.invoke(app, [*common, "--out", str(whole)])
    assert res.exit_code == 0, res.output
    parts = []
    for i in (1, 2, 3):
        p = tmp_path / f"part{i}.npz"
        res = runner.invoke(app, [*common, "--part", f"{i}/3", "--out", str(p)])
        assert res.exit_code == 0, res.output
        parts.append(str(p))
    merged = tmp_path / "merged.npz"
    res = runner.invoke(app, ["kinship", "--merge-parts", "--out", str(merged), *parts])
    assert res.exit_code == 0, res.output
    assert "merged from 3 parts" in " ".join(res.output.split())
    s = open_bfile(EX / "cohort").samples
    keys = s["fid"].to_numpy(), s["iid"].to_numpy()
    Kw, iw = load_sparse_kinship_cache(whole, None, *keys)
    Km, im = load_sparse_kinship_cache(merged, None, *keys)
    assert abs(Kw - Km).max() < 1e-12 and iw["pairs"] == im["pairs"] > 800
    # a part is not a kinship; a missing or repeated part is refused
    scan = _base("quant", tmp_path / "o.tsv", "--kinship-cache", parts[0])
    res = runner.invoke(app, scan)
    assert res.exit_code == 1 and "holds part 1/3" in res.output
    res = runner.invoke(app, ["kinship", "--merge-parts", "--out", str(tmp_path / "x.npz"),
                              *parts[:2]])
    assert res.exit_code == 1 and "part(s) 3 of 3 missing" in res.output
    res = runner.invoke(app, ["kinship", "--merge-parts", "--out", str(tmp_path / "x.npz"),
                              parts[0], parts[0], parts[1], parts[2]])
    assert res.exit_code == 1 and "part 1/3 again" in res.output
    assert not (tmp_path / "x.npz").exists()
    res = runner.invoke(app, ["kinship", "--bfile", str(EX / "cohort"), "--part", "1/2",
                              "--out", str(tmp_path / "x.npz")])
    assert res.exit_code == 2 and "needs --sparse-cutoff" in res.output
