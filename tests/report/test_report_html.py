"""`glimix report`: the HTML page's content, escaping, errors, and a headless-browser render."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from report_helpers import ENV, png_size, write_results
from typer.testing import CliRunner

from glimix_cli.cli.app import app
from glimix_cli.errors import InputError
from glimix_cli.report.html import run_report


class _Page(HTMLParser):
    """Collects text, tables and attributes of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.ids: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self._section = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            self.attrs.append((tag, k, v or ""))
            if k == "id":
                self.ids.append(v or "")
                self._section = v or ""
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.setdefault(self._section, []).append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> tuple[str, _Page]:
    html = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    return html, page


@pytest.fixture(scope="module")
def report(example_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "quant.html"
    run_report(example_run["results"], out, example_run["null"])
    return out


def test_report_has_every_section_and_is_self_contained(report) -> None:
    html, page = _parse(report)
    assert html.startswith("<!DOCTYPE html>")
    assert page.ids == ["plots", "top", "null", "samples", "inputs"]
    # nothing is fetched: every src is an embedded PNG, no link/script/stylesheet URLs
    srcs = [v for tag, k, v in page.attrs if k in ("src", "href")]
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<script" not in html and "http://" not in html and "https://" not in html
    sizes = [png_size(base64.b64decode(s.split(",", 1)[1])) for s in srcs]
    assert sizes[0][0] >= 1500 and sizes[1][0] >= 700


def test_report_numbers(report, example_run) -> None:
    _, page = _parse(report)
    text = " ".join(page.text)
    null = json.loads(example_run["null"].read_text())["null"]
    rows = {r[0]: r[1:] for r in page.rows["null"] if len(r) >= 2}
    assert rows["v0 (kinship variance)"] == [f"{null['v0']:.4g}"]
    assert rows["v1 (iid latent variance)"] == [f"{null['v1']:.4g}"]
    assert rows["latent heritability v0/(v0+v1)"] == [f"{null['h2_latent']:.3g}"]
    assert rows["log marginal likelihood"] == [f"{null['lml']:.10g}"]
    assert rows["optimiser"][0] == "converged: REML: delta by grid + bounded Brent"
    assert rows["age"][:2] == [f"{null['beta'][1]:.4g}", f"{null['beta_se'][1]:.4g}"]
    samples = page.rows["samples"]
    assert samples[0] == ["step", "kept", "dropped"]
    assert samples[1:] == [["in genotypes", "610", ""], ["with phenotype", "610", "0"],
                           ["phenotype non-missing", "604", "6"],
                           ["with covariates", "600", "4"], ["final", "600", "0"]]
    plots = {r[0]: r[1:] for r in page.rows["plots"]}
    assert plots["ok"][0] == "4,975" and plots["low_mac"][0] == "21"
    assert plots["monomorphic"][0] == "4" and plots["total"][0] == "5,000"
    assert plots["λ_GC"][0].startswith("0.9851 = median χ²₁")
    assert plots["p < 5e-8 (genome-wide)"] == ["4"]
    top = page.rows["top"]
    assert top[0][:3] == ["#", "variant", "chr"]
    assert len(top) == 21
    assert [r[1] for r in top[1:5]] == ["rs835991", "rs742569", "rs293169", "rs890551"]
    assert top[1][9] == "1.774e-16"  # p as written in the results file
    nlp = [float(r[10]) for r in top[1:]]
    assert nlp == sorted(nlp, reverse=True)
    inputs = {r[0]: r[1] for r in page.rows["inputs"]}
    assert "cohort.bed: 610 samples × 5,000 variants" in inputs["genotypes"]
    assert "column quant" in inputs["phenotype"]
    # the file names the null JSON records (they once showed as "?")
    assert inputs["phenotype"].startswith("cohort.pheno.tsv, ")
    assert "?" not in inputs["phenotype"]
    # the optimiser's message is said once
    assert "optimiser message" not in rows
    assert inputs["likelihood"] == "normal"
    assert inputs["kinship"] == "GRM from 4,996 variants"
    assert "numpy 1.26" in inputs["software (fit)"]
    assert "matplotlib" in inputs["software (report)"]
    assert "normal scan of 600 samples" in inputs["scan (sidecar)"]
    assert "rs835991 (p = 1.774e-16)" in text


def test_all_strings_are_escaped(example_run, tmp_path) -> None:
    evil = "<script>alert('x')</script>&amp;"
    null = json.loads(example_run["null"].read_text())
    null["inputs"]["pheno_name"] = evil
    null["null"]["covariates"][1] = evil
    null["samples"]["counts"] = {evil: 600}
    null["software"]["glimix"] = evil
    npath = tmp_path / "evil.null.json"
    npath.write_text(json.dumps(null))
    rng = np.random.default_rng(1)
    chisq = rng.chisquare(1, 50)
    chisq[3] = 80
    res = write_results(tmp_path / "evil.tsv", ["1"] * 50, np.arange(50) + 1, chisq,
                        variant_id=[f"rs{i}" for i in range(3)] + [evil]
                        + [f"rs{i}" for i in range(4, 50)])
    out = tmp_path / "evil.html"
    run_report(res, out, npath, title=evil)
    html, page = _parse(out)
    assert "<script" not in html
    assert html.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;amp;") >= 6
    # the parsed text shows the original string back
    assert sum(evil in t for t in page.text) >= 6


def test_report_without_null_json(example_run, tmp_path) -> None:
    out = tmp_path / "nonull.html"
    info = run_report(example_run["results"], out)
    assert info["warnings"] == ["no --null given: the page has no inputs, sample counts or "
                                "null model"]
    html, page = _parse(out)
    assert "No null-model file given." in html
    assert len(page.rows["top"]) == 21


def test_report_errors(example_run, tmp_path) -> None:
    bad = tmp_path / "bad.null.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.null\.json: not valid JSON .* - pass "
                       r"PREFIX\.null\.json from glimix fit"):
        run_report(example_run["results"], tmp_path / "r.html", bad)
    bad.write_text('{"format": 1}')
    with pytest.raises(InputError, match=r"bad\.null\.json: not a glimix null-model file"):
        run_report(example_run["results"], tmp_path / "r.html", bad)
    other = json.loads(example_run["null"].read_text())
    other["null"]["likelihood"] = "bernoulli"
    bad.write_text(json.dumps(other))
    with pytest.raises(InputError, match=r"bad\.null\.json: a bernoulli null model, but "
                       r".*quant\.tsv is a normal scan - pass the null JSON of this scan"):
        run_report(example_run["results"], tmp_path / "r.html", bad)
    other["null"]["likelihood"] = "normal"
    other["null"]["n"] = 17
    bad.write_text(json.dumps(other))
    with pytest.raises(InputError, match=r"fitted on 17 samples, but .* was scanned on 600"):
        run_report(example_run["results"], tmp_path / "r.html", bad)
    assert not (tmp_path / "r.html").exists()


