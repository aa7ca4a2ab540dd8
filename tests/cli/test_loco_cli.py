"""``--loco`` end to end on example_data (three chromosomes): with ``--loco-fit full`` each
chromosome's rows equal a plain scan on the kinship of the other two chromosomes (computed
directly and given as a matrix); with the default ``fixed`` the Normal rows equal a GLS
scan at the whole-genome variance ratio computed here with numpy, and the binary models
keep the whole-genome v0; per-chromosome and chunked runs equal the whole run, ``fit
--loco`` + ``--null`` and ``glimix kinship --loco`` reproduce it, and the errors come before
any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glimix_cli.cli.app import app
from glimix_cli.io.plink import open_bfile
from glimix_cli.kinship import grm

EX = Path(__file__).resolve().parents[2] / "example_data"
TRAITS = {"quant": ["-l", "normal"], "binary": ["-l", "bernoulli"]}
COLS = ["beta", "standard_error", "neg_log10_p_value"]


def _args(cmd: str, trait: str, out: Path, *extra: str) -> list[str]:
    return [cmd, "--bfile", str(EX / "cohort"), "--pheno", str(EX / "cohort.pheno.tsv"),
            "--pheno-name", trait, *TRAITS[trait], "--covar", str(EX / "cohort.covar.tsv"),
            "--out", str(out), "-q", *extra]


def _ok(runner, args: list[str]) -> None:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output


def _rows(path: Path) -> list[str]:
    import gzip

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        return fh.read().splitlines()


@pytest.fixture(scope="module")
def loco_runs(tmp_path_factory, runner) -> dict[str, Path]:
    """trait -> the whole LOCO scan; and the LOCO null files of ``fit --loco``."""
    d = tmp_path_factory.mktemp("loco")
    done = {}
    for trait in TRAITS:
        _ok(runner, _args("scan", trait, d / f"{trait}.tsv", "--loco"))
        _ok(runner, _args("scan", trait, d / f"{trait}.full.tsv", "--loco", "--loco-fit",
                          "full"))
        _ok(runner, _args("fit", trait, d / trait, "--loco"))
        done[trait] = d / f"{trait}.tsv"
        done[f"{trait}.full"] = d / f"{trait}.full.tsv"
        done[f"{trait}.null"] = d / f"{trait}.null.json"
    return done


def _loco_setup(null: dict):
    bf = open_bfile(EX / "cohort")
    keys = {(f, i): k for k, (f, i) in enumerate(zip(bf.samples["fid"], bf.samples["iid"],
                                                     strict=True))}
    sidx = np.array([keys[(f, i)] for f, i in zip(null["samples"]["fid"],
                                                  null["samples"]["iid"], strict=True)])
    return bf, sidx, bf.variants["chrom"].to_numpy().astype(str)


def test_fixed_loco_models_keep_the_whole_genome_variances(loco_runs):
    """``--loco-fit fixed`` (the default): each chromosome's binary model keeps the whole
    genome's v0 and refits its effects; the Normal rows of chromosome 1 equal a GLS scan,
    computed here with numpy, under ``(1 - delta) K_-1 + delta I`` at the whole genome's
    delta, with the REML scale."""
    from scipy.stats import chi2

    binary = json.loads(loco_runs["binary.null"].read_text())
    for c, entry in binary["loco"].items():
        assert entry["null"]["v0"] == binary["null"]["v0"], c
        assert entry["null"]["beta"] != binary["null"]["beta"], c
    quant = json.loads(loco_runs["quant.null"].read_text())
    delta = quant["null"]["delta"]
    assert all(e["null"]["delta"] == delta for e in quant["loco"].values())
    bf, sidx, chrom = _loco_setup(quant)
    K = grm(bf, sidx, np.flatnonzero(chrom != "1")).K
    pheno = pd.read_csv(EX / "cohort.pheno.tsv", sep="\t").set_index(["FID", "IID"])
    covar = pd.read_csv(EX / "cohort.covar.tsv", sep="\t").set_index(["FID", "IID"])
    ids = list(zip(quant["samples"]["fid"], quant["samples"]["iid"], strict=True))
    y = pheno.loc[ids, "quant"].to_numpy(float)
    cv = covar.loc[ids]
    assert quant["null"]["covariates"] == ["intercept", "age", "sex", "site=north",
                                           "site=south"]
    X = np.column_stack([np.ones(len(ids)), cv["age"], cv["sex"], cv["site"] == "north",
                         cv["site"] == "south"]).astype(float)
    n = y.size
    Ci = np.linalg.inv((1 - delta) * K + delta * np.eye(n))
    rows = pd.read_csv(loco_runs["quant"], sep="\t")
    rows = rows[(rows["chromosome"].astype(str) == "1") & (rows["status"] == "ok")].head(40)
    from glimix_cli.io.plink import iter_blocks

    vidx = bf.variants.index[bf.variants["variant_id"].isin(rows["variant_id"])].to_numpy()
    (_, G), = iter_blocks(bf, vidx, vidx.size, sidx)
    G = np.where(np.isnan(G), np.nanmean(G, axis=0), G)
    r0 = y - X @ np.linalg.solve(X.T @ Ci @ X, X.T @ Ci @ y)
    q0 = float(r0 @ Ci @ r0)
    for j, vid in enumerate(bf.variants["variant_id"].to_numpy()[vidx]):
        # the scanner's test (README): the LRT with the scale profiled, the SE at the
        # alternative's unbiased scale
        A = np.column_stack([X, G[:, j]])
        cov = np.linalg.inv(A.T @ Ci @ A)
        b = cov @ (A.T @ Ci @ y)
        r1 = y - A @ b
        q1 = float(r1 @ Ci @ r1)
        se = np.sqrt(q1 / (n - A.shape[1]) * cov[-1, -1])
        row = rows[rows["variant_id"] == vid].iloc[0]
        np.testing.assert_allclose(row["beta"], b[-1], rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(row["standard_error"], se, rtol=2e-4)
        nlp = -chi2.logsf(n * np.log(q0 / q1), 1) / np.log(10)
        np.testing.assert_allclose(row["neg_log10_p_value"], nlp, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("trait", list(TRAITS))
def test_rows_equal_a_scan_on_the_kinship_without_their_chromosome(runner, tmp_path, loco_runs,
                                                                   trait):
    """``--loco-fit full``: every chromosome's null is refitted in full on K_-c."""
    null = json.loads(loco_runs[f"{trait}.null"].read_text())
    bf = open_bfile(EX / "cohort")
    keys = {(f, i): k for k, (f, i) in enumerate(zip(bf.samples["fid"], bf.samples["iid"],
                                                     strict=True))}
    sidx = np.array([keys[(f, i)] for f, i in zip(null["samples"]["fid"],
                                                  null["samples"]["iid"], strict=True)])
    chrom = bf.variants["chrom"].to_numpy().astype(str)
    whole = pd.read_csv(loco_runs[f"{trait}.full"], sep="\t")
    for c in ("1", "3"):
        K = grm(bf, sidx, np.flatnonzero(chrom != c)).K  # GRM of the other chromosomes
        path = tmp_path / f"K{c}.txt"
        ids = [f"{f}_{i}" for f, i in zip(null["samples"]["fid"], null["samples"]["iid"],
                                          strict=True)]
        with open(path, "w") as fh:
            fh.write(" ".join(ids) + "\n")
            fh.writelines(" ".join(repr(float(x)) for x in row) + "\n" for row in K)
        out = tmp_path / f"plain{c}.tsv"
        _ok(runner, _args("scan", trait, out, "--chr", c, "--kinship", str(path)))
        plain = pd.read_csv(out, sep="\t")
        mine = whole[whole["chromosome"].astype(str) == c].reset_index(drop=True)
        assert list(mine["variant_id"]) == list(plain["variant_id"])
        # the LOCO fit starts from the whole-genome one (a warm start), the plain one cold:
        # the same optimum to the optimiser's tolerance (EP's: sites to ~1.5e-5 relative);
        # the TSV prints 5 significant digits. (Without LOCO, beta differs by ~10%.)
        rtol, atol = (1.2e-4, 1e-6) if trait == "quant" else (3e-4, 1e-4)
        for col in COLS:
            np.testing.assert_allclose(mine[col], plain[col], rtol=rtol, atol=atol, err_msg=col)
    assert null["kinship"]["options"]["loco"] is True
    assert sorted(null["loco"]) == ["1", "2", "3"]


