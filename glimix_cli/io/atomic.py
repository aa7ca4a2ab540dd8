"""Atomic file output: write to a temporary file in the target directory, rename on success.

An interrupted run (error, Ctrl-C) removes the temporary file and never leaves a file that
looks finished under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from glimix_cli.errors import InputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_binary(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a binary handle whose content replaces ``path`` only when the block succeeds."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{path}: output directory {directory} does not exist - create it "
                         "or choose another --out")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_binary(path) as fh:
        fh.write(data)
    return Path(path)


def check_output(path: str | os.PathLike[str], option: str = "--out") -> None:
    """Refuse an output path that cannot be written, before any work is done.

    Raises
    ------
    InputError
        ``path`` is a directory, its directory does not exist, or a file cannot be
        created there (read-only directory or file system, no permission).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory - {option} names a file, e.g. "
                         f"{path / 'results.tsv.gz'}")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{path}: output directory {directory} does not exist - create it "
                         f"or choose another {option}")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=directory)
    except OSError as exc:
        raise InputError(f"{path}: cannot write in {directory} ({exc.strerror or exc}) - "
                         f"choose a writable {option}") from None
    os.close(fd)
    os.unlink(probe)
