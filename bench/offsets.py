"""Where topics end, where a consumer group has committed, and when the first record was
written: what the throughput measurements time a process by from the outside."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError

Offsets = dict[TopicPartition, int]


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> Offsets:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(await _partitions(consumer, topic))
        ]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    # Metadata of a topic just created can take a moment to list its partitions.
    for _ in range(50):
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions")


async def committed(admin: AIOKafkaAdminClient, group: str) -> Offsets:
    """The group's committed offsets; none while the broker has no coordinator for it yet
    (a fresh broker creates ``__consumer_offsets`` at the first group's first request)."""
    try:
        found = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:
        return {}
    return {tp: meta.offset for tp, meta in found.items() if meta.offset >= 0}


def behind(target: Offsets, done: Offsets) -> int:
    """Records of ``target`` that ``done`` has not committed yet."""
    return sum(max(0, end - done.get(tp, 0)) for tp, end in target.items())


async def wait_for_group(
    bootstrap: str,
    group: str,
    target: Offsets,
    *,
    within: float,
    poll: float = 0.2,
    alive: Callable[[], bool] | None = None,
) -> float:
    """The ``time.time()`` at which ``group`` was first seen committed up to ``target``.

    Polled every ``poll`` seconds, so the answer is late by at most that much plus the
    group's own commit interval. Raises TimeoutError, or RuntimeError when ``alive()`` says
    the process committing for the group has exited.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + within
        left = behind(target, {})
        while True:
            left = behind(target, await committed(admin, group))
            if left == 0:
                return time.time()
            if alive is not None and not alive():
                raise RuntimeError(f"the process of group {group} exited, {left} records behind")
            if time.monotonic() > deadline:
                raise TimeoutError(f"group {group} still {left} records behind after {within}s")
            await asyncio.sleep(poll)
    finally:
        await admin.close()


async def first_record_time(
    bootstrap: str, topic: str, within: float = 10.0, *, after: Offsets | None = None
) -> float | None:
    """The earliest CreateTime (in seconds) among the first records of each partition, or
    the first records from ``after``'s offsets on (records before them are not counted)."""
    starts = after or {}
    ends = await end_offsets(bootstrap, [topic])
    wanted = {tp for tp, end in ends.items() if end > starts.get(tp, 0)}
    if not wanted:
        return None
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for tp in wanted:
            consumer.seek(tp, starts.get(tp, 0))
        earliest: float | None = None
        deadline = time.monotonic() + within
        while wanted and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=len(wanted) * 10)
            for tp, records in batch.items():
                if tp in wanted and records:
                    wanted.discard(tp)
                    consumer.pause(tp)
                    stamp = records[0].timestamp / 1000
                    earliest = stamp if earliest is None else min(earliest, stamp)
        return earliest
    finally:
        await consumer.stop()


def total(offsets: Offsets) -> int:
    return sum(offsets.values())
