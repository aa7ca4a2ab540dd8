"""A small PLINK 1 binary writer (.bed/.bim/.fam), used to make example data and test fixtures.

The reader counts the first .bim allele (column 5, "A1"); the writer takes dosages of that
same allele, so ``write_bed`` then reading back returns the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])

# dosage of A1 -> 2-bit code: 2 -> 00 (hom A1), 1 -> 10 (het), 0 -> 11 (hom A2), missing -> 01
_CODE = {2: 0b00, 1: 0b10, 0: 0b11}
_MISSING = 0b01


def encode_bed(dosage: ArrayLike) -> bytes:
    """Encode an (n_samples, n_variants) A1-dosage matrix (0/1/2, NaN or -1 missing).

    Returns the full .bed content, variant-major, with the magic bytes.
    """
    G = np.asarray(dosage, dtype=np.float64)
    if G.ndim != 2:
        raise ValueError(f"dosage must be 2-D (samples x variants); got shape {G.shape}")
    n, m = G.shape
    codes = np.full(G.shape, _MISSING, dtype=np.uint8)
    ok = np.isfinite(G) & (G != -1)
    for value, code in _CODE.items():
        codes[ok & (G == value)] = code
    bad = (ok & ~np.isin(G, (0.0, 1.0, 2.0))) | np.isinf(G)
    if bad.any():
        raise ValueError("dosage values must be 0, 1, 2 or missing (NaN / -1)")
    nbytes = (n + 3) // 4
    padded = np.zeros((m, nbytes * 4), dtype=np.uint8)
    padded[:, :n] = codes.T
    quad = padded.reshape(m, nbytes, 4)
    packed = quad[:, :, 0] | (quad[:, :, 1] << 2) | (quad[:, :, 2] << 4) | (quad[:, :, 3] << 6)
    return BED_MAGIC + packed.astype(np.uint8).tobytes()


def write_plink1(
    prefix: str | Path,
    dosage: ArrayLike,
    *,
    chrom: Sequence[str | int],
    variant_id: Sequence[str],
    pos: Sequence[int],
    a1: Sequence[str],
    a2: Sequence[str],
    fid: Sequence[str],
    iid: Sequence[str],
    cm: Sequence[float] | None = None,
    sex: Sequence[int] | None = None,
    pheno: Sequence[float | str] | None = None,
) -> None:
    """Write ``prefix.bed``, ``prefix.bim`` and ``prefix.fam``.

    ``dosage`` is (n_samples, n_variants) counts of allele ``a1`` (first .bim allele).
    """
    prefix = Path(prefix)
    G = np.asarray(dosage, dtype=np.float64)
    n, m = G.shape
    if len(fid) != n or len(iid) != n:
        raise ValueError("fid/iid length must equal the number of samples (rows of dosage)")
    for name, col in (("chrom", chrom), ("variant_id", variant_id), ("pos", pos), ("a1", a1),
                      ("a2", a2)):
        if len(col) != m:
            raise ValueError(f"{name} length must equal the number of variants")
    cm = [0.0] * m if cm is None else cm
    sex = [0] * n if sex is None else sex
    pheno = [-9] * n if pheno is None else pheno
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.bed").write_bytes(encode_bed(G))
    with open(f"{prefix}.bim", "w") as fh:
        for c, v, g, p, x, y in zip(chrom, variant_id, cm, pos, a1, a2, strict=True):
            fh.write(f"{c}\t{v}\t{g:g}\t{int(p)}\t{x}\t{y}\n")
    with open(f"{prefix}.fam", "w") as fh:
        for f, i, s, ph in zip(fid, iid, sex, pheno, strict=True):
            fh.write(f"{f} {i} 0 0 {int(s)} {ph}\n")
