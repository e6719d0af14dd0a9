"""The event contract: what producers send this service and what it publishes.

Consumed events accept snake_case or the seed's own names (``user_id`` or ``UserID``).
Every consumed event has an ``event_id``; when a producer leaves it out, it is derived from
the event's content, so the same event sent twice has the same id.
Published events are snake_case and carry a deterministic ``event_id``: a replay publishes
the same id again, and consumers drop what they have seen (docs/events.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Discriminator, Field, Tag, TypeAdapter, model_validator

from progress.ranges import (
    Fraction,
    Level,
    MaxScore,
    Percent,
    Position,
    QuestionCount,
    Score,
    Seconds,
)
from progress.schema import (
    EventTime,
    Id,
    InputModel,
    OutputModel,
    content_hash,
    once_id,
    stable_id,
)
from progress.structure import CourseStructure

# --------------------------------------------------------------------------- consumed


class ConsumedEvent(InputModel):
    event_id: str | None = Field(default=None, min_length=1, max_length=128)

    @model_validator(mode="after")
    def _derive_event_id(self) -> Self:
        if self.event_id is None:
            content = self.model_dump(mode="json", exclude={"event_id"})
            object.__setattr__(self, "event_id", content_hash(content))
        return self

    @property
    def event_time(self) -> datetime:
        raise NotImplementedError


class UserEnrolled(ConsumedEvent):
    """From the Course Service, on ``lms.enrollments`` keyed by user_id."""

    type: Literal["UserEnrolled"] = "UserEnrolled"
    id: Id  # the enrollment id
    course_id: Id
    user_id: Id
    enrolled_at: EventTime

    @property
    def event_time(self) -> datetime:
        return self.enrolled_at


class CourseUpdated(ConsumedEvent):
    """From the Course Service, on ``lms.course-updates`` keyed by course id (compacted).

    ``modules`` is this service's extension: the course structure. An update without it
    changes the title only and keeps the structure already known.
    """

    type: Literal["CourseUpdated"] = "CourseUpdated"
    id: Id  # the course id
    title: str = ""
    updated_at: EventTime
    modules: CourseStructure | None = None

    @model_validator(mode="before")
    @classmethod
    def _wrap_modules(cls, data: Any) -> Any:
        # Producers send "modules": [...] and "competencies": [...] beside the title; the
        # structure model takes both and validates them as a whole.
        if isinstance(data, dict):
            for name in ("modules", "Modules"):
                if isinstance(data.get(name), list):
                    grants = data.get("competencies", data.get("Competencies", []))
                    data = {**data, name: {"modules": data[name], "competencies": grants}}
        return data

    @property
    def event_time(self) -> datetime:
        return self.updated_at


class LessonEvent(ConsumedEvent):
    user_id: Id
    course_id: Id
    module_id: Id
    lesson_id: Id


class LessonStarted(LessonEvent):
    type: Literal["LessonStarted"]
    started_at: EventTime

    @property
    def event_time(self) -> datetime:
        return self.started_at


class LessonProgressed(LessonEvent):
    """Progress inside a lesson; ``time_spent`` is the total so far, not an increment,
    so a duplicated or reordered event cannot inflate it."""

    type: Literal["LessonProgressed"]
    occurred_at: EventTime
    position: Position = 0
    time_spent: Seconds = 0
    percent_complete: Percent = 0.0

    @property
    def event_time(self) -> datetime:
        return self.occurred_at


class LessonCompleted(LessonEvent):
    """The seed's LessonCompleted. ``type`` may be omitted on this one for seed producers."""

    type: Literal["LessonCompleted"] = "LessonCompleted"
    completed_at: EventTime

    @property
    def event_time(self) -> datetime:
        return self.completed_at


def _lesson_event_type(data: Any) -> str:
    if isinstance(data, dict):
        # Seed producers send LessonCompleted without a type: that is what it defaults to.
        return str(data.get("type") or data.get("Type") or "LessonCompleted")
    return str(getattr(data, "type", ""))


LessonActivity = Annotated[
    Annotated[LessonStarted, Tag("LessonStarted")]
    | Annotated[LessonProgressed, Tag("LessonProgressed")]
    | Annotated[LessonCompleted, Tag("LessonCompleted")],
    Discriminator(
        _lesson_event_type,
        custom_error_type="unknown_event_type",
        custom_error_message=(
            "unknown lesson event type: expected LessonStarted, LessonProgressed or LessonCompleted"
        ),
    ),
]
lesson_activity_adapter: TypeAdapter[LessonStarted | LessonProgressed | LessonCompleted] = (
    TypeAdapter(LessonActivity)
)


