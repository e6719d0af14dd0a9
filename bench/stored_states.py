"""The learner states a worker left in its ``learners`` changelog: each learner's newest
stored value, as the bytes Kafka holds (``streams.state_codec``: JSON, zstd from 64 KB)."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from adapters.settings import Settings
from adapters.topics import LEARNERS_TABLE, changelog_topic
from bench.offsets import end_offsets


async def stored_state_sizes(settings: Settings) -> list[int]:
    """The size of each learner's newest state in the changelog, sorted; a deleted learner
    (a tombstone last) has none."""
    topic = changelog_topic(settings, LEARNERS_TABLE)
    ends = await end_offsets(settings.kafka_bootstrap, [topic])
    newest: dict[bytes | None, int | None] = {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        left = {tp for tp, end in ends.items() if end > 0}
        if not left:
            return []
        consumer.assign(list(left))
        await consumer.seek_to_beginning(*left)
        while left:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < ends[tp]:
                        value = record.value
                        newest[record.key] = None if value is None else len(value)
            for tp in list(left):
                # By position, not the last record's offset: compaction leaves gaps.
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return sorted(size for size in newest.values() if size is not None)


def percentiles(sizes: list[int], prefix: str) -> dict[str, float]:
    """``<prefix>_p50``, ``_p99`` and ``_max`` of sorted ``sizes`` (nothing when empty)."""
    if not sizes:
        return {}

    def at(q: float) -> float:
        return float(sizes[min(len(sizes) - 1, int(len(sizes) * q))])

    return {
        f"{prefix}_count": float(len(sizes)),
        f"{prefix}_p50": at(0.5),
        f"{prefix}_p99": at(0.99),
        f"{prefix}_max": float(sizes[-1]),
    }
