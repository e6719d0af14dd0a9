"""The commit arithmetic of streams/faust_fixes.py: never past an offset not handled; and the
batch handed to the streams: never a record a seek overtook.

These run the patched ``Consumer`` methods over the bookkeeping they read and write (acked
offsets, gaps Kafka left, where reading started, the offsets read), with no broker; the fault
tests in tests/e2e/test_faults.py run them against one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from intervaltree import IntervalTree

from streams import faust_fixes
from streams.faust_fixes import (
    UnsupportedVersion,
    add_gap,
    check_versions,
    getmany,
    new_offset,
    perform_seek,
)

INPUT = TP("lesson-events", 3)


def bookkeeping(start: int | None, acked: list[int]) -> Any:
    state = SimpleNamespace(
        _committed_offset=defaultdict(lambda: None),
        _acked=defaultdict(list),
        _acked_index=defaultdict(set),
        _gap=defaultdict(IntervalTree),
    )
    state._committed_offset[INPUT] = start
    state._acked[INPUT] = list(acked)
    state._acked_index[INPUT] = set(acked)
    return state


def test_nothing_is_committed_before_the_partition_was_sought() -> None:
    state = bookkeeping(start=None, acked=[7, 8, 9])
    assert new_offset(state, INPUT) is None


def test_a_run_acknowledged_from_where_reading_started_is_committed() -> None:
    state = bookkeeping(start=0, acked=[2, 0, 1, 5])
    assert new_offset(state, INPUT) == 3
    assert state._acked[INPUT] == [5]


def test_an_offset_not_handled_at_the_head_holds_the_commit_back() -> None:
    # Faust let one missing offset at the head through, and none at all from offset 0.
    assert new_offset(bookkeeping(start=10, acked=[11, 12]), INPUT) is None
    assert new_offset(bookkeeping(start=0, acked=[1, 2]), INPUT) is None


async def test_offsets_kafka_skipped_are_committed_over() -> None:
    # A transaction marker at 10: the first record read after seeking to 10 is 11.
    state = bookkeeping(start=10, acked=[11, 12])
    await add_gap(state, INPUT, 10, 11)
    assert new_offset(state, INPUT) == 13


async def test_the_record_that_revealed_a_gap_is_not_in_it() -> None:
    # Records 20 and 21 are handled; 22-24 were compacted away; 25 is read but not handled.
    state = bookkeeping(start=20, acked=[20, 21])
    await add_gap(state, INPUT, 22, 25)
    assert new_offset(state, INPUT) == 22
    state._committed_offset[INPUT] = 22  # as Faust records a commit
    state._acked[INPUT].append(25)
    assert new_offset(state, INPUT) == 26


async def test_a_gap_before_where_reading_started_is_ignored() -> None:
    state = bookkeeping(start=30, acked=[30])
    await add_gap(state, INPUT, 25, 30)
    assert not state._gap[INPUT]
    assert new_offset(state, INPUT) == 31


def test_the_fixes_refuse_a_release_they_were_not_written_for() -> None:
    tested = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}
    check_versions(tested.__getitem__)  # in range: no error
    for name, version in (("faust-streaming", "0.16.0"), ("aiokafka", "0.15.1")):
        with pytest.raises(UnsupportedVersion, match=f"{name} {version} is installed"):
            check_versions((tested | {name: version}).__getitem__)
    with pytest.raises(UnsupportedVersion):
        check_versions((tested | {"aiokafka": "0.12.0"}).__getitem__)


def test_the_installed_releases_are_the_tested_ones() -> None:
    check_versions()


# The batch Faust's drain loop hands over (``getmany``), around a seek (fix 5).

CHANGELOG = TP("learners-changelog", 3)


def consumer(starts: dict[TP, int]) -> Any:
    """A consumer whose seeks (the patched ``perform_seek``) go to ``starts``."""
    state = bookkeeping(start=None, acked=[])
    state._read_offset = defaultdict(lambda: None)
    state.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: t == INPUT.topic))
    state.seeks_asked = 0

    async def seek_to_committed() -> dict[TP, int]:
        state.seeks_asked += 1
        return dict(starts)

    state.seek_to_committed = seek_to_committed
    state.perform_seek = lambda: perform_seek(state)
    state._add_gap = lambda tp, offset_from, offset_to: add_gap(state, tp, offset_from, offset_to)
    return state


def record(tp: TP, offset: int) -> tuple[TP, Any]:
    return tp, SimpleNamespace(topic=tp.topic, offset=offset)


async def drain(
    state: Any,
    monkeypatch: pytest.MonkeyPatch,
    batch: list[tuple[TP, Any]],
    seek_while_handling: int | None = None,
) -> list[tuple[TP, int]]:
    """What Faust's drain loop does with a batch: hand each record over, then note its offset
    as read. A seek runs while the record at ``seek_while_handling`` is being handled."""

    async def fetched(self: Any, **_: float) -> AsyncIterator[tuple[TP, Any]]:
        for tp, message in batch:
            yield tp, message

    monkeypatch.setattr(faust_fixes, "_faust_getmany", fetched)
    handed: list[tuple[TP, int]] = []
    async for tp, message in getmany(state, timeout=1.0):
        handed.append((tp, message.offset))
        if message.offset == seek_while_handling:
            await state.perform_seek()
        state._read_offset[tp] = message.offset
    return handed


async def test_a_batch_without_a_seek_is_handed_over_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    state = consumer({INPUT: 5})
    batch = [record(INPUT, 5), record(CHANGELOG, 40), record(INPUT, 6)]
    assert await drain(state, monkeypatch, batch) == [(INPUT, 5), (CHANGELOG, 40), (INPUT, 6)]
    assert state.seeks_asked == 0
    assert state._read_offset[INPUT] == 6


async def test_input_records_a_seek_overtook_are_held_back_and_sought_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = consumer({INPUT: 5, CHANGELOG: 40})
    batch = [record(INPUT, 7), record(CHANGELOG, 41), record(INPUT, 8)]
    handed = await drain(state, monkeypatch, batch, seek_while_handling=7)
    # Changelog records are never sought back: handed over still.
    assert handed == [(INPUT, 7), (CHANGELOG, 41)]
    assert state.seeks_asked == 2  # the one during record 7, and again after the batch
    # Neither record moved the offsets read the seeks set: 5 and on are read afresh.
    assert state._read_offset[INPUT] == 4
    assert state._read_offset[CHANGELOG] == 39


async def test_a_record_handed_over_across_a_seek_does_not_move_the_offset_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = consumer({INPUT: 5})
    handed = await drain(state, monkeypatch, [record(INPUT, 9)], seek_while_handling=9)
    assert handed == [(INPUT, 9)]
    assert state.seeks_asked == 1  # nothing held back: no seek again
    assert state._read_offset[INPUT] == 4


async def test_a_failed_seek_again_leaves_the_records_to_a_later_seek(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state = consumer({INPUT: 5})
    seek_once = state.perform_seek

    async def seek_then_fail() -> None:
        if state.seeks_asked:
            raise RuntimeError("rebalancing")
        await seek_once()

    state.perform_seek = seek_then_fail
    batch = [record(INPUT, 7), record(INPUT, 8)]
    assert await drain(state, monkeypatch, batch, seek_while_handling=7) == [(INPUT, 7)]
    assert "seeking to the committed offsets again failed" in caplog.text
    # Nothing past 5 was acknowledged since the seek: nothing can be committed.
    assert new_offset(state, INPUT) is None


async def test_a_gap_after_offset_zero_is_committed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    # Sought to 0; a transaction marker at 1: the record after offset 0 is 2.
    state = consumer({INPUT: 0})
    await state.perform_seek()
    await drain(state, monkeypatch, [record(INPUT, 0), record(INPUT, 2)])
    state._acked[INPUT] = [0, 2]
    assert new_offset(state, INPUT) == 3
