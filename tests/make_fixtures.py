"""Tiny PLINK and table fixtures, good and deliberately broken, for the data-layer tests.

Run as a script to write them all into a directory::

    python tests/make_fixtures.py OUTDIR

Tests call :func:`make_all` through a pytest fixture into ``tmp_path``; nothing generated is
committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # running as a script from anywhere
    sys.path.insert(0, str(ROOT))

from glimix_cli.io.plink_write import write_plink1  # noqa: E402


def random_dosage(n: int, m: int, seed: int = 0, missing: float = 0.05) -> np.ndarray:
    """Random A1 dosages (n, m) with some missing calls, one monomorphic and one
    all-missing variant when m >= 3."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.1, 0.9, size=m)
    G = rng.binomial(2, p, size=(n, m)).astype(np.float64)
    G[rng.random((n, m)) < missing] = np.nan
    if m >= 3:
        G[:, 1] = 2.0  # monomorphic
        G[:, 2] = np.nan  # all missing
    return G


def write_good(prefix: Path, G: np.ndarray, chrom: list[str] | None = None,
               fid: list[str] | None = None, iid: list[str] | None = None) -> Path:
    """Write a valid fileset for dosage matrix ``G`` (n, m); returns the prefix."""
    n, m = G.shape
    write_plink1(
        prefix,
        G,
        chrom=chrom if chrom is not None else ["1"] * (m // 2) + ["2"] * (m - m // 2),
        variant_id=[f"rs{j + 1}" for j in range(m)],
        pos=[1000 * (j + 1) for j in range(m)],
        a1=["A"] * m,
        a2=["G"] * m,
        fid=fid if fid is not None else [f"F{i}" for i in range(n)],
        iid=iid if iid is not None else [f"I{i}" for i in range(n)],
    )
    return prefix


def make_all(out: Path, n: int = 11, m: int = 9, seed: int = 0) -> dict[str, Path]:
    """Write every fixture under ``out``; returns name -> path (prefix for filesets)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    G = random_dosage(n, m, seed)
    paths: dict[str, Path] = {}
    paths["good"] = write_good(out / "good", G)
    np.save(out / "good_dosage.npy", G)

    # GEMMA-style .fam with 3 extra phenotype columns
    gemma = write_good(out / "gemma", G)
    fam = (out / "gemma.fam").read_text().splitlines()
    (out / "gemma.fam").write_text("".join(f"{ln} 1.5 NA 0\n" for ln in fam))
    paths["gemma"] = gemma

    for name in ("bad_magic", "sample_major", "truncated", "bim5", "fam5", "ragged_fam",
                 "bad_pos"):
        write_good(out / name, G)
        paths[name] = out / name
    bed = (out / "bad_magic.bed").read_bytes()
    (out / "bad_magic.bed").write_bytes(b"BAD" + bed[3:])
    (out / "sample_major.bed").write_bytes(bytes([0x6C, 0x1B, 0x00]) + bed[3:])
    (out / "truncated.bed").write_bytes(bed[:-1])
    bim = (out / "bim5.bim").read_text().splitlines()
    (out / "bim5.bim").write_text("".join("\t".join(r.split()[:5]) + "\n" for r in bim))
    fam = (out / "fam5.fam").read_text().splitlines()
    (out / "fam5.fam").write_text("".join(" ".join(r.split()[:5]) + "\n" for r in fam))
    fam = (out / "ragged_fam.fam").read_text().splitlines()
    fam[-1] = " ".join(fam[-1].split()[:5])
    (out / "ragged_fam.fam").write_text("\n".join(fam) + "\n")
    bim = (out / "bad_pos.bim").read_text().splitlines()
    bim[0] = bim[0].replace("\t1000\t", "\t10x0\t")
    (out / "bad_pos.bim").write_text("\n".join(bim) + "\n")

    # phenotype / covariate tables keyed like the good fileset
    ids = [(f"F{i}", f"I{i}") for i in range(n)]
    rows = ["FID IID y01 y12 ybad count trials succ age batch sex"]
    rng = np.random.default_rng(seed + 1)
    for k, (f, i) in enumerate(ids):
        y01 = "NA" if k == 0 else str(k % 2)
        y12 = "-9" if k == 1 else str(1 + k % 2)
        ybad = str(k % 3)
        trials = 5 + k
        rows.append(
            f"{f} {i} {y01} {y12} {ybad} {k} {trials} {k % trials} "
            f"{rng.normal(50, 10):.3f} {k % 3} {'F' if k % 2 else 'M'}"
        )
    (out / "pheno.txt").write_text("\n".join(rows) + "\n")
    paths["pheno"] = out / "pheno.txt"
    dup = rows + [rows[2], rows[3]]
    (out / "pheno_dup.txt").write_text("\n".join(dup) + "\n")
    paths["pheno_dup"] = out / "pheno_dup.txt"
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/make_fixtures.py OUTDIR")
    for key, value in make_all(Path(sys.argv[1])).items():
        print(f"{key}\t{value}")
