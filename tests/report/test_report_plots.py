"""`glimix plot`: PNG files, the planted-signal check on the drawn data, CLI behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from report_helpers import ENV, ROOT, png_size, write_results
from typer.testing import CliRunner

from glimix_cli.cli.app import app
from glimix_cli.errors import GlimixError, InputError
from glimix_cli.report.data import read_scan_table
from glimix_cli.report.plots import plot_table, require_matplotlib, run_plot

MSG = "glimix plot needs matplotlib: pip install 'glimix-cli[plot]'"


def _check_png(path: Path, min_w: int, min_h: int) -> None:
    data = path.read_bytes()
    w, h = png_size(data)
    assert w >= min_w and h >= min_h, (w, h)
    assert data.endswith(b"IEND\xaeB`\x82")
    assert len(data) > 10_000  # drawn content, not an empty canvas


def test_plot_writes_two_pngs_of_sensible_size(example_run, tmp_path) -> None:
    info = run_plot(example_run["results"], tmp_path / "q")
    _check_png(tmp_path / "q.manhattan.png", 1500, 600)
    _check_png(tmp_path / "q.qq.png", 700, 700)
    assert info["n_rows"] == 5000 and info["n_ok"] == 4975
    assert info["lambda_gc"] == pytest.approx(0.985, abs=0.005)
    # nothing but the two outputs is left in the directory (no temporary files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.manhattan.png", "q.qq.png"]


def test_example_scan_highest_drawn_point_is_the_strongest_causal_variant(example_run) -> None:
    t = read_scan_table(example_run["results"], top=0)
    ps = plot_table(t, "quant.tsv")
    md = ps.manhattan_data
    top = int(np.argmax(md.y))
    assert t.variant_id[md.index[top]] == "rs835991"  # planted in example_data/causal.tsv
    labelled = [lab[2] for lab in md.labels]
    assert labelled[:3] == ["rs835991", "rs742569", "rs293169"]
    assert md.chromosomes == ["1", "2", "3"]
    assert ps.qq_data.lambda_gc == ps.lambda_gc


def test_planted_signal_on_chromosome_10_is_the_highest_drawn_point(tmp_path) -> None:
    rng = np.random.default_rng(11)
    m = 20_000
    chrom = np.repeat(["1", "2", "10", "X"], m // 4)
    pos = np.tile(np.arange(1, m // 4 + 1) * 100, 4)
    chisq = rng.chisquare(1, m)
    chisq[12_345] = 70.0  # chromosome 10
    path = write_results(tmp_path / "planted.tsv.gz", chrom, pos, chisq)
    t = read_scan_table(path, top=0)
    ps = plot_table(t, str(path))
    md = ps.manhattan_data
    top = int(np.argmax(md.y))
    assert md.index[top] == 12_345
    assert md.chromosomes[md.chrom_rank[top]] == "10"
    assert md.labels[0][2] == "rs12345"
    assert ps.qq_data.observed[0] == pytest.approx(md.y[top])


def test_no_ok_variant_is_an_input_error(tmp_path) -> None:
    path = write_results(tmp_path / "bad.tsv", ["1", "1"], [1, 2], [1.0, 2.0],
                         status=["monomorphic", "low_mac"])
    with pytest.raises(InputError, match=r"bad\.tsv: no variant has status ok and a p-value "
                       r"\(low_mac 1, monomorphic 1\) - nothing to plot"):
        run_plot(path, tmp_path / "x")
    assert not list(tmp_path.glob("x*"))


def test_missing_output_directory(example_run, tmp_path) -> None:
    with pytest.raises(InputError, match=r"output directory .*nodir does not exist"):
        run_plot(example_run["results"], tmp_path / "nodir" / "q")


def test_missing_matplotlib_gives_one_clear_line(monkeypatch, example_run, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(GlimixError, match=r"^glimix plot needs matplotlib: pip install "
                       r"'glimix-cli\[plot\]'$"):
        require_matplotlib()
    res = CliRunner().invoke(app, ["plot", str(example_run["results"]), "--out",
                                   str(tmp_path / "q")], env=ENV)
    assert res.exit_code == 1
    assert MSG in res.output
    assert "Traceback" not in res.output
    assert not list(tmp_path.iterdir())


def test_cli_plot_on_merged_gz_chunks(example_run, tmp_path) -> None:
    r = CliRunner()
    base = ["scan", "--bfile", str(ROOT / "example_data/cohort"), "--pheno",
            str(ROOT / "example_data/cohort.pheno.tsv"), "--pheno-name", "quant", "--covar",
            str(ROOT / "example_data/cohort.covar.tsv"), "--null", str(example_run["null"]),
            "-q"]
    for i in (1, 2):
        res = r.invoke(app, [*base, "--chunk", f"{i}/2", "--out", str(tmp_path / f"c{i}.tsv.gz")],
                       env=ENV)
        assert res.exit_code == 0, res.output
    res = r.invoke(app, ["merge", str(tmp_path / "all.tsv.gz"), str(tmp_path / "c1.tsv.gz"),
                         str(tmp_path / "c2.tsv.gz"), "-q"], env=ENV)
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["plot", str(tmp_path / "all.tsv.gz"), "--out", str(tmp_path / "all")],
                   env=ENV)
    assert res.exit_code == 0, res.output
    assert "lambda_GC = 0.9851 over 4,975 variants with status ok (of 5,000)" in res.output
    _check_png(tmp_path / "all.manhattan.png", 1500, 600)
    _check_png(tmp_path / "all.qq.png", 700, 700)


def test_cli_plot_rejects_a_non_results_file(tmp_path) -> None:
    bad = tmp_path / "plink.assoc"
    bad.write_text("CHR\tSNP\tBP\tP\n1\trs1\t10\t0.5\n")
    res = CliRunner().invoke(app, ["plot", str(bad), "--out", str(tmp_path / "x")], env=ENV)
    assert res.exit_code == 1
    assert "plink.assoc: not a glimix results file (missing columns" in res.output
    res = CliRunner().invoke(app, ["plot", str(tmp_path / "none.tsv"), "--out", "x"], env=ENV)
    assert res.exit_code == 2  # Typer's exists=True check


def test_cli_plot_in_a_real_subprocess(example_run, tmp_path) -> None:
    env = {**os.environ, **ENV, "MPLBACKEND": "TkAgg"}  # a GUI backend must not matter
    proc = subprocess.run([sys.executable, "-m", "glimix_cli", "plot",
                           str(example_run["results"]), "--out", str(tmp_path / "s"),
                           "--title", "quant <demo>"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stderr and proc.stdout == ""
    _check_png(tmp_path / "s.manhattan.png", 1500, 600)


def _crowded(chrom0: bool = False):
    """Eight strong hits within 2 Mb of each other (labels that would overlap if all drawn
    at one offset), two more elsewhere, and a null background."""
    from glimix_cli.report.data import manhattan_data

    rng = np.random.default_rng(1)
    n = 4000
    chrom = np.repeat(["1", "2", "3", "0" if chrom0 else "4"], n // 4)
    pos = np.tile(np.arange(n // 4) * 50_000 + 1, 4)
    nlp = -np.log10(rng.random(n))
    hits = [100, 104, 108, 112, 116, 120, 124, 128, 1500, 2600]
    nlp[hits] = [30, 29.5, 29, 28.4, 28, 27.7, 27.2, 26.9, 12, 9]
    ids = np.array([f"rs{1000 + i}" for i in range(n)], dtype=object)
    return manhattan_data(chrom, pos, nlp, ids, label_window=100_000, max_labels=12)


def test_manhattan_labels_do_not_overlap_and_stay_in_the_figure() -> None:
    pytest.importorskip("matplotlib")
    from glimix_cli.report.plots import manhattan_figure

    md = _crowded()
    assert len(md.labels) == 10
    fig = manhattan_figure(md, "asthma")
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [t for t in ax.texts if t.get_text().startswith("rs")]
    assert len(texts) >= 6  # most of the crowded peak is still named
    from matplotlib.text import Text

    boxes = [Text.get_window_extent(t, renderer) for t in texts]  # the texts, not the lines
    for i, a in enumerate(boxes):
        assert fig.bbox.x0 <= a.x0 and a.x1 <= fig.bbox.x1
        assert fig.bbox.y0 <= a.y0 and a.y1 <= fig.bbox.y1  # the top label is not clipped
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    top = max(md.labels, key=lambda t: t[1])[2]
    assert top in {t.get_text() for t in texts}  # the strongest hit is always named
    assert ax.get_title(loc="left").startswith("asthma - ")


def test_unplaced_chromosome_0_is_drawn_last() -> None:
    md = _crowded(chrom0=True)
    assert md.chromosomes == ["1", "2", "3", "0"]
    zero = md.chrom_rank == 3
    assert md.x[zero].min() > md.x[~zero].max()


def test_the_plot_title_defaults_to_the_trait(example_run, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from glimix_cli.report.plots import default_title

    results = example_run["results"]
    assert default_title(results) == "quant"  # from the scan's .meta.json
    bare = tmp_path / "bare.tsv"
    bare.write_bytes(results.read_bytes())
    assert default_title(bare) == "bare.tsv"  # no sidecar: the file's name
