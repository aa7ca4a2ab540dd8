"""Resumable results: a partial file plus a ledger, renamed into place at the end.

A scan writes its rows block by block to ``OUT.partial`` (always plain text, also for
``.gz`` outputs) and keeps a small ledger ``OUT.partial.json`` beside it:

    {"glimix_partial": 1, "output": "OUT", "run_fingerprint": "...", "chunk": [I, N],
     "block_size": B, "n_blocks": ..., "n_rows": ..., "blocks_done": k, "rows_done": r,
     "bytes_done": b, "n_imputed": ...}

A checkpoint first flushes and fsyncs the partial file, then replaces the ledger
atomically (temporary file, fsync, rename), so the ledger never counts bytes that are not
on disk. After a kill, ``--resume`` checks that the ledger belongs to the same run (same
fingerprint, chunk and block size), truncates the partial file to ``bytes_done`` (a block
that was half written when the process died is dropped) and goes on with block ``k``.
When every block is written the partial file becomes ``OUT`` in one atomic step: renamed
for plain text, or compressed into ``OUT`` by :func:`glimix_cli.io.results.atomic_text_writer`
for ``.gz`` (fixed gzip header, level 6), so a resumed run and an uninterrupted run give
the same bytes. Then the ledger is removed.

Without ``--resume`` a stale partial file of an earlier run is replaced. A run that stops
before its first block is complete leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from glimix_cli.errors import InputError
from glimix_cli.io.results import COLUMNS, HEADER, atomic_text_writer

PARTIAL_FORMAT = 1
#: Minimum seconds between two checkpoints (fsync + ledger). With the default block size a
#: block takes longer than this, so every block is checkpointed; with tiny blocks the cost
#: of an fsync per block (about 2 ms) stays bounded. A crash loses at most this much work;
#: an exception (including Ctrl-C) checkpoints every complete block before leaving.
CHECKPOINT_SECONDS = 0.5


def partial_paths(out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(OUT.partial, OUT.partial.json)`` for the output ``out``."""
    return Path(f"{out}.partial"), Path(f"{out}.partial.json")


@dataclass
class RunIdentity:
    """What a partial file must match to be continued."""

    run_fingerprint: str
    chunk: tuple[int, int]
    block_size: int
    n_blocks: int
    n_rows: int
    #: hash of the fitted null model to full precision (see :func:`null_hash`)
    null_hash: str = ""

    def ledger_fields(self) -> dict[str, Any]:
        return {"run_fingerprint": self.run_fingerprint, "chunk": list(self.chunk),
                "block_size": self.block_size, "n_blocks": self.n_blocks,
                "n_rows": self.n_rows, "null_hash": self.null_hash}


def null_hash(facts: dict[str, Any]) -> str:
    """SHA-256 of a null model's estimates (``NullModel.facts()``), floats in full.

    Refitting on the same inputs normally gives the same bits, but not always: another
    BLAS thread count or CPU can move the last bits, and with them, now and then, the
    last printed digit of a row. Resuming with a different null model would then mix two
    sets of rows, so the ledger records this hash and ``--resume`` refuses a mismatch.
    """
    kept = {k: facts.get(k) for k in ("likelihood", "n", "covariates", "beta", "beta_se",
                                      "v0", "v1", "scale", "delta", "lml")}  # not seconds
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=repr).encode()).hexdigest()


