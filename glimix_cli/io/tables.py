"""Phenotype and covariate tables, and the covariate design matrix.

Tables have a header row and are keyed by ``FID IID`` (the plink2 / REGENIE / BOLT-LMM
convention; ``#FID`` and any letter case are accepted) or by ``IID`` alone. Fields are
separated by whitespace; by tabs only when the header line contains a tab (then empty
fields are missing values); by commas when the file name ends in ``.csv``.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from glimix_cli.errors import InputError
from glimix_cli.registry import BINARY_LIKELIHOODS, LIKELIHOODS

__all__ = [
    "DEFAULT_MISSING",
    "LIKELIHOODS",
    "COLLINEAR_RTOL",
    "Covariates",
    "Design",
    "Trait",
    "design_matrix",
    "load_covariates",
    "load_trait",
    "read_table",
]

#: Tokens read as a missing value in data columns (never in FID/IID).
DEFAULT_MISSING: tuple[str, ...] = ("NA", "nan", "NaN", "", "-9")

#: A covariate is collinear when the residual of its standardised column, after projecting
#: out the columns kept before it, has norm below ``COLLINEAR_RTOL * sqrt(n)`` (i.e. it
#: keeps less than 1e-16 of its variance).
COLLINEAR_RTOL = 1e-8


# --------------------------------------------------------------------------------------
# generic table


def read_table(
    path: str | os.PathLike[str], missing_tokens: Sequence[str] = DEFAULT_MISSING
) -> pd.DataFrame:
    """Read a sample table keyed by ``FID IID`` or ``IID``.

    Parameters
    ----------
    path : str or Path
        Text table with a header row (``.gz`` is decompressed).
    missing_tokens : sequence of str
        Values of data columns read as missing (NaN). Key columns are never converted.

    Returns
    -------
    DataFrame, shape (n_rows, 2 + n_data_columns)
        ``fid`` (str, or None in every row when the table has no FID column), ``iid`` (str),
        then the data columns in file order as str with NaN for missing values.

    Raises
    ------
    InputError
        Missing file, no IID column, repeated column names, or duplicated sample keys.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found - check the path")
    try:
        header = _first_line(path)
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a text table ({type(exc).__name__}: it holds bytes that "
                         "are not UTF-8 text, e.g. a .bed or .npz file) - pass a tab, "
                         "whitespace or comma separated table with a header row") from None
    if header is None:
        raise InputError(f"{path}: empty file - a table needs a header row (FID IID ...)")
    sep = _delimiter(path, header)
    try:
        df = pd.read_csv(path, sep=sep, header=None, dtype=str, na_filter=False, skiprows=1)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text table (bytes past the header are not UTF-8 "
                         "text) - pass a tab, whitespace or comma separated table") from None
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except pd.errors.ParserError as exc:
        raise InputError(
            f"{path}: rows have different numbers of fields ({' '.join(str(exc).split())}) "
            f"- every row needs one value per header column"
        ) from None
    cols = [c.strip() for c in (header.split(",") if sep == "," else header.split())]
    if sep == "\t":
        cols = [c.strip() for c in header.rstrip("\r\n").split("\t")]
    if df.shape[1] == 0:
        df = pd.DataFrame(columns=range(len(cols)), dtype=str)
    if df.shape[1] != len(cols):
        raise InputError(
            f"{path}: header has {len(cols)} columns but rows have {df.shape[1]} - every row "
            f"needs one value per header column"
        )
    dup_cols = sorted({c for c in cols if cols.count(c) > 1})
    if dup_cols:
        raise InputError(
            f"{path}: column name(s) {', '.join(dup_cols)} appear more than once - "
            f"rename them"
        )
    df.columns = cols
    df = df.apply(lambda s: s.str.strip()) if sep == "," and len(df) else df
    norm = [c.lower().lstrip("#") for c in cols]
    if "iid" not in norm:
        raise InputError(
            f"{path}: no IID column in the header; columns are {', '.join(cols[:8])}"
            f"{', ...' if len(cols) > 8 else ''} - the first line must be a header such as "
            f"'FID IID name1 name2' (or 'IID name1 ...')"
        )
    iid_col = cols[norm.index("iid")]
    fid_col = cols[norm.index("fid")] if "fid" in norm else None
    data_cols = [c for c in cols if c not in (iid_col, fid_col)]
    tokens = set(missing_tokens)
    out = pd.DataFrame(
        {
            # IDs compared without surrounding blanks (a tab table may pad them)
            "fid": (df[fid_col].astype(object).str.strip() if fid_col
                    else pd.Series([None] * len(df))),
            "iid": df[iid_col].astype(object).str.strip(),
        }
    )
    for c in data_cols:
        col = df[c].astype(object)
        out[c] = col.where(~col.isin(tokens), np.nan)
    out = out.reset_index(drop=True)
    _check_unique_keys(out, str(path), "FID IID" if fid_col else "IID")
    return out


