"""Merging one consumed event into what is known: pure, idempotent, order-independent.

Each rule is a join (min, max, union, newest-wins with a tie-break), so a duplicate changes
nothing and a late event lands where it would have landed in order. Event time moves
StartedAt only backward and LastActivityAt only forward.
"""

from __future__ import annotations

from datetime import datetime

from progress.events import (
    CourseUpdated,
    LessonCompleted,
    LessonProgressed,
    LessonStarted,
    UserEnrolled,
)
from progress.state import CourseState, KnownCourse, LearnerState, LessonState


def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def new_learner(user_id: str, first_event_at: datetime) -> LearnerState:
    return LearnerState(user_id=user_id, created_at=first_event_at, updated_at=first_event_at)


def with_course(state: LearnerState, course_id: str, course: CourseState) -> LearnerState:
    return state.model_copy(update={"courses": {**state.courses, course_id: course}})


def merge_enrollment(course: CourseState, event: UserEnrolled) -> CourseState:
    """The earliest enrollment wins (ties by id), so re-sent enrollments change nothing."""
    if course.enrolled_at is not None and course.enrollment_id is not None:
        current = (course.enrolled_at, course.enrollment_id)
        if current <= (event.enrolled_at, event.id):
            return course
    return course.model_copy(update={"enrollment_id": event.id, "enrolled_at": event.enrolled_at})


LessonEventT = LessonStarted | LessonProgressed | LessonCompleted


def merge_lesson_event(lesson: LessonState | None, event: LessonEventT) -> LessonState:
    at = event.event_time
    if lesson is None:
        lesson = LessonState(module_id=event.module_id, started_at=at, last_activity_at=at)
    update: dict[str, object] = {
        "started_at": min(lesson.started_at, at),
        "last_activity_at": max(lesson.last_activity_at, at),
    }
    if isinstance(event, LessonProgressed):
        update["percent"] = max(lesson.percent, event.percent_complete)
        update["time_spent"] = max(lesson.time_spent, event.time_spent)
        newest = lesson.last_position_at
        # Latest position by event time; equal times keep the furthest position.
        if (
            newest is None
            or at > newest
            or (at == newest and event.position > lesson.last_position)
        ):
            update["last_position"] = event.position
            update["last_position_at"] = at
    elif isinstance(event, LessonCompleted):
        update["completed_at"] = earliest(lesson.completed_at, at)
    return lesson.model_copy(update=update)


def merge_course_update(known: KnownCourse | None, event: CourseUpdated) -> KnownCourse:
    """Newest title and newest structure win, each on its own clock.

    A title-only update never erases a structure, and a late structure is still taken if it
    is newer than the one held. Equal times are broken by event id, so every worker that
    sees the same two updates keeps the same one.
    """
    known = known or KnownCourse(course_id=event.id)
    update: dict[str, object] = {}
    title_at = known.title_updated_at
    if title_at is None or event.updated_at > title_at:
        update.update(title=event.title, title_updated_at=event.updated_at)
    if event.modules is not None:
        held = (known.structure_updated_at, known.structure_event_id)
        incoming = (event.updated_at, event.event_id or "")
        if known.structure_updated_at is None or incoming > held:  # type: ignore[operator]
            update.update(
                structure=event.modules,
                structure_updated_at=event.updated_at,
                structure_event_id=event.event_id or "",
            )
    return known.model_copy(update=update) if update else known
