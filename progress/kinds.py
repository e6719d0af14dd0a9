"""The registry of kinds: every input the service consumes, with the model that reads it and
the rule that applies it, and every event it publishes.

One line per kind. Adding an input event type is a model (``events.py``, ``catalog.py``), a
rule (``outcomes.py``) and one line in ``INPUT_KINDS``; everything else reads the line:
decoding (``decode.py``), the topic's name (``adapters/topics.py``: ``lms.<kind>``), the
worker's dispatch (``streams/learners.py``), re-drive, and the admin API's catalog kinds
(``adapters/publishing.py``). Adding a published event is a model and one line in
``PUBLISHED`` (its topic: ``progress.<kind>``).

Kinds name topics, not event types: a topic may carry a family of types (``lesson-activity``:
LessonStarted, LessonProgressed, LessonCompleted), dispatched by the family's base class; a
new type in a family is a model and its rule, and no line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from progress.catalog import (
    AchievementUpdated,
    CompetencyUpdated,
    LearningPathUpdated,
    catalog_entry_adapter,
)
from progress.events import (
    AchievementEarned,
    AssignmentEvent,
    AssignmentSubmitted,
    CompetencyAcquired,
    ConsumedEvent,
    CourseCompleted,
    CourseUpdated,
    ExternalEvidenceRecorded,
    LearnerErased,
    LearnerErasureRequested,
    LearnerProfileUpdated,
    LessonEvent,
    ProgressUpdated,
    PublishedEvent,
    QuizCompleted,
    QuizEvent,
    UserEnrolled,
    assignment_activity_adapter,
    lesson_activity_adapter,
    quiz_activity_adapter,
)
from progress.learner_rules import Catalog
from progress.outcomes import (
    Outcome,
    on_assignment_activity,
    on_enrollment,
    on_external_evidence,
    on_lesson_activity,
    on_profile,
    on_quiz_activity,
)
from progress.state import KnownCourse, LearnerState

# A kind's name: its line's ``name`` below.
StreamKind = str


@dataclass(frozen=True, slots=True)
class Alone:
    """An event about one learner alone: ``derive(state, event, catalog)``."""

    derive: Callable[[LearnerState | None, Any, Catalog], Outcome]


@dataclass(frozen=True, slots=True)
class InCourse:
    """An event of one learner in a course: ``derive(state, event, course, catalog)`` also
    reads the course's structure (None while unknown), and the learner becomes one of the
    course's members (the index a course or catalog change re-derives)."""

    derive: Callable[[LearnerState | None, Any, KnownCourse | None, Catalog], Outcome]


# Events the worker applies itself, since they reach many learners (or, an erasure, delete
# one): a course's structure or title, a catalog entry, a learner's erasure.
WorkerStep = Literal["course", "catalog", "erasure"]
Handling = Alone | InCourse | WorkerStep


@dataclass(frozen=True, slots=True)
class InputKind:
    """One consumed topic: what it carries, how it is parsed, what its messages are keyed by
    (the key must equal that field of the event), and how the worker applies it."""

    name: StreamKind
    model: type[ConsumedEvent] | None  # None: any catalog entry (the broadcast)
    handling: Handling | None  # None: each event as its own model's line says
    parse: Callable[[bytes], Any]
    keyed_by: Literal["user_id", "id"] = "user_id"
    # A catalog producers publish: the kind's name in the admin API and ``progress catalog``.
    catalog: str | None = None
    # Written by the worker itself (``progress.<name>``), not by producers (``lms.<name>``).
    internal: bool = False


def _kind(
    name: StreamKind,
    model: type[ConsumedEvent],
    handling: Handling,
    parse: TypeAdapter[Any] | None = None,
    *,
    catalog: str | None = None,
) -> InputKind:
    validate = parse.validate_json if parse is not None else model.model_validate_json
    keyed_by: Literal["user_id", "id"] = "id" if catalog else "user_id"
    return InputKind(name, model, handling, validate, keyed_by, catalog)


INPUT_KINDS: tuple[InputKind, ...] = (
    # Learner activity, keyed by user_id.
    _kind("enrollments", UserEnrolled, InCourse(on_enrollment)),
    _kind("lesson-activity", LessonEvent, InCourse(on_lesson_activity), lesson_activity_adapter),
    _kind("quiz-activity", QuizEvent, InCourse(on_quiz_activity), quiz_activity_adapter),
    _kind(
        "assignment-activity",
        AssignmentEvent,
        InCourse(on_assignment_activity),
        assignment_activity_adapter,
    ),
    _kind("competency-evidence", ExternalEvidenceRecorded, Alone(on_external_evidence)),
    _kind("learner-profiles", LearnerProfileUpdated, Alone(on_profile)),
    _kind("erasure-requests", LearnerErasureRequested, "erasure"),
    # Catalogs, keyed by the entry's id.
    _kind("course-updates", CourseUpdated, "course", catalog="courses"),
    _kind("learning-paths", LearningPathUpdated, "catalog", catalog="learning-paths"),
    _kind("competencies", CompetencyUpdated, "catalog", catalog="competencies"),
    _kind("achievements", AchievementUpdated, "catalog", catalog="achievements"),
    # Any catalog entry, as the worker copies it to every partition.
    InputKind(
        "catalog-broadcast",
        None,
        None,
        catalog_entry_adapter.validate_json,
        keyed_by="id",
        internal=True,
    ),
)

INPUTS: dict[StreamKind, InputKind] = {kind.name: kind for kind in INPUT_KINDS}
CATALOG_INPUTS: dict[str, InputKind] = {k.catalog: k for k in INPUT_KINDS if k.catalog}

_HANDLING: dict[type[BaseModel], Handling] = {
    kind.model: kind.handling
    for kind in INPUT_KINDS
    if kind.model is not None and kind.handling is not None
}


def handling_of(event: ConsumedEvent) -> Handling:
    """How the worker applies ``event``: the line of its model, or of the family it is of."""
    for cls in type(event).__mro__:
        found = _HANDLING.get(cls)
        if found is not None:
            return found
    raise LookupError(f"no input kind handles {type(event).__name__}")


# Published events, keyed by user_id, each on its own topic.
PUBLISHED: dict[type[PublishedEvent], str] = {
    ProgressUpdated: "progress-updated",
    CourseCompleted: "course-completed",
    QuizCompleted: "quiz-completed",
    AssignmentSubmitted: "assignment-submitted",
    AchievementEarned: "achievement-earned",
    CompetencyAcquired: "competency-acquired",
    LearnerErased: "learner-erased",
}
