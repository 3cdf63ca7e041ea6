"""The daemon's GC tuning: startup objects frozen, the young generation collected less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from processor.daemon import GC_YOUNG_THRESHOLD, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tune_gc_freezes_the_startup_heap_and_raises_the_young_threshold(
    restored_gc: None,
) -> None:
    startup_object = {"config": [1, 2, 3]}
    tune_gc()
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD > 700
    assert gc.get_freeze_count() > 0
    assert not any(o is startup_object for o in gc.get_objects())  # frozen: never scanned again
