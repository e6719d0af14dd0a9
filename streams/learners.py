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
   learner's first event; several, each a merge of a run of them, when one would pass the
   snapshot topic's limit on a record (``progress.snapshots.merge_within``).
Within a batch, a learner's next event sees the state its previous one left (held in memory
until step 2). Faust acks the batch's events, and so may commit their offsets, only after
``handle_batch`` returned, and flushes the producer before it commits, so a crash before the
commit replays the batch: if a state was not saved, its events are published again with the
same ids; if it was, the replay changes nothing and re-sends the identical snapshots. Catalog
entries and erasures first finish the batch so far, then take effect on their own.
"""

from __future__ import annotations

import logging
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from faust.streams import _current_event, current_event
from faust.types import EventT, Message, TableT, TopicT

from adapters.settings import Settings
from adapters.topics import (
    LEARNER_STATE_MAX_BYTES,
    SNAPSHOT_MAX_BYTES,
    TABLE_VALUE_MAX_BYTES,
    consumed_kinds,
)
from progress.catalog import (
    AchievementUpdated,
    CatalogEntry,
    CatalogSnapshot,
    CompetencyUpdated,
    LearningPathUpdated,
)
from progress.decode import InvalidEvent, decode_event
from progress.events import (
    ConsumedEvent,
    CourseUpdated,
    LearnerErased,
    LearnerErasureRequested,
    PublishedEvent,
)
from progress.facts import merge_course_update
from progress.kinds import Alone, InCourse, WorkerStep, handling_of
from progress.learner_rules import Catalog
from progress.outcomes import Outcome, on_catalog_changed, on_course_known
from progress.snapshots import Erasure, Snapshot, merge_within
from progress.state import KnownCourse, LearnerState
from streams.dead_letters import DeadLetters
from streams.records import EffectsFailed, Records, delivered
from streams.state_codec import decode_state, encode_state

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

# ``_fits``: an upper bound on what one event can add to a stored state, from its own size
# (bulky content is no part of the state; an event adds one item, a few facts and summaries).
_GROWTH_PER_BYTE = 8
_GROWTH_PER_EVENT = 16_384


class LearnersFailed(Exception):
    """Some of the learners a catalog entry or course structure re-derives failed."""


class TooLarge(Exception):
    """What an event would write is over a record limit: the event is refused."""


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
        records: Records,
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
        self.records = records
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
        # The kinds the worker applies itself (``progress.kinds.WorkerStep``).
        self._worker_steps: dict[WorkerStep, Callable[[int, Any], Awaitable[None]]] = {
            "course": self._apply_course,
            "catalog": self._apply_catalog,
            "erasure": self._erase,
        }
        # The batch under way (see the module's docstring): newest state per learner with an
        # event of its partition, deliveries of published events, and snapshots to send.
        self._states: dict[str, tuple[EventT, LearnerState]] = {}
        self._deliveries: list[Awaitable[Any]] = []
        self._snapshots: dict[str, list[Snapshot]] = {}
        self._event: EventT | None = None
        # Learners' stored sizes as last known (read, written or measured), and how much
        # this batch may have grown each since: see ``_fits``.
        self._sizes: dict[str, int] = {}
        self._growth: dict[str, int] = {}

    def forget_cached(self) -> None:
        self._catalogs.clear()
        self._indexed.clear()
        self._kept.clear()
        self._sizes.clear()
        self._courses.clear()

    async def handle_batch(self, events: Sequence[EventT]) -> None:
        """Handle the events in order, then carry out their effects (module docstring).

        An event whose handling fails is dead-lettered (``internal-error``) and the others
        go on; an effect that cannot be written raises ``EffectsFailed``, and the caller
        must stop before any of the batch's offsets is committed (``streams.records.halt``).
        """
        for event in events:
            with _partition_of(event):
                self._event = event
                await self.handle(event.message)
        self._event = None
        await self.flush()

    async def flush(self) -> None:
        """Await the batch's published events, then write its states, then send its
        snapshots: the order that makes a crash safe."""
        deliveries, self._deliveries = self._deliveries, []
        await delivered(deliveries)
        states, self._states = self._states, {}
        self._growth.clear()
        for user_id, (event, state) in states.items():
            value = encode_state(state)
            # A table write goes to the partition of the current event: this learner's.
            with _partition_of(event):
                self._write(self.learners, user_id, value)
            self._sizes[user_id] = len(value)
            self._keep(user_id, state)
        snapshots, self._snapshots = self._snapshots, {}
        sent: list[Awaitable[Any]] = []
        for user_id, made in snapshots.items():
            # Merged by runs only when one merge would pass the topic's limit.
            for value in merge_within(made, SNAPSHOT_MAX_BYTES):
                sent.append(await self.records.send(self.snapshots, user_id.encode(), value))
        await delivered(sent)

    async def handle(self, message: Message) -> None:
        """Decode and apply one message; a message that is not valid, or whose handling
        fails, is dead-lettered with the reason."""
        try:
            event = decode_event(self.kinds[message.topic], message.key, message.value)
        except InvalidEvent as error:
            self._deliveries.append(
                await self.dead_letters.send(message, error.reason, error.error_type)
            )
            return
        try:
            await self._apply(message, event)
        except EffectsFailed:
            raise
        except TooLarge as error:
            self._deliveries.append(await self.dead_letters.send(message, str(error), "too-large"))
            return
        except Exception as error:
            # A bug, or a state this version cannot read: the learner's other events, and
            # everyone else's, go on; the dead letter can be re-driven once it is fixed.
            log.exception(
                "handling %s[%d]@%d failed", message.topic, message.partition, message.offset
            )
            reason = f"{type(error).__name__}: {error}"
            self._deliveries.append(await self.dead_letters.send(message, reason, "internal-error"))
            return
        self.processed += 1

    # ----------------------------------------------------------------- dispatch

    async def _apply(self, message: Message, event: ConsumedEvent) -> None:
        """Apply the event as its kind's line in ``progress.kinds`` says."""
        p = message.partition
        handling = handling_of(event)
        if isinstance(handling, str):
            # These read and write many learners' states, and an erasure deletes one: they
            # start from the batch so far carried out.
            await self.flush()
            await self._worker_steps[handling](p, event)
            return
        await self._apply_learner(message, event, handling)

    async def _apply_learner(
        self, message: Message, event: Any, handling: Alone | InCourse
    ) -> None:
        """One learner's event: the learner's rule, then its effects."""
        p = message.partition
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
        if isinstance(handling, InCourse):
            known = self._known(p, event.course_id)
            self._index(p, "members", _member_shard(event.course_id, event.user_id), event.user_id)
            outcome = handling.derive(state, event, known, catalog)
        else:
            outcome = handling.derive(state, event, catalog)
        grown = _GROWTH_PER_EVENT + _GROWTH_PER_BYTE * len(message.value or b"")
        self._growth[event.user_id] = self._growth.get(event.user_id, 0) + grown
        self._fits(outcome.state)
        await self._carry_out(outcome)

    async def _apply_course(self, p: int, event: CourseUpdated) -> None:
        key = partition_key(p, event.id)
        held = self._known(p, event.id)
        known = merge_course_update(held, event)
        if known != held:
            value, known = _bounded_course(known)
            self._write(self.courses, key, value)
            self._courses[key] = known
        # Re-derived even when nothing changed, so a replay re-sends what a crash lost.
        catalog = self._catalog(p)

        def derive(state: LearnerState) -> Outcome | None:
            return on_course_known(state, known, catalog) if event.id in state.courses else None

        await self._rederive(self._members(p, event.id), derive)

    async def _apply_catalog(self, p: int, entry: CatalogEntry) -> None:
        kind = entry.kind
        held = self._stored_entries(p, kind).get(entry.id)
        held_order = (held["updated_at"], held.get("event_id") or "") if held else None
        # Compare as datetimes: the stored form is ISO text, equal instants compare equal.
        if held_order is None or (entry.updated_at, entry.event_id or "") > (
            datetime.fromisoformat(held_order[0]),
            held_order[1],
        ):
            value = entry.model_dump(mode="json")
            size = len(entry.model_dump_json())
            if size > TABLE_VALUE_MAX_BYTES:
                raise TooLarge(
                    f"the {kind} entry takes {size} bytes, over the limit of "
                    f"{TABLE_VALUE_MAX_BYTES} (docs/reliability.md#bounds)"
                )
            self._migrate_catalog(p, kind)
            self._write(self.catalog, partition_key(p, f"{kind}/{entry.id}"), value)
            self._catalogs.pop(p, None)
        else:
            entry = type(entry).model_validate(held)
        if p == 0:  # every partition gets a copy; one of them writes the catalog row
            await self._send_catalog_row(entry)
        catalog = self._catalog(p)
        at = entry.updated_at
        await self._rederive(
            self._affected(p, entry, held), lambda state: on_catalog_changed(state, catalog, at)
        )

    async def _rederive(
        self, user_ids: list[str], derive: Callable[[LearnerState], Outcome | None]
    ) -> None:
        """Derive each learner again; one learner that fails does not keep the others from
        it. The failures are raised together at the end (the event is dead-lettered, and a
        re-drive derives everyone again, which changes nothing for those that succeeded)."""
        failed: list[str] = []
        for user_id in user_ids:
            try:
                state = self._learner(user_id)
                outcome = derive(state) if state is not None else None
            except Exception as error:
                log.exception("re-deriving learner %s failed", user_id)
                failed.append(f"{user_id} ({type(error).__name__}: {error})")
                continue
            if outcome is not None:
                await self._carry_out(outcome)
        if failed:
            count = f"{len(failed)} learner(s) could not be re-derived"
            raise LearnersFailed(f"{count}: {'; '.join(failed)}")

    def _stored_entries(self, p: int, kind: str) -> dict[str, dict[str, Any]]:
        """This partition's entries of a kind as stored, by id: one table key per entry
        (``<p>/<kind>/<id>``), and the entries of an earlier worker's one record per kind
        (``<p>/<kind>``) that have none yet."""
        entries: dict[str, dict[str, Any]] = dict(self.catalog.get(partition_key(p, kind)) or {})
        prefix = partition_key(p, f"{kind}/")
        for key, value in self.catalog.items():
            if isinstance(key, str) and key.startswith(prefix) and value:
                entries[key[len(prefix) :]] = value
        return entries

    def _migrate_catalog(self, p: int, kind: str) -> None:
        """Give each entry of an earlier worker's one record per kind a key of its own, and
        delete that record: together, entries could grow past a Kafka record's limit."""
        old_key = partition_key(p, kind)
        old: dict[str, Any] = self.catalog.get(old_key) or {}
        if not old:
            return
        stored = self._stored_entries(p, kind)
        for entry_id in old:
            self._write(self.catalog, partition_key(p, f"{kind}/{entry_id}"), stored[entry_id])
        self._delete(self.catalog, old_key)

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
            self._delete(self.learners, user_id)
        # Kept: the user id and the time of the erasure, nothing of their progress.
        held = self.erasures.get(user_id)
        if held is None or datetime.fromisoformat(held) < event.requested_at:
            self._write(self.erasures, user_id, event.requested_at.isoformat())
        key = user_id.encode()
        erasure = Erasure(user_id=user_id, erased_at=event.requested_at)
        self._deliveries.append(
            await self.records.send(self.snapshots, key, erasure.model_dump_json().encode())
        )
        erased = LearnerErased(
            event_id=LearnerErased.id_for(user_id, event.request_id, event.requested_at),
            user_id=user_id,
            request_id=event.request_id,
            erased_at=event.requested_at,
        )
        topic = self.published[LearnerErased]
        self._deliveries.append(
            await self.records.send(topic, key, erased.model_dump_json().encode())
        )
        log.info("erased learner %s (request %s)", user_id, event.request_id)

    # ----------------------------------------------------------------- effects

    async def _carry_out(self, outcome: Outcome) -> None:
        """Effects are held for the end of the batch (``flush``); outside a batch, now."""
        state = outcome.state
        key = state.user_id.encode()
        for e in outcome.published:
            value = e.model_dump_json().encode()
            self._deliveries.append(await self.records.send(self.published[type(e)], key, value))
        if outcome.changed:
            self._states[state.user_id] = (self._event_for_write(), state)
        self._snapshots.setdefault(state.user_id, []).append(outcome.snapshot)
        if self._event is None:
            await self.flush()

    def _fits(self, state: LearnerState) -> None:
        """Raise ``TooLarge`` when ``state`` would be stored in more than
        ``LEARNER_STATE_MAX_BYTES``: the event that made it so is refused, not the write lost.

        Exact, and measured only when an upper bound could pass the limit: the stored size
        last known plus what the events applied since can have added (``_GROWTH_PER_*``).
        Small learners never pay for it; one near the limit pays an encoding every few
        dozen events.
        """
        user_id = state.user_id
        known = self._sizes.get(user_id, 0)
        if known + self._growth.get(user_id, 0) <= LEARNER_STATE_MAX_BYTES:
            return
        size = len(encode_state(state))
        if size > LEARNER_STATE_MAX_BYTES:
            raise TooLarge(
                f"the learner's state would take {size} bytes, over the limit of "
                f"{LEARNER_STATE_MAX_BYTES} (docs/reliability.md#bounds)"
            )
        self._sizes[user_id] = size
        self._growth[user_id] = 0

    @staticmethod
    def _write(table: TableT[str, Any], key: str, value: Any) -> None:
        try:
            table[key] = value
        except Exception as error:
            raise EffectsFailed(f"writing {table.name}[{key!r}]: {error!r}") from error

    @staticmethod
    def _delete(table: TableT[str, Any], key: str) -> None:
        try:
            del table[key]
        except Exception as error:
            raise EffectsFailed(f"deleting {table.name}[{key!r}]: {error!r}") from error

    def _event_for_write(self) -> EventT:
        # Any event of the learner's partition: table writes are routed by it.
        event = self._event or current_event()
        if event is None:
            raise RuntimeError("a learner's state can only be written while handling an event")
        return event

    async def _send_catalog_row(self, entry: CatalogEntry) -> None:
        key = CatalogSnapshot.key_for(entry.kind, entry.id)
        value = CatalogSnapshot.of(entry).model_dump_json().encode()
        self._deliveries.append(await self.records.send(self.snapshots, key.encode(), value))

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
        state = decode_state(raw)
        self._sizes[user_id] = len(raw)
        self._keep(user_id, state)
        return state

    def _keep(self, user_id: str, state: LearnerState) -> None:
        self._kept[user_id] = state
        self._kept.move_to_end(user_id)
        if len(self._kept) > KEPT_LEARNERS:
            gone, _ = self._kept.popitem(last=False)
            self._sizes.pop(gone, None)

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
        raw = self._stored_entries(p, model.kind)
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
            self._write(self.indexes, key, [u for u in listed if u != user_id])
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
            self._write(self.indexes, key, sorted(listed))
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


def _bounded_course(known: KnownCourse) -> tuple[dict[str, Any], KnownCourse]:
    """The course as stored, within ``TABLE_VALUE_MAX_BYTES``: the oldest of its earlier
    structures are dropped until it fits; a current structure too large on its own is refused.
    """
    size = len(known.model_dump_json())
    earlier = list(known.earlier)
    while size > TABLE_VALUE_MAX_BYTES and earlier:
        size -= len(earlier.pop(0).model_dump_json()) + 1  # and its comma
    if size > TABLE_VALUE_MAX_BYTES:
        raise TooLarge(
            f"the course structure takes {size} bytes, over the limit of "
            f"{TABLE_VALUE_MAX_BYTES} (docs/reliability.md#bounds)"
        )
    if len(earlier) < len(known.earlier):
        known = known.model_copy(update={"earlier": tuple(earlier)})
    return known.model_dump(mode="json"), known


def _shard(user_id: str) -> str:
    return str(zlib.crc32(user_id.encode()) % LEARNER_INDEX_SHARDS)


def _member_shard(course_id: str, user_id: str) -> str:
    return f"{course_id}/{_shard(user_id)}"
