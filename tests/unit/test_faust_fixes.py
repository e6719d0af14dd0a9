"""The commit arithmetic of streams/faust_fixes.py: never past an offset not handled.

These run the patched ``Consumer`` methods over the bookkeeping they read and write (acked
offsets, gaps Kafka left, where reading started), with no broker; the fault tests in
tests/integration/test_faults.py run them against one.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from intervaltree import IntervalTree

from streams.faust_fixes import UnsupportedVersion, add_gap, check_versions, new_offset

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
