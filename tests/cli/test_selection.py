"""plink2's selection flags: --keep/--remove (samples), --exclude and --chr (variants).

Each is checked against plink2 itself on example_data (the same samples and variants
selected), and its bad inputs are one-line errors that leave no file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glimix_cli.cli.app import app
from glimix_cli.io.plink import open_bfile
from glimix_cli.pipeline.qc import select_variants

EX = Path(__file__).resolve().parents[2] / "example_data"


def _with_quant() -> set[tuple[str, str]]:
    """Samples whose trait quant is not missing (the fit drops the others)."""
    t = pd.read_csv(EX / "cohort.pheno.tsv", sep="\t", dtype=str, keep_default_na=False)
    ok = ~t["quant"].isin(["NA", ""])
    return set(zip(t["FID"][ok], t["IID"][ok], strict=True))
PLINK2 = shutil.which("plink2")
needs_plink2 = pytest.mark.skipif(PLINK2 is None, reason="plink2 not installed (.ci/run "
                                  "installs it from Debian)")


def _lists(tmp_path: Path) -> tuple[Path, Path]:
    fam = pd.read_csv(EX / "cohort.fam", sep=r"\s+", header=None, dtype=str)
    keep = tmp_path / "keep.txt"  # a plink2 header, FID IID, plus IDs not in the data
    rows = fam.iloc[::3, :2].values.tolist() + [["NOPE", "NOPE_1"]]
    keep.write_text("#FID\tIID\n" + "".join(f"{f}\t{i}\n" for f, i in rows))
    remove = tmp_path / "remove.txt"  # FID IID, no header, extra columns ignored
    remove.write_text("".join(f"{f} {i} x\n" for f, i in fam.iloc[::7, :2].values))
    return keep, remove


def _fit(runner, tmp_path: Path, *extra: str):
    out = tmp_path / "fit"
    res = runner.invoke(app, ["fit", "--bfile", str(EX / "cohort"), "--pheno",
                              str(EX / "cohort.pheno.tsv"), "--pheno-name", "quant",
                              "--out", str(out), *extra])
    return res, out.with_suffix(".null.json")


@needs_plink2
def test_keep_and_remove_select_the_samples_plink2_selects(runner, tmp_path):
    keep, remove = _lists(tmp_path)
    res, null = _fit(runner, tmp_path, "--keep", str(keep), "--remove", str(remove))
    assert res.exit_code == 0, res.output
    data = json.loads(null.read_text())
    subprocess.run([PLINK2, "--bfile", str(EX / "cohort"), "--keep", str(keep), "--remove",
                    str(remove), "--make-just-fam", "--out", str(tmp_path / "p2")],
                   check=True, capture_output=True)
    p2 = pd.read_csv(tmp_path / "p2.fam", sep=r"\s+", header=None, dtype=str)
    selected = list(zip(p2[0], p2[1], strict=True))
    expected = [k for k in selected if k in _with_quant()]
    got = list(zip(data["samples"]["fid"], data["samples"]["iid"], strict=True))
    assert got == expected and len(got) > 100
    counts = data["samples"]["counts"]
    assert counts["after --keep"] == len(pd.read_csv(keep, sep="\t")) - 1
    assert counts["after --remove"] == len(selected)
    assert "after --keep" in res.output and "after --remove" in res.output


def test_a_list_without_fids_matches_on_iid(runner, tmp_path):
    """Unlike plink2 (which then takes the FID as '0' and, on a .fam with family IDs,
    silently matches nothing), a list of IIDs matches on IID, as glimix's tables do."""
    fam = pd.read_csv(EX / "cohort.fam", sep=r"\s+", header=None, dtype=str)
    remove = tmp_path / "remove_iid.txt"
    remove.write_text("".join(f"{i}\n" for i in fam.iloc[::7, 1]))
    res, null = _fit(runner, tmp_path, "--remove", str(remove))
    assert res.exit_code == 0, res.output
    data = json.loads(null.read_text())
    expected = [i for k, (f, i) in enumerate(zip(fam[0], fam[1], strict=True))
                if k % 7 and (f, i) in _with_quant()]
    assert data["samples"]["iid"] == expected


