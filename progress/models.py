"""The seed's 13 data models, as the rows this service derives and stores.

Field names are the seed's in snake_case; one PostgreSQL table per model (adapters/migrations).
Times are event time, not wall-clock time, so replaying the same events derives identical
rows; a time the seed gives as a Go zero value is ``None`` here until it happened.
Per-learner rows carry ``version``: the learner's state version that derived them. The sink
never lets a row of a lower version overwrite a higher one.

Bulky content (an answer's options and text, a submission's text and URLs, a grade's
feedback) is not kept in the worker's state, only a digest of it: such a field (``unchanged``)
is filled only in the snapshot of an event that carried the content kept (or when the content
is empty); elsewhere it is ``None``, "unchanged": the sink keeps the stored value.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal, TypeVar

from progress.schema import OutputModel
from progress.trusted import replaced

ProgressStatus = Literal["not-started", "in-progress", "completed"]
AttemptStatus = Literal["in-progress", "completed", "abandoned"]
SubmissionStatus = Literal["draft", "submitted", "graded"]
SubmissionType = Literal["text", "file", "link"]
EvidenceType = Literal["course", "quiz", "assignment", "external"]
CompetencyStatus = Literal["not-started", "in-progress", "mastered"]


class Row(OutputModel):
    """A row of one table, keyed by ``id`` (deterministic: see ``schema.stable_id``)."""

    table: ClassVar[str]
    # Fields that may be None, "unchanged": the newest value offered for them is kept.
    unchanged: ClassVar[tuple[str, ...]] = ()
    id: str


class VersionedRow(Row):
    user_id: str
    version: int


class UserProgress(VersionedRow):
    table: ClassVar[str] = "user_progress"
    total_courses: int
    completed_courses: int
    in_progress_courses: int
    total_lessons: int
    completed_lessons: int
    total_quizzes: int
    completed_quizzes: int
    total_assignments: int
    completed_assignments: int
    total_points: int
    last_activity_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # Beyond the seed's model, for dashboards: the run of consecutive days with activity that
    # ends on the learner's last active day, days in the learner's time zone
    # (LearnerProfileUpdated; UTC until one arrives). A reader judges whether the run still
    # goes on: it does while ``last_active_day`` is the reader's today or yesterday.
    current_streak_days: int = 0
    last_active_day: date | None = None


class CourseProgress(VersionedRow):
    table: ClassVar[str] = "course_progress"
    course_id: str
    enrollment_id: str
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
    created_at: datetime
    updated_at: datetime


class ModuleProgress(VersionedRow):
    table: ClassVar[str] = "module_progress"
    course_id: str
    module_id: str
    status: ProgressStatus
    percent_complete: float
    total_lessons: int
    completed_lessons: int
    total_quizzes: int
    completed_quizzes: int
    total_assignments: int
    completed_assignments: int
    started_at: datetime | None
    completed_at: datetime | None
    last_activity_at: datetime | None
    created_at: datetime
    updated_at: datetime


class LessonProgress(VersionedRow):
    table: ClassVar[str] = "lesson_progress"
    course_id: str
    module_id: str
    lesson_id: str
    status: ProgressStatus
    percent_complete: float
    time_spent: int
    last_position: int
    completion_criteria: str
    started_at: datetime | None
    completed_at: datetime | None
    last_activity_at: datetime | None
    created_at: datetime
    updated_at: datetime


class QuizAttempt(VersionedRow):
    table: ClassVar[str] = "quiz_attempts"
    course_id: str
    module_id: str
    lesson_id: str
    quiz_id: str
    status: AttemptStatus
    score: float
    total_questions: int
    correct_answers: int
    incorrect_answers: int
    unanswered_questions: int
    time_spent: int
    passed: bool
    attempt_number: int
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class QuizQuestionResponse(VersionedRow):
    table: ClassVar[str] = "quiz_question_responses"
    unchanged: ClassVar[tuple[str, ...]] = ("selected_options", "text_response")
    quiz_attempt_id: str
    question_id: str
    selected_options: list[str] | None
    text_response: str | None
    correct: bool
    score: float
    time_spent: int
    created_at: datetime
    updated_at: datetime


class AssignmentSubmission(VersionedRow):
    table: ClassVar[str] = "assignment_submissions"
    unchanged: ClassVar[tuple[str, ...]] = ("text_content", "file_url", "link_url", "feedback")
    course_id: str
    module_id: str
    lesson_id: str
    assignment_id: str
    status: SubmissionStatus
    submission_type: SubmissionType
    text_content: str | None
    file_url: str | None
    link_url: str | None
    score: float | None
    max_score: float
    feedback: str | None
    graded_by: str
    submitted_at: datetime | None
    graded_at: datetime | None
    created_at: datetime
    updated_at: datetime


class LearningPathProgress(VersionedRow):
    table: ClassVar[str] = "learning_path_progress"
    learning_path_id: str
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


class Competency(Row):
    """Catalog entry: not per learner, versioned by its own ``updated_at``."""

    table: ClassVar[str] = "competencies"
    name: str
    description: str
    category: str
    level: Literal["beginner", "intermediate", "advanced"]
    created_at: datetime
    updated_at: datetime


class CompetencyEvidence(VersionedRow):
    table: ClassVar[str] = "competency_evidence"
    user_competency_id: str
    type: EvidenceType
    reference_id: str
    description: str
    url: str
    created_at: datetime
    updated_at: datetime


class UserCompetency(VersionedRow):
    table: ClassVar[str] = "user_competencies"
    competency_id: str
    level: int
    status: CompetencyStatus
    evidence: list[CompetencyEvidence]
    acquired_at: datetime | None
    created_at: datetime
    updated_at: datetime


class Achievement(Row):
    """Catalog entry: not per learner, versioned by its own ``updated_at``."""

    table: ClassVar[str] = "achievements"
    name: str
    description: str
    image_url: str
    criteria: str
    points: int
    category: str
    created_at: datetime
    updated_at: datetime


class UserAchievement(VersionedRow):
    table: ClassVar[str] = "user_achievements"
    achievement_id: str
    earned_at: datetime
    created_at: datetime
    updated_at: datetime


RowT = TypeVar("RowT", bound=Row)


def fill_unchanged(row: RowT, earlier: Row) -> RowT:
    """``row`` with each ``unchanged`` field it leaves None taken from ``earlier``, a row
    of the same id at the same or a lower version, offered before it. Content only changes
    with an event that carries it, so the last content offered is still the content."""
    missing = {
        name: getattr(earlier, name)
        for name in row.unchanged
        if getattr(row, name) is None and getattr(earlier, name) is not None
    }
    return replaced(row, **missing) if missing else row


ALL_ROW_MODELS: tuple[type[Row], ...] = (
    UserProgress,
    CourseProgress,
    ModuleProgress,
    LessonProgress,
    QuizAttempt,
    QuizQuestionResponse,
    AssignmentSubmission,
    LearningPathProgress,
    Competency,
    UserCompetency,
    CompetencyEvidence,
    Achievement,
    UserAchievement,
)
