"""Variant selection (--chr, --from-bp/--to-bp, --extract, --exclude) and per-block variant
QC."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glimix_cli.errors import InputError

__all__ = ["STATUSES", "BlockQC", "VariantSelection", "block_qc", "dosage_info",
           "parse_chromosomes", "select_variants"]

#: QC status values, in priority order (the first that applies is reported).
#: ``multiallelic`` (BGEN/.pgen records with more than two alleles, never decoded) and
#: ``low_info`` (``--min-info``) only occur with dosage inputs.
STATUSES = ("multiallelic", "all_missing", "monomorphic", "low_mac", "low_info", "failed_qc",
            "ok")


@dataclass(frozen=True, eq=False)
class VariantSelection:
    """Variants chosen for a scan.

    Attributes
    ----------
    indices : ndarray of intp, shape (m,)
        Rows of the .bim, increasing (input order).
    n_extract_ids : int
        Distinct IDs in the ``extract`` file (0 without one).
    n_extract_not_found : int
        Of those, how many are not in the .bim (within the whole file, not the region).
    extract_not_found_examples : list of str
        Up to 5 of them.
    """

    indices: NDArray[np.intp]
    #: variants of the selection that ``exclude`` removed
    n_excluded: int = 0
    n_extract_ids: int = 0
    n_extract_not_found: int = 0
    extract_not_found_examples: tuple[str, ...] = ()


#: PLINK's numeric codes of the non-autosomes, and the names they stand for.
_CHROM_CODES = {"23": "X", "24": "Y", "25": "XY", "26": "MT", "M": "MT"}


def _norm_chrom(values: pd.Series | Sequence[str]) -> NDArray:
    """Chromosome names compared as plink2 does: any ``chr`` prefix dropped, case ignored,
    and the numeric codes 23-26 the same as X, Y, XY, MT (``chrM`` is MT)."""
    codes, uniq = pd.factorize(pd.Series(values, dtype=str), sort=False)
    s = pd.Series(uniq, dtype=str).str.strip()  # each distinct name once (not per variant)
    s = s.str.replace(r"^chr", "", case=False, regex=True).str.upper()
    return s.replace(_CHROM_CODES).to_numpy(dtype=object)[codes]


def parse_chromosomes(text: str) -> tuple[list[str], list[str]]:
    """``--chr`` as plink2 reads it: a comma-separated list of names and ranges
    (``1-22``, ``1-5,X``, ``chr3``). Returns ``(named, from_ranges)``: chromosomes named
    on their own (each must be in the data) and those a range spans (absent ones are
    skipped, as plink2 does)."""
    named: list[str] = []
    ranged: list[str] = []
    for item in (t.strip() for t in str(text).split(",")):
        if not item:
            continue
        lo, sep, hi = item.partition("-")
        if not sep:
            named.append(item)
            continue
        a, b = (_norm_chrom([lo])[0], _norm_chrom([hi])[0])
        codes = {v: k for k, v in _CHROM_CODES.items() if k != "M"}
        a, b = codes.get(a, a), codes.get(b, b)
        if not (a.isdigit() and b.isdigit()) or int(a) > int(b):
            raise InputError(f"--chr {text}: {item} is not a range of chromosome numbers "
                             "(e.g. 1-22, or 1-22,X)")
        ranged += [str(c) for c in range(int(a), int(b) + 1)]
    if not named and not ranged:
        raise InputError(f"--chr {text!r}: no chromosome given")
    return named, ranged


def select_variants(
    variants_df: pd.DataFrame,
    chrom: str | int | Sequence[str | int] | None = None,
    from_bp: int | None = None,
    to_bp: int | None = None,
    extract: str | os.PathLike[str] | None = None,
    exclude: str | os.PathLike[str] | None = None,
) -> VariantSelection:
    """Select variants by chromosome, base-pair range and an ID list.

    Parameters
    ----------
    variants_df : DataFrame
        ``Bfile.variants`` (``chrom``, ``variant_id``, ``pos``).
    chrom : str or int or sequence, optional
        Chromosome(s), compared as plink2 does (``chr1`` == ``1``, ``23`` == ``X``); a string
        may list names and ranges (``1-22,X``, see :func:`parse_chromosomes`).
    from_bp, to_bp : int, optional
        Inclusive position range; needs exactly one chromosome (as plink2).
    extract : str or Path, optional
        File of variant IDs separated by whitespace or newlines.
    exclude : str or Path, optional
        File of variant IDs to leave out (after ``extract``), as plink2's ``--exclude``.

    Returns
    -------
    VariantSelection
        Indices in .bim order; may be empty.

    Raises
    ------
    InputError
        A position range without a single chromosome, ``from_bp > to_bp``, a chromosome
        absent from the .bim, or an unreadable extract file.

    Examples
    --------
    >>> import pandas as pd
    >>> v = pd.DataFrame({"chrom": ["1", "1", "2"], "variant_id": ["a", "b", "c"],
    ...                   "pos": [100, 200, 50]})
    >>> select_variants(v, chrom="chr1", from_bp=150).indices.tolist()
    [1]
    """
    keep = np.ones(len(variants_df), dtype=bool)
    chroms: list[str] = []
    if chrom is not None:
        if isinstance(chrom, str | int):
            named, ranged = parse_chromosomes(str(chrom))
        else:
            named, ranged = [str(c) for c in chrom], []
        have = _norm_chrom(variants_df["chrom"])
        present = set(have.tolist())
        listed = sorted(present, key=lambda c: (len(c), c))
        chroms = list(dict.fromkeys(_norm_chrom(named))) if named else []
        spanned = [c for c in dict.fromkeys(_norm_chrom(ranged)) if c in present] \
            if ranged else []
        absent = [c for c in chroms if c not in present]
        if absent or (ranged and not spanned and not chroms):
            what = ", ".join(absent) if absent else f"none of {chrom}"
            raise InputError(
                f"chromosome {what} not in the genotypes (chromosomes: "
                f"{', '.join(listed[:25])}{', ...' if len(listed) > 25 else ''}) - check --chr"
            )
        chroms = list(dict.fromkeys(chroms + spanned))
        keep &= np.isin(have, chroms)
    if from_bp is not None or to_bp is not None:
        if len(chroms) != 1:
            raise InputError(
                f"--from-bp/--to-bp need exactly one chromosome (as in plink2); got "
                f"{len(chroms) or 'none'} - add --chrom"
            )
        lo = -np.inf if from_bp is None else int(from_bp)
        hi = np.inf if to_bp is None else int(to_bp)
        if lo > hi:
            raise InputError(f"--from-bp {from_bp} is after --to-bp {to_bp} - swap them")
        pos = variants_df["pos"].to_numpy()
        keep &= (pos >= lo) & (pos <= hi)
    n_ids = n_missing = 0
    examples: tuple[str, ...] = ()
    if extract is not None:
        p = Path(extract)
        if not p.is_file():
            raise InputError(f"{p}: extract file not found - check --extract")
        ids = list(dict.fromkeys(_read_ids(p)))
        ids_arr = np.array(ids, dtype=object)
        vid = variants_df["variant_id"].to_numpy(dtype=object)
        keep &= np.isin(vid, ids_arr)
        found = np.isin(ids_arr, vid) if ids else np.zeros(0, bool)
        n_ids, n_missing = len(ids), int((~found).sum())
        examples = tuple(str(x) for x in ids_arr[~found][:5])
    n_excluded = 0
    if exclude is not None:
        p = Path(exclude)
        if not p.is_file():
            raise InputError(f"{p}: exclude file not found - check --exclude")
        drop = np.isin(variants_df["variant_id"].to_numpy(dtype=object),
                       np.array(list(dict.fromkeys(_read_ids(p))), dtype=object))
        n_excluded = int((keep & drop).sum())
        keep &= ~drop
    return VariantSelection(
        indices=np.flatnonzero(keep).astype(np.intp),
        n_excluded=n_excluded,
        n_extract_ids=n_ids,
        n_extract_not_found=n_missing,
        extract_not_found_examples=examples,
    )


def _read_ids(p: Path) -> list[str]:
    """Whitespace-separated IDs of a text file (a binary file is a one-line error)."""
    raw = p.read_bytes()
    if b"\0" in raw[:4096]:
        raise InputError(f"{p}: a binary file, not a list of variant IDs - give a text file "
                         "with one ID per line")
    return raw.decode("utf-8", errors="replace").split()


@dataclass(frozen=True, eq=False)
class BlockQC:
    """Per-variant QC of one genotype block (all arrays shape (b,)).

    Attributes
    ----------
    n_obs, n_missing : ndarray of int64
        Non-missing and missing calls.
    eaf : ndarray of float64
        Frequency of the counted allele a1 among non-missing calls (NaN if all missing).
    maf : ndarray of float64
        ``min(eaf, 1 - eaf)``.
    mac : ndarray of float64
        Minor allele count ``min(sum, 2 * n_obs - sum)`` over non-missing calls.
    status : ndarray of str
        One of :data:`STATUSES`.
    n_imputed : int
        Missing calls replaced by the variant mean (all-missing variants stay NaN).
    """

    n_obs: NDArray[np.int64]
    n_missing: NDArray[np.int64]
    eaf: NDArray[np.float64]
    maf: NDArray[np.float64]
    mac: NDArray[np.float64]
    status: NDArray[np.str_]
    n_imputed: int

    @property
    def ok(self) -> NDArray[np.bool_]:
        """Variants that passed QC."""
        return self.status == "ok"


def block_qc(
    block: NDArray[np.float64],
    maf_min: float = 0.0,
    mac_min: float = 5,
    max_missing: float = 1.0,
) -> BlockQC:
    """QC a block of dosages and mean-impute its missing calls in place.

    Parameters
    ----------
    block : ndarray of float64, shape (n, b)
        A1 dosages, NaN for missing; modified in place.
    maf_min : float
        ``failed_qc`` when the minor allele frequency is below this.
    mac_min : float
        ``low_mac`` when the minor allele count is below this.
    max_missing : float
        ``failed_qc`` when the fraction of missing calls exceeds this.

    Returns
    -------
    BlockQC

    Notes
    -----
    ``monomorphic`` means no variation among the non-missing calls (all equal, including
    all heterozygous). Status priority: ``all_missing``, ``monomorphic``, ``low_mac``,
    ``failed_qc``, ``ok``.

    Examples
    --------
    >>> import numpy as np
    >>> G = np.array([[0.0, 1, np.nan], [2, 1, np.nan], [np.nan, 1, np.nan]])
    >>> q = block_qc(G, mac_min=1)
    >>> q.status.tolist(), q.n_imputed, G[2, 0]
    (['ok', 'monomorphic', 'all_missing'], 1, 1.0)
    """
    if block.ndim != 2:
        raise ValueError(f"block must be 2-D (samples x variants); got shape {block.shape}")
    n = block.shape[0]
    miss = np.isnan(block)
    n_missing = np.count_nonzero(miss, axis=0).astype(np.int64)
    n_obs = (n - n_missing).astype(np.int64)
    # the sums of the complete columns straight from the block; the few columns with a
    # missing call again with those calls as 0 (F order: the same summation, same bits)
    gaps = np.flatnonzero(n_missing)
    total = block.sum(axis=0)
    zeroed = None
    if gaps.size:
        zeroed = np.asfortranarray(np.where(miss[:, gaps], 0.0, block[:, gaps]))
        total[gaps] = zeroed.sum(axis=0)
    has = n_obs > 0
    mean = np.divide(total, n_obs, out=np.full(total.shape, np.nan), where=has)
    eaf = mean / 2.0
    maf = np.minimum(eaf, 1.0 - eaf)
    mac = np.minimum(total, 2.0 * n_obs - total)
    mac = np.where(has, mac, np.nan)
    same = _all_equal(block, gaps, zeroed, total, n_obs)
    miss_rate = np.divide(n_missing, n, out=np.zeros(n_missing.shape), where=n > 0)
    status = np.full(block.shape[1], "ok", dtype="<U12")
    failed = has & ((maf < maf_min) | (miss_rate > max_missing))
    status[failed] = "failed_qc"
    status[has & (mac < mac_min)] = "low_mac"
    status[has & same] = "monomorphic"
    status[~has] = "all_missing"
    fill = miss & has
    n_imp = int(fill.sum())
    if n_imp:
        np.copyto(block, np.broadcast_to(mean, block.shape), where=fill)
    return BlockQC(
        n_obs=n_obs, n_missing=n_missing, eaf=eaf, maf=maf, mac=mac, status=status,
        n_imputed=n_imp,
    )


def dosage_info(block: NDArray[np.float64], qc: BlockQC, multiallelic: NDArray[np.bool_],
                min_info: float = 0.0) -> NDArray[np.float64]:
    """INFO of each column of a QC'd dosage block (the MaCH R^2 estimator), and the
    ``multiallelic`` / ``low_info`` statuses set in ``qc.status`` (in place).

    Parameters
    ----------
    block : ndarray of float64, shape (n, b)
        Dosages after :func:`block_qc` (missing values replaced by the column mean).
    qc : BlockQC
        Its QC; ``qc.status`` is updated.
    multiallelic : ndarray of bool, shape (b,)
        Records with more than two alleles (decoded as all missing): status
        ``multiallelic``, INFO NaN.
    min_info : float
        Variants that passed the other checks (``ok``, ``failed_qc``) with INFO below this
        get ``low_info``.

    Returns
    -------
    info : ndarray of float64, shape (b,)
        NaN where undefined (no observed dosage, or a monomorphic variant).

    Notes
    -----
    With ``d_i`` the dosages of the ``n_obs`` samples observed and
    ``p = mean(d) / 2``,

        INFO = [sum_i (d_i - 2p)^2 / n_obs] / [2 p (1 - p)],

    the ratio of the observed dosage variance to its binomial (HWE) value: minimac's R^2,
    which REGENIE reports for .pgen input. For calibrated probabilities it equals the IMPUTE
    info score that SAIGE and REGENIE compute from BGEN probabilities
    (``1 - sum_i Var(g_i) / (2 n p (1 - p))``, by the law of total variance). Mean imputation
    adds no deviation, so the sum runs over the whole imputed block. Hard calls in HWE give
    about 1, and nothing caps the value at 1.
    """
    mean = 2.0 * qc.eaf
    dev = block - mean
    ss = np.einsum("ij,ij->j", dev, dev)
    with np.errstate(invalid="ignore", divide="ignore"):
        info = (ss / qc.n_obs) / (2.0 * qc.eaf * (1.0 - qc.eaf))
    info[~np.isfinite(info) | (qc.n_obs == 0)] = np.nan
    st = qc.status
    st[(np.isin(st, ("ok", "failed_qc"))) & (info < min_info)] = "low_info"
    multi = np.asarray(multiallelic, dtype=bool)
    st[multi] = "multiallelic"
    info[multi] = np.nan
    return info


def _all_equal(block: NDArray[np.float64], gaps: NDArray[np.intp],
               zeroed: NDArray[np.float64] | None, total: NDArray[np.float64],
               n_obs: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Per column: every non-missing value the same. The sum of squares screens the
    columns (``n_obs ss - total^2`` is 0 for a constant column, exactly for integer
    dosages; the columns ``gaps`` with missing calls use ``zeroed``, their copy with those
    calls as 0), and only those near 0 are checked by their min and max (NaN ignored)."""
    if block.shape[0] == 0:
        return np.zeros(block.shape[1], dtype=bool)
    ss = np.einsum("ij,ij->j", block, block)
    if gaps.size:
        assert zeroed is not None
        ss[gaps] = np.einsum("ij,ij->j", zeroed, zeroed)
    spread = n_obs * ss - total * total
    cand = np.flatnonzero(spread <= 1e-9 * np.maximum(total * total, 1.0))
    same = np.zeros(block.shape[1], dtype=bool)
    if cand.size:
        sub = block[:, cand]
        same[cand] = np.fmin.reduce(sub, axis=0) == np.fmax.reduce(sub, axis=0)
    return same


