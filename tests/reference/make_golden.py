"""Regenerate the golden scan outputs of example_data (run by hand, review the diff).

    python tests/reference/make_golden.py

Writes tests/data/golden/<trait>.tsv.gz: the full `glimix scan` output for each trait of
example_data with the covariates, exactly as a user runs it. tests/cli/test_golden.py
compares fresh scans with these files (numbers to rtol 1e-4 with atol 2e-5, which lets the
printed last digit of 6 significant ones flip across BLAS builds and thread counts; text
exactly), so a
change in results shows up in review instead of slipping through.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from glimix_cli.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "example_data"
GOLDEN = ROOT / "tests" / "data" / "golden"
TRAITS = {
    "quant": ["-l", "normal"],
    "binary": ["-l", "bernoulli"],
    "count": ["-l", "poisson"],
    "successes": ["-l", "binomial", "--trials-name", "trials"],
}


def scan_args(trait: str, out: Path) -> list[str]:
    return ["scan", "--bfile", str(EX / "cohort"), "--pheno", str(EX / "cohort.pheno.tsv"),
            "--pheno-name", trait, *TRAITS[trait], "--covar", str(EX / "cohort.covar.tsv"),
            "--out", str(out), "--quiet"]


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    runner = CliRunner()
    for trait in TRAITS:
        out = GOLDEN / f"{trait}.tsv.gz"
        res = runner.invoke(app, scan_args(trait, out))
        assert res.exit_code == 0, res.output
        Path(f"{out}.meta.json").unlink()
        print("wrote", out)


if __name__ == "__main__":
    main()
