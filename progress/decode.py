"""Turning the bytes of a Kafka message into a typed event, or a reason a person can act on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import ValidationError

from progress.catalog import (
    AchievementUpdated,
    CatalogEntry,
    CompetencyUpdated,
    LearningPathUpdated,
    catalog_entry_adapter,
)
from progress.events import (
    AssignmentEventT,
    CourseUpdated,
    ExternalEvidenceRecorded,
    LearnerErasureRequested,
    LearnerProfileUpdated,
    QuizEventT,
    UserEnrolled,
    assignment_activity_adapter,
    lesson_activity_adapter,
    quiz_activity_adapter,
)
from progress.facts import LessonEventT

MAX_MESSAGE_BYTES = 1_000_000

StreamKind = Literal[
    # Learner activity, keyed by user_id.
    "enrollments",
    "lesson-activity",
    "quiz-activity",
    "assignment-activity",
    "competency-evidence",
    "learner-profiles",
    "erasure-requests",
    # Catalogs, keyed by the entry's id.
    "course-updates",
    "learning-paths",
    "competencies",
    "achievements",
    # Any catalog entry, as the worker copies it to every partition.
    "catalog-broadcast",
]
CatalogEntryT = CourseUpdated | LearningPathUpdated | CompetencyUpdated | AchievementUpdated
Consumed = (
    UserEnrolled
    | LessonEventT
    | QuizEventT
    | AssignmentEventT
    | ExternalEvidenceRecorded
    | LearnerProfileUpdated
    | LearnerErasureRequested
    | CatalogEntryT
)

_PARSERS: dict[StreamKind, Callable[[bytes], Consumed]] = {
    "enrollments": UserEnrolled.model_validate_json,
    "lesson-activity": lesson_activity_adapter.validate_json,
    "quiz-activity": quiz_activity_adapter.validate_json,
    "assignment-activity": assignment_activity_adapter.validate_json,
    "competency-evidence": ExternalEvidenceRecorded.model_validate_json,
    "learner-profiles": LearnerProfileUpdated.model_validate_json,
    "erasure-requests": LearnerErasureRequested.model_validate_json,
    "course-updates": CourseUpdated.model_validate_json,
    "learning-paths": LearningPathUpdated.model_validate_json,
    "competencies": CompetencyUpdated.model_validate_json,
    "achievements": AchievementUpdated.model_validate_json,
    "catalog-broadcast": catalog_entry_adapter.validate_json,
}


class InvalidEvent(ValueError):
    """A message this service cannot process; ``reason`` says why, for the dead-letter record."""

    def __init__(self, reason: str, error_type: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(x) for x in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def decode_event(kind: StreamKind, key: bytes | None, value: bytes | None) -> Consumed:
    """The event in ``value``, checked against the key it was sent with.

    Keys matter: a learner's events must share a partition, so the key must be the user id
    (the entry's id on catalog topics), or the learner's state would be split across workers.
    """
    if not value:
        raise InvalidEvent("empty message: a value with a JSON event is required", "empty")
    if len(value) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(
            f"message of {len(value)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}", "oversize"
        )
    try:
        event = _PARSERS[kind](value)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]["type"] if err.errors() else ""
        error_type = {"json_invalid": "malformed-json", "unknown_event_type": "unknown-type"}.get(
            first, "invalid"
        )
        raise InvalidEvent(_describe(err), error_type) from err

    catalog = isinstance(event, CourseUpdated | CatalogEntry)
    expected = event.id if catalog else event.user_id  # type: ignore[union-attr]
    what = "entry id" if catalog else "user_id"
    if key is None or key.decode("utf-8", "replace") != expected:
        shown = None if key is None else key.decode("utf-8", "replace")
        raise InvalidEvent(
            f"message key {shown!r} must be the event's {what} {expected!r}", "wrong-key"
        )
    return event
