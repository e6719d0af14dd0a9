"""What a written batch changed, as the live notices of ``adapters.live`` name it."""

from __future__ import annotations

from collections.abc import Iterable

from progress.snapshots import Snapshot
from sinks.postgres import SinkMessage

# The snapshot's row groups whose rows belong to a course (each row has a course_id).
_COURSE_ROW_GROUPS = (
    "course_progress",
    "module_progress",
    "lesson_progress",
    "quiz_attempts",
    "assignment_submissions",
)


def changed_courses(written: Iterable[SinkMessage]) -> set[str]:
    """Every course in which a written learner snapshot changed a row. Course-wide answers
    (a course's roster and statistics) are built from those rows, so these are the courses
    whose readers should read again. Erasures name no course: the erased learner's rows are
    gone, and which courses they were in is not in the message."""
    courses: set[str] = set()
    for message in written:
        if isinstance(message, Snapshot):
            for group in _COURSE_ROW_GROUPS:
                courses.update(row.course_id for row in getattr(message, group))
    return courses
