"""What the worker remembers per learner and per course: the values of its Faust tables.

Everything a learner did is kept as facts merged with commutative rules (min, max, union),
so applying the same event twice, or two events in either order, gives the same state.
Roll-ups are never stored as counters; ``CourseSummary`` is the last derivation, kept only to
notice when a derivation changed and to sum a learner's courses without re-reading them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from progress.models import CompetencyStatus, EvidenceType, ProgressStatus, SubmissionType
from progress.structure import CourseStructure


class StateModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def content_digest(*parts: str | tuple[str, ...] | list[str]) -> str:
    """A short fingerprint of bulky content the state does not keep: "" when every part is
    empty (the content is known without its event), else 32 hex digits of the SHA-256 of the
    parts as JSON. Equal content gives an equal digest, so a repeated event changes nothing;
    other content gives another, so the state (and its version) changes."""
    if not any(parts):
        return ""
    # ASCII JSON: any string encodes (lone surrogates included), lists and tuples alike.
    encoded = json.dumps(list(parts), separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def _digest_old_fields(data: Any, fields: tuple[str, ...], digest: str) -> Any:
    """States written before the bulky fields left the state: their content, as its digest.
    Keeps existing changelogs loading into the models (``extra="forbid"``)."""
    if isinstance(data, dict) and any(name in data for name in fields):
        parts = [data.get(name, "") for name in fields]
        data = {name: value for name, value in data.items() if name not in fields}
        data[digest] = content_digest(*parts)
    return data


class LessonState(StateModel):
    module_id: str  # as the lesson events named it; the course structure has the last word
    started_at: datetime  # earliest event of any kind for this lesson
    last_activity_at: datetime  # latest event of any kind
    completed_at: datetime | None = None  # earliest LessonCompleted
    percent: float = 0.0  # highest reported
    time_spent: int = 0  # highest reported total
    last_position: int = 0  # position of the latest LessonProgressed
    last_position_at: datetime | None = None


class ResponseState(StateModel):
    question_id: str
    # Of (selected_options, text_response): the answer itself only passes through to its
    # row (``items.attempt_rows``); the rules need its correctness and credit.
    answer_digest: str = ""
    correct: bool
    credit: float  # 0..1 of the question's credit
    time_spent: int
    answered_at: datetime  # of the answer kept: the latest
    answer_id: str  # its event id, to break ties on time
    first_answered_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _old_answer(cls, data: Any) -> Any:
        return _digest_old_fields(data, ("selected_options", "text_response"), "answer_digest")


class AttemptState(StateModel):
    quiz_id: str
    module_id: str
    lesson_id: str
    first_seen_at: datetime
    last_activity_at: datetime
    started_at: datetime | None = None
    total_questions: int | None = None
    responses: dict[str, ResponseState] = {}
    submitted_at: datetime | None = None  # earliest submission
    abandoned_at: datetime | None = None
    time_spent: int = 0  # highest total reported on submission
    announced: bool = False  # QuizCompleted published, recorded with the state


class GradeState(StateModel):
    score: float
    max_score: float | None
    feedback_digest: str = ""  # of the feedback, which passes through to the row
    graded_by: str
    graded_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _old_feedback(cls, data: Any) -> Any:
        return _digest_old_fields(data, ("feedback",), "feedback_digest")


# The parts of a submission's content, in the order its digest takes them.
SUBMISSION_CONTENT = ("text_content", "file_url", "link_url")


class SubmissionState(StateModel):
    assignment_id: str
    module_id: str
    lesson_id: str
    first_seen_at: datetime
    last_activity_at: datetime
    submission_type: SubmissionType
    # Of (text_content, file_url, link_url): the content passes through to the row
    # (``items.submission_row``), only its digest is kept, so the state stays small.
    content_digest: str = ""
    content_at: datetime  # the content kept is the latest saved or submitted
    submitted_at: datetime | None = None  # earliest submission
    grade: GradeState | None = None  # latest grade: a regrade replaces it
    announced: bool = False  # AssignmentSubmitted published

    @model_validator(mode="before")
    @classmethod
    def _old_content(cls, data: Any) -> Any:
        return _digest_old_fields(data, SUBMISSION_CONTENT, "content_digest")


class EvidenceFact(StateModel):
    """A completed item that is evidence of a competency (from the course structure)."""

    competency_id: str
    type: EvidenceType
    reference_id: str
    level: int
    at: datetime
    description: str = ""
    url: str = ""
    # When it came to hold, if after ``at``: a course structure that arrived later made the
    # item count (a lesson done before the structure counted it). None: from ``at``.
    known_at: datetime | None = None

    @property
    def held_from(self) -> datetime:
        return self.known_at or self.at


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
    # What the learner-wide derivations need, so they never re-read other courses.
    lesson_completions: tuple[datetime, ...] = ()  # counted lessons' completion times
    perfect_quiz_at: datetime | None = None  # earliest submitted attempt scoring 100%
    evidence: tuple[EvidenceFact, ...] = ()


class CourseState(StateModel):
    enrollment_id: str | None = None
    enrolled_at: datetime | None = None
    lessons: dict[str, LessonState] = {}
    quiz_attempts: dict[str, AttemptState] = {}
    submissions: dict[str, SubmissionState] = {}
    summary: CourseSummary | None = None  # None until enrolled
    # The CourseUpdated the rows were last derived with: a new structure can change an item
    # row (a max score, a module) without changing any fact or summary.
    derived_with: str = ""
    # Set in the same table write that publishes CourseCompleted, so it is published once.
    completion_announced_at: datetime | None = None

    @property
    def enrolled(self) -> bool:
        return self.enrollment_id is not None


class PathSummary(StateModel):
    """A learning path's roll-up for one learner, as last derived."""

    status: ProgressStatus
    percent_complete: float
    total_courses: int
    completed_courses: int
    current_course_id: str
    started_at: datetime | None
    completed_at: datetime | None
    last_activity_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CompetencySummary(StateModel):
    level: int
    status: CompetencyStatus
    acquired_at: datetime | None  # when the level first reached mastery
    evidence: tuple[EvidenceFact, ...]
    created_at: datetime
    updated_at: datetime


