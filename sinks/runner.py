"""The sink process: snapshot topic -> PostgreSQL -> Redis -> committed offsets.

The order for each batch is the contract (at-least-once, made exact by idempotence):

1. decode the records: learner snapshots (``Snapshot``, keyed by user_id), erasures
   (``Erasure``, ``"kind": "erasure"``, keyed by user_id) and catalog snapshots
   (``CatalogSnapshot``, ``"kind": "catalog"``, keyed ``catalog/<kind>/<id>``) and course
   snapshots (``CourseSnapshot``, ``"kind": "course"``, keyed ``course/<id>``) and content
   restores (``ContentRestore``, ``"kind": "content"``, keyed by user_id), keeping each
   partition's records in offset order; one that does not decode is dead-lettered
   (``undecodable``: reading it again cannot fix it);
2. write the batch to PostgreSQL in one transaction: the erased learners' rows deleted, then
   every row of the snapshots that follow their learner's erasure, or of every snapshot for a
   learner without one (``sinks.postgres.after_erasures``); retrying with capped exponential
   backoff for as long as PostgreSQL is unavailable. If PostgreSQL refuses the batch for what
   it holds (``PG_PERMANENT``: a number out of its column's range, a NUL in a text), the same
   messages are written again one per transaction, in order, and each one refused alone is
   dead-lettered (``unwritable``); the others are written;
3. deliver the batch's dead letters to ``progress.sink-dead-letter`` (acknowledged by every
   replica), retrying for as long as Kafka does not take them;
4. replace the Redis hash of every erased learner with a tombstone that refuses fills, then
   advance the cache of every other learner the batch touched, and start a new catalog
   generation if the batch had catalog rows, and a new generation of every course the batch
   touched (the course views' answers), retrying the same way, so no reader is served
   an answer older than what PostgreSQL holds, nor an erased one;
5. publish a live notice per learner and course the batch changed (``adapters.live``), so
   the API's event streams tell their pages to read again, now that the reads answer the
   new data; retrying the same way;
6. only then commit the batch's offsets.

A stop or crash anywhere before 6 means the batch is read again, which is harmless: an equal
or older version is a no-op in PostgreSQL and in Redis, and an erasure read again deletes the
same rows again before its learner's later snapshots are written again; a dead letter may be
delivered twice (its source topic, partition and offset identify it). Any other error (a bug,
a schema the migrations did not make) is not retried and not skipped: it ends the sink with
the offsets uncommitted.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import psycopg
import redis.exceptions
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool
from pydantic import Discriminator, Tag, TypeAdapter, ValidationError
from redis.asyncio import Redis

from adapters.cache import ERASED_VERSION, ProgressCache, redis_client
from adapters.kafka_clients import kafka_client_options
from adapters.live import publish_changes
from adapters.metrics import CommitClock, LagGauge, SinkMetrics, consumer_lag, new_registry
from adapters.probes import ProbeServer, Readiness
from adapters.schema import apply_migrations
from adapters.settings import Settings
from adapters.topics import SINK_DEAD_LETTER_MAX_BYTES
from progress.catalog import CatalogSnapshot
from progress.content import ContentRestore
from progress.course_catalog import CourseSnapshot
from progress.events import DeadLetter
from progress.snapshots import Erasure, Snapshot
from sinks.errors import InvalidSnapshot
from sinks.postgres import SinkMessage, after_erasures, catalog_row, write_batch

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
# Errors that say "never" for what the batch holds: the same rows fail the same way however
# often they are tried. From PostgreSQL, data exceptions (SQLSTATE class 22: a number out of
# its column's range, a NUL in a text) and integrity violations (class 23); from psycopg
# adapting a value before sending it, an int past a bigint and a str that is not UTF-8.
# A unique violation can also come from two sinks inserting the same new learner during a
# rebalance; it does not recur when the batch is written again one message at a time, after
# the other sink committed, so only a message refused alone is dead-lettered.
PG_PERMANENT: tuple[type[Exception], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    OverflowError,
    UnicodeEncodeError,
)
# Kafka errors while delivering a dead letter: the broker is away or the topic not yet ready.
KAFKA_TRANSIENT: tuple[type[Exception], ...] = (KafkaError,)
# A reason is for a person to read; a snapshot with every row wrong would repeat itself.
_MAX_REASON_CHARS = 2_000

# The ``operation`` label of progress_sink_retries_total, by what _retry is asked to do.
_RETRIED = {
    "apply migrations": "migrations",
    "write to PostgreSQL": "postgres",
    "deliver dead letters": "dead_letters",
    "advance the cache": "redis",
}

_FIRST_RETRY_DELAY_S = 0.1
_REPORT_EVERY_S = 30.0


def _message_kind(data: Any) -> str:
    # A learner snapshot has no "kind" field; every other message says what it is.
    if isinstance(data, dict):
        return str(data.get("kind", "learner"))
    if isinstance(data, CatalogSnapshot):
        return "catalog"
    if isinstance(data, CourseSnapshot):
        return "course"
    if isinstance(data, ContentRestore):
        return "content"
    return "erasure" if isinstance(data, Erasure) else "learner"


_MESSAGE: TypeAdapter[SinkMessage] = TypeAdapter(
    Annotated[
        Annotated[Snapshot, Tag("learner")]
        | Annotated[CatalogSnapshot, Tag("catalog")]
        | Annotated[CourseSnapshot, Tag("course")]
        | Annotated[Erasure, Tag("erasure")]
        | Annotated[ContentRestore, Tag("content")],
        Discriminator(
            _message_kind,
            custom_error_type="unknown_snapshot_kind",
            custom_error_message=(
                "unknown snapshot kind: expected a learner, catalog or course snapshot,"
                " an erasure or a content restore"
            ),
        ),
    ]
)


def decode_message(value: bytes | None) -> SinkMessage:
    """The message in a snapshot-topic record; ``ValidationError`` or ``InvalidSnapshot`` if
    there is none."""
    if value is None:
        raise InvalidSnapshot("the record has no value")
    message = _MESSAGE.validate_json(value)
    if isinstance(message, CatalogSnapshot):
        catalog_row(message)  # exactly one row
    return message


def _reason(exc: Exception) -> str:
    """Why a record failed, on one line: each field a ValidationError names, with its
    message; otherwise the error's type and first line."""
    if isinstance(exc, ValidationError):
        text = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'message'}: {item['msg']}"
            for item in exc.errors(include_url=False)
        )
    else:
        first = str(exc).strip().splitlines()
        text = f"{type(exc).__name__}: {first[0] if first else ''}"
    return text[:_MAX_REASON_CHARS]


