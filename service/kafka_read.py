"""Reading a topic to its end, partition by partition, for the commands that read a whole
topic once (``progress resnapshot``, ``progress redrive``).

No consumer group: the partitions are assigned explicitly, read from a given offset (the
start by default) up to their end offset as it was when the reading began, and nothing is
committed. Ending at known offsets, not after a fixed time, is what lets a read of a long
topic finish however long it takes; an empty partition ends at once. A read that makes no
progress for ``STALL_SECONDS`` while Kafka has more (the broker went away mid-read) fails
with ``Unreachable`` instead of waiting forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from adapters.kafka_clients import describe_kafka, kafka_client_options
from adapters.settings import Settings
from adapters.topics import SINK_DEAD_LETTER_MAX_BYTES
from service.errors import TopicMissing, Unreachable

# No record for this long while the end is not reached: the broker is gone, not slow. A
# fetch that has data answers in well under a second even on a busy machine.
STALL_SECONDS = 60.0
# A topic just created is unknown to the broker's metadata, or has no leader yet, for a
# moment: asked again for up to 3 s before it is called missing.
_DESCRIBE_ATTEMPTS = 7
_DESCRIBE_PAUSE_S = 0.5
_FETCH_WAIT_MS = 20
# Larger than any record the project writes (the sink's dead letters are the largest):
# a partition fetch must hold at least one whole record.
_FETCH_BYTES = SINK_DEAD_LETTER_MAX_BYTES + 1_000_000


async def start_producer(producer: AIOKafkaProducer, settings: Settings) -> None:
    """Start a command's producer; ``Unreachable``, in one line, when Kafka cannot be reached."""
    try:
        await producer.start()
    except (KafkaError, OSError) as exc:
        raise Unreachable(f"Kafka is not reachable at {describe_kafka(settings)}: {exc}") from None


class TopicReader:
    """One consumer, started by ``start`` (``Unreachable`` when Kafka does not answer), for
    reading whole partitions; ``stop`` it when done."""

    def __init__(self, settings: Settings) -> None:
        self._bootstrap = describe_kafka(settings)
        self._consumer = AIOKafkaConsumer(
            **kafka_client_options(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=_FETCH_BYTES,
            fetch_max_bytes=_FETCH_BYTES,
            # No long polls: a read stops at a known end, and the broker holding a fetch of a
            # partition read to its end (500 ms by default) delays the next partition's.
            fetch_max_wait_ms=_FETCH_WAIT_MS,
        )
        # Partitions come from the admin client: the consumer knows only the topics it was
        # assigned, and a producer's metadata request may create a missing topic.
        self._admin = AIOKafkaAdminClient(**kafka_client_options(settings))
        self._partitions: dict[str, list[TopicPartition]] = {}

    async def start(self) -> None:
        try:
            await self._consumer.start()
            await self._admin.start()
        except (KafkaError, OSError) as exc:
            await self.stop()
            raise Unreachable(f"Kafka is not reachable at {self._bootstrap}: {exc}") from None

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def partitions(self, topic: str) -> list[TopicPartition]:
        """The topic's partitions, in order; ``TopicMissing`` if it does not exist."""
        if topic not in self._partitions:
            numbers: list[int] = []
            for attempt in range(_DESCRIBE_ATTEMPTS):
                try:
                    # Listed first: describing a missing topic makes a broker with
                    # auto.create.topics.enable create it, without the settings it needs.
                    if topic in await self._admin.list_topics():
                        (described,) = await self._admin.describe_topics([topic])
                        if not described.get("error_code"):
                            numbers = sorted(p["partition"] for p in described["partitions"])
                except (KafkaError, OSError) as exc:
                    raise Unreachable(
                        f"Kafka is not reachable at {self._bootstrap}: {exc}"
                    ) from None
                if numbers:
                    break
                if attempt + 1 < _DESCRIBE_ATTEMPTS:
                    await asyncio.sleep(_DESCRIBE_PAUSE_S)
            if not numbers:
                raise TopicMissing(f"topic {topic} does not exist")
            self._partitions[topic] = [TopicPartition(topic, n) for n in numbers]
        return self._partitions[topic]

    async def ends(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's end offset now: where a read that starts now stops."""
        try:
            return dict(await self._consumer.end_offsets(partitions))
        except (KafkaError, OSError) as exc:
            raise Unreachable(f"Kafka is not reachable at {self._bootstrap}: {exc}") from None

    async def beginnings(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        try:
            return dict(await self._consumer.beginning_offsets(partitions))
        except (KafkaError, OSError) as exc:
            raise Unreachable(f"Kafka is not reachable at {self._bootstrap}: {exc}") from None

    async def read(
        self, tp: TopicPartition, end: int, start: int | None = None
    ) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        """The partition's records from ``start`` (its beginning if None) up to ``end``
        (exclusive), in offset order."""
        if start is None:
            start = (await self.beginnings([tp]))[tp]
        if start >= end:
            return  # nothing to read: no assignment, no fetch
        consumer = self._consumer
        consumer.assign([tp])
        consumer.seek(tp, start)
        position = start
        moved_at = time.monotonic()
        while position < end:
            batches = await consumer.getmany(tp, timeout_ms=500)
            for record in batches.get(tp, []):
                if record.offset >= end:
                    return
                yield record
            now_at = await consumer.position(tp)
            if now_at > position:
                position, moved_at = now_at, time.monotonic()
            elif time.monotonic() - moved_at > STALL_SECONDS:
                raise Unreachable(
                    f"no record of {tp.topic}[{tp.partition}] for {STALL_SECONDS:.0f} s at "
                    f"offset {position} of {end}: is Kafka at {self._bootstrap} reachable?"
                )
