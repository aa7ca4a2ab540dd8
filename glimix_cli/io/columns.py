"""plink2's ways of naming table columns: comma lists and ranges of names
(``--covar-name PC1-PC10,age``) and column numbers (``--covar-col-nums 3-12``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from glimix_cli.errors import InputError
from glimix_cli.io.tables import DEFAULT_MISSING, _delimiter, _first_line, read_table

__all__ = ["columns_by_number", "expand_columns", "table_columns"]


def expand_columns(columns: Sequence[str], specs: Sequence[str], source: str,
                   option: str) -> list[str]:
    """plink2's column lists: each spec is a comma list whose items are names or ranges
    ``FIRST-LAST`` (every data column from FIRST to LAST in file order, as
    ``--covar-name PC1-PC10``). A name that contains a dash is taken whole when it is a
    column. Returns the names in the order given, each once."""
    cols = list(columns)
    out: list[str] = []
    for spec in specs:
        for item in (x.strip() for x in str(spec).split(",")):
            if not item:
                continue
            if item in cols:
                out.append(item)
                continue
            rng = _name_range(cols, item, f"{source}: {option}")
            if rng is None:
                shown = ", ".join(cols[:10]) + (", ..." if len(cols) > 10 else "")
                raise InputError(f"{source}: column '{item}' not found (nor a range "
                                 f"FIRST-LAST of columns); data columns are {shown} - check "
                                 f"{option}")
            out += rng
    return list(dict.fromkeys(out))


def _name_range(cols: list[str], item: str, where: str) -> list[str] | None:
    for k in range(1, len(item)):
        if item[k] != "-":
            continue
        a, b = item[:k], item[k + 1:]
        if a in cols and b in cols:
            i, j = cols.index(a), cols.index(b)
            if i > j:
                raise InputError(f"{where} {item}: the range runs backwards (column {a} comes "
                                 f"after {b} in the file) - write it as {b}-{a}")
            return cols[i:j + 1]
    return None


def columns_by_number(header: Sequence[str], spec: str, source: str, option: str) -> list[str]:
    """plink2's ``--*-col-nums 3,5-7``: 1-based positions in the header line, FID and IID
    counted; the named columns must be data columns."""
    names: list[str] = []
    for item in (x.strip() for x in spec.split(",")):
        if not item:
            continue
        try:
            lo, hi = (int(v) for v in item.split("-")) if "-" in item else (int(item),) * 2
        except ValueError:
            raise InputError(f"{source}: {option} {spec}: '{item}' is not a column number or "
                             "range (e.g. 3,5-7)") from None
        if not 1 <= lo <= hi <= len(header):
            raise InputError(f"{source}: {option} {item}: the header has {len(header)} "
                             "columns (numbered from 1, FID and IID included)")
        names += list(header[lo - 1:hi])
    keys = [c for c in names if c.lower().lstrip("#") in ("fid", "iid")]
    if keys:
        raise InputError(f"{source}: {option} {spec} includes the ID column {keys[0]} - "
                         "number the data columns only")
    return list(dict.fromkeys(names))


def table_columns(path: str | os.PathLike[str],
                  missing_tokens: Sequence[str] = DEFAULT_MISSING) -> tuple[list[str], list[str]]:
    """``(header, data columns)`` of a sample table, as :func:`read_table` names them."""
    df = read_table(path, missing_tokens)
    data = [str(c) for c in df.columns if c not in ("fid", "iid")]
    path = Path(path)
    header = _first_line(path) or ""
    sep = _delimiter(path, header)
    raw = ([c.strip() for c in header.rstrip("\r\n").split("\t")] if sep == "\t"
           else [c.strip() for c in (header.split(",") if sep == "," else header.split())])
    return raw, data