def test_per_chromosome_chunked_and_null_reusing_runs_equal_the_whole(runner, tmp_path,
                                                                     loco_runs):
    whole = _rows(loco_runs["quant"])
    per = [whole[0]]
    for c in ("1", "2", "3"):
        out = tmp_path / f"c{c}.tsv"
        _ok(runner, _args("scan", "quant", out, "--loco", "--chr", c))
        per += _rows(out)[1:]
    assert per == whole
    parts = []
    for i in (1, 2):
        out = tmp_path / f"part{i}.tsv"
        _ok(runner, _args("scan", "quant", out, "--loco", "--chunk", f"{i}/2", "--null",
                          str(loco_runs["quant.null"])))
        parts.append(str(out))
    _ok(runner, ["merge", str(tmp_path / "merged.tsv"), *parts, "-q"])
    a = pd.read_csv(loco_runs["quant"], sep="\t")
    b = pd.read_csv(tmp_path / "merged.tsv", sep="\t")
    for col in COLS:
        np.testing.assert_allclose(b[col], a[col], rtol=1e-9, atol=1e-12, err_msg=col)


def test_summary_shows_the_per_chromosome_models(runner, tmp_path):
    res = runner.invoke(app, [a for a in _args("scan", "binary", tmp_path / "s.tsv", "--loco",
                                                "--chr", "1-2") if a != "-q"])
    assert res.exit_code == 0, res.output
    assert "LOCO null models (2 chromosomes, each on the kinship without it)" in res.output
    assert "2 refits" in res.output
    log = (tmp_path / "s.log").read_text()
    assert "LOCO null models" in log


