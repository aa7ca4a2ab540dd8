"""Sparse relatedness: GCTA's ``.grm.sp`` and KING / plink2 ``.kin0`` tables read as a sparse
kinship of the analysed samples, and the families it implies.

A sparse kinship keeps only the pairs of close relatives (and the diagonal): samples joined
by a pair form a family, everyone else is an unrelated singleton with diagonal 1. The model
engine (:class:`glimix_cli.model.blocks.BlockKinship`) then works family by family.

Formats
-------
``PREFIX.grm.sp`` (GCTA ``--make-bK-sparse``, fastGWA's input): three whitespace-separated
columns ``i j value``, the 0-based rows of ``PREFIX.grm.id`` (``FID IID``, no header) of
two samples and their GRM entry; the diagonal is included. Either triangle (or both) may
be given.

``.kin0`` (KING ``--related``, plink2 ``--make-king-table``, UK Biobank's ``ukb_rel.dat``):
a header naming the sample columns (``FID1``/``#FID1``, ``IID1``/``ID1``, ``FID2``,
``IID2``/``ID2``; the FID columns optional) and ``KINSHIP`` (any case), one pair per line.
A kinship coefficient ``phi`` is a GRM entry ``2 phi``; pairs with ``phi <= 0`` carry no
relatedness and are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glimix_cli.errors import InputError

__all__ = ["SparseTable", "is_sparse_kinship_file", "project_psd", "read_grm_sp", "read_kin0",
           "read_sparse_kinship", "restrict", "sparse_summary"]

F = NDArray[np.float64]
_KIN0_SUFFIXES = (".kin0", ".kin", ".dat")


@dataclass(frozen=True, eq=False)
class SparseTable:
    """Relatedness pairs keyed by sample IDs, as read from a file.

    ``fid`` is None when the file names samples by IID alone; ``row``/``col`` index the
    ``iid`` (and ``fid``) arrays; ``val`` are GRM entries (both triangles not needed).
    """

    path: Path
    fid: NDArray | None
    iid: NDArray
    row: NDArray[np.intp]
    col: NDArray[np.intp]
    val: F


def is_sparse_kinship_file(path: Path) -> bool:
    """Whether ``--kinship PATH`` names a sparse table (by its name) rather than a matrix."""
    name = Path(path).name.lower()
    return name.endswith(".grm.sp") or name.endswith(_KIN0_SUFFIXES)


def read_sparse_kinship(path: Path) -> SparseTable:
    """A ``.grm.sp`` (with its ``.grm.id``) or a KING ``.kin0`` table, by its name."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found - check the --kinship path")
    if path.name.lower().endswith(".grm.sp"):
        return read_grm_sp(path)
    return read_kin0(path)


def _read_columns(path: Path, header: int | None, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=r"\s+", header=header, dtype=str, comment=None,
                           engine="c", na_filter=False)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file - --kinship takes a {what}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: cannot be read as a {what} ({' '.join(str(exc).split())})"
                         " - check the file") from None


def read_grm_sp(path: Path) -> SparseTable:
    """GCTA's sparse GRM: ``PREFIX.grm.sp`` and ``PREFIX.grm.id`` (see the module notes)."""
    path = Path(path)
    id_path = path.with_name(path.name[: -len(".sp")] + ".id")
    if not id_path.is_file():
        raise InputError(f"{path}: its sample list {id_path} is missing - a GCTA sparse GRM is "
                         "the pair PREFIX.grm.sp + PREFIX.grm.id")
    ids = _read_columns(id_path, None, "GCTA .grm.id sample list")
    if ids.shape[1] < 2:
        raise InputError(f"{id_path}: needs two columns FID IID, found {ids.shape[1]} - "
                         "write one sample per line")
    table = _read_columns(path, None, "GCTA sparse GRM (.grm.sp)")
    short = (table == "").any(axis=1).to_numpy()
    if table.shape[1] != 3 or short.any():
        where = f"line {int(np.flatnonzero(short)[0]) + 1}" if short.any() else "a line"
        raise InputError(f"{path}: a .grm.sp line has 3 columns (i j value), {where} has "
                         f"{'fewer' if short.any() else table.shape[1]} - check the file is "
                         "GCTA's sparse GRM")
    try:
        row = table[0].to_numpy().astype(np.int64)
        col = table[1].to_numpy().astype(np.int64)
        val = table[2].to_numpy().astype(np.float64)
    except ValueError as exc:
        raise InputError(f"{path}: a non-numeric entry ({exc}) - the columns are sample "
                         "indices and the GRM value") from None
    n = len(ids)
    bad = (row < 0) | (row >= n) | (col < 0) | (col >= n)
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 1
        raise InputError(f"{path}: line {line} names sample index "
                         f"{max(row[line - 1], col[line - 1])}, but {id_path} lists {n} samples "
                         "(0-based indices) - the two files must come from one GCTA run")
    _check_finite(path, val)
    return SparseTable(path, ids[0].to_numpy(dtype=object), ids[1].to_numpy(dtype=object),
                       row.astype(np.intp), col.astype(np.intp), val)


