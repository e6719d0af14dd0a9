"""What one event does to one learner: the new state, the rows to store, the events to publish.

These three functions are the whole of the worker's decision making; the Faust agents only
fetch their inputs from tables and carry out the ``Outcome``.

- The state version goes up only when the state changed, and every row and ProgressUpdated
  carries it, so a replayed event re-sends identical rows and ids.
- Rows are returned even when nothing changed: if the worker stopped after saving state but
  before the rows reached Kafka, the replayed event still delivers them.
- CourseCompleted is decided by ``completion_announced_at``, recorded in the same state, so a
  course completes publicly once per learner, whatever is replayed or re-derived later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from progress.events import CourseCompleted, ProgressUpdated, UserEnrolled
from progress.facts import (
    LessonEventT,
    merge_enrollment,
    merge_lesson_event,
    new_learner,
    with_course,
)
from progress.rollup import course_row, lesson_row, module_rows, summarize_course, user_row
from progress.snapshots import Snapshot
from progress.state import CourseState, KnownCourse, LearnerState


@dataclass(frozen=True)
class Outcome:
    state: LearnerState
    changed: bool
    snapshot: Snapshot
    progress_updated: ProgressUpdated | None = None
    course_completed: CourseCompleted | None = None


def on_enrollment(
    state: LearnerState | None, event: UserEnrolled, known: KnownCourse | None
) -> Outcome:
    base = state or new_learner(event.user_id, event.enrolled_at)
    course = merge_enrollment(base.courses.get(event.course_id, CourseState()), event)
    return _conclude(state, base, event.course_id, course, known, event.enrolled_at, None, "", "")


def on_lesson_activity(
    state: LearnerState | None, event: LessonEventT, known: KnownCourse | None
) -> Outcome:
    base = state or new_learner(event.user_id, event.event_time)
    course = base.courses.get(event.course_id, CourseState())
    lesson = merge_lesson_event(course.lessons.get(event.lesson_id), event)
    course = course.model_copy(update={"lessons": {**course.lessons, event.lesson_id: lesson}})
    return _conclude(
        state,
        base,
        event.course_id,
        course,
        known,
        event.event_time,
        [event.lesson_id],
        event.module_id,
        event.lesson_id,
    )


def on_course_known(state: LearnerState, known: KnownCourse) -> Outcome:
    """Re-derive a learner's course after its structure or title changed."""
    course = state.courses[known.course_id]
    at = known.structure_updated_at or known.title_updated_at or state.updated_at
    return _conclude(state, state, known.course_id, course, known, at, None, "", "")


def _conclude(
    original: LearnerState | None,
    base: LearnerState,
    course_id: str,
    course: CourseState,
    known: KnownCourse | None,
    event_time: datetime,
    lesson_ids: list[str] | None,
    module_id: str,
    lesson_id: str,
) -> Outcome:
    """Derive the course, decide the events, bump the version on change, build the rows.

    ``lesson_ids`` names the lesson rows to send; None sends all of the course's.
    """
    summary = summarize_course(course, known) if course.enrolled else None
    course = course.model_copy(update={"summary": summary})
    completed: CourseCompleted | None = None
    if summary and summary.status == "completed" and course.completion_announced_at is None:
        course = course.model_copy(update={"completion_announced_at": summary.completed_at})
        completed = CourseCompleted(
            event_id=CourseCompleted.id_for(base.user_id, course_id),
            user_id=base.user_id,
            course_id=course_id,
            completed_at=summary.completed_at,  # type: ignore[arg-type]
        )

    candidate = with_course(base, course_id, course)
    changed = original is None or candidate.courses != original.courses
    if changed:
        state = candidate.model_copy(
            update={
                "version": base.version + 1,
                "created_at": min(base.created_at, event_time),
                "updated_at": max(base.updated_at, event_time),
            }
        )
    else:
        state = original  # type: ignore[assignment]

    course_progress = course_row(state, course_id)
    snapshot = Snapshot(
        user_id=state.user_id,
        version=state.version,
        user_progress=user_row(state),
        course_progress=(course_progress,) if course_progress else (),
        module_progress=tuple(module_rows(state, course_id, known)) if course_progress else (),
        lesson_progress=tuple(
            lesson_row(state, course_id, lid, known)
            for lid in (lesson_ids if lesson_ids is not None else sorted(course.lessons))
        ),
    )
    progress_updated = None
    if changed and summary is not None:
        progress_updated = ProgressUpdated(
            event_id=ProgressUpdated.id_for(state.user_id, course_id, state.version),
            user_id=state.user_id,
            course_id=course_id,
            module_id=module_id,
            lesson_id=lesson_id,
            percent_complete=summary.percent_complete,
            status=summary.status,
            updated_at=event_time,
        )
    return Outcome(state, changed, snapshot, progress_updated, completed)
