"""``glimix scan --bgen/--pgen`` end to end (issue 18).

example_data converted by plink2 in the test (BGEN 1.2 8-bit zlib, BGEN 1.3 zstd, .pgen)
gives the .bed run's rows; a scan of non-integer dosages matches a dense generalised
least-squares computation from the same dosages; broken inputs are one-line errors with
exit code 1 and no output left; chunks, merge, selections and export work on dosage runs.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from glimix_cli.cli.app import app

pytest.importorskip("bgen")
pytest.importorskip("pgenlib")
PLINK2 = shutil.which("plink2")
pytestmark = pytest.mark.skipif(PLINK2 is None, reason="plink2 not installed (.ci/run "
                                "installs it from Debian)")
#: the columns every genotype format shares (a dosage run adds ``info`` after them)
SHARED = 15


def plink2(*args: str) -> None:
    subprocess.run([PLINK2, "--silent", "--threads", "1", *args], check=True,
                   capture_output=True)


EX = Path(__file__).resolve().parents[2] / "example_data"


@pytest.fixture(scope="module")
def conv(tmp_path_factory) -> dict[str, Path]:
    """example_data as BGEN 1.2 8-bit (ALT second, and plink2's default ALT first),
    BGEN 1.3 zstd, and .pgen; and the null model of ``quant`` fitted on the .bed."""
    d = tmp_path_factory.mktemp("conv")
    bed = str(EX / "cohort")
    plink2("--bfile", bed, "--export", "bgen-1.2", "bits=8", "ref-first", "--out",
           str(d / "c12"))
    plink2("--bfile", bed, "--export", "bgen-1.3", "ref-first", "--out", str(d / "c13"))
    plink2("--bfile", bed, "--export", "bgen-1.2", "bits=8", "--out", str(d / "alt1st"))
    plink2("--bfile", bed, "--make-pgen", "--out", str(d / "cp"))
    return {"dir": d, "c12": d / "c12.bgen", "c13": d / "c13.bgen", "alt1st": d / "alt1st.bgen",
            "pgen": d / "cp"}


@pytest.fixture(scope="module")
def bed_run(tmp_path_factory, runner) -> tuple[Path, Path]:
    ex = EX
    d = tmp_path_factory.mktemp("bedrun")
    res = runner.invoke(app, ["fit", "--bfile", str(ex / "cohort"), "--pheno",
                              str(ex / "cohort.pheno.tsv"), "--pheno-name", "quant", "--out",
                              str(d / "q"), "-q"])
    assert res.exit_code == 0, res.output
    out = d / "bed.tsv"
    res = runner.invoke(app, ["scan", *_common(ex), "--bfile", str(ex / "cohort"),
                              "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    return out, d / "q.null.json"


def _common(ex: Path) -> list[str]:
    return ["--pheno", str(ex / "cohort.pheno.tsv"), "--pheno-name", "quant"]


def _bgen(conv, name: str) -> list[str]:
    return ["--bgen", str(conv[name]), "--sample", str(conv[name].with_suffix(".sample"))]


def _cols(path: Path, k: int = SHARED) -> list[str]:
    return ["\t".join(line.split("\t")[:k]) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("fmt", ["c12", "c13", "pgen"])
def test_hard_calls_give_the_bed_runs_rows_in_every_format(runner, conv, bed_run, ex, tmp_path,
                                                           fmt):
    """The kinship from the .bed (--kinship-bfile) or, for the .pgen, from its own hard
    calls; the .bed run's null reused (--null): the shared columns are the same bytes."""
    bed_tsv, null = bed_run
    out = tmp_path / "d.tsv"
    geno = (["--pgen", str(conv["pgen"])] if fmt == "pgen"
            else [*_bgen(conv, fmt), "--kinship-bfile", str(ex / "cohort"), "--null", str(null)])
    res = runner.invoke(app, ["scan", *_common(ex), *geno, "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert _cols(out) == _cols(bed_tsv)
    header = out.read_text().splitlines()[0].split("\t")
    assert header[SHARED:] == ["info"]


def test_scan_samples_in_another_order_than_the_kinship_bfile(runner, conv, bed_run,
                                                             tmp_path):
    """The analysed samples follow the scanned file; --kinship-bfile rows are matched by
    ID, so a .pgen with the samples reversed gives the .bed run's statistics (the same
    model with its rows permuted; the sums in another order change the last digits)."""
    bed_tsv, _ = bed_run
    rev = tmp_path / "rev.txt"
    fam = (EX / "cohort.fam").read_text().splitlines()
    rev.write_text("".join(f"{r.split()[0]}\t{r.split()[1]}\n" for r in reversed(fam)))
    plink2("--bfile", str(EX / "cohort"), "--indiv-sort", "f", str(rev), "--make-pgen",
           "--out", str(tmp_path / "rev"))
    assert (tmp_path / "rev.psam").read_text().splitlines()[1].split()[1] == fam[-1].split()[1]
    out = tmp_path / "rev.tsv"
    res = runner.invoke(app, ["scan", *_common(EX), "--pgen", str(tmp_path / "rev"),
                              "--kinship-bfile", str(EX / "cohort"), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    a = [r.split("\t") for r in bed_tsv.read_text().splitlines()[1:]]
    b = [r.split("\t") for r in out.read_text().splitlines()[1:]]
    for ra, rb in zip(a, b, strict=True):
        assert ra[:4] + ra[8:10] + ra[12:13] == rb[:4] + rb[8:10] + rb[12:13]
        if ra[12] == "ok":
            assert float(rb[4]) == pytest.approx(float(ra[4]), rel=1e-3, abs=1e-6)
            assert float(rb[11]) == pytest.approx(float(ra[11]), abs=2e-3)
    # every sample analysed, the kinship from a cache of the .bed: its rows are permuted too
    rows = [r.split("\t") for r in (EX / "cohort.pheno.tsv").read_text().splitlines()[1:]]
    full = tmp_path / "full.tsv"
    full.write_text("FID\tIID\ty\n" + "".join(f"{r[0]}\t{r[1]}\t"
                                              f"{r[2] if r[2] != 'NA' else '0.5'}\n"
                                              for r in rows))
    cache = tmp_path / "k.npz"
    assert runner.invoke(app, ["kinship", "--bfile", str(EX / "cohort"), "--out", str(cache),
                               "-q"]).exit_code == 0
    outs = []
    for geno in (["--bfile", str(EX / "cohort")],
                 ["--pgen", str(tmp_path / "rev"), "--kinship-bfile", str(EX / "cohort")]):
        outs.append(tmp_path / f"c{len(outs)}.tsv")
        res = runner.invoke(app, ["scan", "--pheno", str(full), *geno, "--kinship-cache",
                                  str(cache), "--chr", "1", "--out", str(outs[-1]), "-q"])
        assert res.exit_code == 0, res.output
    a = [r.split("\t") for r in outs[0].read_text().splitlines()[1:]]
    b = [r.split("\t") for r in outs[1].read_text().splitlines()[1:]]
    assert len(a) == len(b) > 500
    for ra, rb in zip(a, b, strict=True):
        if ra[12] == "ok":
            assert float(rb[4]) == pytest.approx(float(ra[4]), rel=1e-3, abs=1e-6)


def test_plink2s_default_bgen_export_counts_ref_and_says_so(runner, conv, bed_run, ex,
                                                            tmp_path):
    """Without ref-first plink2 writes ALT first: the second allele counted is then the
    .bed's other allele, and beta and the frequency flip with effect_allele."""
    bed_tsv, null = bed_run
    out = tmp_path / "alt.tsv"
    res = runner.invoke(app, ["scan", *_common(ex), *_bgen(conv, "alt1st"), "--kinship-bfile",
                              str(ex / "cohort"), "--null", str(null), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    a = [r.split("\t") for r in bed_tsv.read_text().splitlines()[1:]]
    b = [r.split("\t") for r in out.read_text().splitlines()[1:]]
    assert len(a) == len(b) == 5000
    n_tested = 0
    for ra, rb in zip(a, b, strict=True):
        assert (rb[2], rb[3]) == (ra[3], ra[2])
        assert rb[7] == ra[7]  # p-value
        if ra[12] == "ok":
            n_tested += 1
            assert float(rb[4]) == pytest.approx(-float(ra[4]), rel=1e-5, abs=1e-9)
            assert float(rb[6]) == pytest.approx(1 - float(ra[6]), abs=2e-6)
    assert n_tested > 4900


def test_chunks_merge_selection_and_ssf_on_a_dosage_run(runner, conv, ex, tmp_path, bed_run):
    _, null = bed_run
    geno = [*_bgen(conv, "c12"), "--kinship-bfile", str(ex / "cohort"), "--null", str(null)]
    sel = ["--chr", "2", "--from-bp", "1000000", "--to-bp", "4000000", "--min-info", "0.98"]
    whole = tmp_path / "whole.tsv"
    assert runner.invoke(app, ["scan", *_common(ex), *geno, *sel, "--out", str(whole),
                               "-q"]).exit_code == 0
    rows = [r.split("\t") for r in whole.read_text().splitlines()[1:]]
    assert rows and {r[0] for r in rows} == {"2"}
    assert all(1_000_000 <= int(r[1]) <= 4_000_000 for r in rows)
    low = [r for r in rows if r[12] == "low_info"]
    assert low and all(float(r[15]) < 0.98 and r[4] == "NA" for r in low)
    assert all(float(r[15]) >= 0.98 for r in rows if r[12] == "ok")
    parts = []
    for i in (1, 2, 3):
        p = tmp_path / f"part{i}.tsv"
        res = runner.invoke(app, ["scan", *_common(ex), *geno, *sel, "--chunk", f"{i}/3",
                                  "--block-size", "7", "--out", str(p), "-q"])
        assert res.exit_code == 0, res.output
        parts.append(str(p))
    merged = tmp_path / "merged.tsv"
    assert runner.invoke(app, ["merge", str(merged), *parts]).exit_code == 0
    assert merged.read_bytes() == whole.read_bytes()
    ssf = tmp_path / "ssf.tsv.gz"
    res = runner.invoke(app, ["export-ssf", str(whole), "--out", str(ssf),
                              "--genome-assembly", "GRCh38", "--allow-missing-autosomes"])
    assert res.exit_code == 0, res.output
    with gzip.open(ssf, "rt") as fh:
        assert sum(1 for _ in fh) == sum(r[7] != "NA" for r in rows) + 1  # (tested rows)


def test_dosages_match_a_dense_gls_scan(runner, tmp_path):
    """Non-integer dosages (some missing) through plink2 -> .pgen and BGEN 16-bit: the
    scan's beta, SE and LRT are those of generalised least squares with V = v0 K + v1 I
    (v0, v1 from the fitted null), mean-imputed dosages and the alternative's unbiased
    scale, computed densely here."""
    rng = np.random.default_rng(18)
    n, m = 150, 12
    ids = [f"s{i}" for i in range(n)]
    A = rng.normal(size=(n, 40))
    K = A @ A.T / 40 + 0.05 * np.eye(n)
    D = np.round(np.clip(rng.beta(0.6, 1.4, size=(n, m)) * 2, 0, 2), 3)
    D[rng.random((n, m)) < 0.03] = np.nan
    y = 0.4 * np.nan_to_num(D[:, 0], nan=0.6) + rng.multivariate_normal(np.zeros(n), 0.6 * K) \
        + rng.normal(size=n)
    vcf = tmp_path / "d.vcf"
    lines = ["##fileformat=VCFv4.2",
             '##FORMAT=<ID=DS,Number=A,Type=Float,Description="dosage">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(ids)]
    for j in range(m):
        cells = ["." if np.isnan(x) else f"{x:g}" for x in D[:, j]]
        lines.append(f"1\t{1000 * (j + 1)}\tv{j}\tA\tC\t.\t.\t.\tDS\t" + "\t".join(cells))
    vcf.write_text("\n".join(lines) + "\n")
    plink2("--vcf", str(vcf), "dosage=DS", "--double-id", "--make-pgen", "--out",
           str(tmp_path / "d"))
    plink2("--pfile", str(tmp_path / "d"), "--export", "bgen-1.2", "bits=16", "ref-first",
           "--out", str(tmp_path / "d16"))
    pheno = tmp_path / "y.tsv"
    pheno.write_text("FID\tIID\ty\n" + "".join(f"{s}\t{s}\t{v:.6f}\n" for s, v in
                                               zip(ids, y, strict=True)))
    kin = tmp_path / "K.txt"
    kin.write_text(" ".join(ids) + "\n" + "".join(" ".join(f"{x:.17g}" for x in row) + "\n"
                                                 for row in K))
    common = ["--pheno", str(pheno), "--kinship", str(kin)]
    res = runner.invoke(app, ["fit", "--pgen", str(tmp_path / "d"), *common, "--out",
                              str(tmp_path / "null"), "-q"])
    assert res.exit_code == 0, res.output
    nul = json.loads((tmp_path / "null.null.json").read_text())["null"]
    outs = {}
    for name, geno in (("pgen", ["--pgen", str(tmp_path / "d")]),
                       ("bgen", ["--bgen", str(tmp_path / "d16.bgen"), "--sample",
                                 str(tmp_path / "d16.sample")])):
        outs[name] = tmp_path / f"{name}.tsv"
        res = runner.invoke(app, ["scan", *geno, *common, "--mac", "0", "--null",
                                  str(tmp_path / "null.null.json"), "--out", str(outs[name]),
                                  "-q"])
        assert res.exit_code == 0, res.output
    # the dosages as stored: .pgen keeps 1/16384 steps (the BGEN then rounds to 1/65535)
    Dq = np.round(D * 16384) / 16384
    Di = np.where(np.isnan(Dq), np.nanmean(Dq, axis=0), Dq)
    W = np.linalg.inv(nul["v0"] * K + nul["v1"] * np.eye(n))
    X = np.ones((n, 1))
    r0 = y - X @ np.linalg.solve(X.T @ W @ X, X.T @ W @ y)
    Q0 = r0 @ W @ r0
    for name, tol in (("pgen", 1e-5), ("bgen", 1e-4)):
        rows = [r.split("\t") for r in outs[name].read_text().splitlines()[1:]]
        assert len(rows) == m
        for j, row in enumerate(rows):
            Xa = np.column_stack([X, Di[:, j]])
            Minv = np.linalg.inv(Xa.T @ W @ Xa)
            b = Minv @ Xa.T @ W @ y
            r1 = y - Xa @ b
            Q1 = r1 @ W @ r1
            se = np.sqrt(Q1 / (n - 2) * Minv[-1, -1])
            assert float(row[4]) == pytest.approx(b[-1], rel=tol), (name, j)
            assert float(row[5]) == pytest.approx(se, rel=tol), (name, j)
            assert float(row[10]) == pytest.approx(n * np.log(Q0 / Q1), rel=tol, abs=1e-6)
            assert int(row[9]) == int(np.sum(~np.isnan(D[:, j])))


def _one_line_error(res, out: Path, pattern: str) -> None:
    import re

    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert re.search(pattern, text), text
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_broken_inputs_are_one_line_errors_and_leave_no_output(runner, conv, ex, tmp_path):
    out = tmp_path / "o.tsv"
    src = conv["c12"]
    cut = tmp_path / "cut.bgen"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    res = runner.invoke(app, ["scan", *_common(ex), "--bgen", str(cut), "--sample",
                              str(src.with_suffix(".sample")), "--out", str(out)])
    _one_line_error(res, out, r"cut\.bgen: truncated BGEN file .*re-create or re-download")
    lines = src.with_suffix(".sample").read_text().splitlines()
    short = tmp_path / "short.sample"
    short.write_text("\n".join(lines[:-5]) + "\n")
    res = runner.invoke(app, ["scan", *_common(ex), "--bgen", str(src), "--sample", str(short),
                              "--out", str(out)])
    _one_line_error(res, out, r"short\.sample: 605 samples, but c12\.bgen holds 610")
    pv = tmp_path / "p"
    for ext in (".pgen", ".psam"):
        shutil.copy(str(conv["pgen"]) + ext, str(pv) + ext)
    pvar = Path(str(conv["pgen"]) + ".pvar").read_text().splitlines()
    Path(str(pv) + ".pvar").write_text("\n".join(pvar[:100] + pvar[101:]) + "\n")
    res = runner.invoke(app, ["scan", *_common(ex), "--pgen", str(pv), "--out", str(out)])
    _one_line_error(res, out, r"p\.pvar: 4,999 variants, but p\.pgen holds 5,000")
    res = runner.invoke(app, ["scan", *_common(ex), "--bfile", str(ex / "cohort"),
                              "--min-info", "0.8", "--out", str(out)])
    _one_line_error(res, out, r"--min-info 0\.8: .*cohort holds hard calls")
    res = runner.invoke(app, ["scan", *_common(ex), "--bfile", str(ex / "cohort"), "--pgen",
                              str(conv["pgen"]), "--out", str(out)])
    assert res.exit_code == 2 and "--bfile and --pgen are alternatives" in res.output
    res = runner.invoke(app, ["scan", *_common(ex), "--out", str(out)])
    assert res.exit_code == 2 and "one of --bfile, --bgen, --pgen" in res.output


@pytest.mark.slow
def test_dask_and_resume_give_the_same_dosage_rows(runner, conv, ex, tmp_path, bed_run):
    pytest.importorskip("distributed")
    _, null = bed_run
    geno = [*_bgen(conv, "c13"), "--kinship-bfile", str(ex / "cohort"), "--null", str(null),
            "--chr", "1"]
    ref = tmp_path / "ref.tsv"
    assert runner.invoke(app, ["scan", *_common(ex), *geno, "--out", str(ref),
                               "-q"]).exit_code == 0
    dk = tmp_path / "dask.tsv"
    res = runner.invoke(app, ["scan", *_common(ex), *geno, "--dask-local", "2",
                              "--block-size", "300", "--out", str(dk), "-q"])
    assert res.exit_code == 0, res.output
    assert dk.read_bytes() == ref.read_bytes()
    # a resumed run: the partial file of a run cut after its first blocks
    from glimix_cli.pipeline import run as run_mod

    real = run_mod.scan_block
    calls = {"n": 0}

    def dying(ctx, idx):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(ctx, idx)

    rs = tmp_path / "resumed.tsv"
    run_mod.scan_block = dying
    try:
        res = runner.invoke(app, ["scan", *_common(ex), *geno, "--block-size", "100",
                                  "--out", str(rs), "-q"])
    finally:
        run_mod.scan_block = real
    assert res.exit_code == 130 and not rs.exists()
    res = runner.invoke(app, ["scan", *_common(ex), *geno, "--block-size", "100", "--resume",
                              "--out", str(rs), "-q"])
    assert res.exit_code == 0, res.output
    assert rs.read_bytes() == ref.read_bytes()


@pytest.mark.slow
def test_loco_with_a_kinship_bfile_gives_the_bed_runs_rows(runner, conv, tmp_path):
    """--loco: the kinships leaving one chromosome out come from the --kinship-bfile, the
    scanned BGEN's blocks are keyed by their own chromosome names."""
    outs = []
    for geno in (["--bfile", str(EX / "cohort")],
                 [*_bgen(conv, "c12"), "--kinship-bfile", str(EX / "cohort")]):
        outs.append(tmp_path / f"loco{len(outs)}.tsv")
        res = runner.invoke(app, ["scan", *_common(EX), *geno, "--loco", "--chr", "2,3",
                                  "--out", str(outs[-1]), "-q"])
        assert res.exit_code == 0, res.output
    assert _cols(outs[1]) == _cols(outs[0])

