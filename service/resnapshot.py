"""``progress resnapshot``: send every learner's current rows, and every catalog row, to the
snapshots topic again, from the worker's tables, so that the sink can rebuild PostgreSQL
and Redis whatever the input topics still hold (docs/operations.md, "Rebuild PostgreSQL and
Redis").

The tables are read from their changelog topics, which are compacted and hold the newest
value of every key: the ``learners`` changelog every learner's state, ``courses`` each
partition's course structures, ``catalog`` each partition's catalog entries. Reading them
asks nothing of the worker, which may be running, stopped, or being scaled, and changes
nothing it holds. Each learner's rows are derived from its state by the core
(``progress.outcomes.full_snapshots``) at the state's version, so the sink takes them over
rows it does not have and over older ones, and leaves equal ones as they are.

Partition by partition, so that one partition's states are held at a time: that
partition's course structures first, then its states, newest per learner, then a second,
short read of what the worker wrote to the partition meanwhile. A learner erased
meanwhile is erased again after the rows just sent (an ``Erasure`` behind them, on the
same partition of the snapshots topic), and one changed meanwhile is sent again at its new
version, so a worker running alongside does not leave rows the tables no longer hold.

Then the partition's bulky content (``progress.content``): the worker writes each piece to
the same partition of the compacted content topic as the learner's state. Each record whose
digest is the one the learner's state holds is sent as a ``ContentRestore`` behind the
learner's rows (same key, same partition), and the sink writes it into the row; records of
other digests (outdated, or of an erased learner) are not sent. The states' digests are held
for the partition (a key and a digest per piece), the content is streamed, never held.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from adapters.kafka_clients import describe_kafka, kafka_client_options
from adapters.settings import Settings
from adapters.topics import (
    CATALOG_TABLE,
    COURSES_TABLE,
    LEARNERS_TABLE,
    PRODUCER_MAX_REQUEST_BYTES,
    SNAPSHOT_MAX_BYTES,
    changelog_topic,
)
from progress.catalog import (
    AchievementUpdated,
    CatalogEntry,
    CatalogSnapshot,
    CompetencyUpdated,
    LearningPathUpdated,
)
from progress.content import ContentRecord, content_slots, restores
from progress.outcomes import full_snapshots
from progress.snapshots import Erasure, merge_within
from progress.state import KnownCourse
from service.errors import TopicMissing, Unreachable
from service.kafka_read import TopicReader, start_producer
from service.progress_bar import ProgressBar
from streams.state_codec import decode_state

log = logging.getLogger(__name__)

_CATALOG_MODELS: dict[str, type[CatalogEntry]] = {
    model.kind: model for model in (LearningPathUpdated, CompetencyUpdated, AchievementUpdated)
}
# Sends awaited together: enough to keep the producer's batches full.
_IN_FLIGHT = 1000


@dataclass
class ResnapshotReport:
    learners: int = 0  # learners whose rows were sent
    messages: int = 0  # snapshot messages sent for them (a large learner may take several)
    catalog_rows: int = 0
    contents: int = 0  # pieces of bulky content sent to be restored
    no_content_topic: bool = False  # a worker from before the content topic
    erased_meanwhile: int = 0
    failed: list[str] = field(default_factory=list)  # states that do not decode, and why

    def lines(self) -> list[str]:
        out = [
            f"sent {self.learners} learners in {self.messages} snapshots, "
            f"{self.catalog_rows} catalog rows, {self.contents} contents",
        ]
        if self.no_content_topic:
            out.append("no content topic: bulky content not restored (docs/operations.md)")
        if self.erased_meanwhile:
            out.append(f"erased meanwhile, erased again: {self.erased_meanwhile}")
        out += [f"not sent: {failure}" for failure in self.failed]
        return out


def _key(raw: bytes | None) -> str:
    """A table key as the changelog holds it: Faust encodes ``key_type=str`` keys as JSON."""
    text = (raw or b"").decode()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, str) else text


async def resnapshot(settings: Settings) -> ResnapshotReport:
    """Send every learner's rows and every catalog row to the snapshots topic; return what
    was sent. ``Unreachable`` if Kafka does not answer, ``TopicMissing`` if the worker's
    changelogs do not exist (no worker ever ran with these settings)."""
    reader = TopicReader(settings)
    await reader.start()
    producer = AIOKafkaProducer(
        **kafka_client_options(settings),
        acks="all",
        max_request_size=PRODUCER_MAX_REQUEST_BYTES,
        # Fuller requests, as the worker's producer sends (WORKER_PRODUCER_* settings).
        linger_ms=settings.worker_producer_linger_ms,
        max_batch_size=settings.worker_producer_batch_bytes,
    )
    try:
        await start_producer(producer, settings)
        return await _Resnapshot(settings, reader, producer).run()
    finally:
        await producer.stop()
        await reader.stop()


class _Resnapshot:
    def __init__(self, settings: Settings, reader: TopicReader, producer: AIOKafkaProducer) -> None:
        self.settings = settings
        self.reader = reader
        self.producer = producer
        self.topic = settings.topics.snapshots
        self.report = ResnapshotReport()
        self._sent: list[Awaitable[Any]] = []
        # The partition's pieces of content: key -> (user_id, state version, digest).
        self._slots: dict[str, tuple[str, int, str]] = {}

    async def run(self) -> ResnapshotReport:
        await self._catalog()
        learners = changelog_topic(self.settings, LEARNERS_TABLE)
        partitions = await self.reader.partitions(learners)
        beginnings = await self.reader.beginnings(partitions)
        ends = await self.reader.ends(partitions)
        bar = ProgressBar("resnapshot", sum(ends[tp] - beginnings[tp] for tp in partitions))
        try:
            for tp in partitions:
                courses = await self._courses(tp.partition)
                states: dict[str, bytes | None] = {}
                async for record in self.reader.read(tp, ends[tp]):
                    states[_key(record.key)] = record.value
                    bar.advance()
                self._slots = {}
                for user_id, raw in states.items():
                    if raw:
                        await self._learner(user_id, raw, courses)
                await self._meanwhile(tp, ends[tp], courses)
                await self._content(tp.partition)
        finally:
            bar.close()
        await self._delivered()
        return self.report

    async def _catalog(self) -> None:
        """Every catalog entry's row, at its newest definition (or deletion) in any
        partition: each partition holds a copy of every entry."""
        topic = changelog_topic(self.settings, CATALOG_TABLE)
        held: dict[str, Any] = {}  # table key -> value, newest
        for tp in await self.reader.partitions(topic):
            end = (await self.reader.ends([tp]))[tp]
            async for record in self.reader.read(tp, end):
                held[_key(record.key)] = json.loads(record.value) if record.value else None
        newest: dict[tuple[str, str], CatalogEntry] = {}
        for key, value in held.items():
            if not value:
                continue
            # ``<p>/<kind>/<id>``, or an earlier worker's ``<p>/<kind>`` holding all by id.
            _, _, rest = key.partition("/")
            kind, _, entry_id = rest.partition("/")
            model = _CATALOG_MODELS.get(kind)
            if model is None:
                continue
            for raw in [value] if entry_id else list(value.values()):
                entry = model.model_validate(raw)
                kept = newest.get((kind, entry.id))
                if kept is None or (entry.updated_at, entry.event_id or "") > (
                    kept.updated_at,
                    kept.event_id or "",
                ):
                    newest[(kind, entry.id)] = entry
        for (kind, entry_id), entry in sorted(newest.items()):
            key = CatalogSnapshot.key_for(kind, entry_id)
            await self._send(key, CatalogSnapshot.of(entry).model_dump_json().encode())
            self.report.catalog_rows += 1

    async def _courses(self, partition: int) -> dict[str, KnownCourse]:
        """The course structures the partition holds, by course id."""
        topic = changelog_topic(self.settings, COURSES_TABLE)
        held: dict[str, bytes | None] = {}
        prefix = f"{partition}/"
        for tp in await self.reader.partitions(topic):
            if tp.partition != partition:
                continue
            end = (await self.reader.ends([tp]))[tp]
            async for record in self.reader.read(tp, end):
                key = _key(record.key)
                if key.startswith(prefix):
                    held[key[len(prefix) :]] = record.value
        return {
            course_id: KnownCourse.model_validate_json(raw)
            for course_id, raw in held.items()
            if raw
        }

    async def _learner(self, user_id: str, raw: bytes, courses: dict[str, KnownCourse]) -> None:
        try:
            state = decode_state(raw)
        except Exception as error:
            # One state that does not decode must not keep the others from the sink.
            log.exception("the state of learner %s does not decode", user_id)
            self.report.failed.append(f"{user_id}: {type(error).__name__}: {error}")
            return
        for key, slot in content_slots(state).items():
            if slot.digest:
                self._slots[key] = (user_id, state.version, slot.digest)
        made = full_snapshots(state, courses)
        for value in merge_within(made, SNAPSHOT_MAX_BYTES):
            await self._send(user_id, value)
            self.report.messages += 1
        self.report.learners += 1

    async def _meanwhile(self, tp: Any, since: int, courses: dict[str, KnownCourse]) -> None:
        """What the worker wrote to the partition since it was read: learners erased then
        are erased again, behind the rows just sent; learners changed then are sent again."""
        end = (await self.reader.ends([tp]))[tp]
        if end <= since:
            return
        erased: set[str] = set()
        states: dict[str, bytes | None] = {}
        async for record in self.reader.read(tp, end, start=since):
            user_id = _key(record.key)
            states[user_id] = record.value
            if not record.value:
                erased.add(user_id)
        if erased:
            self._slots = {k: v for k, v in self._slots.items() if v[0] not in erased}
        for user_id in sorted(erased):
            erasure = Erasure(user_id=user_id, erased_at=datetime.now(UTC))
            await self._send(user_id, erasure.model_dump_json().encode())
            self.report.erased_meanwhile += 1
        for user_id, raw in states.items():
            if raw:
                await self._learner(user_id, raw, courses)

    async def _content(self, partition: int) -> None:
        """The partition's content whose digest the learner's state holds, behind the
        learner's rows (the rows, like the restores, are sent in order on one partition)."""
        topic = self.settings.topics.content
        try:
            partitions = await self.reader.partitions(topic)
        except TopicMissing:
            self.report.no_content_topic = True
            return
        # Until compaction, a key may hold several records of the kept digest (a replayed
        # event wrote it again): each piece is sent once.
        sent: set[str] = set()
        for tp in partitions:
            if tp.partition != partition:
                continue
            end = (await self.reader.ends([tp]))[tp]
            async for record in self.reader.read(tp, end):
                if not record.value:
                    continue
                try:
                    content = ContentRecord.model_validate_json(record.value)
                except ValueError:
                    log.exception("a record of %s[%d] does not decode", topic, partition)
                    continue
                restore = restores(self._slots, content)
                if restore is not None and content.key not in sent:
                    sent.add(content.key)
                    await self._send(restore.user_id, restore.model_dump_json().encode())
                    self.report.contents += 1

    async def _send(self, key: str, value: bytes) -> None:
        try:
            self._sent.append(await self.producer.send(self.topic, key=key.encode(), value=value))
        except (KafkaError, OSError) as exc:
            raise Unreachable(
                f"Kafka did not take a snapshot at {describe_kafka(self.settings)}: {exc}"
            ) from None
        if len(self._sent) >= _IN_FLIGHT:
            await self._delivered()

    async def _delivered(self) -> None:
        sent, self._sent = self._sent, []
        try:
            await asyncio.gather(*sent)
        except (KafkaError, OSError) as exc:
            raise Unreachable(
                f"Kafka did not take a snapshot at {describe_kafka(self.settings)}: {exc}"
            ) from None
