"""The binary trait of issue 14 on ../shared/data/EUR_subset, and plink2's results for it.

    python tests/reference/eur_binary.py      # needs plink2 (Debian package plink2)

The trait: ``PHENO`` of ``EUR_subset.pheno.covars`` above its 80th percentile, among the
samples that glimix analyses with covariates ``QCOV1 QCOV2`` and ``CAT_COV`` (all four
non-missing, ``NA`` and ``-9`` missing, and genotyped): 366 samples, 74 cases. This module
writes it (:func:`write_trait`) for tests/cli/test_eur_binary.py, and, run as a script,
runs plink2 ``--glm firth-fallback`` (logistic) on exactly those samples and covariates
and stores every variant with P < 1e-3 plus the known hit in
``tests/data/eur_binary_plink2.tsv`` (the plink2 version is in its first line).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
EUR = ROOT.parent / "shared" / "data" / "EUR_subset"
STORED = ROOT / "tests" / "data" / "eur_binary_plink2.tsv"
HIT = "rs7504254"


def analysed_table(eur: Path = EUR) -> pd.DataFrame:
    """Rows of the table with the trait and all covariates present and genotyped."""
    t = pd.read_csv(f"{eur}.pheno.covars", sep=r"\s+", dtype=str)
    for c in ("PHENO", "QCOV1", "QCOV2"):
        t[c] = pd.to_numeric(t[c].where(t[c] != "-9"), errors="coerce")
    t["CAT_COV"] = t["CAT_COV"].where(t["CAT_COV"].isin(["A", "B"]))
    fam = pd.read_csv(f"{eur}.fam", sep=r"\s+", header=None, dtype=str)
    geno = set(zip(fam[0], fam[1], strict=True))
    t = t.dropna(subset=["PHENO", "QCOV1", "QCOV2", "CAT_COV"])
    return t[[k in geno for k in zip(t["FID"], t["IID"], strict=True)]].reset_index(drop=True)


def write_trait(path: Path, eur: Path = EUR) -> pd.DataFrame:
    """Write ``FID IID case`` (1 = case) to ``path``; return the analysed table."""
    t = analysed_table(eur)
    t["case"] = (t["PHENO"] > np.quantile(t["PHENO"], 0.8)).astype(int)
    t[["FID", "IID", "case"]].to_csv(path, sep="\t", index=False)
    return t


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        w = Path(tmp)
        t = write_trait(w / "trait.tsv")
        ph = t[["FID", "IID"]].assign(Y=t["case"] + 1)  # plink 1/2 coding
        ph.to_csv(w / "y.pheno", sep="\t", index=False)
        cv = t[["FID", "IID", "QCOV1", "QCOV2"]].assign(CAT_COV_B=(t["CAT_COV"] == "B") * 1)
        cv.to_csv(w / "c.cov", sep="\t", index=False)
        subprocess.run(["plink2", "--bfile", str(EUR), "--pheno", str(w / "y.pheno"),
                        "--pheno-name", "Y",
                        "--covar", str(w / "c.cov"), "--glm", "firth-fallback", "hide-covar",
                        "--threads", "1", "--out", str(w / "o")], check=True,
                       stdout=subprocess.DEVNULL)
        res = pd.read_csv(w / "o.Y.glm.logistic.hybrid", sep="\t")
        version = subprocess.run(["plink2", "--version"], capture_output=True,
                                 text=True).stdout.strip()
    keep = res[(res["P"] < 1e-3) | (res["ID"] == HIT)]
    with open(STORED, "w") as fh:
        fh.write(f"# plink2 --glm firth-fallback hide-covar ({version}); "
                 f"{len(t)} samples, {int(t['case'].sum())} cases; written by "
                 "tests/reference/eur_binary.py\n")
        keep.to_csv(fh, sep="\t", index=False)
    print(f"wrote {STORED}: {len(keep)} variants")


if __name__ == "__main__":
    main()