def test_kinship_cache_equals_the_on_the_fly_kinships(runner, tmp_path):
    bf = open_bfile(EX / "cohort")
    rng = np.random.default_rng(5)
    pheno = bf.samples[["fid", "iid"]].rename(columns={"fid": "FID", "iid": "IID"})
    pheno["t"] = rng.normal(size=len(pheno))
    pheno.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    base = ["scan", "--bfile", str(EX / "cohort"), "--pheno", str(tmp_path / "p.tsv"),
            "--pheno-name", "t", "--loco", "--chr", "2", "-q"]
    res = runner.invoke(app, ["kinship", "--bfile", str(EX / "cohort"), "--loco", "--out",
                              str(tmp_path / "k.npz")])
    assert res.exit_code == 0, res.output
    assert "the kinships leaving out each of 3 chromosomes" in res.output
    _ok(runner, [*base, "--out", str(tmp_path / "fly.tsv")])
    _ok(runner, [*base, "--kinship-cache", str(tmp_path / "k.npz"), "--out",
                 str(tmp_path / "cache.tsv")])
    a = pd.read_csv(tmp_path / "fly.tsv", sep="\t")
    b = pd.read_csv(tmp_path / "cache.tsv", sep="\t")
    for col in COLS:
        np.testing.assert_allclose(b[col], a[col], rtol=1e-6, atol=1e-9, err_msg=col)
    # a cache without the per-chromosome kinships cannot serve --loco
    _ok(runner, ["kinship", "--bfile", str(EX / "cohort"), "--out", str(tmp_path / "d.npz"),
                 "-q"])
    res = runner.invoke(app, [*base, "--kinship-cache", str(tmp_path / "d.npz"), "--out",
                              str(tmp_path / "x.tsv")])
    assert res.exit_code == 1
    assert "holds no per-chromosome kinships, --loco needs them" in res.output
    assert not (tmp_path / "x.tsv").exists()


def test_errors_are_one_line_and_before_any_work(runner, tmp_path, loco_runs):
    bf = open_bfile(EX / "cohort")
    K = tmp_path / "K.txt"
    np.savetxt(K, np.eye(bf.n_samples))
    out = tmp_path / "o.tsv"
    res = runner.invoke(app, _args("scan", "quant", out, "--loco", "--kinship", str(K)))
    assert res.exit_code == 1
    assert "a precomputed kinship matrix has no chromosomes - drop --loco or --kinship" in \
        res.output
    chr2 = tmp_path / "chr2.txt"
    v = bf.variants
    chr2.write_text("\n".join(v.loc[v["chrom"].astype(str) == "2", "variant_id"]) + "\n")
    res = runner.invoke(app, _args("scan", "quant", out, "--loco", "--kinship-extract",
                                   str(chr2)))
    assert res.exit_code == 1
    assert "the kinship variants are all on chromosome 2 - drop --loco" in res.output
    assert "Traceback" not in res.output
    _ok(runner, _args("fit", "quant", tmp_path / "plain"))
    res = runner.invoke(app, _args("scan", "quant", out, "--loco", "--null",
                                   str(tmp_path / "plain.null.json")))
    assert res.exit_code == 1 and "fitted with other kinship options" in res.output
    res = runner.invoke(app, _args("scan", "quant", out, "--null",
                                   str(loco_runs["quant.null"])))
    assert res.exit_code == 1 and "fitted with other kinship options" in res.output
    assert not out.exists() and not Path(f"{out}.partial").exists()
    res = runner.invoke(app, ["kinship", "--bfile", str(EX / "cohort"), "--loco",
                              "--sparse-cutoff", "0.1", "--out", str(tmp_path / "k.npz")])
    assert res.exit_code == 2 and "a sparse family kinship needs no LOCO" in res.output


def test_a_sparse_kinship_ignores_loco_with_a_note(runner, tmp_path):
    plain, loco = tmp_path / "plain.tsv", tmp_path / "loco.tsv"
    _ok(runner, _args("scan", "quant", plain, "--sparse-cutoff", "0.1", "--chr", "2"))
    res = runner.invoke(app, [a for a in _args("scan", "quant", loco, "--sparse-cutoff", "0.1",
                                               "--chr", "2", "--loco") if a != "-q"])
    assert res.exit_code == 0, res.output
    assert "--loco is not used with a sparse family kinship" in " ".join(res.output.split())
    assert _rows(plain) == _rows(loco)
