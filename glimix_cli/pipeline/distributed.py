"""Variant blocks on a Dask cluster (``glimix scan --dask-scheduler/--dask-local``).

The client (the machine running ``glimix scan``) loads the inputs, builds the kinship and
fits the null model once. The :class:`~glimix_cli.pipeline.scan.ScanContext` (sample
index, QC thresholds and the scanner with its whitening factor; no genotypes, no open
file handle) is scattered once to every worker with ``broadcast=True``. Each task then
gets only the .bim row numbers of its block, reads those variants straight from the
shared PLINK files, and returns the formatted rows. The client keeps a bounded window of
tasks in flight and hands results back in block order, so the output is written by the
same writer, in the same order, as a single-process run: the bytes are identical.

A task that raises is retried once (``retries=1``); a worker that dies while running a
block has the block rescheduled once (``distributed.scheduler.allowed-failures = 1`` on
clusters glimix starts itself; a scheduler you started keeps its own setting). A block
that fails twice stops the run with an error naming the block's variants.

Dask blames a worker's death on every task assigned to that worker at the time, so a
block queued next to the one that kills its workers can be declared ``KilledWorker`` as
well. Such a block is resubmitted once more (usually the block at fault has failed by
then and runs no more); only a block that is declared ``KilledWorker`` a second time stops
the run, so the error usually names the block at fault. When workers die in quick
succession Dask can also lose the scattered scan context; then it is scattered again and
the unfinished blocks resubmitted, and if that happens too often the run stops at the
first unfinished block, saying that a block at or after it kills its workers.

Nothing here is imported unless a Dask option is given: ``distributed`` is an optional
dependency (``pip install 'glimix-cli[dask]'``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from glimix_cli.errors import GlimixError, InputError

#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT = 30
#: Times per run the scan context is scattered again after every worker holding it died.
MAX_RESCATTER = 3


class BlockError(GlimixError, RuntimeError):
    """A variant block failed on the cluster after its retry."""


class ClusterError(GlimixError, RuntimeError):
    """The Dask cluster could not be reached or cannot run glimix."""


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise InputError("Dask options need the optional dependency `distributed` - "
                         "pip install 'glimix-cli[dask]'") from None
    return distributed


@contextmanager
def dask_client(scheduler: str | None = None, scheduler_file: Path | None = None,
                local_workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for one of: an address, a scheduler file, a LocalCluster.

    ``local_workers`` starts a :class:`distributed.LocalCluster` of that many worker
    processes with one thread each on this machine, closed again on exit.
    """
    given = [x is not None for x in (scheduler, scheduler_file, local_workers)]
    if sum(given) != 1:
        raise InputError("give one of --dask-scheduler, --dask-scheduler-file, --dask-local")
    distributed = _import_distributed()
    import dask

    if local_workers is not None:
        if local_workers < 1:
            raise InputError(f"--dask-local {local_workers}: need at least 1 worker")
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
            cluster = distributed.LocalCluster(
                n_workers=local_workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR)
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    where = (f"--dask-scheduler {scheduler}" if scheduler
             else f"--dask-scheduler-file {scheduler_file}")
    if scheduler_file is not None and not Path(scheduler_file).is_file():
        raise InputError(f"{where}: file not found - start the scheduler with "
                         "`dask scheduler --scheduler-file FILE` (or dask-jobqueue) first")
    try:
        client = distributed.Client(address=scheduler, scheduler_file=(
            None if scheduler_file is None else str(scheduler_file)), timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"{where}: cannot connect ({_one_line(exc)}) - check that the "
                           "scheduler runs and is reachable from this machine") from None
    try:
        yield client
    finally:
        client.close()


def _probe(bed: str) -> tuple[str, bool]:
    """Run on each worker: glimix's version there and whether it sees the .bed file."""
    from glimix_cli import __version__

    return __version__, os.path.isfile(bed)


def check_workers(client: Any, bed: str,
                  say: Callable[[str], None] = lambda m: None) -> dict[str, int]:
    """Wait for a worker, then check every worker runs this glimix and sees ``bed``.

    Returns ``{"workers": ..., "threads": ...}``.
    """
    from glimix_cli import __version__

    if not client.nthreads():
        say("dask: waiting for the first worker to join the scheduler")
    client.wait_for_workers(1)
    try:
        seen = client.run(_probe, bed)
    except Exception as exc:  # e.g. glimix not importable on a worker
        raise ClusterError(f"dask workers cannot run glimix ({_one_line(exc)}) - install "
                           "glimix-cli in the workers' environment") from None
    for worker, (version, ok) in seen.items():
        if version != __version__:
            raise ClusterError(f"dask worker {worker} runs glimix {version}, this client "
                               f"{__version__} - install the same version everywhere")
        if not ok:
            raise ClusterError(f"dask worker {worker} cannot read {bed} - the PLINK files "
                               "must be on a file system the workers share, at the same path")
    threads = sum(client.nthreads().values())
    return {"workers": len(seen), "threads": threads}


