"""Read the next block in a background thread while the current one is being computed on.

The genotype readers spend their time in the .bed decoder (C, GIL released) and in numpy
array passes (mostly GIL released); the consumers spend theirs in BLAS. Overlapping the two
hides most of the reading time behind the matrix products. Measured at n = 5,000 on two
cores: see ``benchmarks/README.md``.

Memory: ``depth`` items wait in the queue and one more is being produced, so a consumer of
blocks of ``B`` bytes holds up to ``(depth + 2) * B`` (its own block included).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["prefetch"]

_POLL_S = 0.1


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield the items of ``items`` in order, producing up to ``depth`` ahead in a thread.

    Exceptions raised while producing an item are re-raised in the consumer at that item.
    Closing the returned generator early (``break``, an exception in the consumer) stops
    the producer after the item it is working on.

    Examples
    --------
    >>> list(prefetch(iter(range(5))))
    [0, 1, 2, 3, 4]
    >>> def broken():
    ...     yield 1
    ...     raise ValueError("bad block")
    >>> g = prefetch(broken())
    >>> next(g)
    1
    >>> next(g)
    Traceback (most recent call last):
    ...
    ValueError: bad block
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1; got {depth}")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(msg: tuple) -> bool:
        while not stop.is_set():
            try:
                q.put(msg, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(("error", exc))

    thread = threading.Thread(target=work, name="glimix-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "item":
                yield value
            elif kind == "done":
                return
            else:
                raise value
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if close is not None:  # the producer has exited: closing it here is safe
            close()
