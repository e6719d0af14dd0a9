"""The sink process: snapshot topic -> PostgreSQL -> Redis -> committed offsets.

The order for each batch is the contract (at-least-once, made exact by idempotence):

1. decode the records: learner snapshots (``Snapshot``, keyed by user_id), erasures
   (``Erasure``, ``"kind": "erasure"``, keyed by user_id) and catalog snapshots
   (``CatalogSnapshot``, ``"kind": "catalog"``, keyed ``catalog/<kind>/<id>``), keeping each
   partition's records in offset order; one that does not decode is logged with its
   coordinates, counted and skipped (the worker wrote it, so it is a bug to look at, not
   input to retry);
2. write the batch to PostgreSQL in one transaction: the erased learners' rows deleted, then
   every row of the snapshots that follow their learner's erasure, or of every snapshot for a
   learner without one (``sinks.postgres.after_erasures``); retrying with capped exponential
   backoff for as long as PostgreSQL is unavailable;
3. replace the Redis hash of every erased learner with a tombstone that refuses fills, then
   advance the cache of every other learner the batch touched, and start a new catalog
   generation if the batch had catalog rows, retrying the same way, so no reader is served
   an answer older than what PostgreSQL holds, nor an erased one;
4. only then commit the batch's offsets.

A stop or crash anywhere before 4 means the batch is read again, which is harmless: an equal
or older version is a no-op in PostgreSQL and in Redis, and an erasure read again deletes the
same rows again before its learner's later snapshots are written again. Any other error (a
row PostgreSQL refuses, say) is not retried and not skipped: it ends the sink with the offsets
uncommitted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import psycopg
import redis.exceptions
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool
from pydantic import Discriminator, Tag, TypeAdapter, ValidationError

from progress.catalog import CatalogSnapshot
from progress.snapshots import Erasure, Snapshot
from service.config import Settings
from sinks.cache import ProgressCache, redis_client
from sinks.migrate import apply_migrations
from sinks.postgres import SinkMessage, catalog_row, write_snapshots

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that say "not now" rather than "never": the same write will succeed later.
# psycopg's OperationalError covers lost connections, pool timeouts, server shutdown,
# deadlocks and serialization failures.
PG_TRANSIENT: tuple[type[Exception], ...] = (psycopg.OperationalError,)
REDIS_TRANSIENT: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
)

_FIRST_RETRY_DELAY_S = 0.1
_REPORT_EVERY_S = 30.0
# How long a write waits for a pooled connection before it counts as a failed attempt.
_PG_CONNECTION_TIMEOUT_S = 5.0


def _message_kind(data: Any) -> str:
    # A learner snapshot has no "kind" field; every other message says what it is.
    if isinstance(data, dict):
        return str(data.get("kind", "learner"))
    if isinstance(data, CatalogSnapshot):
        return "catalog"
    return "erasure" if isinstance(data, Erasure) else "learner"


_MESSAGE: TypeAdapter[Snapshot | CatalogSnapshot | Erasure] = TypeAdapter(
    Annotated[
        Annotated[Snapshot, Tag("learner")]
        | Annotated[CatalogSnapshot, Tag("catalog")]
        | Annotated[Erasure, Tag("erasure")],
        Discriminator(
            _message_kind,
            custom_error_type="unknown_snapshot_kind",
            custom_error_message=(
                "unknown snapshot kind: expected a learner or catalog snapshot or an erasure"
            ),
        ),
    ]
)


def decode_message(value: bytes | None) -> SinkMessage:
    """The message in a snapshot-topic record; ValidationError or ValueError if none."""
    if value is None:
        raise ValueError("the record has no value")
    message = _MESSAGE.validate_json(value)
    if isinstance(message, CatalogSnapshot):
        catalog_row(message)  # exactly one row
    return message


def _row_count(message: SinkMessage) -> int:
    if isinstance(message, Erasure):
        return 0
    return len(message.rows()) if isinstance(message, Snapshot) else 1


class _StopRequested(Exception):
    """Stop was asked for while a step was waiting to retry."""


@dataclass(slots=True)
class _Throughput:
    """Counters for the periodic INFO line; reset at each line."""

    since: float = field(default_factory=time.monotonic)
    batches: int = 0
    snapshots: int = 0
    rows: int = 0
    erasures: int = 0
    undecodable: int = 0
    undecodable_total: int = 0

    def report_if_due(self) -> None:
        now = time.monotonic()
        elapsed = now - self.since
        if elapsed < _REPORT_EVERY_S:
            return
        log.info(
            "sink: %.0f rows/s, %.0f snapshots/s (%d batches in %.0fs); erasures: %d;"
            " undecodable: %d (%d total)",
            self.rows / elapsed,
            self.snapshots / elapsed,
            self.batches,
            elapsed,
            self.erasures,
            self.undecodable,
            self.undecodable_total,
        )
        self.since = now
        self.batches = self.snapshots = self.rows = self.erasures = self.undecodable = 0


async def run_sink(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run the sink until ``stop`` is set or the task is cancelled."""
    stop = stop if stop is not None else asyncio.Event()
    pool = AsyncConnectionPool(
        settings.database_url,
        open=False,
        min_size=1,
        max_size=1,  # one transaction at a time: batches are written in order
        timeout=_PG_CONNECTION_TIMEOUT_S,
        name="sink",
    )
    redis = redis_client(settings.redis_url)
    consumer = AIOKafkaConsumer(
        settings.topics.snapshots,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.sink_group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    sink = _Sink(settings, pool, ProgressCache(redis, settings.cache_ttl_seconds), consumer, stop)
    try:
        await pool.open(wait=False)
        await sink.run()
    finally:
        # Not committing here: whatever was not committed after its write is read again.
        await consumer.stop()
        await pool.close()
        await redis.aclose()


class _Sink:
    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool,
        cache: ProgressCache,
        consumer: AIOKafkaConsumer,
        stop: asyncio.Event,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._cache = cache
        self._consumer = consumer
        self._stop = stop
        self._throughput = _Throughput()

    async def run(self) -> None:
        try:
            await self._retry(
                "apply migrations", lambda: apply_migrations(self._pool), PG_TRANSIENT
            )
            await self._consumer.start()
            log.info(
                "sink consuming %s as group %s",
                self._settings.topics.snapshots,
                self._settings.sink_group_id,
            )
            while not self._stop.is_set():
                batch = await self._consumer.getmany(
                    timeout_ms=self._settings.sink_batch_timeout_ms,
                    max_records=self._settings.sink_batch_max_records,
                )
                if batch:
                    await self._handle(batch)
                self._throughput.report_if_due()
        except _StopRequested:
            log.info("sink stopped while retrying; the pending batch stays uncommitted")
        log.info("sink stopped")

    async def _handle(self, batch: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        started = time.monotonic()
        messages: list[SinkMessage] = []
        offsets: dict[TopicPartition, int] = {}
        undecodable = 0
        for partition, records in batch.items():
            for record in records:
                message = self._decode(record)
                if message is None:
                    undecodable += 1
                else:
                    messages.append(message)
            # Undecodable records are committed too: reading them again cannot fix them.
            offsets[partition] = records[-1].offset + 1

        versions: dict[str, int] = {}
        if messages:
            versions = await self._retry(
                "write to PostgreSQL", lambda: self._write(messages), PG_TRANSIENT
            )
        catalogs = any(isinstance(message, CatalogSnapshot) for message in messages)
        erased = sorted({message.user_id for message in messages if isinstance(message, Erasure)})
        advanced = await self._retry(
            "advance the cache",
            lambda: self._advance(versions, erased, catalogs),
            REDIS_TRANSIENT,
        )
        await self._commit(offsets)

        rows = sum(_row_count(message) for message in messages)
        throughput = self._throughput
        throughput.batches += 1
        erasures = sum(isinstance(message, Erasure) for message in messages)
        throughput.snapshots += len(messages) - erasures
        throughput.rows += rows
        throughput.erasures += erasures
        throughput.undecodable += undecodable
        throughput.undecodable_total += undecodable
        log.debug(
            "batch: %d records from %d partitions, %d messages, %d rows, %d learners"
            " (%d cache entries advanced), %d erased, %d undecodable, %.1f ms",
            sum(len(records) for records in batch.values()),
            len(batch),
            len(messages),
            rows,
            len(versions),
            advanced,
            len(erased),
            undecodable,
            (time.monotonic() - started) * 1000,
        )

    def _decode(self, record: ConsumerRecord[Any, Any]) -> SinkMessage | None:
        try:
            return decode_message(record.value)
        except (ValidationError, ValueError) as exc:
            log.error(
                "undecodable snapshot at %s[%d]@%d, skipped: %s",
                record.topic,
                record.partition,
                record.offset,
                str(exc).replace("\n", " | ")[:500],
            )
            return None

    async def _write(self, messages: list[SinkMessage]) -> dict[str, int]:
        async with self._pool.connection() as conn:
            return await write_snapshots(conn, messages)

    async def _advance(self, versions: dict[str, int], erased: list[str], catalogs: bool) -> int:
        # Tombstones first. An erased learner that came back in the batch is not advanced:
        # its tombstone would refuse the version anyway, and the API reads PostgreSQL for it
        # until the tombstone expires (sinks/cache.py).
        if erased:
            await self._cache.erase(erased)
            gone = set(erased)
            versions = {user: version for user, version in versions.items() if user not in gone}
        advanced = await self._cache.advance(versions)
        if catalogs:
            await self._cache.new_catalog_generation()
        return advanced

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # Typically a rebalance took the partitions away while we were writing: their
            # next owner reads the batch again, and writing it again changes nothing.
            log.warning("offsets not committed, the batch will be read again: %r", exc)

    async def _retry(
        self,
        what: str,
        attempt: Callable[[], Awaitable[T]],
        transient: tuple[type[Exception], ...],
    ) -> T:
        delay = min(_FIRST_RETRY_DELAY_S, self._settings.sink_retry_max_seconds)
        failures = 0
        while True:
            try:
                return await attempt()
            except transient as exc:
                failures += 1
                log.warning(
                    "%s failed (%d in a row): %s: %s; retrying in %.1fs",
                    what,
                    failures,
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                    delay,
                )
            if await self._stop_within(delay):
                raise _StopRequested
            delay = min(delay * 2, self._settings.sink_retry_max_seconds)

    async def _stop_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True
