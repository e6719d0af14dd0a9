"""The effects of a batch of learner events, held until the batch's end and carried out in an
order that makes a crash at any point safe.

The order of effects per batch (``Effects.flush``):
1. every event's published events (ProgressUpdated, CourseCompleted, ...) are sent as the
   event is handled, and their delivery is awaited together at the end of the batch;
2. only then is each learner's newest state written to the table (its changelog), once per
   learner and batch however many of its events the batch held;
3. then the snapshots are sent: one per learner, merging those of its events in order
   (``progress.snapshots.merge``: the sink ends with the same rows), in the order of each
   learner's first event; several, each a merge of a run of them, when one would pass the
   snapshot topic's limit on a record (``progress.snapshots.merge_within``).
Within a batch, a learner's next event sees the state its previous one left (held in memory
until step 2: ``held``). Faust acks the batch's events, and so may commit their offsets, only
after the batch was handled and flushed, and flushes the producer before it commits, so a
crash before the commit replays the batch: if a state was not saved, its events are published
again with the same ids; if it was, the replay changes nothing and re-sends the identical
snapshots. Outside a batch (``batch`` is None), an outcome's effects are carried out at once.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Sequence
from typing import Any

from faust.types import EventT, TableT, TopicT

from adapters.topics import SNAPSHOT_MAX_BYTES
from progress.events import PublishedEvent
from progress.outcomes import Outcome
from progress.snapshots import Snapshot, merge, merge_within
from progress.state import LearnerState
from streams.errors import NoCurrentEvent
from streams.learner_cache import LearnerCache
from streams.model_codec import encode, require_field_dicts
from streams.records import Records, delivered
from streams.state_codec import encode_state
from streams.tables import current_event, partition_of, write


class Effects:
    def __init__(
        self,
        *,
        learners: TableT[str, Any],
        cache: LearnerCache,
        published: dict[type[PublishedEvent], TopicT],
        snapshots: TopicT,
        records: Records,
    ) -> None:
        self.learners = learners
        self.cache = cache
        # Else ``encode`` would not write their JSON.
        require_field_dicts(Snapshot)
        for model in published:
            require_field_dicts(model)
        self.published = published
        self.snapshots = snapshots
        self.records = records
        # The event being handled, while a batch is (its table writes go to its partition).
        self.batch_event: EventT | None = None
        # The batch under way: newest state per learner with an event of its partition,
        # deliveries of published events (and others sent meanwhile), snapshots to send.
        self._states: dict[str, tuple[EventT, LearnerState]] = {}
        self._deliveries: list[Awaitable[Any]] = []
        self._snapshots: dict[str, list[Snapshot]] = {}
        # Learner states written to the table since the start (reported with the batches).
        self.state_writes = 0
        # Events published since the start, by type name (read by streams/monitoring.py).
        self.published_counts: collections.Counter[str] = collections.Counter()

    def held(self, user_id: str) -> LearnerState | None:
        """The learner's state as this batch left it so far, if it changed it."""
        held = self._states.get(user_id)
        return held[1] if held is not None else None  # states are immutable

    def awaiting(self, delivery: Awaitable[Any]) -> None:
        """Await ``delivery`` with the batch's published events (step 1)."""
        self._deliveries.append(delivery)

    async def send(self, topic: TopicT, key: bytes, value: bytes) -> None:
        """Send a record now; its delivery is awaited with the published events (step 1)."""
        self._deliveries.append(await self.records.send(topic, key, value))

    async def carry_out(self, outcome: Outcome) -> None:
        """Publish the outcome's events, and hold its state and snapshot for ``flush``;
        outside a batch, flush at once."""
        state = outcome.state
        key = state.user_id.encode()
        for e in outcome.published:
            await self.send(self.published[type(e)], key, encode(e))
            self.published_counts[type(e).__name__] += 1
        if outcome.changed:
            self._states[state.user_id] = (self._event_for_write(), state)
        self._snapshots.setdefault(state.user_id, []).append(outcome.snapshot)
        if self.batch_event is None:
            await self.flush()

    async def flush(self) -> None:
        """Await the batch's published events, then write its states, then send its
        snapshots: the order that makes a crash safe."""
        deliveries, self._deliveries = self._deliveries, []
        await delivered(deliveries)
        states, self._states = self._states, {}
        self.state_writes += len(states)
        for user_id, (event, state) in states.items():
            value = encode_state(state)
            # A table write goes to the partition of the current event: this learner's.
            with partition_of(event):
                write(self.learners, user_id, value)
            self.cache.keep(user_id, state, len(value))
        snapshots, self._snapshots = self._snapshots, {}
        sent: list[Awaitable[Any]] = []
        for user_id, made in snapshots.items():
            for value in snapshot_messages(made):
                sent.append(await self.records.send(self.snapshots, user_id.encode(), value))
        await delivered(sent)

    def _event_for_write(self) -> EventT:
        # Any event of the learner's partition: table writes are routed by it.
        event = self.batch_event or current_event()
        if event is None:
            raise NoCurrentEvent("a learner's state can only be written while handling an event")
        return event


def snapshot_messages(made: Sequence[Snapshot]) -> list[bytes]:
    """A learner's snapshots of a batch as the messages sent: ``merge_within``, with its
    common case (one merge that fits, or one snapshot) encoded by the worker's faster encoder
    (``streams.model_codec``: the same JSON); merged by runs only when one merge would pass
    the topic's limit on a record (rare: bulky events)."""
    whole = encode(merge(made))
    if len(whole) <= SNAPSHOT_MAX_BYTES or len(made) == 1:
        return [whole]
    return merge_within(made, SNAPSHOT_MAX_BYTES)