@needs_plink2
def test_chr_ranges_and_exclude_select_the_variants_plink2_selects(tmp_path):
    bfile = open_bfile(EX / "cohort")
    v = bfile.variants
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("\n".join(v["variant_id"].iloc[::5]) + "\n")
    for chrom in ("1-2", "2,3", "chr3", "1-5"):
        sel = select_variants(v, chrom, exclude=exclude)
        subprocess.run([PLINK2, "--bfile", str(EX / "cohort"), "--chr", chrom, "--exclude",
                        str(exclude), "--write-snplist", "--out", str(tmp_path / "p2")],
                       check=True, capture_output=True)
        expected = (tmp_path / "p2.snplist").read_text().split()
        assert v["variant_id"].to_numpy()[sel.indices].tolist() == expected, chrom


def test_chromosome_names_compare_as_plink2_compares_them():
    v = pd.DataFrame({"chrom": ["1", "2", "23", "X", "chrY", "MT"],
                      "variant_id": list("abcdef"), "pos": [1, 2, 3, 4, 5, 6]})
    pick = lambda c: v["variant_id"].to_numpy()[select_variants(v, c).indices].tolist()  # noqa: E731
    assert pick("X") == ["c", "d"] and pick("23") == ["c", "d"] and pick("chrX") == ["c", "d"]
    assert pick("1-23") == ["a", "b", "c", "d"]
    assert pick("24,26") == ["e", "f"] and pick("chrM") == ["f"]
    assert pick("1-22,Y") == ["a", "b", "e"]
    from glimix_cli.errors import InputError

    with pytest.raises(InputError, match=r"chromosome 7 not in the genotypes"):
        select_variants(v, "1,7")
    with pytest.raises(InputError, match=r"chromosome none of 3-9 not in the genotypes"):
        select_variants(v, "3-9")
    assert pick("X-Y") == ["c", "d", "e"]  # 23-24, as the codes order them
    with pytest.raises(InputError, match=r"1-A is not a range of chromosome numbers"):
        select_variants(v, "1-A")


def test_bad_sample_lists_are_one_line_errors_before_any_work(runner, tmp_path):
    binary = tmp_path / "keep.bin"
    binary.write_bytes(b"\x00\x01\x02" * 50)
    nobody = tmp_path / "nobody.txt"
    nobody.write_text("X1 Y1\nX2 Y2\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    cases = [(["--keep", str(binary)], "a binary file, not a list of sample IDs"),
             (["--keep", str(nobody)], "no genotyped sample is left after --keep"),
             (["--remove", str(empty)], "no sample ID in the file - --remove takes")]
    for extra, message in cases:
        res, null = _fit(runner, tmp_path, *extra)
        assert res.exit_code == 1, res.output
        assert message in res.output and "Traceback" not in res.output, res.output
        assert not null.exists()