def dead_letter_for(record: ConsumerRecord[Any, Any], reason: str, error_type: str) -> DeadLetter:
    """The dead letter of a snapshot-topic record: where it was, its bytes and why."""
    key = record.key
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=key.decode("utf-8", "replace") if isinstance(key, bytes) else None,
        value=base64.b64encode(record.value or b"").decode("ascii"),
        reason=reason,
        error_type=error_type,
        failed_at=datetime.now(UTC),
    )


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
    dead_letters: int = 0
    dead_letters_total: int = 0

    def report_if_due(self) -> None:
        now = time.monotonic()
        elapsed = now - self.since
        if elapsed < _REPORT_EVERY_S:
            return
        log.info(
            "sink: %.0f rows/s, %.0f snapshots/s (%d batches in %.0fs); erasures: %d;"
            " dead-lettered: %d (%d total)",
            self.rows / elapsed,
            self.snapshots / elapsed,
            self.batches,
            elapsed,
            self.erasures,
            self.dead_letters,
            self.dead_letters_total,
        )
        self.since = now
        self.batches = self.snapshots = self.rows = self.erasures = self.dead_letters = 0


async def run_sink(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run the sink until ``stop`` is set or the task is cancelled."""
    stop = stop if stop is not None else asyncio.Event()
    pool = AsyncConnectionPool(
        settings.database_url,
        open=False,
        min_size=1,
        max_size=1,  # one transaction at a time: batches are written in order
        # A write waits this long for a pooled connection before it counts as a failed attempt.
        timeout=settings.pg_connection_timeout_seconds,
        name="sink",
    )
    redis = redis_client(settings.redis_url)
    # Subscribed once started, with a listener that tells /readyz whether the group was joined.
    consumer = AIOKafkaConsumer(
        **kafka_client_options(settings),
        group_id=settings.sink_group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    dead_letters = AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        # A dead letter carries its snapshot in base64: see streams/records.py.
        max_request_size=SINK_DEAD_LETTER_MAX_BYTES,
    )
    cache = ProgressCache(redis, settings.cache_ttl_seconds)
    registry = new_registry()
    clock = CommitClock()
    sink = _Sink(
        settings,
        pool,
        cache,
        redis,
        consumer,
        dead_letters,
        stop,
        SinkMetrics(registry, clock),
        clock,
    )
    registry.register(LagGauge("progress_sink_consumer_lag", sink.lag))
    probes = ProbeServer(
        "sink", settings.sink_http_host, settings.sink_http_port, sink.readiness, registry
    )
    await probes.start()
    try:
        await pool.open(wait=False)
        await sink.run()
    finally:
        # Not committing here: whatever was not committed after its write is read again.
        await consumer.stop()
        await dead_letters.stop()
        await pool.close()
        await redis.aclose()
        await probes.stop()


class _Membership(ConsumerRebalanceListener):
    """Whether the sink is in its consumer group with its partitions assigned (any number,
    none included: a sink beyond the partition count is still a member)."""

    def __init__(self, on_assigned: Callable[[set[TopicPartition]], Awaitable[None]]) -> None:
        self.joined = False
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.joined = False

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._on_assigned(set(assigned))
        self.joined = True


class _Sink:
    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool,
        cache: ProgressCache,
        redis: Redis,
        consumer: AIOKafkaConsumer,
        dead_letters: AIOKafkaProducer,
        stop: asyncio.Event,
        metrics: SinkMetrics,
        clock: CommitClock,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._cache = cache
        self._redis = redis
        self._consumer = consumer
        self._dead_letters = dead_letters
        self._stop = stop
        self._throughput = _Throughput()
        self._metrics = metrics
        self._clock = clock
        self._membership = _Membership(self._committed_offsets)
        # The next offset of each partition, as last committed by this sink.
        self._committed: dict[tuple[str, int], int] = {}

        # The courses the batch being written touched (every write attempt adds to it:
        # one too many only costs a course's cached answers).
        self._courses: set[str] = set()
        # The stored versions of learners whose content the batch may have restored.
        self._restored: dict[str, int] = {}

    def readiness(self) -> Readiness:
        """Ready once the consumer group was joined and no rebalance is under way."""
        return Readiness(
            checks={"group_joined": self._membership.joined},
            last_commit_age_seconds=self._clock.age_seconds(),
        )

    async def _committed_offsets(self, assigned: set[TopicPartition]) -> None:
        """Learn the group's committed offsets of newly assigned partitions, so their lag is
        known before this sink commits on them (a metric only: a failure is logged)."""
        try:
            for tp in assigned:
                offset = await self._consumer.committed(tp)
                if offset is not None:
                    self._committed[tp.topic, tp.partition] = offset
        except KafkaError as exc:
            log.warning("committed offsets unknown, lag shown after the next commit: %r", exc)

    def lag(self) -> dict[tuple[str, int], int]:
        """Lag of the assigned partitions (``adapters.metrics``): known from the group's
        committed offsets at assignment, then from this sink's commits."""
        assigned = [(tp.topic, tp.partition) for tp in self._consumer.assignment()]
        ends = {}
        for topic, partition in assigned:
            end = self._consumer.highwater(TopicPartition(topic, partition))
            if end is not None:
                ends[topic, partition] = end
        return consumer_lag(assigned, ends, self._committed)

    async def run(self) -> None:
        try:
            await self._retry(
                "apply migrations", lambda: apply_migrations(self._pool), PG_TRANSIENT
            )
            await self._dead_letters.start()
            # Subscribed before start, as a topic given to the constructor is: start() then
            # fetches the topic's metadata itself (subscribed after start, a topic the broker
            # did not list yet left the group without partitions until the next metadata
            # refresh, minutes later).
            self._consumer.subscribe([self._settings.topics.snapshots], listener=self._membership)
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
        decoded: list[tuple[ConsumerRecord[Any, Any], SinkMessage]] = []
        dead: list[DeadLetter] = []
        offsets: dict[TopicPartition, int] = {}
        for partition, records in batch.items():
            for record in records:
                try:
                    decoded.append((record, decode_message(record.value)))
                except (ValidationError, InvalidSnapshot) as exc:
                    dead.append(dead_letter_for(record, _reason(exc), "undecodable"))
            offsets[partition] = records[-1].offset + 1

        written, versions, unwritable = await self._write_all(decoded)
        dead.extend(unwritable)
        if dead:
            await self._retry(
                "deliver dead letters", functools.partial(self._send, dead), KAFKA_TRANSIENT
            )
        catalogs = any(isinstance(message, CatalogSnapshot) for message in written)
        erased = sorted({message.user_id for message in written if isinstance(message, Erasure)})
        courses, self._courses = sorted(self._courses), set()
        restored, self._restored = self._restored, {}
        advanced = await self._retry(
            "advance the cache",
            lambda: self._advance(versions, erased, catalogs, courses, restored),
            REDIS_TRANSIENT,
        )
        # Notices of erased learners carry the tombstone's version: their pages read again
        # and find nothing.
        changed = {**restored, **versions, **dict.fromkeys(erased, ERASED_VERSION)}
        await self._retry(
            "publish live notices",
            lambda: publish_changes(self._redis, changed, courses),
            REDIS_TRANSIENT,
        )
        await self._commit(offsets)

        rows = sum(_row_count(message) for message in written)
        throughput = self._throughput
        throughput.batches += 1
        erasures = sum(isinstance(message, Erasure) for message in written)
        throughput.snapshots += len(written) - erasures
        throughput.rows += rows
        throughput.erasures += erasures
        throughput.dead_letters += len(dead)
        throughput.dead_letters_total += len(dead)
        metrics = self._metrics
        read = sum(len(records) for records in batch.values())
        metrics.records.labels(self._settings.topics.snapshots).inc(read)
        for kind, count in collections.Counter(map(_message_kind, written)).items():
            metrics.messages.labels(kind).inc(count)
        metrics.rows.inc(rows)
        for letter in dead:
            metrics.dead_letters.labels(letter.error_type).inc()
        metrics.batch_records.observe(read)
        metrics.batch_duration.observe(time.monotonic() - started)
        log.debug(
            "batch: %d records from %d partitions, %d messages, %d rows, %d learners"
            " (%d cache entries advanced), %d erased, %d dead-lettered, %.1f ms",
            sum(len(records) for records in batch.values()),
            len(batch),
            len(written),
            rows,
            len(versions),
            advanced,
            len(erased),
            len(dead),
            (time.monotonic() - started) * 1000,
        )

    async def _write_all(
        self, decoded: list[tuple[ConsumerRecord[Any, Any], SinkMessage]]
    ) -> tuple[list[SinkMessage], dict[str, int], list[DeadLetter]]:
        """Write the messages; return those written, the highest version per learner, and
        the dead letters of those PostgreSQL can never take.

        The batch goes in one transaction. Refused for what it holds, it goes again one
        message per transaction, in the batch's order, which ends in the same rows (an
        erasure deletes what its learner's earlier messages wrote, and each row keeps its
        newest version whatever the order); the messages refused alone are the dead letters.
        Snapshots the batch would not write (those before their learner's erasure) are
        left out, as the batch leaves them out.
        """
        messages = [message for _, message in decoded]
        if not messages:
            return [], {}, []
        try:
            batch_versions = await self._retry(
                "write to PostgreSQL", functools.partial(self._write, messages), PG_TRANSIENT
            )
        except PG_PERMANENT as exc:
            log.warning(
                "PostgreSQL refused a batch of %d messages (%s); writing them one at a time"
                " to dead-letter those it can never take",
                len(messages),
                _reason(exc),
            )
        else:
            return messages, batch_versions, []

        kept = {id(snapshot) for snapshot in after_erasures(messages)[0]}
        written: list[SinkMessage] = []
        versions: dict[str, int] = {}
        dead: list[DeadLetter] = []
        for record, message in decoded:
            if isinstance(message, Snapshot) and id(message) not in kept:
                continue
            try:
                alone = await self._retry(
                    "write to PostgreSQL", functools.partial(self._write, [message]), PG_TRANSIENT
                )
            except PG_PERMANENT as exc:
                dead.append(dead_letter_for(record, _reason(exc), "unwritable"))
                continue
            written.append(message)
            for user_id, version in alone.items():
                versions[user_id] = max(version, versions.get(user_id, version))
        return written, versions, dead

    async def _send(self, dead: list[DeadLetter]) -> None:
        """Deliver every dead letter, keyed as its record was; all of them again on a retry
        (a repeat is told apart by its source topic, partition and offset)."""
        deliveries = [
            await self._dead_letters.send(
                self._settings.topics.sink_dead_letter,
                # The key's text: the worker keys every snapshot with a user id or a
                # catalog key, so this is the original key.
                key=None if letter.key is None else letter.key.encode(),
                value=letter.model_dump_json().encode(),
            )
            for letter in dead
        ]
        await asyncio.gather(*deliveries)
        for letter in dead:
            log.error(
                "dead-lettered %s[%d]@%d (%s): %s",
                letter.source_topic,
                letter.partition,
                letter.offset,
                letter.error_type,
                letter.reason,
                # For LOG_FORMAT=json (adapters/logs.py): where the snapshot was, and why.
                extra={
                    "topic": letter.source_topic,
                    "partition": letter.partition,
                    "offset": letter.offset,
                    "key": letter.key,
                    "error_type": letter.error_type,
                },
            )

    async def _write(self, messages: list[SinkMessage]) -> dict[str, int]:
        async with self._pool.connection() as conn:
            written = await write_batch(conn, messages)
        self._courses.update(written.courses)
        self._restored.update(written.restored)
        return written.versions

    async def _advance(
        self,
        versions: dict[str, int],
        erased: list[str],
        catalogs: bool,
        courses: list[str],
        restored: dict[str, int],
    ) -> int:
        # Tombstones first. An erased learner that came back in the batch is not advanced:
        # its tombstone would refuse the version anyway, and the API reads PostgreSQL for it
        # until the tombstone expires (adapters/cache.py).
        if erased:
            await self._cache.erase(erased)
            gone = set(erased)
            versions = {user: version for user, version in versions.items() if user not in gone}
            restored = {user: version for user, version in restored.items() if user not in gone}
        advanced = await self._cache.advance(versions)
        # After the advance: content restored at a version the cache may already hold.
        await self._cache.content_restored(restored)
        if catalogs:
            await self._cache.new_catalog_generation()
        # One generation bump per course per batch: the course views' cached answers go.
        await self._cache.course_cache.bump(courses)
        return advanced

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit(offsets)
            self._clock.committed()
            for tp, offset in offsets.items():
                self._committed[tp.topic, tp.partition] = offset
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
                self._metrics.retries.labels(_RETRIED.get(what, what)).inc()
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