def test_cli_report(example_run, tmp_path) -> None:
    out = tmp_path / "cli.html"
    res = CliRunner().invoke(app, ["report", str(example_run["results"]), "--null",
                                   str(example_run["null"]), "--out", str(out), "--top", "5"],
                             env=ENV)
    assert res.exit_code == 0, res.output
    assert "lambda_GC = 0.9851 over 4,975 variants" in res.output
    assert f"wrote {out}" in res.output.replace("\n", "")
    _, page = _parse(out)
    assert len(page.rows["top"]) == 6
    res = CliRunner().invoke(app, ["report", str(example_run["results"]), "--out",
                                   str(tmp_path / "missing" / "r.html")], env=ENV)
    assert res.exit_code == 1
    assert "does not exist - create it or choose another --out" in res.output


# -- rendering in a real browser -----------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.fail("headless rendering needs chromium on PATH (Debian: apt-get install -y "
                "chromium); none of chromium, chromium-browser, google-chrome was found")


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, tmp_path) -> None:
    exe = _chromium()
    shot = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={shot}",
             "--window-size=1200,2400", report.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)
    assert shot.exists() and proc.returncode == 0, (
        f"chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}")
    assert png_size(shot.read_bytes()) == (1200, 2400)
    from matplotlib.image import imread

    img = imread(shot)[..., :3]  # floats in [0, 1]
    dark = (img.mean(axis=2) < 0.5).mean()
    assert 0.01 < dark < 0.5, f"screenshot looks blank or broken ({dark:.3%} dark pixels)"
    # the Manhattan plot's two blues are on the page (the images were decoded and drawn)
    blue = ((img[..., 2] > img[..., 0] + 0.2) & (img[..., 2] > 0.4)).mean()
    assert blue > 0.002, f"no plot colours in the screenshot ({blue:.3%} blue pixels)"
