"""Data preparation for the plots and the report: pure pandas/numpy, no drawing.

Everything the renderer draws comes out of :func:`manhattan_data` and :func:`qq_data` as
plain arrays, so tests can ask "where is the highest point?" without looking at pixels.

Scale: a results file of millions of variants is read with only the columns needed and
compact dtypes, and the dense band of unremarkable points (``-log10 p <= 3``) is thinned on
a grid finer than a pixel, while every point above 3 is kept.

Reading goes through :func:`read_scan_table`, which streams the file in chunks and keeps
only the numbers that are drawn, the variant ids worth a label and the top rows.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from glimix_cli.errors import InputError
from glimix_cli.io.results import COLUMNS
from glimix_cli.model.stats import genomic_inflation

F = NDArray[np.float64]
I = NDArray[np.int64]

#: Genome-wide significance, p = 5e-8, as -log10 p.
GENOME_WIDE = float(-np.log10(5e-8))
#: Suggestive significance, p = 1e-5, as -log10 p.
SUGGESTIVE = 5.0
#: Points above this -log10 p are always drawn; below it they are thinned.
KEEP_ABOVE = 3.0

#: Columns the plots need.
PLOT_COLUMNS = ("chromosome", "base_pair_location", "variant_id", "lrt_chisq",
                "neg_log10_p_value", "status")
#: Columns the report needs (``p_value`` is re-derived from ``neg_log10_p_value``).
REPORT_COLUMNS = ("chromosome", "base_pair_location", "effect_allele", "other_allele", "beta",
                  "standard_error", "effect_allele_frequency", "variant_id", "n", "lrt_chisq",
                  "neg_log10_p_value", "status")

_DTYPES: dict[str, Any] = {
    "chromosome": str,
    "base_pair_location": np.int64,
    "effect_allele": "category",
    "other_allele": "category",
    "beta": np.float64,
    "standard_error": np.float64,
    "effect_allele_frequency": np.float64,
    "variant_id": str,
    "n": np.float64,
    "lrt_chisq": np.float64,
    "neg_log10_p_value": np.float64,
    "status": "category",
}


# ----------------------------------------------------------------------------------------
# reading


def _first_line(path: Path) -> str:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            return fh.readline().decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise InputError(f"{path}: cannot be read as a text table ({exc}) - pass a results "
                         "TSV written by glimix scan or glimix merge") from None


def _check_header(p: Path) -> None:
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    header = _first_line(p).rstrip("\r\n").split("\t")
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputError(f"{p}: not a glimix results file (missing columns "
                         f"{', '.join(missing)}) - pass the TSV written by glimix scan or merge")


@dataclass(frozen=True)
class ScanTable:
    """The parts of a results file that the plots and the report use.

    Attributes
    ----------
    chrom : pandas.Categorical, shape (k,)
        Chromosome of each variant with status ``ok`` and a finite ``-log10 p``.
    pos : ndarray of int, shape (k,)
        Base-pair position.
    nlp : ndarray of float, shape (k,)
        ``-log10 p``.
    lrt : ndarray of float, shape (k,)
        Likelihood-ratio chi-square statistic (1 df).
    variant_id : ndarray of object, shape (k,)
        Variant id where ``nlp >= ids_above``, ``None`` elsewhere (ids of two million
        unremarkable variants would dominate memory and are never shown).
    top : pandas.DataFrame
        The ``top`` strongest ``ok`` rows, all columns but ``p_value``, strongest first.
    status_counts : dict of str to int
        Rows per status over the whole file, largest first.
    n_rows : int
        Rows in the file.
    """

    chrom: pd.Categorical
    pos: I
    nlp: F
    lrt: F
    variant_id: NDArray[np.object_]
    top: pd.DataFrame
    status_counts: dict[str, int]
    n_rows: int

    @property
    def n_ok(self) -> int:
        return int(self.nlp.size)


def scan_table(df: pd.DataFrame, *, top: int = 20, ids_above: float = SUGGESTIVE) -> ScanTable:
    """Build a :class:`ScanTable` from a results DataFrame already in memory."""
    return _ScanTableBuilder(top, ids_above).add(df).build()


class _ScanTableBuilder:
    def __init__(self, top: int, ids_above: float) -> None:
        self.top = top
        self.ids_above = ids_above
        self.categories: dict[str, int] = {}
        self.codes: list[NDArray[np.int32]] = []
        self.pos: list[I] = []
        self.nlp: list[F] = []
        self.lrt: list[F] = []
        self.ids: list[NDArray[np.object_]] = []
        self.tops: list[pd.DataFrame] = []
        self.counts: dict[str, int] = {}
        self.n_rows = 0

    def add(self, chunk: pd.DataFrame) -> _ScanTableBuilder:
        status = chunk["status"].astype("category")
        for k, v in status.value_counts(sort=False).items():
            if v:
                self.counts[str(k)] = self.counts.get(str(k), 0) + int(v)
        nlp_all = chunk["neg_log10_p_value"].to_numpy(dtype=np.float64)
        keep = (status == "ok").to_numpy() & np.isfinite(nlp_all)
        start = self.n_rows
        self.n_rows += len(chunk)
        if not keep.any():
            return self
        chrom = pd.Categorical(chunk["chromosome"].astype(str).to_numpy()[keep])
        remap = np.array([self.categories.setdefault(str(c), len(self.categories))
                          for c in chrom.categories], dtype=np.int32)
        self.codes.append(remap[chrom.codes])
        self.pos.append(chunk["base_pair_location"].to_numpy(dtype=np.int64)[keep])
        nlp = nlp_all[keep]
        self.nlp.append(nlp)
        self.lrt.append(chunk["lrt_chisq"].to_numpy(dtype=np.float64)[keep])
        ids = np.full(nlp.size, None, dtype=object)
        big = nlp >= self.ids_above
        ids[big] = chunk["variant_id"].to_numpy(dtype=object)[keep][big]
        self.ids.append(ids)
        if self.top > 0:
            rows = np.flatnonzero(keep)
            best = rows[np.argsort(-nlp, kind="stable")[: self.top]]
            t = chunk.iloc[best].copy()
            t["_row"] = start + best
            self.tops.append(t)
        return self

    def build(self) -> ScanTable:
        cats = list(self.categories)
        codes = np.concatenate(self.codes) if self.codes else np.empty(0, dtype=np.int32)
        if self.tops:
            t = pd.concat(self.tops, ignore_index=True)
            t = t.sort_values(["neg_log10_p_value", "_row"], ascending=[False, True],
                              kind="stable").head(self.top)
            t = t.drop(columns="_row").reset_index(drop=True)
            for c in t.columns:  # chunks' categoricals differ; the top rows are few
                if isinstance(t[c].dtype, pd.CategoricalDtype):
                    t[c] = t[c].astype(str)
        else:
            t = pd.DataFrame(columns=list(REPORT_COLUMNS))
        counts = dict(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])))

        def cat(parts: list[Any], dtype: Any) -> Any:
            return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

        return ScanTable(
            chrom=pd.Categorical.from_codes(codes, categories=cats),
            pos=cat(self.pos, np.int64), nlp=cat(self.nlp, np.float64),
            lrt=cat(self.lrt, np.float64), variant_id=cat(self.ids, object), top=t,
            status_counts=counts, n_rows=self.n_rows)


def read_scan_table(path: str | os.PathLike[str], *, top: int = 20,
                    ids_above: float = SUGGESTIVE, chunksize: int = 250_000) -> ScanTable:
    """Read a glimix results TSV (plain or ``.gz``) into a compact :class:`ScanTable`.

    The file is read in chunks of ``chunksize`` rows; of each chunk only the numbers the
    plots need are kept (for rows with status ``ok``), plus variant ids at
    ``-log10 p >= ids_above`` and the ``top`` strongest full rows. Memory therefore grows
    by about 40 bytes per variant, not by the size of the text.
    """
    p = Path(path)
    _check_header(p)
    columns = list(REPORT_COLUMNS if top > 0 else PLOT_COLUMNS)
    builder = _ScanTableBuilder(top, ids_above)
    try:
        with pd.read_csv(p, sep="\t", usecols=columns,
                         dtype={c: _DTYPES[c] for c in columns}, keep_default_na=False,
                         na_values=["NA"], chunksize=chunksize) as reader:
            for chunk in reader:
                builder.add(chunk[columns])
    except (ValueError, pd.errors.ParserError, EOFError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{p}: malformed results table ({msg}) - was it truncated or "
                         "edited? Rerun glimix scan/merge") from None
    return builder.build()


def lambda_gc(chisq: ArrayLike) -> float:
    """Genomic inflation factor of 1-df chi-square statistics.

    Notes
    -----
    ``lambda_GC = median(chi2) / 0.4549`` (the median of chi2_1), over finite values; see
    :func:`glimix_cli.model.stats.genomic_inflation`.

    >>> round(lambda_gc([0.454936423119572] * 3), 6)
    1.0
    """
    return genomic_inflation(np.asarray(chisq, dtype=np.float64))


# ----------------------------------------------------------------------------------------
# chromosomes


_CHR_PREFIX = re.compile(r"^chr", re.IGNORECASE)
_SPECIAL = {"X": 0, "Y": 1, "MT": 2, "M": 2}


def chromosome_sort_key(name: object) -> tuple[int, int, str]:
    """Sort key: numeric chromosomes in numeric order, then X, Y, MT, then others by name,
    and chromosome 0 (PLINK's "unplaced") last.

    A ``chr`` prefix is ignored for ordering (``chr2`` sorts as ``2``).

    >>> sorted(["0", "X", "10", "2", "MT", "Y", "1", "GL000192.1"], key=chromosome_sort_key)
    ['1', '2', '10', 'X', 'Y', 'MT', 'GL000192.1', '0']
    """
    s = _CHR_PREFIX.sub("", str(name).strip())
    if s.isdigit() and int(s) == 0:
        return (3, 0, "")
    if s.isdigit():
        return (0, int(s), "")
    if s.upper() in _SPECIAL:
        return (1, _SPECIAL[s.upper()], s)
    return (2, 0, s)


def order_chromosomes(names: Sequence[object]) -> list[str]:
    """Distinct chromosome names in plotting order."""
    return sorted({str(n) for n in names}, key=chromosome_sort_key)


# ----------------------------------------------------------------------------------------
# Manhattan


@dataclass(frozen=True)
class ManhattanData:
    """What the Manhattan renderer draws.

    Attributes
    ----------
    x : ndarray of float, shape (k,)
        Cumulative genome position of each drawn point (bp, chromosomes laid end to end).
    y : ndarray of float, shape (k,)
        ``-log10 p`` of each drawn point.
    chrom_rank : ndarray of int, shape (k,)
        Position of the point's chromosome in ``chromosomes``; colour = ``rank % 2``.
    index : ndarray of int, shape (k,)
        Row of each drawn point in the input arrays.
    chromosomes : list of str
        Chromosomes in plotting order.
    ticks : ndarray of float, shape (c,)
        Centre of each chromosome on the x axis.
    bounds : ndarray of float, shape (c, 2)
        Start and end of each chromosome on the x axis.
    labels : list of (x, y, variant_id)
        Top hits to annotate, strongest first.
    n_input : int
        Points before thinning.
    """

    x: F
    y: F
    chrom_rank: I
    index: I
    chromosomes: list[str]
    ticks: F
    bounds: F
    labels: list[tuple[float, float, str]]
    n_input: int

    @property
    def n_drawn(self) -> int:
        return int(self.x.size)


def _thin(keys_x: I, y: F, rank: I, n_x: int, y_step: float, keep_above: float) -> I:
    """Indices to draw: all with ``y > keep_above``; below, one per (chromosome, x, y) cell."""
    high = np.flatnonzero(y > keep_above)
    low = np.flatnonzero(~(y > keep_above))
    if low.size == 0:
        return high
    n_y = int(np.ceil(keep_above / y_step)) + 1
    ybin = np.clip((y[low] / y_step).astype(np.int64), 0, n_y - 1)
    cell = (rank[low] * (n_x + 1) + keys_x[low]) * n_y + ybin
    _, first = np.unique(cell, return_index=True)
    return np.sort(np.concatenate([high, low[first]]))


def manhattan_data(chrom: ArrayLike, pos: ArrayLike, nlp: ArrayLike,
                   variant_id: ArrayLike | None = None, *, keep_above: float = KEEP_ABOVE,
                   x_bins: int = 2400, y_step: float = 0.02, gap_fraction: float = 0.01,
                   label_min: float | None = None, max_labels: int = 10,
                   label_window: int = 1_000_000) -> ManhattanData:
    """Lay variants out along the genome, thin the dense low band and pick labels.

    Parameters
    ----------
    chrom : array-like of str, shape (m,)
        Chromosome names (any order; a pandas Categorical is used as is).
    pos : array-like of int, shape (m,)
        Base-pair positions.
    nlp : array-like of float, shape (m,)
        ``-log10 p`` (finite values only, as in :class:`ScanTable`).
    variant_id : array-like of str, shape (m,), optional
        Names for the labels; without it no labels are made.
    keep_above : float
        Every point with ``nlp > keep_above`` is drawn.
    x_bins, y_step : int, float
        Grid of the thinning below ``keep_above``: one point per chromosome and cell of
        ``total_length / x_bins`` bp by ``y_step`` in ``-log10 p`` (finer than a pixel of
        the default figure, so thinning does not change the picture).
    gap_fraction : float
        Space between chromosomes, as a fraction of the total laid-out length.
    label_min, max_labels, label_window : float or None, int, int
        Label up to ``max_labels`` hits with ``nlp >= label_min``, strongest first, at most
        one per ``label_window`` bp on a chromosome (a crude clumping, so one peak gets one
        label). ``None``: genome-wide significant hits if there are any, else suggestive ones.

    Notes
    -----
    Chromosome ``c`` spans its observed ``[min(pos), max(pos)]`` and starts where the
    previous one ended plus a gap: ``x = offset_c + pos - min_c``.
    """
    y = np.asarray(nlp, dtype=np.float64)
    m = y.size
    p = np.asarray(pos, dtype=np.int64)
    if p.size != m or len(chrom) != m:  # type: ignore[arg-type]
        raise InputError(f"manhattan_data: chrom, pos and nlp differ in length "
                         f"({len(chrom)}, {p.size}, {m})")  # type: ignore[arg-type]
    if m and not np.all(np.isfinite(y)):
        raise InputError("manhattan_data: nlp has non-finite values - drop them first "
                         "(read_scan_table does)")
    codes, uniques = pd.factorize(pd.Series(chrom) if not isinstance(chrom, pd.Series)
                                  else chrom, sort=False)
    names = [str(u) for u in uniques]
    order = sorted(range(len(names)), key=lambda i: chromosome_sort_key(names[i]))
    rank_of_code = np.empty(len(names), dtype=np.int64)
    rank_of_code[order] = np.arange(len(names))
    rank = rank_of_code[codes] if m else np.empty(0, dtype=np.int64)
    chromosomes = [names[i] for i in order]

    c = len(chromosomes)
    if m:
        g = pd.DataFrame({"r": rank, "p": p}).groupby("r")["p"]
        lo = g.min().reindex(range(c)).to_numpy(dtype=np.float64)
        hi = g.max().reindex(range(c)).to_numpy(dtype=np.float64)
    else:
        lo = hi = np.empty(0)
    span = np.maximum(hi - lo, 1.0)
    gap = gap_fraction * float(span.sum()) if c > 1 else 0.0
    starts = np.concatenate([[0.0], np.cumsum(span + gap)[:-1]]) if c else np.empty(0)
    bounds = np.column_stack([starts, starts + span]) if c else np.empty((0, 2))
    ticks = starts + span / 2
    x = starts[rank] + (p - lo[rank]) if m else np.empty(0)
    total = float(bounds[-1, 1]) if c else 1.0

    xbin = np.clip((x / total * x_bins).astype(np.int64), 0, x_bins) if m else np.empty(
        0, dtype=np.int64)
    keep = _thin(xbin, y, rank, x_bins, y_step, keep_above)

    labels: list[tuple[float, float, str]] = []
    if variant_id is not None and m and max_labels > 0:
        ids = np.asarray(variant_id, dtype=object)
        if label_min is None:
            label_min = GENOME_WIDE if float(y.max()) >= GENOME_WIDE else SUGGESTIVE
        cand = np.flatnonzero(y >= label_min)
        if cand.size > 50_000:
            cand = cand[np.argpartition(-y[cand], 50_000)[:50_000]]
        cand = cand[np.lexsort((x[cand], -y[cand]))]
        chosen: list[int] = []
        for j in cand.tolist():
            if all(rank[j] != rank[k] or abs(p[j] - p[k]) > label_window for k in chosen):
                chosen.append(j)
                if len(chosen) == max_labels:
                    break
        labels = [(float(x[j]), float(y[j]), str(ids[j])) for j in chosen if ids[j] is not None]

    return ManhattanData(x=x[keep].astype(np.float64), y=y[keep], chrom_rank=rank[keep],
                         index=keep.astype(np.int64), chromosomes=chromosomes,
                         ticks=np.asarray(ticks, dtype=np.float64), bounds=bounds,
                         labels=labels, n_input=m)


# ----------------------------------------------------------------------------------------
# QQ


@dataclass(frozen=True)
class QQData:
    """What the QQ renderer draws.

    Attributes
    ----------
    expected : ndarray of float, shape (k,)
        ``-log10`` of the expected uniform order statistic, ``(i - 0.5) / n``.
    observed : ndarray of float, shape (k,)
        Observed ``-log10 p``, sorted descending (rank ``i`` = ``rank[j]``).
    rank : ndarray of int, shape (k,)
        1-based rank of each drawn point among all ``n`` (1 = smallest p).
    band_lower, band_upper : ndarray of float, shape (k,)
        Pointwise 95% band of ``-log10`` of the ``i``-th smallest of ``n`` uniform p-values.
    n : int
        Number of p-values before thinning.
    lambda_gc : float
        Genomic inflation factor (NaN when not given).
    """

    expected: F
    observed: F
    rank: I
    band_lower: F
    band_upper: F
    n: int
    lambda_gc: float

    @property
    def n_drawn(self) -> int:
        return int(self.observed.size)


def qq_data(nlp: ArrayLike, *, lambda_gc: float = float("nan"), keep_above: float = KEEP_ABOVE,
            step: float = 0.005, level: float = 0.95) -> QQData:
    """Expected vs observed ``-log10 p`` with a pointwise confidence band, thinned.

    Parameters
    ----------
    nlp : array-like of float, shape (n,)
        Observed ``-log10 p`` (finite).
    lambda_gc : float
        Carried along for the renderer to print.
    keep_above : float
        Every point with observed or expected ``-log10 p`` above this is drawn; below it,
        one point per ``step`` x ``step`` cell (the curve is monotone, so a few hundred).
    level : float
        Coverage of the band.

    Notes
    -----
    Under the null the ``i``-th smallest of ``n`` uniform p-values follows
    ``Beta(i, n - i + 1)``; the band is ``-log10`` of its ``(1 -+ level) / 2`` quantiles
    (``scipy.special.betaincinv``). Expected positions use ``(i - 0.5) / n``.
    """
    from scipy.special import betaincinv

    obs = np.sort(np.asarray(nlp, dtype=np.float64))[::-1]
    if obs.size and not np.all(np.isfinite(obs)):
        raise InputError("qq_data: nlp has non-finite values - drop them first "
                         "(read_scan_table does)")
    n = obs.size
    i = np.arange(1, n + 1, dtype=np.float64)
    exp = -np.log10((i - 0.5) / n) if n else np.empty(0)
    if n:
        high = (obs > keep_above) | (exp > keep_above)
        hi_idx = np.flatnonzero(high)
        lo_idx = np.flatnonzero(~high)
        cell = (np.floor(exp[lo_idx] / step).astype(np.int64) * 100_000
                + np.floor(obs[lo_idx] / step).astype(np.int64))
        _, first = np.unique(cell, return_index=True)
        keep = np.sort(np.concatenate([hi_idx, lo_idx[first], [n - 1]]))
        keep = np.unique(keep)
    else:
        keep = np.empty(0, dtype=np.int64)
    r = i[keep]
    alpha = (1.0 - level) / 2.0
    b = n - r + 1
    upper = -np.log10(betaincinv(r, b, alpha)) if n else np.empty(0)
    lower = -np.log10(betaincinv(r, b, 1.0 - alpha)) if n else np.empty(0)
    return QQData(expected=exp[keep], observed=obs[keep], rank=r.astype(np.int64),
                  band_lower=lower, band_upper=upper, n=n, lambda_gc=float(lambda_gc))
