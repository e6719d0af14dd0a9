"""Merging one consumed event into what is known: pure, idempotent, order-independent.

Each rule is a join (min, max, union, newest-wins with a tie-break), so a duplicate changes
nothing and a late event lands where it would have landed in order. Event time moves
StartedAt only backward and LastActivityAt only forward.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from progress.errors import ConflictingIds
from progress.events import (
    AssignmentContent,
    AssignmentEventT,
    AssignmentSubmissionReceived,
    CourseUpdated,
    ExternalEvidenceRecorded,
    LearnerProfileUpdated,
    LessonCompleted,
    LessonProgressed,
    LessonStarted,
    QuizAttemptStarted,
    QuizAttemptSubmitted,
    QuizEventT,
    QuizQuestionAnswered,
    UserEnrolled,
)
from progress.schema import EARLIEST_EVENT_TIME
from progress.state import (
    AttemptState,
    CourseState,
    EvidenceFact,
    GradeState,
    KnownCourse,
    LearnerState,
    LessonState,
    ResponseState,
    StructureVersion,
    SubmissionState,
    content_digest,
)
from progress.trusted import replaced


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
    return replaced(state, **{"courses": {**state.courses, course_id: course}})


def merge_enrollment(course: CourseState, event: UserEnrolled) -> CourseState:
    """The earliest enrollment wins (ties by id), so re-sent enrollments change nothing."""
    if course.enrolled_at is not None and course.enrollment_id is not None:
        current = (course.enrolled_at, course.enrollment_id)
        if current <= (event.enrolled_at, event.id):
            return course
    return replaced(course, **{"enrollment_id": event.id, "enrolled_at": event.enrolled_at})


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
    return replaced(lesson, **update)


# Enough for any course edited while its learners work through it; older ones are dropped.
KEPT_STRUCTURES = 16


def merge_course_update(known: KnownCourse | None, event: CourseUpdated) -> KnownCourse:
    """Newest title and newest structure win, each on its own clock.

    A title-only update never erases a structure, and a late structure is still taken if it
    is newer than the one held. Equal times are broken by event id, so every worker that
    sees the same two updates keeps the same one. The structures it replaced, or that arrived
    too late to replace it, are kept in ``earlier``.
    """
    known = known or KnownCourse(course_id=event.id)
    update: dict[str, object] = {}
    title_at = known.title_updated_at
    if title_at is None or event.updated_at > title_at:
        update.update(title=event.title, title_updated_at=event.updated_at)
    if event.modules is not None:
        incoming = StructureVersion(
            updated_at=event.updated_at, event_id=event.event_id or "", structure=event.modules
        )
        versions = {v.event_id: v for v in known.earlier}
        if known.structure is not None and known.structure_updated_at is not None:
            versions[known.structure_event_id] = StructureVersion(
                updated_at=known.structure_updated_at,
                event_id=known.structure_event_id,
                structure=known.structure,
            )
        versions[incoming.event_id] = incoming
        ordered = sorted(versions.values(), key=lambda v: (v.updated_at, v.event_id))
        newest = ordered[-1]
        update.update(
            structure=newest.structure,
            structure_updated_at=newest.updated_at,
            structure_event_id=newest.event_id,
            earlier=tuple(ordered[:-1][-KEPT_STRUCTURES:]),
        )
    return replaced(known, **update) if update else known


def answer_digest(event: QuizQuestionAnswered) -> str:
    """What a kept answer remembers of the answer itself (``ResponseState.answer_digest``)."""
    return content_digest(event.selected_options, event.text_response)


def submission_digest(event: AssignmentContent) -> str:
    """What kept content remembers of the content (``SubmissionState.content_digest``)."""
    return content_digest(event.text_content, event.file_url, event.link_url)


def merge_quiz_event(attempt: AttemptState | None, event: QuizEventT) -> AttemptState:
    """Answers keep the latest by answer time; the earliest submission counts; an attempt
    that was submitted is never abandoned, whatever order the two arrive in."""
    at = event.event_time
    if attempt is not None and attempt.quiz_id != event.quiz_id:
        raise ConflictingIds(
            f"attempt {event.attempt_id!r} belongs to quiz {attempt.quiz_id!r}, "
            f"not {event.quiz_id!r}"
        )
    if attempt is None:
        attempt = AttemptState(
            quiz_id=event.quiz_id,
            module_id=event.module_id,
            lesson_id=event.lesson_id,
            first_seen_at=at,
            last_activity_at=at,
        )
    update: dict[str, object] = {
        "first_seen_at": min(attempt.first_seen_at, at),
        "last_activity_at": max(attempt.last_activity_at, at),
    }
    if isinstance(event, QuizAttemptStarted):
        update["started_at"] = earliest(attempt.started_at, at)
        update["total_questions"] = event.total_questions
    elif isinstance(event, QuizQuestionAnswered):
        held = attempt.responses.get(event.question_id)
        # Ties on time are broken by event id, so every order keeps the same answer.
        if held is None or (at, event.event_id or "") > (held.answered_at, held.answer_id):
            response = ResponseState(
                question_id=event.question_id,
                answer_digest=answer_digest(event),
                correct=event.correct,
                credit=event.credit,
                time_spent=event.time_spent,
                answered_at=at,
                answer_id=event.event_id or "",
                first_answered_at=min(at, held.first_answered_at) if held else at,
            )
        else:
            response = replaced(held, **{"first_answered_at": min(at, held.first_answered_at)})
        update["responses"] = {**attempt.responses, event.question_id: response}
    elif isinstance(event, QuizAttemptSubmitted):
        update["submitted_at"] = earliest(attempt.submitted_at, at)
        update["time_spent"] = max(attempt.time_spent, event.time_spent)
    else:
        update["abandoned_at"] = earliest(attempt.abandoned_at, at)
    return replaced(attempt, **update)


def merge_assignment_event(
    submission: SubmissionState | None, event: AssignmentEventT
) -> SubmissionState:
    """Content keeps the latest saved or submitted; the earliest submission time counts; the
    latest grade wins, so a regrade replaces the grade and a late old grade does not."""
    at = event.event_time
    if submission is not None and submission.assignment_id != event.assignment_id:
        raise ConflictingIds(
            f"submission {event.submission_id!r} belongs to assignment "
            f"{submission.assignment_id!r}, not {event.assignment_id!r}"
        )
    if submission is None:
        kind = event.submission_type if isinstance(event, AssignmentContent) else "text"
        submission = SubmissionState(
            assignment_id=event.assignment_id,
            module_id=event.module_id,
            lesson_id=event.lesson_id,
            first_seen_at=at,
            last_activity_at=at,
            submission_type=kind,
            # A grade that arrives first holds no content: any content, even older, wins.
            content_at=at if isinstance(event, AssignmentContent) else EARLIEST_EVENT_TIME,
        )
    update: dict[str, object] = {
        "first_seen_at": min(submission.first_seen_at, at),
        "last_activity_at": max(submission.last_activity_at, at),
    }
    if isinstance(event, AssignmentContent):
        if at >= submission.content_at:
            update.update(
                submission_type=event.submission_type,
                content_digest=submission_digest(event),
                content_at=at,
            )
        if isinstance(event, AssignmentSubmissionReceived):
            update["submitted_at"] = earliest(submission.submitted_at, at)
    else:
        held = submission.grade
        if held is None or at >= held.graded_at:
            update["grade"] = GradeState(
                score=event.score,
                max_score=event.max_score,
                feedback_digest=content_digest(event.feedback),
                graded_by=event.graded_by,
                graded_at=at,
            )
    return replaced(submission, **update)


def merge_external_evidence(state: LearnerState, event: ExternalEvidenceRecorded) -> LearnerState:
    """The same evidence id again replaces it if newer. The replaced versions are kept too:
    when a competency first reached mastery depends on the levels held at each time."""
    fact = EvidenceFact(
        competency_id=event.competency_id,
        type="external",
        reference_id=event.evidence_id,
        level=event.level,
        at=event.recorded_at,
        description=event.description,
        url=event.url,
    )
    held = state.external_evidence.get(event.evidence_id)
    older = state.superseded_evidence.get(event.evidence_id, ())
    if fact == held or fact in older:
        return state
    if held is not None and _version(held) > _version(fact):
        held, fact = fact, held  # the event is the older version
    versions = tuple(sorted((*older, held), key=_version)) if held is not None else older
    return replaced(
        state,
        **{
            "external_evidence": {**state.external_evidence, event.evidence_id: fact},
            "superseded_evidence": {**state.superseded_evidence, event.evidence_id: versions},
        },
    )


def _version(fact: EvidenceFact) -> tuple[datetime, int, str, str, str]:
    """Newest wins; on the same time, a fixed order of the content, so arrival does not."""
    return (fact.at, fact.level, fact.competency_id, fact.description, fact.url)


def merge_profile(state: LearnerState, event: LearnerProfileUpdated) -> LearnerState:
    if state.time_zone_at is not None and state.time_zone_at > event.updated_at:
        return state
    return replaced(state, **{"time_zone": event.time_zone, "time_zone_at": event.updated_at})


def with_activity_day(state: LearnerState, at: datetime) -> LearnerState:
    """Record the local day of an activity, for streaks; the day's earliest activity wins."""
    day = at.astimezone(ZoneInfo(state.time_zone)).date().isoformat()
    held = state.activity_days.get(day)
    if held is not None and held <= at:
        return state
    return replaced(state, **{"activity_days": {**state.activity_days, day: at}})