class QuizEvent(ConsumedEvent):
    """On ``lms.quiz-activity`` keyed by user_id. ``attempt_id`` names one attempt."""

    user_id: Id
    course_id: Id
    module_id: Id
    lesson_id: str = Field(default="", max_length=128)
    quiz_id: Id
    attempt_id: Id


class QuizAttemptStarted(QuizEvent):
    type: Literal["QuizAttemptStarted"]
    started_at: EventTime
    total_questions: QuestionCount

    @property
    def event_time(self) -> datetime:
        return self.started_at


class QuizQuestionAnswered(QuizEvent):
    """One answer; a question answered again keeps the latest answer (by ``answered_at``).
    ``score`` is the fraction of the question's credit earned (1 or 0 unless partial)."""

    type: Literal["QuizQuestionAnswered"]
    answered_at: EventTime
    question_id: Id
    selected_options: tuple[str, ...] = Field(default=(), max_length=100)
    text_response: str = Field(default="", max_length=20_000)
    correct: bool
    score: Fraction | None = None
    time_spent: Seconds = 0

    @property
    def credit(self) -> float:
        if self.score is not None:
            return self.score
        return 1.0 if self.correct else 0.0

    @property
    def event_time(self) -> datetime:
        return self.answered_at


class QuizAttemptSubmitted(QuizEvent):
    type: Literal["QuizAttemptSubmitted"]
    submitted_at: EventTime
    time_spent: Seconds = 0  # the attempt's total

    @property
    def event_time(self) -> datetime:
        return self.submitted_at


class QuizAttemptAbandoned(QuizEvent):
    type: Literal["QuizAttemptAbandoned"]
    abandoned_at: EventTime

    @property
    def event_time(self) -> datetime:
        return self.abandoned_at


class AssignmentEvent(ConsumedEvent):
    """On ``lms.assignment-activity`` keyed by user_id. ``submission_id`` names one
    submission; a resubmission is a new submission_id, a regrade the same one."""

    user_id: Id
    course_id: Id
    module_id: Id
    lesson_id: str = Field(default="", max_length=128)
    assignment_id: Id
    submission_id: Id


class AssignmentContent(AssignmentEvent):
    submission_type: Literal["text", "file", "link"]
    text_content: str = Field(default="", max_length=200_000)
    file_url: str = Field(default="", max_length=2_000)
    link_url: str = Field(default="", max_length=2_000)


class AssignmentDraftSaved(AssignmentContent):
    type: Literal["AssignmentDraftSaved"]
    saved_at: EventTime

    @property
    def event_time(self) -> datetime:
        return self.saved_at


class AssignmentSubmissionReceived(AssignmentContent):
    """The learner submitted (the ``AssignmentSubmitted`` of the LMS; this service
    publishes its own AssignmentSubmitted in turn)."""

    type: Literal["AssignmentSubmitted"]
    submitted_at: EventTime

    @property
    def event_time(self) -> datetime:
        return self.submitted_at


class AssignmentGraded(AssignmentEvent):
    type: Literal["AssignmentGraded"]
    graded_at: EventTime
    score: Score
    max_score: MaxScore | None = None  # else the structure's max_score
    feedback: str = Field(default="", max_length=20_000)
    graded_by: Id

    @property
    def event_time(self) -> datetime:
        return self.graded_at


class ExternalEvidenceRecorded(ConsumedEvent):
    """Evidence of a competency from outside the LMS (a certificate, an assessment), on
    ``lms.competency-evidence`` keyed by user_id. The same evidence_id again replaces it."""

    type: Literal["ExternalEvidenceRecorded"] = "ExternalEvidenceRecorded"
    user_id: Id
    competency_id: Id
    evidence_id: Id
    level: Level
    description: str = Field(default="", max_length=2_000)
    url: str = Field(default="", max_length=2_000)
    recorded_at: EventTime

    @property
    def event_time(self) -> datetime:
        return self.recorded_at


class LearnerProfileUpdated(ConsumedEvent):
    """On ``lms.learner-profiles`` keyed by user_id: the learner's IANA time zone, which
    activity streaks are counted in (UTC until one arrives)."""

    type: Literal["LearnerProfileUpdated"] = "LearnerProfileUpdated"
    user_id: Id
    time_zone: str
    updated_at: EventTime

    @model_validator(mode="after")
    def _known_zone(self) -> Self:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"unknown time zone {self.time_zone!r}") from err
        return self

    @property
    def event_time(self) -> datetime:
        return self.updated_at


class LearnerErasureRequested(ConsumedEvent):
    """A right-to-erasure request, on ``lms.erasure-requests`` keyed by user_id: every
    record of the learner is deleted from the worker's tables, PostgreSQL and Redis."""

    type: Literal["LearnerErasureRequested"] = "LearnerErasureRequested"
    user_id: Id
    request_id: str = Field(min_length=1, max_length=128)
    requested_at: EventTime

    @property
    def event_time(self) -> datetime:
        return self.requested_at