def test_a_scan_with_exclude_and_chr_writes_only_those_variants(runner, tmp_path):
    v = open_bfile(EX / "cohort").variants
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("\n".join(v["variant_id"].iloc[:100]) + "\n")
    out = tmp_path / "o.tsv"
    res = runner.invoke(app, ["scan", "--bfile", str(EX / "cohort"), "--pheno",
                              str(EX / "cohort.pheno.tsv"), "--pheno-name", "quant", "--chr",
                              "1-2", "--exclude", str(exclude), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(out, sep="\t")
    expected = v[v["chrom"].isin(["1", "2"])].iloc[100:]
    assert rows["variant_id"].tolist() == expected["variant_id"].tolist()
    assert "--exclude" in res.output and "100 selected variants left out" in res.output
    assert np.all(rows["chromosome"].astype(str).isin(["1", "2"]))


def test_an_option_given_twice_is_refused_unless_it_takes_a_list(runner, tmp_path):
    base = ["--bfile", str(EX / "cohort"), "--pheno", str(EX / "cohort.pheno.tsv")]
    out = tmp_path / "o.tsv"
    res = runner.invoke(app, ["scan", *base, "--pheno-name", "quant", "--maf", "0.01",
                              "--maf", "0.05", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "--maf given 2 times - give --maf once" in res.output
    res = runner.invoke(app, ["scan", *base, "--chr", "1", "--chrom=2", "--out", str(out)])
    assert res.exit_code == 2 and "--chr and --chrom given 2 times" in res.output
    assert not out.exists() and "Traceback" not in res.output
    # list options repeat, as documented (--pheno-name: several traits in one pass)
    res = runner.invoke(app, ["fit", *base, "--pheno-name", "quant", "--missing-code", "-99",
                              "--missing-code", "-999", "-q"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["fit", *base, "--pheno-name", "quant", "--pheno-name", "count",
                              "-q"])
    assert res.exit_code == 0, res.output


def test_a_run_writes_its_log_as_plink2_does(runner, tmp_path):
    out = tmp_path / "r.tsv.gz"
    args = ["scan", "--bfile", str(EX / "cohort"), "--pheno", str(EX / "cohort.pheno.tsv"),
            "--pheno-name", "quant", "--chr", "2", "--out", str(out), "-q"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    log = (tmp_path / "r.log").read_text()
    assert res.output == ""  # --quiet prints nothing, the log still has everything
    assert "command: glimix scan --bfile" in log and f"--out {out}" in log
    assert "glimix " in log.splitlines()[0] and "numpy " in log.splitlines()[0]
    assert "genotypes: 610 samples x 5,000 variants" in log
    assert "phenotype non-missing" in log and "lambda_GC = " in log
    assert f"wrote {out}: 1,667 variants" in log
    res = runner.invoke(app, ["fit", *args[1:7], "--out", str(tmp_path / "f")])
    assert res.exit_code == 0, res.output
    assert "null model: normal" in (tmp_path / "f.log").read_text()
    assert f"wrote {tmp_path / 'f.log'}" in res.output.replace("\n", "")


@needs_plink2
def test_a_plink2_eigenvec_file_is_a_covariate_table_as_it_is(runner, tmp_path):
    """PCs for ancestry: plink2 --pca's .eigenvec (#FID IID PC1 ...) works as --covar."""
    subprocess.run([PLINK2, "--bfile", str(EX / "cohort"), "--pca", "4", "--out",
                    str(tmp_path / "pc")], check=True, capture_output=True)
    res, null = _fit(runner, tmp_path, "--covar", str(tmp_path / "pc.eigenvec"))
    assert res.exit_code == 0, res.output
    data = json.loads(null.read_text())
    assert data["null"]["covariates"] == ["intercept", "PC1", "PC2", "PC3", "PC4"]
    assert data["samples"]["counts"]["with covariates"] == len(_with_quant())


def test_plain_progress_lines_when_stderr_is_not_a_terminal(runner, tmp_path, monkeypatch):
    """SLURM logs: percent, rate and ETA as plain lines at an interval, no live bar."""
    monkeypatch.setenv("GLIMIX_PROGRESS_INTERVAL", "0")
    out = tmp_path / "o.tsv"
    res = runner.invoke(app, ["scan", "--bfile", str(EX / "cohort"), "--pheno",
                              str(EX / "cohort.pheno.tsv"), "--pheno-name", "quant",
                              "--block-size", "1000", "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("scanning variants:")]
    assert len(lines) >= 4, res.output
    assert "1,000/5,000 (20%)" in lines[0] and "variants/s" in lines[0] and "eta" in lines[0]
    assert lines[-1].startswith("scanning variants: done in")
    assert "\x1b[" not in res.output  # no terminal control codes
    monkeypatch.setenv("GLIMIX_PROGRESS_INTERVAL", "3600")
    res = runner.invoke(app, ["scan", "--bfile", str(EX / "cohort"), "--pheno",
                              str(EX / "cohort.pheno.tsv"), "--pheno-name", "quant",
                              "--out", str(tmp_path / "p.tsv")])
    assert res.exit_code == 0 and "scanning variants:" not in res.output


def test_column_lists_ranges_and_numbers_as_plink2(runner, tmp_path):
    """--covar-name age-sex (a range in file order), --covar-col-nums 3-4 (FID and IID
    counted), --pheno-col-nums 3: the same model as the names written out."""
    def covariates(*extra: str) -> list[str]:
        out = tmp_path / "f"
        res = runner.invoke(app, ["fit", "--bfile", str(EX / "cohort"), "--pheno",
                                  str(EX / "cohort.pheno.tsv"), "--covar",
                                  str(EX / "cohort.covar.tsv"), "--out", str(out), *extra])
        assert res.exit_code == 0, res.output
        data = json.loads(out.with_suffix(".null.json").read_text())
        return [data["null"]["covariates"], data["inputs"]["pheno_name"]]

    want = covariates("--pheno-name", "quant", "--covar-name", "age", "--covar-name", "sex")
    assert want == [["intercept", "age", "sex"], "quant"]
    assert covariates("--pheno-name", "quant", "--covar-name", "age-sex") == want
    assert covariates("--pheno-name", "quant", "--covar-col-nums", "3-4") == want
    assert covariates("--pheno-col-nums", "3", "--covar-name", "age,sex") == want
    assert covariates("--pheno-name", "quant", "--covar-name", "sex,age")[0] == [
        "intercept", "sex", "age"]

    def error(*extra: str) -> str:
        res = runner.invoke(app, ["fit", "--bfile", str(EX / "cohort"), "--pheno",
                                  str(EX / "cohort.pheno.tsv"), "--covar",
                                  str(EX / "cohort.covar.tsv"), *extra])
        assert res.exit_code == 1, res.output
        errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in res.output, res.output
        assert not (tmp_path / "e.null.json").exists()
        return errors[0]

    assert "runs backwards" in error("--pheno-name", "quant", "--covar-name", "sex-age")
    assert "column 'PC1-PC10' not found" in error("--pheno-name", "quant", "--covar-name",
                                                  "PC1-PC10")
    assert "ID column" in error("--pheno-name", "quant", "--covar-col-nums", "1-3")
    assert "column 'nosuch' not found" in error("--pheno-name", "quant,nosuch")
    assert "header has 7 columns" in error("--pheno-col-nums", "9")


def test_unplaced_unknown_position_and_x_variants_are_reported(runner, tmp_path):
    from glimix_cli.io.plink_write import write_plink1

    rng = np.random.default_rng(3)
    n, m = 80, 40
    G = rng.binomial(2, 0.3, size=(n, m)).astype(float)
    chrom = ["0"] * 5 + ["1"] * 25 + ["X"] * 10
    pos = [-9] * 3 + list(range(1000, 1000 * (m - 2), 1000))
    ids = [f"s{i}" for i in range(n)]
    write_plink1(tmp_path / "g", G, chrom=chrom, variant_id=[f"v{j}" for j in range(m)],
                 pos=pos, a1=["A"] * m, a2=["G"] * m, fid=ids, iid=ids)
    (tmp_path / "p.tsv").write_text("FID\tIID\ty\n" + "".join(
        f"{i}\t{i}\t{rng.normal():.4f}\n" for i in ids))
    res = runner.invoke(app, ["scan", "--bfile", str(tmp_path / "g"), "--pheno",
                              str(tmp_path / "p.tsv"), "--mac", "1", "--out",
                              str(tmp_path / "o.tsv")])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "5 selected variants are on chromosome 0" in text
    assert "3 selected variants have position <= 0" in text
    assert "warning: 10 selected variants on chromosome X" in text
    assert "gives no sex for any sample" in text
    out = pd.read_csv(tmp_path / "o.tsv", sep="\t")
    assert (out["chromosome"].astype(str) == "0").sum() == 5
    assert (out["base_pair_location"] == -9).sum() == 3