def _column(cols: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in cols:
            return cols[name]
    return None


def read_kin0(path: Path) -> SparseTable:
    """A KING / plink2 kinship table (see the module notes): GRM entries ``2 phi``."""
    path = Path(path)
    table = _read_columns(path, 0, "KING/plink2 kinship table (.kin0)")
    cols = {c.lstrip("#").upper(): c for c in table.columns}
    iid1 = _column(cols, ("IID1", "ID1"))
    iid2 = _column(cols, ("IID2", "ID2"))
    kin = _column(cols, ("KINSHIP",))
    if iid1 is None or iid2 is None or kin is None:
        raise InputError(f"{path}: a kinship table needs the columns IID1 (or ID1), IID2 (or "
                         f"ID2) and KINSHIP; found {' '.join(map(str, table.columns))} - write "
                         "it with plink2 --make-king-table or KING --related")
    fid1, fid2 = _column(cols, ("FID1",)), _column(cols, ("FID2",))
    try:
        phi = table[kin].to_numpy().astype(np.float64)
    except ValueError as exc:
        raise InputError(f"{path}: column {kin} has a non-numeric value ({exc}) - check the "
                         "file") from None
    _check_finite(path, phi)
    keep = phi > 0
    has_fid = fid1 is not None and fid2 is not None
    if has_fid:
        k1 = list(zip(table[fid1].to_numpy()[keep], table[iid1].to_numpy()[keep], strict=True))
        k2 = list(zip(table[fid2].to_numpy()[keep], table[iid2].to_numpy()[keep], strict=True))
    else:
        k1 = list(table[iid1].to_numpy()[keep])
        k2 = list(table[iid2].to_numpy()[keep])
    keys = list(dict.fromkeys(k1 + k2))
    pos = {k: i for i, k in enumerate(keys)}
    row = np.array([pos[k] for k in k1], dtype=np.intp)
    col = np.array([pos[k] for k in k2], dtype=np.intp)
    if np.any(row == col):
        line = int(np.flatnonzero(keep)[np.flatnonzero(row == col)[0]]) + 2
        raise InputError(f"{path}: line {line} pairs a sample with itself - a kinship table "
                         "lists pairs of two samples")
    if has_fid:
        fid = np.array([k[0] for k in keys], dtype=object)
        iid = np.array([k[1] for k in keys], dtype=object)
    else:
        fid, iid = None, np.array(keys, dtype=object)
    return SparseTable(path, fid, iid, row, col, 2.0 * phi[keep])


def _check_finite(path: Path, val: F) -> None:
    if not np.all(np.isfinite(val)):
        raise InputError(f"{path}: {int((~np.isfinite(val)).sum())} NaN or infinite "
                         "relatedness values - recompute the table")


def restrict(table: SparseTable, fid: NDArray, iid: NDArray):
    """The table as a ``scipy.sparse`` CSR kinship of the samples ``(fid, iid)``, in order.

    Pairs with a sample not among them are left out; a sample absent from the table is an
    unrelated singleton, and every diagonal the table does not give is 1. A pair listed in
    both triangles (or twice) must agree. Returns ``(K, n_matched)``: the number of the
    samples that the table names.
    """
    from scipy import sparse

    n = len(iid)
    if table.fid is None:
        if len(set(iid)) < n:
            raise InputError(f"{table.path}: names samples by IID alone, but IIDs repeat "
                             "among the analysed samples - use a table with FID columns")
        lookup = {str(i): k for k, i in enumerate(iid)}
        keys = [str(i) for i in table.iid]
    else:
        lookup = {(str(f), str(i)): k for k, (f, i) in enumerate(zip(fid, iid, strict=True))}
        keys = [(str(f), str(i)) for f, i in zip(table.fid, table.iid, strict=True)]
    where = np.array([lookup.get(k, -1) for k in keys], dtype=np.intp)
    r, c = where[table.row], where[table.col]
    ok = (r >= 0) & (c >= 0)
    r, c, v = r[ok], c[ok], table.val[ok]
    off = r != c
    lo, hi = np.minimum(r[off], c[off]), np.maximum(r[off], c[off])
    key = lo.astype(np.int64) * n + hi
    uniq, inv = np.unique(key, return_inverse=True)
    vmax = np.full(uniq.size, -np.inf)
    vmin = np.full(uniq.size, np.inf)
    np.maximum.at(vmax, inv, v[off])
    np.minimum.at(vmin, inv, v[off])
    if np.any(vmax - vmin > 1e-6 * np.maximum(1.0, np.abs(vmax))):
        raise InputError(f"{table.path}: a pair is listed twice with different values - "
                         "list each pair once (either triangle)")
    U = sparse.coo_matrix((vmax, (uniq // n, uniq % n)), shape=(n, n)).tocsr()
    diag = np.ones(n)
    on = ~off
    diag[r[on]] = v[on]
    if np.any(diag <= 0):
        raise InputError(f"{table.path}: a diagonal entry is <= 0 - a GRM diagonal is about "
                         "1 + F; recompute it")
    K = (U + U.T + sparse.diags(diag)).tocsr()
    K.eliminate_zeros()
    return K, int((where >= 0).sum())


def sparse_summary(K) -> dict[str, int]:
    """Pairs of relatives, families (connected components of two or more) and the largest."""
    from scipy.sparse import csgraph, triu

    pairs = int(triu(K, 1).nnz)
    _, labels = csgraph.connected_components(K, directed=False)
    sizes = np.bincount(labels)
    return {"pairs": pairs, "families": int(np.sum(sizes > 1)),
            "largest": int(sizes.max(initial=0)), "in_families": int(sizes[sizes > 1].sum())}


def project_psd(K, tol: float = 1e-10):
    """``K`` with each family block's negative eigenvalues set to zero (a thresholded GRM,
    or a KING table, need not be positive semi-definite; the model's prior must be).

    Returns ``(K, n_adjusted, min_eigenvalue)``: the number of families changed and the
    most negative eigenvalue found (0 when none).
    """
    from scipy import sparse
    from scipy.sparse import csgraph

    K = sparse.csr_matrix(K)
    ncomp, labels = csgraph.connected_components(K, directed=False)
    sizes = np.bincount(labels, minlength=ncomp)
    order = np.argsort(labels, kind="stable")
    starts = np.r_[0, np.cumsum(sizes)]
    rows, cols, vals = [], [], []
    n_adj, worst = 0, 0.0
    for b in np.unique(sizes[sizes > 1]):
        comps = np.flatnonzero(sizes == b)
        idx = np.stack([order[starts[c]:starts[c + 1]] for c in comps])
        blocks = np.stack([K[i][:, i].toarray() for i in idx])
        w, V = np.linalg.eigh(blocks)
        scale = np.maximum(np.abs(w).max(axis=1), 1.0)
        bad = np.flatnonzero(w.min(axis=1) < -tol * scale)
        if bad.size:
            worst = min(worst, float(w[bad].min()))
            n_adj += bad.size
            wb = np.maximum(w[bad], 0.0)
            blocks[bad] = np.einsum("kij,kj,klj->kil", V[bad], wb, V[bad])
            for k in bad:
                rows.append(np.repeat(idx[k], b))
                cols.append(np.tile(idx[k], b))
                vals.append(blocks[k].ravel())
    if not n_adj:
        return K, 0, 0.0
    fixed = np.zeros(K.shape[0], dtype=bool)
    for r in rows:
        fixed[r] = True
    C = K.tocoo()
    keep = ~fixed[C.row]
    R = sparse.coo_matrix((np.r_[C.data[keep], np.concatenate(vals)],
                           (np.r_[C.row[keep], np.concatenate(rows)],
                            np.r_[C.col[keep], np.concatenate(cols)])), shape=K.shape)
    return R.tocsr(), n_adj, worst