def _delimiter(path: Path, header: str) -> str:
    """The table's separator, from its header line whatever the file is called: a tab if
    the header has one; a comma for a ``.csv`` or a header that is one comma-separated
    word (``FID,IID,bmi``); else runs of whitespace."""
    if "\t" in header:
        return "\t"
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".csv") or ("," in header and len(header.split()) == 1):
        return ","
    return r"\s+"


def _first_line(path: Path) -> str | None:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt") as fh:  # type: ignore[operator]
        for line in fh:
            if line.strip():
                return line.rstrip("\r\n")
    return None


def _check_unique_keys(df: pd.DataFrame, source: str, key_name: str) -> None:
    keys = _keys(df["fid"].to_numpy(), df["iid"].to_numpy())
    dup = pd.Series(keys).duplicated(keep=False)
    if dup.any():
        shown = list(dict.fromkeys(k for k, d in zip(keys, dup, strict=True) if d))
        raise InputError(
            f"{source}: {len(shown)} duplicated sample key(s) ({key_name}), e.g. "
            f"{', '.join(_fmt_key(k) for k in shown[:3])} - each sample must appear once"
        )


def _keys(fid: NDArray | None, iid: NDArray) -> list:
    if fid is None or all(f is None for f in fid):
        return [str(i) for i in iid]
    return [(str(f), str(i)) for f, i in zip(fid, iid, strict=True)]


def _fmt_key(key: object) -> str:
    return ":".join(key) if isinstance(key, tuple) else str(key)


def _fid_or_none(df: pd.DataFrame) -> NDArray | None:
    fid = df["fid"].to_numpy(dtype=object)
    return None if len(fid) and all(f is None for f in fid) else fid


def _column(df: pd.DataFrame, name: str, source: str, option: str) -> pd.Series:
    if name not in df.columns or name in ("fid", "iid"):
        cols = [c for c in df.columns if c not in ("fid", "iid")]
        raise InputError(
            f"{source}: column '{name}' not found; data columns are "
            f"{', '.join(cols) if cols else '(none)'} - check {option}"
        )
    return df[name]


def _fmt_values(values: Sequence[object], limit: int = 5) -> str:
    shown = list(dict.fromkeys(values))
    text = ", ".join(repr(v) if isinstance(v, str) else f"{v:g}" for v in shown[:limit])
    return text + (f" (+{len(shown) - limit} more)" if len(shown) > limit else "")


def _numeric(col: pd.Series, source: str, what: str, rule: str) -> NDArray[np.float64]:
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    bad = (np.isnan(values) & col.notna().to_numpy()) | np.isinf(values)
    if bad.any():
        raise InputError(
            f"{source}: column '{what}' must be numeric ({rule}); found "
            f"{_fmt_values(list(col[bad]))} - fix the values or mark missing ones as NA"
        )
    return values


# --------------------------------------------------------------------------------------
# trait


@dataclass(frozen=True, eq=False)
class Trait:
    """A phenotype column ready for sample matching.

    Attributes
    ----------
    fid : ndarray of object (str), shape (n,), or None
        Family IDs, None when the table has no FID column.
    iid : ndarray of object (str), shape (n,)
    y : ndarray of float64, shape (n,)
        Trait values, NaN for missing; 0/1 for bernoulli/probit; successes for binomial.
    trials : ndarray of float64, shape (n,), or None
        Number of trials (binomial only), NaN where missing.
    name : str
        Column name.
    likelihood : str
    coding : str
        How the values were read, e.g. ``"PLINK 1/2 (1=control, 2=case) recoded to 0/1"``.
    source : str
        File the trait came from (for messages).
    """

    fid: NDArray | None
    iid: NDArray
    y: NDArray[np.float64]
    trials: NDArray[np.float64] | None
    name: str
    likelihood: str
    coding: str
    source: str = ""

    @property
    def observed(self) -> NDArray[np.bool_]:
        """Rows with a usable value (and, for binomial, a trial count)."""
        ok = ~np.isnan(self.y)
        return ok if self.trials is None else ok & ~np.isnan(self.trials)


