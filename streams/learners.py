"""The per-learner stream: learner activity and catalog broadcasts, one partition at a time,
each turned into an ``Outcome`` by the domain core and carried out here.

Every input topic is keyed by user (catalog broadcasts are addressed to a partition), so one
worker owns all of a learner's state and needs no coordination. Each event is applied as its
kind's line in the registry says (``progress.kinds``): one learner's rule, or a step of the
worker's own that reaches many learners (a course's structure, a catalog entry) or deletes one
(an erasure).

Events come in batches (``handle_batch``); their effects are held, and carried out at the end
of the batch in the order that makes a crash at any point safe (``streams.effects``). Catalog
entries, course structures and erasures first finish the batch so far, then take effect on
their own. What an event would write is bounded (docs/reliability.md#bounds): over a record's
limit, the event is refused (``TooLarge``) and dead-lettered.

The tables' contents live in ``learner_cache`` (learner states), ``course_store``,
``catalog_store``, ``indexes`` (course members and learners) and ``erasure``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from faust.types import EventT, Message, TableT, TopicT

from adapters.settings import Settings
from adapters.topics import LEARNER_STATE_MAX_BYTES, TABLE_VALUE_MAX_BYTES, consumed_kinds
from progress.catalog import AchievementUpdated, CatalogEntry, CatalogSnapshot, LearningPathUpdated
from progress.course_catalog import CourseSnapshot
from progress.decode import InvalidEvent, decode_event
from progress.errors import ConflictingIds
from progress.events import ConsumedEvent, CourseUpdated, LearnerErasureRequested, PublishedEvent
from progress.facts import merge_course_update
from progress.kinds import Alone, InCourse, WorkerStep, handling_of
from progress.outcomes import Outcome, on_catalog_changed, on_course_known
from progress.state import KnownCourse, LearnerState
from streams.catalog_store import CatalogStore
from streams.content import ContentTooLarge, ContentWriter
from streams.course_store import CourseStore
from streams.dead_letters import DeadLetters
from streams.effects import Effects
from streams.erasure import Erasures
from streams.errors import WorkerError
from streams.indexes import LearnerIndex
from streams.learner_cache import LearnerCache
from streams.records import EffectsFailed, Records
from streams.state_codec import decode_state, encode_state
from streams.tables import partition_of

log = logging.getLogger(__name__)

# ``_fits``: an upper bound on what one event can add to a stored state, from its own size
# (bulky content is no part of the state; an event adds one item, a few facts and summaries).
_GROWTH_PER_BYTE = 8
_GROWTH_PER_EVENT = 16_384


class LearnersFailed(WorkerError):
    """Some of the learners a catalog entry or course structure re-derives failed."""


class TooLarge(WorkerError):
    """What an event would write is over a record limit: the event is refused."""


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
        content: TopicT,
        dead_letters: DeadLetters,
        records: Records,
    ) -> None:
        self.kinds = consumed_kinds(settings.topics)
        self.learners = learners
        self.dead_letters = dead_letters
        self.cache = LearnerCache()
        self.courses = CourseStore(courses)
        self.catalogs = CatalogStore(catalog)
        self.index = LearnerIndex(indexes)
        self.effects = Effects(
            learners=learners,
            cache=self.cache,
            published=published,
            snapshots=snapshots,
            records=records,
        )
        # Bulky content, to its compacted topic (streams/content.py).
        self.content = ContentWriter(content, self.effects)
        self.erasures = Erasures(
            erasures=erasures,
            learners=learners,
            index=self.index,
            cache=self.cache,
            effects=self.effects,
            content=self.content,
        )
        self.processed = 0
        self.ignored = 0
        # Batches handled and the events they held (dead-lettered ones too): with
        # ``effects.state_writes``, the mean batch and the state writes per event.
        self.batches = 0
        self.batched_events = 0
        # How much this batch may have grown each learner's stored state: see ``_fits``.
        self._growth: dict[str, int] = {}
        # The kinds the worker applies itself (``progress.kinds.WorkerStep``).
        self._worker_steps: dict[WorkerStep, Callable[[int, Any], Awaitable[None]]] = {
            "course": self._apply_course,
            "catalog": self._apply_catalog,
            "erasure": self._erase,
        }

    def forget_cached(self) -> None:
        """Drop whatever is kept in memory of the tables: partitions moved."""
        self.catalogs.forget()
        self.index.forget()
        self.cache.clear()
        self.courses.forget()

    async def handle_batch(self, events: Sequence[EventT]) -> None:
        """Handle the events in order, then carry out their effects (``streams.effects``).

        An event whose handling fails is dead-lettered (``internal-error``) and the others
        go on; an effect that cannot be written raises ``EffectsFailed``, and the caller
        must stop before any of the batch's offsets is committed (``streams.records.halt``).
        """
        for event in events:
            with partition_of(event):
                self.effects.batch_event = event
                await self.handle(event.message)
        self.effects.batch_event = None
        await self.flush()
        self.batches += 1
        self.batched_events += len(events)

    async def flush(self) -> None:
        """Carry out the batch's effects, in their order (``streams.effects``)."""
        self._growth.clear()
        await self.effects.flush()

    async def handle(self, message: Message) -> None:
        """Decode and apply one message; a message that is not valid, or whose handling
        fails, is dead-lettered with the reason."""
        try:
            event = decode_event(self.kinds[message.topic], message.key, message.value)
        except InvalidEvent as error:
            self.effects.awaiting(
                await self.dead_letters.send(message, error.reason, error.error_type)
            )
            return
        try:
            await self._apply(message, event)
        except EffectsFailed:
            raise
        except (TooLarge, ContentTooLarge) as error:
            self.effects.awaiting(await self.dead_letters.send(message, str(error), "too-large"))
            return
        except ConflictingIds as error:
            letter = await self.dead_letters.send(message, str(error), "conflicting-ids")
            self.effects.awaiting(letter)
            return
        except Exception as error:
            # A bug, or a state this version cannot read: the learner's other events, and
            # everyone else's, go on; the dead letter can be re-driven once it is fixed.
            log.exception(
                "handling %s[%d]@%d failed", message.topic, message.partition, message.offset
            )
            reason = f"{type(error).__name__}: {error}"
            self.effects.awaiting(await self.dead_letters.send(message, reason, "internal-error"))
            return
        self.processed += 1

    # ----------------------------------------------------------------- dispatch

    async def _apply(self, message: Message, event: ConsumedEvent) -> None:
        """Apply the event as its kind's line in ``progress.kinds`` says."""
        handling = handling_of(event)
        if isinstance(handling, str):
            # These read and write many learners' states, and an erasure deletes one: they
            # start from the batch so far carried out.
            await self.flush()
            await self._worker_steps[handling](message.partition, event)
            return
        await self._apply_learner(message, event, handling)

    async def _apply_learner(
        self, message: Message, event: Any, handling: Alone | InCourse
    ) -> None:
        """One learner's event: the learner's rule, then its effects."""
        p = message.partition
        if self.erasures.before_erasure(event.user_id, event.event_time):
            # A late or replayed event from before the learner's erasure (streams.erasure).
            self.ignored += 1
            return
        state = self._learner(event.user_id)
        catalog = self.catalogs.catalog(p)
        self.index.add_learner(p, event.user_id)
        outcome: Outcome
        if isinstance(handling, InCourse):
            known = self.courses.known(p, event.course_id)
            self.index.add_member(p, event.course_id, event.user_id)
            outcome = handling.derive(state, event, known, catalog)
        else:
            outcome = handling.derive(state, event, catalog)
        grown = _GROWTH_PER_EVENT + _GROWTH_PER_BYTE * len(message.value or b"")
        self._growth[event.user_id] = self._growth.get(event.user_id, 0) + grown
        self._fits(outcome.state)
        content = self.content.made(state, outcome)
        await self.content.send(p, content)
        await self.effects.carry_out(outcome)

    async def _apply_course(self, p: int, event: CourseUpdated) -> None:
        held = self.courses.known(p, event.id)
        known = merge_course_update(held, event)
        if known != held:
            value, known = _bounded_course(known)
            self.courses.store(p, event.id, known, value)
        if p == 0:  # every partition gets a copy; one of them writes the catalog rows
            # Sent even when nothing changed, as the re-derivation below: a replay re-sends
            # what a crash lost, and the sink keeps the newest of each part.
            snapshot = CourseSnapshot.of(known)
            key = CourseSnapshot.key_for(event.id).encode()
            await self.effects.send(
                self.effects.snapshots, key, snapshot.model_dump_json().encode()
            )
        # Re-derived even when nothing changed, so a replay re-sends what a crash lost.
        catalog = self.catalogs.catalog(p)

        def derive(state: LearnerState) -> Outcome | None:
            return on_course_known(state, known, catalog) if event.id in state.courses else None

        await self._rederive(self.index.members(p, event.id), derive)

    async def _apply_catalog(self, p: int, entry: CatalogEntry) -> None:
        held = self.catalogs.held(p, entry)
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
                    f"the {entry.kind} entry takes {size} bytes, over the limit of "
                    f"{TABLE_VALUE_MAX_BYTES} (docs/reliability.md#bounds)"
                )
            self.catalogs.write(p, entry, value)
        else:
            entry = type(entry).model_validate(held)
        if p == 0:  # every partition gets a copy; one of them writes the catalog row
            key = CatalogSnapshot.key_for(entry.kind, entry.id)
            row = CatalogSnapshot.of(entry).model_dump_json().encode()
            await self.effects.send(self.effects.snapshots, key.encode(), row)
        catalog = self.catalogs.catalog(p)
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
                await self.effects.carry_out(outcome)
        if failed:
            count = f"{len(failed)} learner(s) could not be re-derived"
            raise LearnersFailed(f"{count}: {'; '.join(failed)}")

    def _affected(self, p: int, entry: CatalogEntry, held: dict[str, Any] | None) -> list[str]:
        """Learners whose derivations may change with this entry."""
        if isinstance(entry, LearningPathUpdated):
            courses = set(entry.course_ids) | set(held.get("course_ids", []) if held else [])
            return sorted({u for c in courses for u in self.index.members(p, c)})
        if isinstance(entry, AchievementUpdated):
            return self.index.learners(p)
        return []  # a competency's name or description changes no learner's rows

    async def _erase(self, p: int, event: LearnerErasureRequested) -> None:
        await self.erasures.erase(p, event, self._learner(event.user_id))

    # ----------------------------------------------------------------- learner states

    def _learner(self, user_id: str) -> LearnerState | None:
        """The learner's state: as this batch left it, else as kept, else as stored."""
        held = self.effects.held(user_id)
        if held is not None:
            return held
        kept = self.cache.get(user_id)
        if kept is not None:
            return kept
        raw = self.learners.get(user_id)
        if not raw:
            return None
        state = decode_state(raw)
        self.cache.keep(user_id, state, len(raw))
        return state

    def _fits(self, state: LearnerState) -> None:
        """Raise ``TooLarge`` when ``state`` would be stored in more than
        ``LEARNER_STATE_MAX_BYTES``: the event that made it so is refused, not the write lost.

        Exact, and measured only when an upper bound could pass the limit: the stored size
        last known plus what the events applied since can have added (``_GROWTH_PER_*``).
        Small learners never pay for it; one near the limit pays an encoding every few
        dozen events.
        """
        user_id = state.user_id
        if self.cache.size(user_id) + self._growth.get(user_id, 0) <= LEARNER_STATE_MAX_BYTES:
            return
        size = len(encode_state(state))
        if size > LEARNER_STATE_MAX_BYTES:
            raise TooLarge(
                f"the learner's state would take {size} bytes, over the limit of "
                f"{LEARNER_STATE_MAX_BYTES} (docs/reliability.md#bounds)"
            )
        self.cache.measured(user_id, size)
        self._growth[user_id] = 0


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
