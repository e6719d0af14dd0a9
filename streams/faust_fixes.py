"""A fix for Faust 0.15 / aiokafka 0.13 that the worker cannot do without: input skipped
after a rebalance.

After every rebalance Faust recovers the tables, then seeks each input partition back to its
committed offset, because records its fetcher read while recovery had the partition paused
were dropped. aiokafka's ``seek_to_committed`` seeks only partitions whose committed offset is
above 0; a partition that never committed (or committed 0) keeps the position the fetcher had
reached, past the dropped records. Those events are never handled, and the next commit moves
past them: they are lost. It showed in the fault test of a second worker joining and leaving
(tests/integration/test_faults.py): a learner's events on a partition the first worker took
back were fetched during recovery, dropped, and never applied.

``seek_partitions_to_committed`` seeks those partitions too: to 0 when 0 was committed, to the
beginning (``consumer_auto_offset_reset`` is "earliest") when nothing was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP


async def _seek_all(consumer: AIOKafkaConsumer) -> Mapping[Any, int | None]:
    committed: Mapping[Any, int | None] = await consumer.seek_to_committed()
    never = [tp for tp, offset in committed.items() if offset is None]
    if never:
        await consumer.seek_to_beginning(*never)
    for tp, offset in committed.items():
        if offset == 0:
            consumer.seek(tp, 0)
    return committed


async def seek_partitions_to_committed(self: AIOKafkaConsumerThread) -> Mapping[TP, int]:
    """``AIOKafkaConsumerThread.seek_to_committed``, for every assigned partition."""
    return await self.call_thread(_seek_all, self._ensure_consumer())  # type: ignore[no-any-return]


def apply() -> None:
    AIOKafkaConsumerThread.seek_to_committed = seek_partitions_to_committed  # type: ignore[method-assign]