def sole_trait_column(
    path: str | os.PathLike[str],
    exclude: Sequence[str] = (),
    missing_tokens: Sequence[str] = DEFAULT_MISSING,
    hint: str = "",
) -> str:
    """The table's only data column (other than the IDs and ``exclude``), for a default
    ``--pheno-name``; an :class:`InputError` naming the columns when there is not exactly one.
    """
    df = read_table(path, missing_tokens)
    cols = [c for c in df.columns if c not in ("fid", "iid") and c not in set(exclude)]
    if len(cols) == 1:
        return str(cols[0])
    if not cols:
        raise InputError(f"{path}: no phenotype column besides the sample IDs - add the "
                         "trait as a column with a header")
    shown = ", ".join(map(str, cols[:8])) + (", ..." if len(cols) > 8 else "")
    raise InputError(f"{path}: {len(cols)} phenotype columns ({shown}) - choose one with "
                     f"--pheno-name{hint}")


def load_trait(
    path: str | os.PathLike[str],
    name: str,
    likelihood: str,
    trials_name: str | None = None,
    missing_tokens: Sequence[str] = DEFAULT_MISSING,
) -> Trait:
    """Read one phenotype column and check it suits the likelihood.

    Parameters
    ----------
    path : str or Path
        Table readable by :func:`read_table`.
    name : str
        Column holding the trait (successes for ``binomial``).
    likelihood : {"normal", "bernoulli", "probit", "binomial", "poisson"}
    trials_name : str, optional
        Column with the number of trials; required for ``binomial``.
    missing_tokens : sequence of str
        Tokens read as missing (``-9`` is one by default; drop it to keep -9 as a value).

    Returns
    -------
    Trait

    Notes
    -----
    - ``normal``: any finite number.
    - ``bernoulli``/``probit``: 0/1 (1 = case), or PLINK's 1/2 (1 = control, 2 = case),
      detected when the values are within {1, 2} and include 2, and recoded to 0/1.
    - ``poisson``: non-negative integers.
    - ``binomial``: integer successes ``0 <= y <= trials`` and integer ``trials >= 1``.
    """
    if likelihood not in LIKELIHOODS:
        raise InputError(
            f"unknown likelihood '{likelihood}'; choose one of {', '.join(LIKELIHOODS)}"
        )
    source = str(path)
    df = read_table(path, missing_tokens)
    col = _column(df, name, source, "--pheno-name")
    y = _numeric(col, source, name, f"likelihood {likelihood}")
    obs = ~np.isnan(y)
    trials = None
    coding = "numeric"
    if likelihood in BINARY_LIKELIHOODS:
        values = set(np.unique(y[obs]).tolist())
        if values <= {0.0, 1.0}:
            coding = "0/1 (1 = case)"
        elif values <= {1.0, 2.0}:
            y = y - 1.0
            coding = "PLINK 1/2 (1 = control, 2 = case), recoded to 0/1"
        else:
            bad = sorted(values - {0.0, 1.0}) if 0.0 in values else sorted(values - {1.0, 2.0})
            raise InputError(
                f"{source}: column '{name}' must be binary for likelihood {likelihood} "
                f"(0/1, or PLINK 1/2 with 1 = control, 2 = case); found values "
                f"{_fmt_values(bad)} - recode the column or mark missing values as NA"
            )
    elif likelihood == "poisson":
        bad = obs & ((y < 0) | (y != np.round(y)))
        if bad.any():
            raise InputError(
                f"{source}: column '{name}' must hold non-negative integer counts for "
                f"likelihood poisson; found {_fmt_values(list(y[bad]))} - fix the values or "
                f"choose another likelihood"
            )
        coding = "counts"
    elif likelihood == "binomial":
        if trials_name is None:
            raise InputError(
                f"{source}: likelihood binomial needs the number of trials per sample - "
                f"pass --trials-name with the column holding it"
            )
        tcol = _column(df, trials_name, source, "--trials-name")
        trials = _numeric(tcol, source, trials_name, "likelihood binomial")
        tobs = ~np.isnan(trials)
        bad_t = tobs & ((trials < 1) | (trials != np.round(trials)))
        if bad_t.any():
            raise InputError(
                f"{source}: trials column '{trials_name}' must hold integers >= 1; found "
                f"{_fmt_values(list(trials[bad_t]))} - fix the values or mark them NA"
            )
        both = obs & tobs
        bad = both & ((y < 0) | (y != np.round(y)) | (y > trials))
        if bad.any():
            pairs = [f"{s:g}/{t:g}" for s, t in zip(y[bad], trials[bad], strict=True)]
            raise InputError(
                f"{source}: column '{name}' must hold integer successes 0 <= y <= "
                f"'{trials_name}'; found successes/trials {_fmt_values(pairs)} - fix the values"
            )
        y = np.where(both, y, np.nan)
        trials = np.where(both, trials, np.nan)
        coding = f"successes out of '{trials_name}' trials"
    return Trait(
        fid=_fid_or_none(df),
        iid=df["iid"].to_numpy(dtype=object),
        y=np.ascontiguousarray(y, dtype=np.float64),
        trials=trials,
        name=name,
        likelihood=likelihood,
        coding=coding,
        source=source,
    )