class LearnerState(StateModel):
    user_id: str
    version: int = 0
    created_at: datetime  # earliest event time seen for this learner
    updated_at: datetime  # latest event time that changed this learner
    courses: dict[str, CourseState] = {}
    time_zone: str = "UTC"
    time_zone_at: datetime | None = None
    # Local date (in the time zone of the day's first event) -> first activity that day.
    activity_days: dict[str, datetime] = {}
    external_evidence: dict[str, EvidenceFact] = {}  # the newest version of each
    superseded_evidence: dict[str, tuple[EvidenceFact, ...]] = {}  # the older ones, oldest first
    # Derived learner-wide roll-ups, kept to notice changes (like CourseSummary).
    paths: dict[str, PathSummary] = {}
    paths_completed: dict[str, datetime] = {}  # when each path was first completed
    # Entry n-1: the completion time of the n-th counted lesson when the learner first had n,
    # kept though a lesson may leave its course's structure later.
    lessons_reached: tuple[datetime, ...] = ()
    competencies: dict[str, CompetencySummary] = {}
    # Awards, recorded in the same table write that publishes them: each happens once.
    achievements: dict[str, datetime] = {}
    competencies_acquired: dict[str, datetime] = {}
    # The points of the awards held, as last derived: an achievement's points can change.
    award_points: int = 0


class StructureVersion(StateModel):
    """A course structure that was in force from ``updated_at`` until the next one."""

    updated_at: datetime
    event_id: str
    structure: CourseStructure


class KnownCourse(StateModel):
    """A course as the worker knows it from CourseUpdated events, newest of each part."""

    course_id: str
    title: str = ""
    title_updated_at: datetime | None = None
    structure: CourseStructure | None = None
    structure_updated_at: datetime | None = None
    structure_event_id: str = ""
    # Older structures, oldest first (at most ``KEPT_STRUCTURES``): an activity that arrives
    # after a newer structure is judged for completion by the one in force at its time.
    earlier: tuple[StructureVersion, ...] = ()
