"""The background reader: order, errors, early close, and that it really runs ahead."""

from __future__ import annotations

import threading

import pytest

from glimix_cli.io.prefetch import prefetch


def test_order_and_exhaustion():
    assert list(prefetch(iter(range(100)), depth=3)) == list(range(100))
    assert list(prefetch(iter([]))) == []


def test_error_surfaces_at_the_failing_item():
    def items():
        yield "a"
        yield "b"
        raise OSError("read error in block 3")

    got = []
    with pytest.raises(OSError, match="block 3"):
        for x in prefetch(items()):
            got.append(x)
    assert got == ["a", "b"]


def test_early_close_stops_and_closes_the_producer():
    produced = []
    closed = threading.Event()

    def items():
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    g = prefetch(items(), depth=1)
    assert next(g) == 0
    g.close()
    assert closed.is_set()
    # it ran at most a couple of items ahead of the consumer, not through all 1000
    assert len(produced) <= 4
    assert not any(t.name == "glimix-prefetch" and t.is_alive() for t in threading.enumerate())


def test_producer_runs_ahead_of_the_consumer():
    """While the consumer still holds item 0, the producer is already making item 1."""
    making_1 = threading.Event()

    def items():
        yield 0
        making_1.set()
        yield 1

    g = prefetch(items())
    assert next(g) == 0
    assert making_1.wait(timeout=30)
    assert list(g) == [1]


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        next(prefetch(iter([1]), depth=0))
