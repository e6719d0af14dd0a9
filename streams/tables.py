"""Reading and writing the worker's tables: partition keys, the partition a write goes to,
and writes that fail as ``EffectsFailed`` (the batch must then not be committed)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event
from faust.streams import current_event as _faust_current_event
from faust.types import EventT, TableT

from streams.records import EffectsFailed


def partition_key(partition: int, name: str) -> str:
    """Per-partition keys: each partition keeps its own copy of what it was sent, so a
    catalog entry is ordered with the learner events of that same partition."""
    return f"{partition}/{name}"


def write(table: TableT[str, Any], key: str, value: Any) -> None:
    try:
        table[key] = value
    except Exception as error:
        raise EffectsFailed(f"writing {table.name}[{key!r}]: {error!r}") from error


def delete(table: TableT[str, Any], key: str) -> None:
    try:
        del table[key]
    except Exception as error:
        raise EffectsFailed(f"deleting {table.name}[{key!r}]: {error!r}") from error


@contextmanager
def partition_of(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event: table reads and writes go to its partition.

    Faust keeps the current event in a context variable that its own stream iteration sets;
    a batch handles many events, of several partitions, after the stream moved past them.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def current_event() -> EventT | None:
    """The event Faust's stream iteration is on, if any."""
    return _faust_current_event()