# --------------------------------------------------------------------------------------
# covariates


@dataclass(frozen=True, eq=False)
class Covariates:
    """Covariate columns ready for sample matching.

    Attributes
    ----------
    fid : ndarray of object (str), shape (n,), or None
    iid : ndarray of object (str), shape (n,)
    table : DataFrame, shape (n, p)
        Numeric columns as float64, categorical ones as str; NaN for missing.
    cat_columns : tuple of str
        Columns treated as categorical (requested, or detected as non-numeric).
    source : str
    left_out : tuple of str
        Data columns of the table left out because they are the trait (``exclude``).
    """

    fid: NDArray | None
    iid: NDArray
    table: pd.DataFrame
    cat_columns: tuple[str, ...]
    source: str = ""
    left_out: tuple[str, ...] = ()

    @property
    def complete(self) -> NDArray[np.bool_]:
        """Rows without a missing value in any covariate."""
        return ~self.table.isna().any(axis=1).to_numpy()


def load_covariates(
    path: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    cat_names: Sequence[str] = (),
    missing_tokens: Sequence[str] = DEFAULT_MISSING,
    exclude: Sequence[str] = (),
) -> Covariates:
    """Read covariate columns.

    Parameters
    ----------
    path : str or Path
        Table readable by :func:`read_table`.
    names : sequence of str, optional
        Columns to use; all data columns when None. ``cat_names`` not listed are added.
    cat_names : sequence of str
        Columns to treat as categorical even if numeric (e.g. a batch number).
    missing_tokens : sequence of str
    exclude : sequence of str
        Columns that are never covariates (the trait, when pheno and covariates share a
        table): left out of "all data columns", an error when named.

    Returns
    -------
    Covariates
        Numeric columns become float64; non-numeric columns and ``cat_names`` are
        categorical (str).
    """
    source = str(path)
    df = read_table(path, missing_tokens)
    data_cols = [c for c in df.columns if c not in ("fid", "iid") and c not in set(exclude)]
    wanted = list(data_cols if names is None else names)
    wanted += [c for c in cat_names if c not in wanted]
    for c in wanted:
        if c in set(exclude):
            raise InputError(f"{source}: covariate '{c}' is the trait column - a trait cannot "
                             "be its own covariate; drop it from --covar-name / --covar-cat")
    table = pd.DataFrame(index=df.index)
    cats: list[str] = []
    for c in wanted:
        col = _column(df, c, source, "--covar-name / --covar-cat")
        values = pd.to_numeric(col, errors="coerce")
        numeric = not (values.isna() & col.notna()).any()
        if c in cat_names or not numeric:
            table[c] = col.astype(object)
            cats.append(c)
        else:
            table[c] = values.astype(np.float64)
    return Covariates(
        fid=_fid_or_none(df),
        iid=df["iid"].to_numpy(dtype=object),
        table=table,
        cat_columns=tuple(cats),
        source=source,
        left_out=tuple(c for c in df.columns if c in set(exclude) and names is None),
    )


