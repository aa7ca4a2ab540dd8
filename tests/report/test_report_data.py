"""Pure data preparation for the plots: chromosome order, layout, thinning, QQ, lambda_GC."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest
from report_helpers import write_results
from scipy.special import betaincinv

from glimix_cli.errors import InputError
from glimix_cli.report.data import (
    GENOME_WIDE,
    chromosome_sort_key,
    lambda_gc,
    manhattan_data,
    order_chromosomes,
    qq_data,
    read_scan_table,
    scan_table,
)


def _genome(rng, m, chroms=("1", "2", "3", "X")):
    chrom = rng.choice(np.array(chroms, dtype=object), m)
    pos = rng.integers(1, 5_000_000, m)
    return chrom, pos


# -- chromosomes ---------------------------------------------------------------------------


def test_chromosome_order_numeric_then_x_y_mt_then_others_by_name() -> None:
    names = ["MT", "GL000192.1", "X", "10", "2", "Y", "1", "22", "chr3", "HLA", "M"]
    assert order_chromosomes(names) == ["1", "2", "chr3", "10", "22", "X", "Y", "M", "MT",
                                        "GL000192.1", "HLA"]
    assert chromosome_sort_key("chrX") == chromosome_sort_key("X")
    assert order_chromosomes([str(c) for c in range(22, 0, -1)]) == [str(c)
                                                                   for c in range(1, 23)]


# -- Manhattan -----------------------------------------------------------------------------


def test_manhattan_layout_follows_chromosome_order_and_positions() -> None:
    chrom = np.array(["2", "10", "X", "1", "2", "10", "1"], dtype=object)
    pos = np.array([500, 100, 7, 1000, 900, 300, 10])
    y = np.array([1.0, 2.0, 0.5, 0.2, 4.0, 0.3, 0.1])
    md = manhattan_data(chrom, pos, y, keep_above=0.0)
    assert md.chromosomes == ["1", "2", "10", "X"]
    assert md.n_drawn == 7
    # chromosome c occupies [start_c, start_c + span_c], spans in order without overlap
    assert np.all(np.diff(md.bounds.ravel()) >= 0)
    order = np.argsort(md.x)
    assert [chrom[i] for i in md.index[order]] == ["1", "1", "2", "2", "10", "10", "X"]
    # within a chromosome the x offset equals the bp distance
    one = md.index == 6, md.index == 3
    assert md.x[one[1]][0] - md.x[one[0]][0] == pytest.approx(990)
    assert list(md.chrom_rank[np.argsort(md.index)]) == [1, 2, 3, 0, 1, 2, 0]
    assert np.allclose(md.ticks, md.bounds.mean(axis=1))


def test_manhattan_highest_point_is_the_planted_variant() -> None:
    rng = np.random.default_rng(3)
    m = 50_000
    chrom, pos = _genome(rng, m)
    chisq = rng.chisquare(1, m)
    planted = 31_337
    chisq[planted] = 90.0
    ids = np.array([f"rs{i}" for i in range(m)], dtype=object)
    _, nlp = _p(chisq)
    md = manhattan_data(chrom, pos, nlp, ids)
    top = int(np.argmax(md.y))
    assert md.index[top] == planted
    assert md.y[top] == pytest.approx(nlp[planted])
    assert md.labels[0][2] == f"rs{planted}"
    assert md.labels[0][:2] == (pytest.approx(md.x[top]), pytest.approx(md.y[top]))
    assert md.chromosomes[md.chrom_rank[top]] == chrom[planted]


def _p(chisq):
    from glimix_cli.model.stats import chi2_1_pvalue

    return chi2_1_pvalue(chisq)


def test_thinning_keeps_every_point_above_3_and_drops_dense_low_ones() -> None:
    rng = np.random.default_rng(4)
    m = 300_000
    chrom, pos = _genome(rng, m)
    _, nlp = _p(rng.chisquare(1, m) * 1.2)
    md = manhattan_data(chrom, pos, nlp)
    high = np.flatnonzero(nlp > 3)
    assert high.size > 100
    assert set(high) <= set(md.index.tolist())
    assert md.n_drawn < m / 2
    assert md.n_input == m
    # every drawn point is drawn at its own coordinates
    assert np.array_equal(md.y, nlp[md.index])
    # the thinned low band still covers the same ground: per chromosome the drawn max below
    # 3 is within one grid step of the true max
    for r, c in enumerate(md.chromosomes):
        sel = (chrom == c) & (nlp <= 3)
        drawn = md.y[(md.chrom_rank == r) & (md.y <= 3)]
        assert drawn.max() == pytest.approx(nlp[sel].max(), abs=0.02)


def test_labels_one_per_peak_genome_wide_first() -> None:
    chrom = np.array(["1"] * 6 + ["2"] * 2, dtype=object)
    pos = np.array([100, 200, 300, 5_000_000, 9_000_000, 9_000_100, 10, 20])
    y = np.array([20.0, 19.0, 18.0, 6.0, 9.0, 1.0, 12.0, 0.5])
    ids = np.array([f"v{i}" for i in range(8)], dtype=object)
    md = manhattan_data(chrom, pos, y, ids)
    # v1, v2 share v0's peak; v3 is only suggestive while genome-wide hits exist
    assert [lab[2] for lab in md.labels] == ["v0", "v6", "v4"]
    md = manhattan_data(chrom, pos, y, ids, label_min=5.0)
    assert [lab[2] for lab in md.labels] == ["v0", "v6", "v4", "v3"]
    assert manhattan_data(chrom, pos, y, ids, max_labels=1).labels[0][2] == "v0"


def test_manhattan_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="differ in length"):
        manhattan_data(["1"], [1, 2], [0.1, 0.2])
    with pytest.raises(InputError, match="non-finite"):
        manhattan_data(["1", "1"], [1, 2], [0.1, np.nan])


# -- QQ ------------------------------------------------------------------------------------


def test_qq_expected_observed_and_band() -> None:
    rng = np.random.default_rng(5)
    n = 100_000
    _, nlp = _p(rng.chisquare(1, n))
    qd = qq_data(nlp, lambda_gc=1.01)
    assert qd.n == n and qd.lambda_gc == 1.01
    assert qd.n_drawn < 5_000
    assert np.all(np.diff(qd.observed) <= 0)
    assert np.allclose(qd.expected, -np.log10((qd.rank - 0.5) / n))
    assert np.allclose(qd.observed, np.sort(nlp)[::-1][qd.rank - 1])
    assert qd.rank[0] == 1 and qd.rank[-1] == n
    assert np.sum(nlp > 3) == np.sum(qd.observed > 3)
    # the band is the 2.5% and 97.5% quantiles of Beta(i, n - i + 1), on the -log10 scale
    i = qd.rank.astype(float)
    assert np.allclose(qd.band_upper, -np.log10(betaincinv(i, n - i + 1, 0.025)))
    assert np.all(qd.band_lower < qd.expected) and np.all(qd.expected < qd.band_upper)
    # under the null nearly all drawn points lie inside the pointwise band
    inside = (qd.observed >= qd.band_lower) & (qd.observed <= qd.band_upper)
    assert inside.mean() > 0.8


def test_qq_single_value_and_empty() -> None:
    qd = qq_data([2.0])
    assert qd.expected.tolist() == [pytest.approx(-np.log10(0.5))]
    assert qq_data([]).n_drawn == 0


# -- lambda_GC -----------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [1.0, 1.3])
def test_lambda_gc_on_simulated_statistics(factor: float) -> None:
    rng = np.random.default_rng(6)
    chisq = rng.chisquare(1, 400_000) * factor
    assert lambda_gc(chisq) == pytest.approx(factor, abs=0.01)
    # NaN statistics (non-ok rows) are ignored
    assert lambda_gc(np.concatenate([chisq, [np.nan] * 1000])) == lambda_gc(chisq)


@pytest.mark.parametrize("factor", [1.0, 1.3])
def test_lambda_gc_from_a_results_file(tmp_path, factor: float) -> None:
    rng = np.random.default_rng(7)
    m = 60_000
    chrom, pos = _genome(rng, m)
    status = np.where(rng.random(m) < 0.05, "low_mac", "ok")
    path = write_results(tmp_path / "r.tsv", chrom, pos, rng.chisquare(1, m) * factor,
                         status=status)
    t = read_scan_table(path)
    assert lambda_gc(t.lrt) == pytest.approx(factor, abs=0.03)
    # the p-values agree with the statistics: median chi2 from the p-values gives the same
    from scipy.stats import chi2

    from_p = np.median(chi2.isf(10.0 ** -t.nlp, 1)) / 0.454936423119572
    assert from_p == pytest.approx(lambda_gc(t.lrt), rel=1e-3)


# -- reading -------------------------------------------------------------------------------


def test_read_scan_table_keeps_ok_rows_ids_of_strong_hits_and_the_top(tmp_path) -> None:
    rng = np.random.default_rng(8)
    m = 2_000
    chrom, pos = _genome(rng, m)
    chisq = rng.chisquare(1, m)
    chisq[[10, 20]] = [60.0, 45.0]
    status = np.array(["ok"] * m, dtype=object)
    status[[5, 6, 7]] = ["monomorphic", "low_mac", "low_mac"]
    status[20] = "collinear"
    path = write_results(tmp_path / "r.tsv", chrom, pos, chisq, status=status)
    t = read_scan_table(path, top=5)
    assert t.n_rows == m and t.n_ok == m - 4
    assert t.status_counts == {"ok": m - 4, "low_mac": 2, "collinear": 1, "monomorphic": 1}
    assert list(t.status_counts) == ["ok", "low_mac", "collinear", "monomorphic"]
    assert t.top["variant_id"].iloc[0] == "rs10"
    assert len(t.top) == 5 and "rs20" not in set(t.top["variant_id"])
    assert np.all(np.diff(t.top["neg_log10_p_value"]) <= 0)
    named = t.variant_id[t.variant_id != None]  # noqa: E711 - elementwise on object array
    assert set(named) == {f"rs{i}" for i in np.flatnonzero((status == "ok") & (chisq > 0))
                          if _p(chisq[i])[1] >= 5}
    assert isinstance(t.chrom, pd.Categorical)
    # chunked and gzipped reads give the same table
    gz = tmp_path / "r.tsv.gz"
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    t2 = read_scan_table(gz, top=5, chunksize=7)
    assert np.array_equal(t2.nlp, t.nlp) and np.array_equal(t2.pos, t.pos)
    assert list(t2.chrom.astype(str)) == list(t.chrom.astype(str))
    assert t2.status_counts == t.status_counts
    pd.testing.assert_frame_equal(t2.top, t.top, check_categorical=False)
    # and so does building from a frame in memory
    t3 = scan_table(pd.read_csv(path, sep="\t", dtype={"chromosome": str}), top=5)
    assert np.array_equal(t3.nlp, t.nlp)


def test_read_scan_table_errors(tmp_path) -> None:
    with pytest.raises(InputError, match=r"nothere\.tsv: file not found"):
        read_scan_table(tmp_path / "nothere.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("CHR\tBP\tP\n1\t2\t0.5\n")
    with pytest.raises(InputError, match=r"bad\.tsv: not a glimix results file \(missing "
                       r"columns chromosome, .*\) - pass the TSV written by glimix scan"):
        read_scan_table(bad)
    rng = np.random.default_rng(0)
    good = write_results(tmp_path / "good.tsv", ["1"] * 5, np.arange(5) + 1,
                         rng.chisquare(1, 5))
    text = good.read_text().splitlines()
    trunc = tmp_path / "trunc.tsv"
    trunc.write_text("\n".join(text[:3] + ["1\t77\tA"]) + "\n")
    with pytest.raises(InputError, match=r"trunc\.tsv: malformed results table .* - was it "
                       "truncated"):
        read_scan_table(trunc)
    notgz = tmp_path / "x.tsv.gz"
    notgz.write_text("plain text")
    with pytest.raises(InputError, match=r"x\.tsv\.gz: cannot be read"):
        read_scan_table(notgz)


def test_genome_wide_constant() -> None:
    assert GENOME_WIDE == pytest.approx(7.30103, abs=1e-5)
