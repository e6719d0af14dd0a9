"""The per-learner stream: learner activity and catalog broadcasts, one partition at a time,
each turned into an ``Outcome`` by the domain core and carried out here.

Every input topic is keyed by user (catalog broadcasts are addressed to a partition), so one
worker owns all of a learner's state and needs no coordination.

Events come in batches (``handle_batch``); the order of effects per batch, which is what
makes a crash at any point safe:
1. every event's published events (ProgressUpdated, CourseCompleted, ...) are sent as the
   event is handled, and their delivery is awaited together at the end of the batch;
2. only then is each learner's newest state written to the table (its changelog), once per
   learner and batch however many of its events the batch held;
3. then the snapshots are sent: one per learner, merging those of its events in order
   (``progress.snapshots.merge``: the sink ends with the same rows), in the order of each
   learner's first event.
Within a batch, a learner's next event sees the state its previous one left (held in memory
until step 2). Faust acks the batch's events, and so may commit their offsets, only after
``handle_batch`` returned, and flushes the producer before it commits, so a crash before the
commit replays the batch: if a state was not saved, its events are published again with the
same ids; if it was, the replay changes nothing and re-sends the identical snapshots. Catalog
entries and erasures first finish the batch so far, then take effect on their own.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from faust.streams import _current_event
from faust.types import EventT, Message, ProducerT, TableT, TopicT

from progress.catalog import (
    AchievementUpdated,
    CatalogEntry,
    CatalogSnapshot,
    CompetencyUpdated,
    LearningPathRow,
    LearningPathUpdated,
)
from progress.decode import Consumed, InvalidEvent, decode_event
from progress.events import (
    CourseUpdated,
    ExternalEvidenceRecorded,
    LearnerErased,
    LearnerErasureRequested,
    LearnerProfileUpdated,
    LessonEvent,
    PublishedEvent,
    QuizEvent,
    UserEnrolled,
)
from progress.facts import merge_course_update
from progress.learner import Catalog
from progress.outcomes import (
    Outcome,
    on_assignment_activity,
    on_catalog_changed,
    on_course_known,
    on_enrollment,
    on_external_evidence,
    on_lesson_activity,
    on_profile,
    on_quiz_activity,
)
from progress.snapshots import Erasure, Snapshot, merge
from progress.state import KnownCourse, LearnerState
from service.config import Settings
from streams.dead_letters import DeadLetters
from streams.topics import consumed_kinds

log = logging.getLogger(__name__)

# Parsed learner states kept in memory, least recently used dropped first: a learner's next
# event then skips the table read and the parse. Bounded, since a worker's partitions can
# hold millions of learners; a parsed state takes about 12 KB (2.4 KB of JSON) in the
# benchmark's workload, so this is some 120 MB.
KEPT_LEARNERS = 10_000

# Learners of a partition, and the members of each course in it, are indexed in this many
# lists each, so that adding one rewrites a small list (a course's whole member list would
# pass Kafka's 1 MB record limit at some 50,000 members per partition); an achievement that
# changes re-evaluates every learner of the partition.
LEARNER_INDEX_SHARDS = 64

_CATALOG_KINDS = {
    LearningPathUpdated: "learning-path",
    CompetencyUpdated: "competency",
    AchievementUpdated: "achievement",
}


def partition_key(partition: int, name: str) -> str:
    """Per-partition keys: each partition keeps its own copy of what it was sent, so a
    catalog entry is ordered with the learner events of that same partition."""
    return f"{partition}/{name}"


class LearnerStream:
    def __init__(
        self,
        settings: Settings,
        *,
        learners: TableT[str, Any],
        erasures: TableT[str, Any],
        courses: TableT[str, Any],
        catalog: TableT[str, Any],
        indexes: TableT[str, Any],
        published: dict[type[PublishedEvent], TopicT],
        snapshots: TopicT,
        dead_letters: DeadLetters,
    ) -> None:
        self.kinds = consumed_kinds(settings.topics)
        self.learners = learners
        self.erasures = erasures
        self.courses = courses
        self.catalog = catalog
        self.indexes = indexes
        self.published = published
        self.snapshots = snapshots
        self.dead_letters = dead_letters
        # Parsed catalogs and confirmed index entries per partition; dropped when partitions
        # are revoked, since another worker may change them meanwhile.
        self._catalogs: dict[int, Catalog] = {}
        self._indexed: dict[str, set[str]] = {}
        # Learner states as the table holds them (written or read), dropped likewise.
        self._kept: OrderedDict[str, LearnerState] = OrderedDict()
        # Parsed courses by table key: each learner event reads its course's structure.
        self._courses: dict[str, KnownCourse | None] = {}
        self.processed = 0
        self.ignored = 0
        # The batch under way (see the module's docstring): newest state per learner with an
        # event of its partition, deliveries of published events, and snapshots to send.
        self._states: dict[str, tuple[EventT, LearnerState]] = {}
        self._deliveries: list[Awaitable[Any]] = []
        self._snapshots: dict[str, list[Snapshot]] = {}
        self._event: EventT | None = None
        self._topic_names: dict[int, str] = {}
        self._producer: ProducerT | None = None

    def forget_cached(self) -> None:
        self._catalogs.clear()
        self._indexed.clear()
        self._kept.clear()
        self._courses.clear()

    async def handle_batch(self, events: Sequence[EventT]) -> None:
        """Handle the events in order, then carry out their effects (module docstring)."""
        for event in events:
            with _partition_of(event):
                self._event = event
                await self.handle(event.message)
        self._event = None
        await self.flush()

    async def flush(self) -> None:
        """Await the batch's published events, then write its states, then send its
        snapshots: the order that makes a crash safe."""
        if self._deliveries:
            deliveries, self._deliveries = self._deliveries, []
            await asyncio.gather(*deliveries)
        states, self._states = self._states, {}
        for user_id, (event, state) in states.items():
            # A table write goes to the partition of the current event: this learner's.
            with _partition_of(event):
                self.learners[user_id] = state.model_dump_json().encode()
            self._keep(user_id, state)
        snapshots, self._snapshots = self._snapshots, {}
        for user_id, made in snapshots.items():
            value = merge(made).model_dump_json().encode()
            await self._produce(self.snapshots, user_id.encode(), value)

    async def handle(self, message: Message) -> None:
        try:
            event = decode_event(self.kinds[message.topic], message.key, message.value)
        except InvalidEvent as error:
            await self.dead_letters.send(message, error)
            return
        await self._apply(message.partition, event)
        self.processed += 1

    # ----------------------------------------------------------------- dispatch

    async def _apply(self, p: int, event: Consumed) -> None:
        if isinstance(event, CourseUpdated | CatalogEntry | LearnerErasureRequested):
            # These read and write many learners' states, and an erasure deletes one: they
            # start from the batch so far carried out.
            await self.flush()
        if isinstance(event, CourseUpdated):
            await self._apply_course(p, event)
            return
        if isinstance(event, CatalogEntry):
            await self._apply_catalog(p, event)
            return
        if isinstance(event, LearnerErasureRequested):
            await self._erase(p, event)
            return
        if self._before_erasure(event.user_id, event.event_time):
            # A late or replayed event from before the learner's erasure: counting it would
            # bring back what was erased. Input topics are not ordered with each other, so a
            # replay after a crash can deliver such events after the erasure.
            self.ignored += 1
            return
        state = self._learner(event.user_id)
        catalog = self._catalog(p)
        self._index(p, "learners", _shard(event.user_id), event.user_id)
        outcome: Outcome
        if isinstance(event, ExternalEvidenceRecorded):
            outcome = on_external_evidence(state, event, catalog)
        elif isinstance(event, LearnerProfileUpdated):
            outcome = on_profile(state, event, catalog)
        else:
            known = self._known(p, event.course_id)
            self._index(p, "members", _member_shard(event.course_id, event.user_id), event.user_id)
            if isinstance(event, UserEnrolled):
                outcome = on_enrollment(state, event, known, catalog)
            elif isinstance(event, LessonEvent):
                outcome = on_lesson_activity(state, event, known, catalog)  # type: ignore[arg-type]
            elif isinstance(event, QuizEvent):
                outcome = on_quiz_activity(state, event, known, catalog)  # type: ignore[arg-type]
            else:
                outcome = on_assignment_activity(state, event, known, catalog)  # type: ignore[arg-type]
        await self._carry_out(outcome)

    async def _apply_course(self, p: int, event: CourseUpdated) -> None:
        key = partition_key(p, event.id)
        held = self._known(p, event.id)
        known = merge_course_update(held, event)
        if known != held:
            self.courses[key] = known.model_dump(mode="json")
            self._courses[key] = known
        # Re-derived even when nothing changed, so a replay re-sends what a crash lost.
        catalog = self._catalog(p)
        for user_id in self._members(p, event.id):
            state = self._learner(user_id)
            if state is not None and event.id in state.courses:
                await self._carry_out(on_course_known(state, known, catalog))

    async def _apply_catalog(self, p: int, entry: CatalogEntry) -> None:
        kind = _CATALOG_KINDS[type(entry)]
        key = partition_key(p, kind)
        entries: dict[str, Any] = dict(self.catalog.get(key) or {})
        held = entries.get(entry.id)
        held_order = (held["updated_at"], held.get("event_id") or "") if held else None
        # Compare as datetimes: the stored form is ISO text, equal instants compare equal.
        incoming = entry.model_dump(mode="json")
        if held_order is None or (entry.updated_at, entry.event_id or "") > (
            datetime.fromisoformat(held_order[0]),
            held_order[1],
        ):
            entries[entry.id] = incoming
            self.catalog[key] = entries
            self._catalogs.pop(p, None)
        else:
            entry = type(entry).model_validate(held)
        if p == 0:  # every partition gets a copy; one of them writes the catalog row
            await self._send_catalog_row(entry)
        for user_id in self._affected(p, entry, held):
            state = self._learner(user_id)
            if state is not None:
                outcome = on_catalog_changed(state, self._catalog(p), entry.updated_at)
                await self._carry_out(outcome)

    def _affected(self, p: int, entry: CatalogEntry, held: dict[str, Any] | None) -> list[str]:
        """Learners whose derivations may change with this entry."""
        if isinstance(entry, LearningPathUpdated):
            courses = set(entry.course_ids) | set(held.get("course_ids", []) if held else [])
            return sorted({u for c in courses for u in self._members(p, c)})
        if isinstance(entry, AchievementUpdated):
            shards = (self._list(p, "learners", str(s)) for s in range(LEARNER_INDEX_SHARDS))
            return sorted({u for shard in shards for u in shard})
        return []  # a competency's name or description changes no learner's rows

    async def _erase(self, p: int, event: LearnerErasureRequested) -> None:
        """Forget the learner: index entries, then state (a changelog tombstone, so a
        replay cannot bring it back), then have the sink delete the rows.

        Every step runs even if the learner is already gone, so a replay after a crash
        completes whatever the crash interrupted; the announcement keeps its id.
        """
        user_id = event.user_id
        state = self._learner(user_id)
        for course_id in state.courses if state else ():
            self._unindex(p, "members", _member_shard(course_id, user_id), user_id)
            self._unindex(p, "members", course_id, user_id)  # an unsharded list, if any
        self._unindex(p, "learners", _shard(user_id), user_id)
        self._kept.pop(user_id, None)
        if user_id in self.learners:
            del self.learners[user_id]
        # Kept: the user id and the time of the erasure, nothing of their progress.
        held = self.erasures.get(user_id)
        if held is None or datetime.fromisoformat(held) < event.requested_at:
            self.erasures[user_id] = event.requested_at.isoformat()
        key = user_id.encode()
        erasure = Erasure(user_id=user_id, erased_at=event.requested_at)
        await self._produce(self.snapshots, key, erasure.model_dump_json().encode())
        erased = LearnerErased(
            event_id=LearnerErased.id_for(user_id, event.request_id),
            user_id=user_id,
            request_id=event.request_id,
            erased_at=event.requested_at,
        )
        await self._produce(self.published[LearnerErased], key, erased.model_dump_json().encode())
        log.info("erased learner %s (request %s)", user_id, event.request_id)

    # ----------------------------------------------------------------- effects

    async def _carry_out(self, outcome: Outcome) -> None:
        """Effects are held for the end of the batch (``flush``); outside a batch, now."""
        state = outcome.state
        key = state.user_id.encode()
        for e in outcome.published:
            sent = await self._produce(self.published[type(e)], key, e.model_dump_json().encode())
            self._deliveries.append(sent)
        if outcome.changed:
            self._states[state.user_id] = (self._event_for_write(), state)
        self._snapshots.setdefault(state.user_id, []).append(outcome.snapshot)
        if self._event is None:
            await self.flush()

    async def _produce(self, topic: TopicT, key: bytes, value: bytes) -> Awaitable[Any]:
        """Hand a record to the app's producer; returns its delivery.

        Straight to the producer that ``topic.send`` ends in, with the same partitioner (by
        key) and the same order, but without Faust's bookkeeping of each message (a
        FutureMessage, sensors, a callback on delivery), which cost about as much as the
        send itself. Faust flushes this producer before it commits offsets, as it does for
        ``topic.send``. In a transaction (exactly-once), ``topic.send`` is what joins it.
        """
        app = topic.app
        if app.in_transaction:
            return await topic.send(key=key, value=value)
        name = self._topic_names.get(id(topic))
        if name is None:
            name = self._topic_names[id(topic)] = topic.get_topic_name()
        if self._producer is None:
            # Once: ``maybe_start_producer`` yields to the event loop on every call.
            self._producer = await app.maybe_start_producer()
        producer = self._producer
        return await producer.send(name, key, value, partition=None, timestamp=None, headers=None)

    def _event_for_write(self) -> EventT:
        # Any event of the learner's partition: table writes are routed by it.
        event = self._event or _current_event.get(lambda: None)()
        if event is None:
            raise RuntimeError("a learner's state can only be written while handling an event")
        return event

    async def _send_catalog_row(self, entry: CatalogEntry) -> None:
        snapshot = CatalogSnapshot(deleted=entry.deleted)
        if isinstance(entry, CompetencyUpdated):
            snapshot = snapshot.model_copy(update={"competency": entry.row(entry.updated_at)})
        elif isinstance(entry, AchievementUpdated):
            snapshot = snapshot.model_copy(update={"achievement": entry.row(entry.updated_at)})
        elif isinstance(entry, LearningPathUpdated):
            row = LearningPathRow(
                id=entry.id,
                title=entry.title,
                description=entry.description,
                course_ids=list(entry.course_ids),
                updated_at=entry.updated_at,
            )
            snapshot = snapshot.model_copy(update={"learning_path": row})
        key = CatalogSnapshot.key_for(_CATALOG_KINDS[type(entry)], entry.id)
        await self._produce(self.snapshots, key.encode(), snapshot.model_dump_json().encode())

    # ----------------------------------------------------------------- table reads

    def _before_erasure(self, user_id: str, at: datetime) -> bool:
        erased_at = self.erasures.get(user_id)
        return erased_at is not None and at <= datetime.fromisoformat(erased_at)

    def _learner(self, user_id: str) -> LearnerState | None:
        held = self._states.get(user_id)
        if held is not None:
            return held[1]  # states are immutable: the domain returns new ones
        kept = self._kept.get(user_id)
        if kept is not None:
            self._kept.move_to_end(user_id)
            return kept
        raw = self.learners.get(user_id)
        if not raw:
            return None
        state = _parse_state(raw)
        self._keep(user_id, state)
        return state

    def _keep(self, user_id: str, state: LearnerState) -> None:
        self._kept[user_id] = state
        self._kept.move_to_end(user_id)
        if len(self._kept) > KEPT_LEARNERS:
            self._kept.popitem(last=False)

    def _known(self, p: int, course_id: str) -> KnownCourse | None:
        key = partition_key(p, course_id)
        if key in self._courses:
            return self._courses[key]
        raw = self.courses.get(key)
        known = KnownCourse.model_validate(raw) if raw else None
        if known is not None:
            # Unknown courses are not remembered: the entry a CourseUpdated writes is.
            self._courses[key] = known
        return known

    def _catalog(self, p: int) -> Catalog:
        cached = self._catalogs.get(p)
        if cached is None:
            cached = Catalog(
                learning_paths=self._entries(p, LearningPathUpdated),
                competencies=self._entries(p, CompetencyUpdated),
                achievements=self._entries(p, AchievementUpdated),
            )
            self._catalogs[p] = cached
        return cached

    def _entries(self, p: int, model: type[Any]) -> dict[str, Any]:
        raw: dict[str, Any] = self.catalog.get(partition_key(p, _CATALOG_KINDS[model])) or {}
        parsed = (model.model_validate(value) for value in raw.values())
        return {entry.id: entry for entry in parsed if not entry.deleted}

    def _members(self, p: int, course_id: str) -> list[str]:
        """The course's learners in this partition. Lists written before the index was
        sharded (``members/<course_id>``, unsharded) are read too: they are not rewritten."""
        shards = [self._list(p, "members", f"{course_id}/{s}") for s in range(LEARNER_INDEX_SHARDS)]
        return sorted(
            {u for shard in shards for u in shard}.union(self._list(p, "members", course_id))
        )

    def _list(self, p: int, index: str, name: str) -> list[str]:
        found: list[str] = self.indexes.get(partition_key(p, f"{index}/{name}")) or []
        return found

    def _unindex(self, p: int, index: str, name: str, user_id: str) -> None:
        key = partition_key(p, f"{index}/{name}")
        listed = self._list(p, index, name)
        if user_id in listed:
            self.indexes[key] = [u for u in listed if u != user_id]
        self._indexed.pop(key, None)

    def _index(self, p: int, index: str, name: str, user_id: str) -> None:
        """Add the learner to an index list (course members, or a shard of all learners)."""
        key = partition_key(p, f"{index}/{name}")
        cached = self._indexed.get(key)
        if cached is not None and user_id in cached:
            return
        listed = set(self._list(p, index, name))
        if user_id not in listed:
            listed.add(user_id)
            self.indexes[key] = sorted(listed)
        self._indexed[key] = listed


@contextmanager
def _partition_of(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event: table reads and writes go to its partition.

    Faust keeps the current event in a context variable that its own stream iteration sets;
    a batch handles many events, of several partitions, after the stream moved past them.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _parse_state(raw: bytes | str | dict[str, Any]) -> LearnerState:
    """A learner state as the table holds it: its JSON text (as bytes, or as a str for a value
    written as a JSON string), or a dict from a store that decoded the JSON itself."""
    if isinstance(raw, dict):
        return LearnerState.model_validate(raw)
    return LearnerState.model_validate_json(raw)


def _shard(user_id: str) -> str:
    return str(zlib.crc32(user_id.encode()) % LEARNER_INDEX_SHARDS)


def _member_shard(course_id: str, user_id: str) -> str:
    return f"{course_id}/{_shard(user_id)}"
