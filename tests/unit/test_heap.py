"""The collector settings a webhookd process runs with once startup is done."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from webhookd.heap import YOUNG_THRESHOLD, freeze_startup_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


def test_young_threshold_raised_older_kept(restore_gc: None) -> None:
    gc.set_threshold(700, 11, 12)
    freeze_startup_heap()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 11, 12)
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_idempotent(restore_gc: None) -> None:
    freeze_startup_heap()
    first = gc.get_threshold()
    freeze_startup_heap()
    assert gc.get_threshold() == first


def test_cycles_made_after_startup_are_still_collected(restore_gc: None) -> None:
    freeze_startup_heap()
    a, b = Node(), Node()
    a.other, b.other = b, a
    alive = weakref.ref(a)
    del a, b
    assert alive() is not None  # a cycle: reference counting alone cannot free it
    held = [[] for _ in range(2 * YOUNG_THRESHOLD)]  # enough new objects to trigger it
    assert alive() is None  # collected automatically, no gc.collect()
    assert len(held) == 2 * YOUNG_THRESHOLD
