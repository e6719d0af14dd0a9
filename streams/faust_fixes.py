"""Fixes for Faust 0.15 / aiokafka 0.13 that the worker cannot do without: input committed
unhandled around a rebalance.

Faust commits, per input partition, the end of the run of offsets its agents have acknowledged.
Around a rebalance, records are fetched and then thrown away: by ``getmany`` when a partition
is paused between the fetch and the hand-over, by the stream queues cleared when the rebalance
starts, by a fetch cancelled when the flow is suspended. Faust relies on seeking every input
partition back to its committed offset once recovery is done, and on its commit arithmetic
never to move past an offset that was not handled. Five places break that, and each showed in
the fault test of a second worker joining and leaving (tests/e2e/test_faults.py):

1. aiokafka's ``seek_to_committed`` seeks only partitions whose committed offset is above 0. A
   partition that never committed (or committed 0) kept the position the fetcher had reached,
   past the records thrown away: 11 of 12 learners of a run never finished.
2. Faust remembers the committed offset as ``None`` when it is 0 or unknown, and then skips its
   check that the acknowledged offsets start where the partition was sought to.
3. The committed offset of a newly assigned partition is unknown until that seek, but records
   can already flow (partitions are resumed before the seek is awaited): acknowledgements of
   records read from a stale position were committed, past the records in between.
4. Those early acknowledgements also outlive the seek, so the check in 2 passes on them.
5. Records fetched before the seek are still handed over after it (the rest of a fetched
   batch, or the one record the stream was busy with), and the offset read is set from them:
   the records the seek brings back then look older than what was read, and are dropped.

The fixes: every input partition is sought, never-committed ones to their beginning
(``consumer_auto_offset_reset`` is "earliest"); the seek records where reading starts and
forgets acknowledgements from before it; nothing is committed for a partition before that
seek; a commit moves only over offsets acknowledged, or skipped by Kafka itself (a gap in
offsets from a compaction or a transaction marker, which Faust detects as a jump in the
offsets it reads), from where reading started; and records that were on their way when a seek
happened are not handed over: the partitions are sought again, to the committed offsets, and
read afresh. Handling a record twice is harmless here (derivation is idempotent); skipping one
is not.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import Consumer, ensure_TP
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP, Message
from faust.utils.functional import consecutive_numbers
from intervaltree import IntervalTree

from streams.errors import WorkerError

log = logging.getLogger(__name__)


async def _seek_all(
    consumer: AIOKafkaConsumer, changelog_topics: frozenset[str]
) -> Mapping[Any, int | None]:
    """Seek each input partition to its committed offset; return where each reads from."""
    committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
    # Changelog partitions are Faust's recovery to position, never committed: left alone.
    inputs = {tp: offset for tp, offset in committed.items() if tp.topic not in changelog_topics}
    never = [tp for tp, offset in inputs.items() if offset is None]
    # One request for all of them; an explicit seek, so the start recorded is the one read.
    beginnings: Mapping[Any, int] = await consumer.beginning_offsets(never) if never else {}
    starts = dict(committed)
    for tp, offset in inputs.items():
        start = beginnings[tp] if offset is None else offset
        consumer.seek(tp, start)
        starts[tp] = start
    return starts


async def seek_partitions_to_committed(self: AIOKafkaConsumerThread) -> Mapping[TP, int]:
    """``AIOKafkaConsumerThread.seek_to_committed``, for every assigned input partition."""
    changelog_topics = frozenset(self.consumer.app.tables.changelog_topics)
    return await self.call_thread(_seek_all, self._ensure_consumer(), changelog_topics)


async def perform_seek(self: Consumer) -> None:
    """``Consumer.perform_seek`` that knows where each partition reads from afterwards."""
    starts = await self.seek_to_committed()
    for partition, start in starts.items():
        tp = ensure_TP(partition)
        # Whatever was acknowledged before the seek is read and acknowledged again after it.
        self._acked.pop(tp, None)
        self._acked_index.pop(tp, None)
        self._gap.pop(tp, None)
        self._committed_offset[tp] = start
        # The last offset read, so that a first record past ``start`` is seen as a gap.
        self._read_offset[tp] = None if start is None else start - 1
    # Last: records the drain loop holds from before this point are not handed over.
    _sought(self).record(self._read_offset)


@dataclass
class Sought:
    """What the seeks of one consumer (``perform_seek``) have left: how many ran, and the last
    offsets read the latest one set, which a record handed over across it must not move."""

    count: int = 0
    read_offsets: dict[TP, int | None] = field(default_factory=dict)

    def record(self, read_offsets: Mapping[TP, int | None]) -> None:
        self.count += 1
        self.read_offsets = dict(read_offsets)


def _sought(consumer: Consumer) -> Sought:
    # Kept on the consumer itself: one per consumer, gone with it. Read twice per record
    # handed over (``_without_overtaken``), changelog records included: a Sought is built
    # only the first time, not (as ``setdefault``'s argument would be) on every call.
    sought: Sought | None = consumer.__dict__.get("_progress_sought")
    if sought is None:
        sought = consumer.__dict__["_progress_sought"] = Sought()
    return sought


def _seeks(consumer: Consumer) -> int:
    """How many times ``perform_seek`` has run in this consumer."""
    return _sought(consumer).count


async def _seek_afresh(consumer: Consumer) -> None:
    try:
        await consumer.perform_seek()
    except Exception as error:
        # A rebalance under way seeks when it ends. Until some seek succeeds, the records held
        # back hold the commit back too (``new_offset``): nothing is lost, the lag grows.
        log.warning("seeking to the committed offsets again failed: %r", error)


# Faust's own batch, before ``apply`` puts ``getmany`` in its place.
_faust_getmany = Consumer.getmany


def getmany(self: Consumer, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
    """``Consumer.getmany``: the batch Faust's drain loop hands to the streams, one record at a
    time, less what a seek overtook (fix 5).

    Once a seek (``perform_seek``) happens after the batch was asked for, its input records
    may come from before the seek or after it, so none is handed over any more, and after the
    batch the partitions are sought again to the committed offsets: never past a record not
    handled. Changelog records are handed over as before (Faust never seeks them back:
    skipping one would lose it from a standby table). A record handed over before such a seek
    does not set the offset read: it stays where the seek put it.
    """
    return _without_overtaken(self, _faust_getmany(self, timeout=timeout), _seeks(self))


async def _without_overtaken(
    consumer: Consumer, records: AsyncIterator[tuple[TP, Message]], seeks: int
) -> AsyncIterator[tuple[TP, Message]]:
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    held_back = False
    async for tp, message in records:
        if _seeks(consumer) != seeks and acks_enabled_for(message.topic):
            held_back = True  # input only: changelog records have no seek to redo
            continue
        await _add_gap_after_offset_zero(consumer, tp, message)
        yield tp, message
        # Resumed once the drain loop has handed the record over and read its offset.
        if _seeks(consumer) != seeks:
            _restore_read_offset(consumer, tp)
    if held_back:
        await _seek_afresh(consumer)


async def _add_gap_after_offset_zero(consumer: Consumer, tp: TP, message: Message) -> None:
    """The gap the drain loop misses when the last offset read is 0 (it tests it for truth):
    after a seek to offset 1, a transaction marker there would hold the commit back for good."""
    read = consumer._read_offset.get(tp)
    if read == 0 and message.offset > 1 and consumer.app.topics.acks_enabled_for(message.topic):
        await consumer._add_gap(tp, 1, message.offset)


def _restore_read_offset(consumer: Consumer, tp: TP) -> None:
    # Only the drain loop, with this record, wrote it since the seek: undo that.
    sought = _sought(consumer).read_offsets
    if tp in sought:
        consumer._read_offset[tp] = sought[tp]
    else:
        consumer._read_offset.pop(tp, None)


def new_offset(self: Consumer, tp: TP) -> int | None:
    """``Consumer._new_offset``: the offset to commit, never past one not handled."""
    start = self._committed_offset[tp]
    acked = self._acked[tp]
    if start is None or not acked:
        return None
    gaps: IntervalTree = self._gap[tp]
    if gaps:
        skipped = [
            offset
            for interval in sorted(gaps.overlap(0, max(acked)), key=lambda i: i.begin)
            for offset in range(interval.begin, interval.end)
        ]
        if skipped:
            acked.extend(skipped)
            gaps.chop(0, max(skipped[-1], max(acked)) + 1)
    acked.sort()
    if acked[0] > start:
        return None
    handled = next(consecutive_numbers(acked))
    acked[: len(handled)] = []
    self._acked_index[tp].difference_update(handled)
    return int(handled[-1]) + 1


async def add_gap(self: Consumer, tp: TP, offset_from: int, offset_to: int) -> None:
    """``Consumer._add_gap``: the offsets Kafka skipped, ``offset_from`` up to the record read
    at ``offset_to``, which is not among them (Faust counted it in: acknowledged before it
    was handled), and none before the next offset to read (Faust began one after it)."""
    committed = self._committed_offset[tp]
    if committed is not None:
        offset_from = max(offset_from, committed)
    if offset_from < offset_to:
        gaps = self._gap[tp]
        gaps.addi(offset_from, offset_to)
        gaps.merge_overlaps()


# The releases these fixes were written for and tested on (pyproject.toml bounds them too).
# They replace private methods of both libraries: another release may have moved what they
# rely on, and a fix that silently stops applying loses input.
WRITTEN_FOR = {"faust-streaming": ((0, 15, 3), (0, 16)), "aiokafka": ((0, 13), (0, 15))}


class UnsupportedVersion(WorkerError):
    """An installed Faust or aiokafka release the fixes were not written for."""


def check_versions(installed: Callable[[str], str] = metadata.version) -> None:
    """Raise ``UnsupportedVersion`` unless every library is in its tested range."""
    for name, (lowest, below) in WRITTEN_FOR.items():
        found = installed(name)
        release = tuple(int(part) for part in re.findall(r"\d+", found)[:3])
        if not lowest <= release < below:
            raise UnsupportedVersion(
                f"{name} {found} is installed, but streams/faust_fixes.py was written for "
                f"{_dotted(lowest)} up to (not including) {_dotted(below)}: without its fixes a "
                "rebalance can skip input. Install a tested release (pip install -e .), or "
                "check the fixes against this one and widen WRITTEN_FOR."
            )


def _dotted(release: tuple[int, ...]) -> str:
    return ".".join(map(str, release))


def apply() -> None:
    check_versions()
    AIOKafkaConsumerThread.seek_to_committed = seek_partitions_to_committed  # type: ignore[method-assign]
    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._new_offset = new_offset  # type: ignore[method-assign]
    Consumer._add_gap = add_gap  # type: ignore[method-assign]
    Consumer.getmany = getmany  # type: ignore[method-assign]
