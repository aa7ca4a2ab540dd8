"""The results' columns as LDSC's munge_sumstats.py and METAL read them (README, "Using the
results with LDSC and METAL").

LDSC resolves columns by a fixed list of names after upper-casing them and turning '-' and
'.' into '_' (bulik/ldsc munge_sumstats.py, ``default_cnames`` and ``clean_header``); the
names below are that list's entries for the columns munge needs, as data. A column that
maps to the same LDSC field as another would make munge refuse the file, so the test also
guards the columns added later.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from glimix_cli.io.results import results_header

ROOT = Path(__file__).resolve().parents[2]

LDSC_NAMES = {
    "SNP": {"SNP", "MARKERNAME", "SNPID", "RS", "RSID", "RS_NUMBER", "RS_NUMBERS"},
    "P": {"P", "PVALUE", "P_VALUE", "PVAL", "P_VAL", "GC_PVALUE"},
    "A1": {"A1", "ALLELE1", "ALLELE_1", "EFFECT_ALLELE", "REFERENCE_ALLELE", "INC_ALLELE",
           "EA"},
    "A2": {"A2", "ALLELE2", "ALLELE_2", "OTHER_ALLELE", "NON_EFFECT_ALLELE", "DEC_ALLELE",
           "NEA"},
    "N": {"N", "WEIGHT"},
    "N_CAS": {"NCASE", "CASES_N", "N_CASE", "N_CASES", "N_CAS"},
    "N_CON": {"N_CONTROLS", "N_CON", "NCONTROL", "CONTROLS_N", "N_CONTROL"},
    "SIGNED": {"ZSCORE", "Z_SCORE", "GC_ZSCORE", "Z", "OR", "B", "BETA", "LOG_ODDS",
               "EFFECTS", "EFFECT", "SIGNED_SUMSTAT"},
    "INFO": {"INFO"},
    "FRQ": {"EAF", "FRQ", "MAF", "FRQ_U", "F_U"},
}


def _clean(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "_")


@pytest.mark.parametrize("binary", [False, True])
def test_ldsc_finds_each_field_once_with_the_snp_flag(binary):
    columns = results_header(binary).rstrip("\n").split("\t")
    found: dict[str, list[str]] = {}
    for col in columns:
        for field, names in LDSC_NAMES.items():
            if _clean(col) in names:
                found.setdefault(field, []).append(col)
    assert "SNP" not in found  # hence --snp variant_id (README)
    assert "variant_id" in columns
    assert found["A1"] == ["effect_allele"] and found["A2"] == ["other_allele"]
    assert found["P"] == ["p_value"] and found["SIGNED"] == ["beta"]
    assert found["N"] == ["n"]
    if binary:
        assert found["N_CAS"] == ["n_cases"] and found["N_CON"] == ["n_controls"]
    assert all(len(v) == 1 for v in found.values()), found


def test_the_readme_metal_script_names_real_columns():
    text = (ROOT / "README.md").read_text()
    block = text.split("METAL reads no column by name", 1)[1].split("PROCESS", 1)[0]
    named = []
    for key in ("MARKER", "ALLELE", "EFFECT", "STDERR", "PVALUE", "WEIGHT", "FREQ"):
        m = re.search(rf"^\s+{key}\s+(.+)$", block, flags=re.MULTILINE)
        assert m, key
        named += m.group(1).split()
    columns = set(results_header(True).rstrip("\n").split("\t"))
    assert set(named) <= columns, set(named) - columns
    assert "--snp variant_id" in text