def iter_blocks_dask(client: Any, fn: Callable[[Any, NDArray[np.intp]], Any], ctx: Any,
                     blocks: Sequence[NDArray[np.intp]], start: int = 0,
                     window: int | None = None,
                     describe: Callable[[int], str] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(b, fn(ctx, blocks[b]))`` for ``b = start, start+1, ...`` in order.

    ``ctx`` is scattered once to all workers. Or ``ctx`` gives each block its own
    context (a :class:`~glimix_cli.pipeline.scan.BlockContexts`: ``key(b)``, ``get(b)``,
    ``done(b)``; ``--loco``'s per-chromosome models): then each context is scattered when
    its first block is submitted and released after its last, so workers hold only the
    models of the chromosomes in flight. At most ``window`` blocks (default: twice
    the cluster's threads, at least 4) are submitted beyond the next block to hand back,
    which bounds both the tasks in flight and the results held here.

    Scattered data has no recipe: if every worker holding ``ctx`` dies at once, Dask
    forgets it and cancels the blocks that need it. Then ``ctx`` is scattered again and
    the unfinished blocks are resubmitted (at most :data:`MAX_RESCATTER` times per run).
    """
    from distributed import wait

    token = os.urandom(4).hex()
    futures: dict[int, Any] = {}
    rescatters = 0
    serial = 0
    killed: set[int] = set()  # blocks already resubmitted after a KilledWorker
    per_block = all(hasattr(ctx, a) for a in ("key", "get", "done"))
    held: dict[str, Any] = {}  # context key -> the context (kept to scatter it again)
    scattered: dict[str, Any] = {}  # context key -> its future on the cluster

    def scatter(k: str) -> None:
        scattered[k] = client.scatter(held[k], broadcast=True, hash=False)
        wait(scattered[k])

    def submit(j: int) -> Any:
        nonlocal serial
        serial += 1
        k = ctx.key(j) if per_block else ""
        if k not in scattered:
            held[k] = ctx.get(j) if per_block else ctx
            scatter(k)
        return client.submit(fn, scattered[k], blocks[j], retries=1, pure=False,
                             key=f"glimix-block-{j + 1}-{token}-{serial}")  # 1-based

    nxt = start
    b = start
    try:
        while b < len(blocks):
            limit = window or max(4, 2 * sum(client.nthreads().values()))
            while nxt < len(blocks) and nxt - b < limit:
                futures[nxt] = submit(nxt)
                nxt += 1
            try:
                res = futures[b].result()
            except Exception as exc:
                if _lost(exc) and rescatters < MAX_RESCATTER:
                    rescatters += 1
                    for k in list(scattered):
                        scatter(k)
                    for j, f in futures.items():
                        if f.status != "error" or _lost(f.exception()):
                            futures[j] = submit(j)
                    continue
                if _killed(exc) and b not in killed:
                    killed.add(b)  # maybe only queued beside the block at fault
                    futures[b] = submit(b)
                    continue
                what = describe(b) if describe else f"block {b + 1}"
                if _lost(exc):
                    raise BlockError(
                        f"{what} could not run: every dask worker holding the scan context "
                        f"died, {rescatters + 1} times - a block at or after this one kills "
                        "its worker (out of memory?); the blocks before it are kept in the "
                        "partial output; fix the cause and rerun with --resume") from None
                raise BlockError(f"{what} failed twice on the dask cluster: "
                                 f"{_one_line(exc)} - the blocks before it are kept in the "
                                 "partial output; fix the cause and rerun with --resume"
                                 ) from None
            del futures[b]
            yield b, res
            if per_block and ctx.done(b):  # the last block of its context
                k = ctx.key(b)
                scattered.pop(k).release()
                held.pop(k, None)
            b += 1
    finally:
        for f in futures.values():
            f.cancel()
        for f in scattered.values():
            f.release()


def _lost(exc: BaseException) -> bool:
    """Cancelled by Dask (its inputs were lost), not failed by the task itself."""
    from concurrent.futures import CancelledError

    return isinstance(exc, CancelledError)


def _killed(exc: BaseException) -> bool:
    """Declared lost because workers died while it was assigned to them."""
    from distributed import KilledWorker

    return isinstance(exc, KilledWorker)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if len(text) > 200 and ". " in text[:200]:
        text = text[:text.index(". ")]  # e.g. KilledWorker's first sentence only
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{name}: {text}" if text else name
