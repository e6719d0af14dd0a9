"""adapters.collector: the worker's garbage collector setting."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from adapters.collector import freeze_startup, tune_collector


@pytest.fixture(autouse=True)
def _restored() -> Iterator[None]:
    saved, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*saved)
    if enabled:
        gc.enable()


def test_the_young_threshold_is_set_and_the_older_ratios_kept() -> None:
    _, middle, old = gc.get_threshold()
    tune_collector(50_000)
    assert gc.get_threshold() == (50_000, middle, old)
    assert gc.isenabled()


def test_zero_turns_the_cyclic_collector_off() -> None:
    tune_collector(0)
    assert not gc.isenabled()


class Held:
    pass


def test_startup_objects_are_set_aside_from_later_passes() -> None:
    alive = [Held() for _ in range(100)]  # instances: tracked by the collector
    assert gc.is_tracked(alive[0])
    freeze_startup()
    assert gc.get_freeze_count() > 0
    young = {id(thing) for generation in range(3) for thing in gc.get_objects(generation)}
    assert id(alive[0]) not in young
    assert id(alive) not in young
