"""Seeing a scan: Manhattan and QQ plots, lambda_GC and a one-page HTML report.

Three modules, imports flowing one way:

- :mod:`glimix_cli.report.data` - pure pandas/numpy preparation (chromosome order,
  cumulative positions, downsampling, QQ expectations and confidence band). Functions take
  arrays and return small frozen dataclasses of arrays, so tests check what would be drawn
  without looking at pixels.
- :mod:`glimix_cli.report.plots` - matplotlib rendering (Agg, no display). matplotlib is an
  optional extra (``pip install 'glimix-cli[plot]'``).
- :mod:`glimix_cli.report.html` - the self-contained HTML page.

This module stays light (no pandas, no matplotlib) so importing the package is cheap.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from glimix_cli.errors import InputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory.

    The temporary file is renamed onto ``path`` only once it is complete, so an interrupted
    run never leaves a half-written image or page behind.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{path}: output directory {directory} does not exist - create it "
                         "or choose another --out")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


__all__ = ["write_bytes_atomic"]