class PartialWriter:
    """Append blocks of rows to ``OUT.partial``; checkpoint them in the ledger.

    Use :func:`open_partial` to make one. ``blocks_done`` is the number of complete blocks
    already in the file (non-zero after a resume); ``resumed_text`` holds their rows so
    the caller can rebuild its summary without recomputing them.
    """

    def __init__(self, out: Path, ident: RunIdentity, fh: IO[bytes], blocks_done: int,
                 rows_done: int, bytes_done: int, n_imputed: int, resumed_text: str) -> None:
        self.out = out
        self.partial, self.ledger = partial_paths(out)
        self.ident = ident
        self._fh = fh
        self.blocks_done = blocks_done
        self.rows_done = rows_done
        self.n_imputed = n_imputed
        self.resumed_blocks = blocks_done
        self.resumed_text = resumed_text
        self._bytes = bytes_done
        self._saved = (blocks_done, rows_done, bytes_done)
        self._last = time.monotonic()

    def write_block(self, text: str, n_rows: int, n_imputed: int) -> None:
        data = text.encode("utf-8")
        self._fh.write(data)
        self._bytes += len(data)
        self.blocks_done += 1
        self.rows_done += n_rows
        self.n_imputed += n_imputed
        if time.monotonic() - self._last >= CHECKPOINT_SECONDS:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Make every written block durable, then record it in the ledger."""
        if self._saved == (self.blocks_done, self.rows_done, self._bytes):
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        _write_ledger(self.ledger, {
            "glimix_partial": PARTIAL_FORMAT, "output": self.out.name,
            **self.ident.ledger_fields(), "blocks_done": self.blocks_done,
            "rows_done": self.rows_done, "bytes_done": self._bytes,
            "n_imputed": self.n_imputed})
        self._saved = (self.blocks_done, self.rows_done, self._bytes)
        self._last = time.monotonic()

    def abandon(self) -> None:
        """Leave after an error: keep the complete blocks for --resume (or nothing)."""
        try:
            if self.blocks_done > 0:
                self.checkpoint()
        finally:
            self._fh.close()
            if self.blocks_done == 0:
                self.partial.unlink(missing_ok=True)
                self.ledger.unlink(missing_ok=True)

    def finish(self) -> None:
        """Turn the complete partial file into ``OUT`` atomically and drop the ledger."""
        if self.blocks_done != self.ident.n_blocks or self.rows_done != self.ident.n_rows:
            raise RuntimeError(f"{self.partial}: {self.blocks_done}/{self.ident.n_blocks} "
                               f"blocks written at finish")  # a bug, not a user error
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        if self.out.name.endswith(".gz"):
            with atomic_text_writer(self.out) as dst, open(self.partial, encoding="utf-8",
                                                            newline="\n") as src:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            self.partial.unlink()
        else:
            os.replace(self.partial, self.out)
        self.ledger.unlink(missing_ok=True)


def precheck_resume(out: str | os.PathLike[str], ident: RunIdentity) -> bool:
    """Before any heavy work: does ``OUT.partial`` exist, and (if so) would ``--resume``
    refuse it for this run's fingerprint, chunk, block size or size? The null model's hash
    is checked later, when it exists. Returns whether a partial file is there."""
    partial, ledger = partial_paths(out)
    if not (partial.exists() and ledger.exists()):
        return partial.exists()
    again = "rerun without --resume to start over"
    try:
        data = json.loads(ledger.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{ledger}: unreadable ledger ({exc}) - {again}") from None
    want = ident.ledger_fields()
    for key, label in (("run_fingerprint", "inputs, selection or QC options"),
                       ("chunk", "--chunk"), ("block_size", "--block-size"),
                       ("n_blocks", "number of blocks"), ("n_rows", "number of variants")):
        if data.get(key) != want[key]:
            shown = "" if key == "run_fingerprint" else f" ({data.get(key)} then, {want[key]} now)"
            raise InputError(f"{partial}: written by a run with other {label}{shown} - "
                             f"{again}")
    return True


def open_partial(out: str | os.PathLike[str], ident: RunIdentity, resume: bool,
                 header: str = HEADER) -> PartialWriter:
    """Start ``OUT.partial`` afresh, or (``resume``) continue a matching one.

    Raises
    ------
    InputError
        ``resume`` and the ledger belongs to another run, or the partial file is shorter
        than its ledger says.
    """
    out = Path(out)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{out}: output directory {directory} does not exist - create it "
                         "or choose another --out")
    partial, ledger = partial_paths(out)
    if resume and ledger.exists() and partial.exists():
        return _continue(out, ident, partial, ledger, header)
    fh = open(partial, "wb")  # replaces a stale partial of an earlier run
    ledger.unlink(missing_ok=True)
    head = header.encode("utf-8")
    fh.write(head)
    return PartialWriter(out, ident, fh, 0, 0, len(head), 0, "")


def _continue(out: Path, ident: RunIdentity, partial: Path, ledger: Path,
              header: str) -> PartialWriter:
    again = "rerun without --resume to start over"
    try:
        data = json.loads(ledger.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{ledger}: unreadable ledger ({exc}) - {again}") from None
    if data.get("glimix_partial") != PARTIAL_FORMAT or data.get("output") != out.name:
        raise InputError(f"{ledger}: not a glimix ledger of {out.name} - {again}")
    want = ident.ledger_fields()
    for key, label in (("run_fingerprint", "inputs, selection or QC options"),
                       ("chunk", "--chunk"), ("block_size", "--block-size"),
                       ("n_blocks", "number of blocks"), ("n_rows", "number of variants")):
        if data.get(key) != want[key]:
            shown = "" if key == "run_fingerprint" else f" ({data.get(key)} then, {want[key]} now)"
            raise InputError(f"{partial}: written by a run with other {label}{shown} - "
                             f"{again}")
    if data.get("null_hash") != want["null_hash"]:
        raise InputError(f"{partial}: the null model fitted now differs from the one its rows "
                         "used (in the last bits: another machine or BLAS thread count?) - "
                         f"{again}, or fit once with `glimix fit` and scan with --null")
    nbytes = int(data["bytes_done"])
    size = partial.stat().st_size
    if size < nbytes:
        raise InputError(f"{partial}: {size:,} bytes but its ledger counts {nbytes:,} - the "
                         f"file was changed; {again}")
    fh = open(partial, "r+b")
    head = fh.read(len(header.encode("utf-8")))
    if head != header.encode("utf-8"):
        fh.close()
        raise InputError(f"{partial}: does not start with the glimix header - {again}")
    fh.seek(0)
    text = fh.read(nbytes).decode("utf-8")
    fh.truncate(nbytes)  # drop a block that was half written when the run stopped
    fh.seek(nbytes)
    rows = text.count("\n") - 1
    if rows != int(data["rows_done"]):
        fh.close()
        raise InputError(f"{partial}: {rows:,} rows but its ledger counts "
                         f"{data['rows_done']:,} - {again}")
    return PartialWriter(out, ident, fh, int(data["blocks_done"]), rows, nbytes,
                         int(data.get("n_imputed", 0)), text[len(header):])


def _write_ledger(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def parse_rows(text: str) -> dict[str, np.ndarray]:
    """Columns of already-written rows (for the summary of resumed blocks).

    Returns ``status`` (object), ``lrt``, ``maf``, ``nlp``, ``beta``, ``se`` (float64),
    parsed from the text as written (6 significant digits; 5 for ``neg_log10_p_value``).
    """
    lines = text.splitlines()
    col = {c: j for j, c in enumerate(COLUMNS)}
    fields = [line.split("\t") for line in lines]

    def num(name: str) -> np.ndarray:
        j = col[name]
        return np.array([float("nan") if f[j] == "NA" else float(f[j]) for f in fields],
                        dtype=np.float64)

    eaf = num("effect_allele_frequency")
    return {"status": np.array([f[col["status"]] for f in fields], dtype=object),
            "lrt": num("lrt_chisq"), "maf": np.minimum(eaf, 1.0 - eaf),
            "nlp": num("neg_log10_p_value"), "beta": num("beta"), "se": num("standard_error")}
