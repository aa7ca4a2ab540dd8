"""plink2's principal-component files: ``PREFIX.eigenvec`` (``#FID IID PC1 ... PCk``, tab
separated, one sample per line) and ``PREFIX.eigenval`` (one eigenvalue per line)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from glimix_cli.io.atomic import atomic_binary

__all__ = ["eigenval_path", "write_eigenvec"]


def eigenval_path(eigenvec: str | os.PathLike[str]) -> Path:
    """``P.eigenval`` beside ``P.eigenvec`` (or ``OUT.eigenval`` for another name)."""
    p = Path(eigenvec)
    stem = p.name[: -len(".eigenvec")] if p.name.endswith(".eigenvec") else p.name
    return p.with_name(f"{stem}.eigenval")


def write_eigenvec(path: str | os.PathLike[str], fid: ArrayLike, iid: ArrayLike,
                   vectors: ArrayLike, values: ArrayLike) -> tuple[Path, Path]:
    """Write the two files atomically (values with 6 significant digits, as plink2)."""
    U = np.asarray(vectors, dtype=np.float64)
    w = np.asarray(values, dtype=np.float64)
    k = U.shape[1]
    lines = ["#FID\tIID\t" + "\t".join(f"PC{j + 1}" for j in range(k)) + "\n"]
    for f, i, row in zip(fid, iid, U, strict=True):
        lines.append(f"{f}\t{i}\t" + "\t".join(f"{v:.6g}" for v in row) + "\n")
    vals = Path(eigenval_path(path))
    with atomic_binary(path) as fh:
        fh.write("".join(lines).encode())
    with atomic_binary(vals) as fh:
        fh.write("".join(f"{v:.6g}\n" for v in w).encode())
    return Path(path), vals
