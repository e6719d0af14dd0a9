"""Erasing a learner, and keeping their events from before the erasure out afterwards.

Only the user id and the time of the last erasure are kept (the ``erasures`` table), nothing
of their progress. Events input topics deliver late (they are not ordered with each other,
and a replay after a crash can deliver them after the erasure) are dropped when they are from
before it: counting them would bring back what was erased.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from faust.types import TableT

from progress.events import LearnerErased, LearnerErasureRequested
from progress.snapshots import Erasure
from progress.state import LearnerState
from streams.content import ContentWriter
from streams.effects import Effects
from streams.indexes import LearnerIndex
from streams.learner_cache import LearnerCache
from streams.tables import delete, write

log = logging.getLogger(__name__)


class Erasures:
    def __init__(
        self,
        *,
        erasures: TableT[str, Any],
        learners: TableT[str, Any],
        index: LearnerIndex,
        cache: LearnerCache,
        effects: Effects,
        content: ContentWriter,
    ) -> None:
        self.erasures = erasures
        self.learners = learners
        self.index = index
        self.cache = cache
        self.effects = effects
        self.content = content

    def before_erasure(self, user_id: str, at: datetime) -> bool:
        """Whether an event of the learner at ``at`` is from before their last erasure."""
        erased_at = self.erasures.get(user_id)
        return erased_at is not None and at <= datetime.fromisoformat(erased_at)

    async def erase(
        self, p: int, event: LearnerErasureRequested, state: LearnerState | None
    ) -> None:
        """Forget the learner (``state``: as stored, if any): index entries, then the
        content (a tombstone per piece on the content topic, delivered before the state goes:
        the state is what names the pieces), then state (a changelog tombstone, so a replay
        cannot bring it back), then have the sink delete the rows.

        Every step runs even if the learner is already gone, so a replay after a crash
        completes whatever the crash interrupted; the announcement keeps its id.
        """
        user_id = event.user_id
        self.index.remove(p, user_id, state.courses if state else ())
        self.cache.drop(user_id)
        if state is not None:
            await self.content.erase(p, state)
        if user_id in self.learners:
            delete(self.learners, user_id)
        held = self.erasures.get(user_id)
        if held is None or datetime.fromisoformat(held) < event.requested_at:
            write(self.erasures, user_id, event.requested_at.isoformat())
        key = user_id.encode()
        erasure = Erasure(user_id=user_id, erased_at=event.requested_at)
        await self.effects.send(self.effects.snapshots, key, erasure.model_dump_json().encode())
        erased = LearnerErased(
            event_id=LearnerErased.id_for(user_id, event.request_id, event.requested_at),
            user_id=user_id,
            request_id=event.request_id,
            erased_at=event.requested_at,
        )
        topic = self.effects.published[LearnerErased]
        await self.effects.send(topic, key, erased.model_dump_json().encode())
        self.effects.published_counts[LearnerErased.__name__] += 1
        log.info("erased learner %s (request %s)", user_id, event.request_id)