def typed_discriminator(data: Any) -> str:
    """The ``type`` (or ``Type``) of an event, which picks its model in a union."""
    if isinstance(data, dict):
        return str(data.get("type") or data.get("Type") or "")
    return str(getattr(data, "type", ""))


QuizActivity = Annotated[
    Annotated[QuizAttemptStarted, Tag("QuizAttemptStarted")]
    | Annotated[QuizQuestionAnswered, Tag("QuizQuestionAnswered")]
    | Annotated[QuizAttemptSubmitted, Tag("QuizAttemptSubmitted")]
    | Annotated[QuizAttemptAbandoned, Tag("QuizAttemptAbandoned")],
    Discriminator(
        typed_discriminator,
        custom_error_type="unknown_event_type",
        custom_error_message="unknown quiz event type: expected QuizAttemptStarted, "
        "QuizQuestionAnswered, QuizAttemptSubmitted or QuizAttemptAbandoned",
    ),
]
QuizEventT = QuizAttemptStarted | QuizQuestionAnswered | QuizAttemptSubmitted | QuizAttemptAbandoned
quiz_activity_adapter: TypeAdapter[QuizEventT] = TypeAdapter(QuizActivity)

AssignmentActivity = Annotated[
    Annotated[AssignmentDraftSaved, Tag("AssignmentDraftSaved")]
    | Annotated[AssignmentSubmissionReceived, Tag("AssignmentSubmitted")]
    | Annotated[AssignmentGraded, Tag("AssignmentGraded")],
    Discriminator(
        typed_discriminator,
        custom_error_type="unknown_event_type",
        custom_error_message="unknown assignment event type: expected AssignmentDraftSaved, "
        "AssignmentSubmitted or AssignmentGraded",
    ),
]
AssignmentEventT = AssignmentDraftSaved | AssignmentSubmissionReceived | AssignmentGraded
assignment_activity_adapter: TypeAdapter[AssignmentEventT] = TypeAdapter(AssignmentActivity)


# --------------------------------------------------------------------------- published


class PublishedEvent(OutputModel):
    event_id: str


class ProgressUpdated(PublishedEvent):
    """A learner's progress in a course changed. ``percent_complete`` is the course's;
    module_id and lesson_id name the item that changed it ("" for a structure change)."""

    user_id: str
    course_id: str
    module_id: str
    lesson_id: str
    percent_complete: float
    status: str
    updated_at: datetime

    @staticmethod
    def id_for(user_id: str, course_id: str, version: int) -> str:
        return once_id("ProgressUpdated", user_id, course_id, str(version))


class CourseCompleted(PublishedEvent):
    user_id: str
    course_id: str
    completed_at: datetime

    @staticmethod
    def id_for(user_id: str, course_id: str) -> str:
        return stable_id("CourseCompleted", user_id, course_id)


class QuizCompleted(PublishedEvent):
    user_id: str
    course_id: str
    quiz_id: str
    score: float
    passed: bool
    completed_at: datetime


class AssignmentSubmitted(PublishedEvent):
    user_id: str
    course_id: str
    assignment_id: str
    submitted_at: datetime


class AchievementEarned(PublishedEvent):
    user_id: str
    achievement_id: str
    achievement_name: str
    earned_at: datetime


class CompetencyAcquired(PublishedEvent):
    user_id: str
    competency_id: str
    competency_name: str
    level: int
    acquired_at: datetime


class LearnerErased(PublishedEvent):
    """The learner's records are gone from the worker's tables and are being deleted from
    PostgreSQL and Redis by the sink. Carries nothing but what identifies the request."""

    user_id: str
    request_id: str
    erased_at: datetime

    @staticmethod
    def id_for(user_id: str, request_id: str, erased_at: datetime) -> str:
        """One id per erasure: a replay of the same request keeps it, while a second
        erasure (a later ``requested_at``, even with a reused ``request_id``) gets its own."""
        return stable_id("LearnerErased", user_id, request_id, erased_at.isoformat())


class DeadLetter(OutputModel):
    """A message that could not be processed, with everything needed to fix and re-drive it."""

    source_topic: str
    partition: int
    offset: int
    key: str | None  # utf-8 text of the key, or None
    value: str  # the original bytes, base64; only the first part when value_truncated
    value_bytes: int = 0  # the original's length
    value_sha256: str = ""  # hex digest of the whole original
    value_truncated: bool = False  # too large to carry whole (see docs/events.md)
    reason: str
    error_type: str
    failed_at: datetime
