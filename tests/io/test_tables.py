"""Phenotype / covariate tables, trait coding rules and the design matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glimix_cli.errors import InputError
from glimix_cli.io.tables import design_matrix, load_covariates, load_trait, read_table


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.txt", "FID IID x\nf1 i1 1\nf2 i2 NA\n"),
        ("b.tsv", "#FID\tIID\tx\nf1\ti1\t1\nf2\ti2\t\n"),
        ("c.csv", "fid,iid,x\nf1, i1 ,1\nf2,i2,-9\n"),
        ("d.txt", "Fid   Iid  x\nf1 i1 1\nf2 i2 nan\n"),
        # the delimiter comes from the header line, whatever the file is called
        ("e.tsv", "FID,IID,x\nf1,i1,1\nf2,i2,NA\n"),
        ("f.txt.gz", None),
        # blanks around IDs in a tab table are not part of the ID
        ("g.tsv", "FID\tIID\tx\n f1 \ti1 \t1\nf2\t i2\tNA\n"),
    ],
)
def test_read_table_formats(tmp_path: Path, name: str, text: str | None) -> None:
    if text is None:  # a gzipped comma table without .csv in its name
        import gzip

        p = tmp_path / name
        p.write_bytes(gzip.compress(b"#FID,IID,x\nf1,i1,1\nf2,i2,\n"))
    else:
        p = _write(tmp_path, name, text)
    df = read_table(p)
    assert list(df.columns) == ["fid", "iid", "x"]
    assert df["fid"].tolist() == ["f1", "f2"] and df["iid"].tolist() == ["i1", "i2"]
    assert df["x"].iloc[0] == "1" and pd.isna(df["x"].iloc[1])


def test_read_table_iid_only_and_custom_missing(tmp_path: Path) -> None:
    p = _write(tmp_path, "p.txt", "IID x\ni1 -9\ni2 .\n")
    df = read_table(p)
    assert df["fid"].isna().all() and pd.isna(df["x"].iloc[0]) and df["x"].iloc[1] == "."
    df = read_table(p, missing_tokens=(".",))
    assert df["x"].iloc[0] == "-9" and pd.isna(df["x"].iloc[1])


def test_read_table_errors(tmp_path: Path, fixtures) -> None:
    with pytest.raises(InputError, match=r"pheno_dup\.txt: 2 duplicated sample key\(s\) "
                                         r"\(FID IID\), e\.g\. F1:I1, F2:I2 - each sample"):
        read_table(fixtures["pheno_dup"])
    with pytest.raises(InputError, match=r"h\.txt: no IID column in the header; columns are "
                                         r"1, HG00096, 0\.5 - the first line must be a header"):
        read_table(_write(tmp_path, "h.txt", "1 HG00096 0.5\n2 HG00097 0.7\n"))
    with pytest.raises(InputError, match=r"e\.txt: empty file - a table needs a header row"):
        read_table(_write(tmp_path, "e.txt", "\n"))
    with pytest.raises(InputError, match=r"c\.txt: column name\(s\) x appear more than once"):
        read_table(_write(tmp_path, "c.txt", "IID x x\ni1 1 2\n"))
    with pytest.raises(InputError, match=r"w\.txt: header has 3 columns but rows have 4"):
        read_table(_write(tmp_path, "w.txt", "FID IID x\nf i 1 2\n"))
    with pytest.raises(InputError, match=r"r\.txt: rows have different numbers of fields"):
        read_table(_write(tmp_path, "r.txt", "FID IID x\nf i 1\ng j 1 2\n"))
    with pytest.raises(InputError, match=r"nofile\.txt: file not found"):
        read_table(tmp_path / "nofile.txt")
    with pytest.raises(InputError, match=r"d\.txt: 1 duplicated sample key\(s\) \(IID\), "
                                         r"e\.g\. i1 -"):
        read_table(_write(tmp_path, "d.txt", "IID x\ni1 1\ni1 2\n"))


def test_trait_codings(fixtures) -> None:
    t = load_trait(fixtures["pheno"], "y01", "bernoulli")
    assert t.coding.startswith("0/1") and np.isnan(t.y[0]) and set(t.y[1:]) == {0.0, 1.0}
    assert t.fid[0] == "F0" and t.trials is None
    t = load_trait(fixtures["pheno"], "y12", "probit")
    assert "PLINK 1/2" in t.coding and np.isnan(t.y[1])
    assert np.nanmax(t.y) == 1.0 and np.nanmin(t.y) == 0.0
    t = load_trait(fixtures["pheno"], "count", "poisson")
    assert t.y.tolist() == list(range(11))
    t = load_trait(fixtures["pheno"], "succ", "binomial", trials_name="trials")
    assert t.trials is not None and (t.y <= t.trials).all()
    t = load_trait(fixtures["pheno"], "age", "normal")
    assert t.y.dtype == np.float64 and np.isfinite(t.y).all()


def test_trait_missing_token_minus9_is_configurable(tmp_path: Path) -> None:
    p = _write(tmp_path, "t.txt", "IID y\na 1.5\nb -9\n")
    assert np.isnan(load_trait(p, "y", "normal").y[1])
    assert load_trait(p, "y", "normal", missing_tokens=("NA",)).y[1] == -9.0


def test_trait_errors(tmp_path: Path, fixtures) -> None:
    ph = fixtures["pheno"]
    with pytest.raises(InputError, match=r"pheno\.txt: column 'bmi' not found; data columns "
                                         r"are y01, y12, ybad, .*, sex - check --pheno-name"):
        load_trait(ph, "bmi", "normal")
    with pytest.raises(InputError, match=r"pheno\.txt: column 'ybad' must be binary for "
                                         r"likelihood bernoulli .*found values 2 - recode"):
        load_trait(ph, "ybad", "bernoulli")
    with pytest.raises(InputError, match=r"pheno\.txt: column 'sex' must be numeric "
                                         r"\(likelihood normal\); found 'M', 'F' - fix"):
        load_trait(ph, "sex", "normal")
    with pytest.raises(InputError, match=r"unknown likelihood 'gamma'; choose one of normal, "):
        load_trait(ph, "y01", "gamma")
    with pytest.raises(InputError, match=r"likelihood binomial needs the number of trials "
                                         r"per sample - pass --trials-name"):
        load_trait(ph, "succ", "binomial")
    with pytest.raises(InputError, match=r"column 'nt' not found; .* - check --trials-name"):
        load_trait(ph, "succ", "binomial", trials_name="nt")
    p = _write(tmp_path, "q.txt", "IID y n c\na 3 2 1.5\nb 1 0 -1\nc 0.5 1 2\nd 7 9 3\n"
                                  "e 8 9 4\nf 9 9 5\ng 3 9 6\nh 4 9 7\n")
    with pytest.raises(InputError, match=r"q\.txt: column 'c' must hold non-negative integer "
                                         r"counts for likelihood poisson; found 1\.5, -1"):
        load_trait(p, "c", "poisson")
    with pytest.raises(InputError, match=r"q\.txt: trials column 'n' must hold integers >= 1; "
                                         r"found 0 - fix"):
        load_trait(p, "y", "binomial", trials_name="n")
    p2 = _write(tmp_path, "s.txt", "IID y n\na 3 2\nb 0.5 1\nc 1 1\n")
    with pytest.raises(InputError, match=r"s\.txt: column 'y' must hold integer successes "
                                         r"0 <= y <= 'n'; found successes/trials '3/2', "
                                         r"'0.5/1' - fix"):
        load_trait(p2, "y", "binomial", trials_name="n")
    p3 = _write(tmp_path, "b.txt", "IID y\n" + "".join(f"s{k} {k}\n" for k in range(9)))
    with pytest.raises(InputError, match=r"found values 2, 3, 4, 5, 6 \(\+2 more\)"):
        load_trait(p3, "y", "bernoulli")
    p4 = _write(tmp_path, "i.txt", "IID y\na inf\nb 1\n")
    with pytest.raises(InputError, match=r"i\.txt: column 'y' must be numeric .*found 'inf'"):
        load_trait(p4, "y", "normal")


def test_binomial_missing_trials_makes_sample_missing(tmp_path: Path) -> None:
    p = _write(tmp_path, "b.txt", "IID y n\na 1 NA\nb 2 4\n")
    t = load_trait(p, "y", "binomial", trials_name="n")
    assert np.isnan(t.y[0]) and np.isnan(t.trials[0]) and t.observed.tolist() == [False, True]


def test_load_covariates_types(fixtures) -> None:
    c = load_covariates(fixtures["pheno"], names=["age", "sex"], cat_names=["batch"])
    assert list(c.table.columns) == ["age", "sex", "batch"]
    assert c.cat_columns == ("sex", "batch")
    assert c.table["age"].dtype == np.float64 and c.table["batch"].iloc[4] == "1"
    assert c.complete.all()
    with pytest.raises(InputError, match=r"column 'height' not found; .* check --covar-name"):
        load_covariates(fixtures["pheno"], names=["height"])


def test_design_matrix_categorical_constant_collinear() -> None:
    df = pd.DataFrame(
        {
            "age": [30.0, 41, 52, 60, 25, 33],
            "one": [1.0] * 6,
            "grp": ["c", "a", "b", "a", "c", "b"],
            "age_x2": [60.0, 82, 104, 120, 50, 66],
            "site": ["s"] * 6,
            "noise": [0.1, -0.3, 0.2, 0.5, -0.1, 0.0],
        }
    )
    d = design_matrix(df, ["grp", "site"])
    assert d.names == ["intercept", "age", "grp=b", "grp=c", "noise"]
    assert d.dropped == [("one", "constant"), ("age_x2", "collinear"), ("site", "constant")]
    assert d.X.shape == (6, 5) and d.X.dtype == np.float64
    np.testing.assert_array_equal(d.X[:, 0], 1.0)
    np.testing.assert_array_equal(d.X[:, 2], [0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(d.X[:, 1], df["age"])
    assert np.linalg.matrix_rank(d.X) == 5


def test_design_matrix_indicator_collinear_with_numeric_and_errors() -> None:
    df = pd.DataFrame({"g": ["x", "y", "y", "x"], "gnum": [0.0, 1, 1, 0]})
    d = design_matrix(df, ["g"])
    assert d.names == ["intercept", "g=y"] and d.dropped == [("gnum", "collinear")]
    with pytest.raises(InputError, match=r"covariate 'gnum': 1 missing value\(s\) among the "
                                         r"analysed samples"):
        design_matrix(pd.DataFrame({"gnum": [0.0, np.nan]}))
    with pytest.raises(InputError, match=r"covariate 'g' has non-numeric values - list it as "
                                         r"categorical"):
        design_matrix(df)


def test_real_cohort_table() -> None:
    from shared_data import shared_cohort

    path = Path(f"{shared_cohort()}.pheno.covars")
    c = load_covariates(path, names=["QCOV1", "QCOV2", "CAT_COV"])
    assert c.cat_columns == ("CAT_COV",)
    assert c.table["CAT_COV"].isna().sum() == 2  # one NA and one -9