@dataclass(frozen=True, eq=False)
class Design:
    """Covariate design matrix.

    Attributes
    ----------
    X : ndarray of float64, shape (n, p)
        ``intercept`` first, then kept covariates (categoricals as 0/1 indicators).
    names : list of str, length p
        Column names; indicators are named ``COL=LEVEL``.
    dropped : list of (str, str)
        ``(name, reason)`` for removed columns, reason ``constant`` or ``collinear``.
    """

    X: NDArray[np.float64]
    names: list[str]
    dropped: list[tuple[str, str]] = field(default_factory=list)


def design_matrix(cov_df_aligned: pd.DataFrame, cat_columns: Sequence[str] = ()) -> Design:
    """Build the covariate matrix with an intercept, dropping degenerate columns.

    Parameters
    ----------
    cov_df_aligned : DataFrame, shape (n, q)
        Covariates of the analysed samples (after matching), no missing values.
    cat_columns : sequence of str
        Categorical columns: each becomes indicators ``COL=LEVEL`` for every level but the
        first in sorted order (the reference).

    Returns
    -------
    Design

    Notes
    -----
    Columns are considered in order (intercept, then the table's columns). A column that
    is constant over the samples is dropped (``constant``). Each remaining column is
    standardised and projected on the kept ones (Gram-Schmidt, applied twice); when the
    residual norm is below ``COLLINEAR_RTOL * sqrt(n)`` it is dropped (``collinear``).

    Examples
    --------
    >>> import pandas as pd
    >>> d = design_matrix(pd.DataFrame({"age": [30.0, 40, 50, 60], "sex": ["F", "M", "M", "F"],
    ...                                 "age2": [60.0, 80, 100, 120]}), ["sex"])
    >>> d.names, d.dropped
    (['intercept', 'age', 'sex=M'], [('age2', 'collinear')])
    """
    n = len(cov_df_aligned)
    cats = set(cat_columns)
    # (name, column); column None marks a categorical with a single level
    candidates: list[tuple[str, NDArray[np.float64] | None]] = []
    dropped: list[tuple[str, str]] = []
    for c in cov_df_aligned.columns:
        col = cov_df_aligned[c]
        if col.isna().any():
            raise InputError(
                f"covariate '{c}': {int(col.isna().sum())} missing value(s) among the "
                f"analysed samples - drop samples with missing covariates before the design"
            )
        if c in cats:
            levels = sorted(set(col.astype(str)))
            if len(levels) < 2:
                candidates.append((str(c), None))
            for lev in levels[1:]:
                candidates.append((f"{c}={lev}", (col.astype(str) == lev).to_numpy(np.float64)))
        else:
            values = pd.to_numeric(col, errors="coerce").to_numpy(np.float64)
            if not np.all(np.isfinite(values)):
                raise InputError(
                    f"covariate '{c}' has non-numeric values - list it as categorical"
                )
            candidates.append((str(c), values))
    names = ["intercept"]
    cols = [np.ones(n)]
    basis = [np.ones(n) / np.sqrt(n)] if n else []
    for name, x in candidates:
        sd = 0.0 if x is None or n == 0 else float(x.std())
        if x is None or sd == 0 or sd <= 1e-12 * max(1.0, float(np.abs(x).max())):
            dropped.append((name, "constant"))
            continue
        z = (x - x.mean()) / sd
        r = z.copy()
        Q = np.column_stack(basis)
        for _ in range(2):
            r -= Q @ (Q.T @ r)
        norm = float(np.linalg.norm(r))
        if norm < COLLINEAR_RTOL * np.sqrt(n):
            dropped.append((name, "collinear"))
            continue
        basis.append(r / norm)
        names.append(name)
        cols.append(x)
    X = np.column_stack(cols) if n else np.empty((0, len(cols)))
    return Design(X=np.asfortranarray(X, dtype=np.float64), names=names, dropped=dropped)