def chromosome_notes(variants: pd.DataFrame, indices: NDArray[np.intp],
                     sex: pd.Series) -> list[tuple[str, str]]:
    """``(level, message)`` notes on the selected variants a user should know of:
    chromosome 0 (unplaced) and position <= 0 in the .bim, and the sex chromosomes
    (scanned with autosomal 0/1/2 dosages; a warning when the .fam gives no sex)."""
    chrom = _norm_chrom(variants["chrom"].to_numpy()[indices])
    pos = variants["pos"].to_numpy()[indices]
    notes: list[tuple[str, str]] = []
    unplaced = int(np.sum(chrom == "0"))
    if unplaced:
        notes.append(("info", f"{unplaced:,} selected variants are on chromosome 0 "
                              "(unplaced in the .bim): scanned, reported on chromosome 0"))
    nopos = int(np.sum(pos <= 0))
    if nopos:
        notes.append(("info", f"{nopos:,} selected variants have position <= 0 in the .bim "
                              "(unknown; plink2 writes -9): scanned, their position kept"))
    for name in ("X", "Y", "XY", "MT"):
        k = int(np.sum(chrom == name))
        if not k:
            continue
        msg = (f"{k:,} selected variants on chromosome {name}: tested with 0/1/2 dosages as "
               "the autosomes (no hemizygous coding of males)")
        if name in ("X", "Y") and not sex.isin(["1", "2"]).any():
            notes.append(("warn", msg + "; the .fam gives no sex for any sample, so sex "
                                        "cannot even be a covariate - add it to --covar"))
        else:
            notes.append(("info", msg))
    return notes
