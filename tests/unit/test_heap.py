"""Process memory tuning of the servers (hft.heap)."""

from __future__ import annotations

import gc
import platform
from collections.abc import Iterator

import pytest

from hft.heap import freeze_heap, tune_malloc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_freeze_moves_live_objects_out_of_the_collector() -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    alive = [object() for _ in range(10)], {"k": []}
    freeze_heap()
    assert gc.get_freeze_count() > 0
    assert not any(o is alive for o in gc.get_objects())
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.usefixtures("restore_gc")
def test_freeze_can_raise_only_the_young_threshold() -> None:
    gc.set_threshold(700, 10, 10)
    freeze_heap(5_000)
    assert gc.get_threshold() == (5_000, 10, 10)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tune_malloc_is_taken_by_glibc() -> None:
    assert tune_malloc() is True
