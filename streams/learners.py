"""The per-learner stream: enrollments, lesson activity and course broadcasts, one partition
at a time, each turned into an ``Outcome`` by the domain core and carried out here.

All three input topics are keyed by user (course broadcasts are addressed to a partition),
so one worker owns all of a learner's state and needs no coordination.

Order of effects per event, which is what makes a crash at any point safe:
1. published events (ProgressUpdated, CourseCompleted) are sent and their delivery awaited;
2. the new state is written to the table (its changelog);
3. the snapshot is sent.
Faust flushes the producer before it commits the input offset, so a crash before the commit
replays the event: if the state was not saved, the events are published again with the same
ids; if it was, the replay changes nothing and re-sends the identical snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.types import Message, TableT, TopicT

from progress.decode import Consumed, InvalidEvent, StreamKind, decode_event
from progress.events import CourseUpdated, PublishedEvent, UserEnrolled
from progress.facts import merge_course_update
from progress.outcomes import Outcome, on_course_known, on_enrollment, on_lesson_activity
from progress.state import KnownCourse, LearnerState
from service.config import Settings
from streams.dead_letters import DeadLetters

log = logging.getLogger(__name__)


def course_key(partition: int, course_id: str) -> str:
    """Per-partition course keys: each partition keeps its own copy of what it was sent, so
    a course's structure is ordered with the learner events of that same partition."""
    return f"{partition}/{course_id}"


class LearnerStream:
    def __init__(
        self,
        settings: Settings,
        *,
        learners: TableT[str, Any],
        courses: TableT[str, Any],
        members: TableT[str, Any],
        progress_updated: TopicT,
        course_completed: TopicT,
        snapshots: TopicT,
        dead_letters: DeadLetters,
    ) -> None:
        t = settings.topics
        self.kinds: dict[str, StreamKind] = {
            t.enrollments: "enrollments",
            t.lesson_activity: "lesson-activity",
            t.course_broadcast: "course-updates",
        }
        self.learners = learners
        self.courses = courses
        self.members = members
        self.progress_updated = progress_updated
        self.course_completed = course_completed
        self.snapshots = snapshots
        self.dead_letters = dead_letters
        # Members already confirmed in the table: saves re-reading the list on every event.
        self._member_cache: dict[str, set[str]] = {}
        self.processed = 0

    async def handle(self, message: Message) -> None:
        try:
            event = decode_event(self.kinds[message.topic], message.key, message.value)
        except InvalidEvent as error:
            await self.dead_letters.send(message, error)
            return
        await self._apply(message.partition, event)
        self.processed += 1

    async def _apply(self, partition: int, event: Consumed) -> None:
        if isinstance(event, CourseUpdated):
            await self._apply_course(partition, event)
            return
        known = self._known(partition, event.course_id)
        state = self._learner(event.user_id)
        if isinstance(event, UserEnrolled):
            outcome = on_enrollment(state, event, known)
        else:
            outcome = on_lesson_activity(state, event, known)
        self._remember_member(partition, event.course_id, event.user_id)
        await self._carry_out(outcome)

    async def _apply_course(self, partition: int, event: CourseUpdated) -> None:
        key = course_key(partition, event.id)
        held = self._known(partition, event.id)
        known = merge_course_update(held, event)
        if known != held:
            self.courses[key] = known.model_dump(mode="json")
        # Re-derived even when nothing changed, so a replay re-sends what a crash lost.
        for user_id in self._members(key):
            state = self._learner(user_id)
            if state is not None and event.id in state.courses:
                await self._carry_out(on_course_known(state, known))

    async def _carry_out(self, outcome: Outcome) -> None:
        state = outcome.state
        published: list[tuple[TopicT, PublishedEvent]] = []
        if outcome.course_completed:
            published.append((self.course_completed, outcome.course_completed))
        if outcome.progress_updated:
            published.append((self.progress_updated, outcome.progress_updated))
        if published:
            pending = [
                await topic.send(key=state.user_id.encode(), value=e.model_dump_json().encode())
                for topic, e in published
            ]
            await asyncio.gather(*pending)
        if outcome.changed:
            self.learners[state.user_id] = state.model_dump(mode="json")
        await self.snapshots.send(
            key=state.user_id.encode(), value=outcome.snapshot.model_dump_json().encode()
        )

    def _learner(self, user_id: str) -> LearnerState | None:
        raw = self.learners.get(user_id)
        return LearnerState.model_validate(raw) if raw else None

    def _known(self, partition: int, course_id: str) -> KnownCourse | None:
        raw = self.courses.get(course_key(partition, course_id))
        return KnownCourse.model_validate(raw) if raw else None

    def _members(self, key: str) -> list[str]:
        members: list[str] = self.members.get(key) or []
        return members

    def _remember_member(self, partition: int, course_id: str, user_id: str) -> None:
        """Index the learner under the course, so a structure change can find them."""
        key = course_key(partition, course_id)
        cached = self._member_cache.get(key)
        if cached is not None and user_id in cached:
            return
        members = set(self._members(key))
        if user_id not in members:
            members.add(user_id)
            self.members[key] = sorted(members)
        self._member_cache[key] = members
