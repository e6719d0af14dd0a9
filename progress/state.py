"""What the worker remembers per learner and per course: the values of its Faust tables.

Everything a learner did is kept as facts merged with commutative rules (min, max, union),
so applying the same event twice, or two events in either order, gives the same state.
Roll-ups are never stored as counters; ``CourseSummary`` is the last derivation, kept only to
notice when a derivation changed and to sum a learner's courses without re-reading them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from progress.models import ProgressStatus
from progress.structure import CourseStructure


class StateModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LessonState(StateModel):
    module_id: str  # as the lesson events named it; the course structure has the last word
    started_at: datetime  # earliest event of any kind for this lesson
    last_activity_at: datetime  # latest event of any kind
    completed_at: datetime | None = None  # earliest LessonCompleted
    percent: float = 0.0  # highest reported
    time_spent: int = 0  # highest reported total
    last_position: int = 0  # position of the latest LessonProgressed
    last_position_at: datetime | None = None


class CourseSummary(StateModel):
    """A course's roll-up for one learner, as last derived from facts and structure."""

    status: ProgressStatus
    percent_complete: float
    total_modules: int
    completed_modules: int
    total_lessons: int
    completed_lessons: int
    total_quizzes: int
    completed_quizzes: int
    total_assignments: int
    completed_assignments: int
    total_points: int
    started_at: datetime | None
    completed_at: datetime | None
    last_activity_at: datetime | None
    updated_at: datetime


class CourseState(StateModel):
    enrollment_id: str | None = None
    enrolled_at: datetime | None = None
    lessons: dict[str, LessonState] = {}
    summary: CourseSummary | None = None  # None until enrolled
    # Set in the same table write that publishes CourseCompleted, so it is published once.
    completion_announced_at: datetime | None = None

    @property
    def enrolled(self) -> bool:
        return self.enrollment_id is not None


class LearnerState(StateModel):
    user_id: str
    version: int = 0
    created_at: datetime  # earliest event time seen for this learner
    updated_at: datetime  # latest event time that changed this learner
    courses: dict[str, CourseState] = {}


class KnownCourse(StateModel):
    """A course as the worker knows it from CourseUpdated events, newest of each part."""

    course_id: str
    title: str = ""
    title_updated_at: datetime | None = None
    structure: CourseStructure | None = None
    structure_updated_at: datetime | None = None
    structure_event_id: str = ""
