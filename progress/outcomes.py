"""What one event does to one learner: the new state, the rows to store, the events to publish.

These functions are the whole of the worker's decision making; the Faust agents only fetch
their inputs from tables and carry out the ``Outcome``.

- The state version goes up only when the state changed, and every row and ProgressUpdated
  carries it, so a replayed event re-sends identical rows and ids.
- An event derives only what it can change: its item, that item's module, the course's
  summary from the previous one and that module (``rollup.summarize_after``), and the
  learner-wide roll-ups only when what they read changed. Its snapshot carries only the rows
  that changed, each set declared whole or not (``snapshots.Snapshot``). Where that cannot be
  exact (an enrollment, a structure or catalog change, a completed course, evidence dated by
  an older structure) the course or the learner is derived in full. Derived in full
  (``incremental=False``) is the reference the tests hold the incremental outcome to.
- Rows are returned even when nothing changed, all of them: if the worker stopped after
  saving state but before the rows reached Kafka, the replayed event still delivers them.
- Every "once" event (CourseCompleted, QuizCompleted, AssignmentSubmitted, AchievementEarned,
  CompetencyAcquired) is decided by a mark recorded in the same state, so it is published
  once per learner and subject, whatever is replayed or re-derived later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from progress.catalog import achievement_award_id
from progress.events import (
    AchievementEarned,
    AssignmentEventT,
    AssignmentSubmitted,
    CompetencyAcquired,
    CourseCompleted,
    ExternalEvidenceRecorded,
    LearnerProfileUpdated,
    ProgressUpdated,
    PublishedEvent,
    QuizCompleted,
    QuizEventT,
    UserEnrolled,
)
from progress.facts import (
    LessonEventT,
    merge_assignment_event,
    merge_enrollment,
    merge_external_evidence,
    merge_lesson_event,
    merge_profile,
    merge_quiz_event,
    new_learner,
    with_activity_day,
    with_course,
)
from progress.items import attempt_passed, attempt_rows, attempt_score, submission_row
from progress.learner_rules import (
    Awards,
    Catalog,
    achievement_points,
    derive_learner,
    learner_wide_rows,
)
from progress.models import CourseProgress
from progress.rollup import (
    CourseFigures,
    ItemChange,
    completed_under_earlier_structure,
    course_figures,
    course_row,
    lesson_row,
    module_rows,
    summarize_after,
    summarize_course,
    user_row,
)
from progress.schema import stable_id
from progress.snapshots import Snapshot
from progress.state import (
    AttemptState,
    CourseState,
    CourseSummary,
    KnownCourse,
    LearnerState,
    SubmissionState,
)
from progress.structure import DEFAULT_PASS_MARK
from progress.trusted import built, replaced


@dataclass(frozen=True)
class Outcome:
    state: LearnerState
    changed: bool
    snapshot: Snapshot
    published: tuple[PublishedEvent, ...] = ()


@dataclass(frozen=True)
class _Touched:
    """Which of the course's item rows the snapshot carries (None: all of them)."""

    lessons: list[str] | None = field(default_factory=list)
    quizzes: list[str] | None = field(default_factory=list)
    submissions: list[str] | None = field(default_factory=list)
    module_id: str = ""  # the item that caused the change, for ProgressUpdated
    item_id: str = ""
    # The event, whose bulky content (not kept in the state) its item's rows carry.
    event: QuizEventT | AssignmentEventT | None = None
    # The item whose facts the event merged (None: whole: every row is derived and sent).
    change: ItemChange | None = None


_ALL = _Touched(lessons=None, quizzes=None, submissions=None)

# A course the learner has no state for yet: built once, since states are immutable.
_NO_COURSE = CourseState()


def on_enrollment(
    state: LearnerState | None, event: UserEnrolled, known: KnownCourse | None, catalog: Catalog
) -> Outcome:
    base = state or new_learner(event.user_id, event.enrolled_at)
    course = merge_enrollment(base.courses.get(event.course_id) or _NO_COURSE, event)
    focus = (event.course_id, course, known)
    return _conclude(state, base, catalog, event.enrolled_at, focus, _ALL)


def on_lesson_activity(
    state: LearnerState | None,
    event: LessonEventT,
    known: KnownCourse | None,
    catalog: Catalog,
    *,
    incremental: bool = True,
) -> Outcome:
    base, course = _activity(state, event.user_id, event.course_id, event.event_time)
    lesson = merge_lesson_event(course.lessons.get(event.lesson_id), event)
    course = replaced(course, **{"lessons": {**course.lessons, event.lesson_id: lesson}})
    touched = _Touched(
        lessons=[event.lesson_id],
        module_id=event.module_id,
        item_id=event.lesson_id,
        change=ItemChange("lesson", event.lesson_id, (lesson.started_at, lesson.last_activity_at)),
    )
    focus = (event.course_id, course, known)
    return _conclude(
        state, base, catalog, event.event_time, focus, touched, incremental=incremental
    )


def on_quiz_activity(
    state: LearnerState | None,
    event: QuizEventT,
    known: KnownCourse | None,
    catalog: Catalog,
    *,
    incremental: bool = True,
) -> Outcome:
    base, course = _activity(state, event.user_id, event.course_id, event.event_time)
    attempt = merge_quiz_event(course.quiz_attempts.get(event.attempt_id), event)
    attempts = {**course.quiz_attempts, event.attempt_id: attempt}
    course = replaced(course, **{"quiz_attempts": attempts})
    touched = _Touched(
        quizzes=[event.quiz_id],
        module_id=event.module_id,
        item_id=event.quiz_id,
        event=event,
        change=ItemChange(
            "quiz",
            event.quiz_id,
            (attempt.started_at or attempt.first_seen_at, attempt.last_activity_at),
        ),
    )
    focus = (event.course_id, course, known)
    return _conclude(
        state, base, catalog, event.event_time, focus, touched, incremental=incremental
    )


def on_assignment_activity(
    state: LearnerState | None,
    event: AssignmentEventT,
    known: KnownCourse | None,
    catalog: Catalog,
    *,
    incremental: bool = True,
) -> Outcome:
    base, course = _activity(state, event.user_id, event.course_id, event.event_time)
    submission = merge_assignment_event(course.submissions.get(event.submission_id), event)
    submissions = {**course.submissions, event.submission_id: submission}
    course = replaced(course, **{"submissions": submissions})
    touched = _Touched(
        submissions=[event.submission_id],
        module_id=event.module_id,
        item_id=event.assignment_id,
        event=event,
        change=ItemChange(
            "assignment",
            event.assignment_id,
            (submission.first_seen_at, submission.last_activity_at),
        ),
    )
    focus = (event.course_id, course, known)
    return _conclude(
        state, base, catalog, event.event_time, focus, touched, incremental=incremental
    )


def _activity(
    state: LearnerState | None, user_id: str, course_id: str, at: datetime
) -> tuple[LearnerState, CourseState]:
    """The learner with the day of this activity recorded, and the course it is in."""
    base = with_activity_day(state or new_learner(user_id, at), at)
    return base, base.courses.get(course_id) or _NO_COURSE


def on_external_evidence(
    state: LearnerState | None, event: ExternalEvidenceRecorded, catalog: Catalog
) -> Outcome:
    base = state or new_learner(event.user_id, event.recorded_at)
    base = merge_external_evidence(base, event)
    return _conclude(state, base, catalog, event.recorded_at, None, _ALL)


def on_profile(
    state: LearnerState | None, event: LearnerProfileUpdated, catalog: Catalog
) -> Outcome:
    base = merge_profile(state or new_learner(event.user_id, event.updated_at), event)
    return _conclude(state, base, catalog, event.updated_at, None, _ALL)


def on_course_known(state: LearnerState, known: KnownCourse, catalog: Catalog) -> Outcome:
    """Re-derive a learner's course after its structure or title changed."""
    course = state.courses[known.course_id]
    at = known.structure_updated_at or known.title_updated_at or state.updated_at
    focus = (known.course_id, course, known)
    return _conclude(state, state, catalog, at, focus, _ALL, learner_fact=False)


def on_catalog_changed(state: LearnerState, catalog: Catalog, at: datetime) -> Outcome:
    """Re-derive paths, competencies and achievements after a catalog entry changed."""
    return _conclude(state, state, catalog, at, None, _ALL, learner_fact=False)


# --------------------------------------------------------------------------- the core


@dataclass(frozen=True, slots=True)
class _Derived:
    """What ``_derive_course`` counted: ``figures`` of every module of the structure, or,
    ``partial``, of the changed item's module alone (none if it is in no module): the other
    modules' rows are as they were."""

    figures: CourseFigures
    partial: bool = False


def _conclude(
    original: LearnerState | None,
    base: LearnerState,
    catalog: Catalog,
    event_time: datetime,
    focus: tuple[str, CourseState, KnownCourse | None] | None,
    touched: _Touched,
    *,
    learner_fact: bool = True,
    incremental: bool = True,
) -> Outcome:
    """Derive, decide the once-only events, bump the version on change, build the rows.

    ``focus`` is the course the event is about, with its new state and structure; learner-
    wide events (evidence, profile, catalog) have none. ``learner_fact``: the event is the
    learner's own (not a structure or catalog change), so it can be a late one.

    ``incremental`` (the activity rules take it too): derive only what the event can change
    (its item's module, the course summary from the previous one, the learner-wide roll-ups
    when their inputs changed) and send only the rows that changed. Off, everything is
    derived again and every row sent: the REFERENCE, which the incremental outcome must
    equal in state, published events and rows (newest per id, but for their versions; the
    oracle properties in tests/unit/test_oracle_core.py check it).
    """
    published: list[PublishedEvent] = []
    candidate = base
    derived: _Derived | None = None
    # A late fact of the learner's own: ``before`` is the learner without it.
    late = learner_fact and original is not None and event_time < original.updated_at
    before = original if late else None
    change = touched.change if incremental else None
    previous: CourseState | None = None
    if focus is not None:
        course_id, course, known = focus
        previous = original.courses.get(course_id) if original is not None else None
        was = before.courses.get(course_id) if before is not None else None
        course, derived = _derive_course(
            base.user_id, course_id, course, known, published, was, previous, change
        )
        candidate = with_course(base, course_id, course)
    if (
        change is not None
        and focus is not None
        and original is not None
        and _learner_inputs_same(original, candidate, focus[0], catalog)
    ):
        # The learner-wide roll-ups would be derived again as they are (derive_learner is
        # idempotent on the same inputs), and no award can be new.
        awards = Awards([], [])
    else:
        as_derived = (
            change is not None
            and focus is not None
            and original is not None
            and _evidence_same(original, candidate, focus[0])
        )
        candidate, awards = derive_learner(
            candidate, catalog, before=before, evidence_as_derived=as_derived
        )
        candidate = replaced(candidate, **{"award_points": achievement_points(candidate, catalog)})
    published += _award_events(candidate, awards, catalog)

    changed = original is None or not _same_facts(candidate, original)
    if changed or original is None:  # changed already implies the latter: it narrows for mypy
        state = replaced(
            candidate,
            **{
                "version": base.version + 1,
                "created_at": min(base.created_at, event_time),
                "updated_at": max(base.updated_at, event_time),
            },
        )
    else:
        state = original

    # The course's facts in ``state`` are those ``derived`` counts: ``state`` is the
    # candidate, or the original with the same facts. Unchanged, every row is sent again
    # (the module docstring): which rows the event that made this version changed is not
    # known any more.
    partial = change is not None and changed and original is not None
    course_progress = course_row(state, focus[0]) if focus is not None else None
    snapshot = _snapshot(
        state, focus, touched, derived, original if partial else None, course_progress
    )
    if changed and focus is not None and course_progress is not None:
        published.append(
            built(
                ProgressUpdated,
                event_id=ProgressUpdated.id_for(state.user_id, focus[0], state.version),
                user_id=state.user_id,
                course_id=focus[0],
                module_id=touched.module_id,
                lesson_id=touched.item_id if touched.lessons else "",
                percent_complete=course_progress.percent_complete,
                status=course_progress.status,
                updated_at=event_time,
            )
        )
    return Outcome(state, changed, snapshot, tuple(published))


def _learner_inputs_same(
    original: LearnerState, candidate: LearnerState, course_id: str, catalog: Catalog
) -> bool:
    """Whether what ``derive_learner`` reads is as it was when ``original`` was derived, the
    event having changed only the course ``course_id`` and perhaps the activity days."""
    if candidate.activity_days is not original.activity_days and (
        candidate.activity_days != original.activity_days
    ):
        return False
    then = original.courses.get(course_id)
    now = candidate.courses[course_id]
    if then is None:
        return now.summary is None and now.completion_announced_at is None
    if (
        then.enrolled_at != now.enrolled_at
        or then.completion_announced_at != now.completion_announced_at
    ):
        return False
    a, b = then.summary, now.summary
    if a is None or b is None:
        return a is b
    if (
        a.status != b.status
        or a.completed_at != b.completed_at
        or a.perfect_quiz_at != b.perfect_quiz_at
        or a.lesson_completions != b.lesson_completions
        or a.evidence != b.evidence
    ):
        return False
    # A learning path also shows its courses' first and last activity.
    on_path = any(course_id in path.course_ids for path in catalog.learning_paths.values())
    return not on_path or (a.started_at, a.last_activity_at) == (b.started_at, b.last_activity_at)


def _evidence_same(original: LearnerState, candidate: LearnerState, course_id: str) -> bool:
    """Whether the competencies' evidence is as it was in ``original``, the event having
    changed only the course ``course_id`` (and perhaps the activity days)."""
    then = original.courses.get(course_id)
    now = candidate.courses[course_id]
    a = then.summary if then is not None else None
    b = now.summary
    return (
        (a.evidence == b.evidence if a is not None and b is not None else a is b)
        and candidate.external_evidence is original.external_evidence
        and candidate.superseded_evidence is original.superseded_evidence
    )


# The state without its bookkeeping (version, updated_at): what tells whether an event
# changed anything.
_FACT_FIELDS = tuple(f for f in LearnerState.model_fields if f not in ("version", "updated_at"))


def _same_facts(a: LearnerState, b: LearnerState) -> bool:
    # Field by field rather than comparing two copies without the bookkeeping: the same
    # answer (states have no extra or private attributes) without copying two states.
    return all(getattr(a, name) == getattr(b, name) for name in _FACT_FIELDS)


def _derive_course(
    user_id: str,
    course_id: str,
    course: CourseState,
    known: KnownCourse | None,
    published: list[PublishedEvent],
    before: CourseState | None = None,
    previous: CourseState | None = None,
    change: ItemChange | None = None,
) -> tuple[CourseState, _Derived | None]:
    """The course with its summary and once-only marks, appending what to publish; and the
    figures it was summarized from (None when not enrolled: no summary, no rows).

    ``previous``: the course as it was before the event, which merged ``change`` into it;
    with both, only the changed item's module is counted again where that is exact
    (``rollup.summarize_after``), else the whole course.

    ``completion_announced_at`` is when the course was first completed, as in event-time
    order: set once, with CourseCompleted. ``before``: the course before a late fact of the
    learner's own; if that fact completes the course earlier than it did without it, the
    time moves back (the event published keeps its). A structure change never moves it.
    """
    structure = known.structure if known else None
    # Copied only when something in them is announced: most events announce nothing.
    update: dict[str, object] = {}
    attempts: dict[str, AttemptState] | None = None
    for attempt_id, attempt in course.quiz_attempts.items():
        if attempt.submitted_at is not None and not attempt.announced:
            attempts = attempts if attempts is not None else dict(course.quiz_attempts)
            attempts[attempt_id] = replaced(attempt, **{"announced": True})
            quiz = structure.quiz(attempt.quiz_id) if structure else None
            published.append(
                QuizCompleted(
                    event_id=stable_id("QuizCompleted", user_id, attempt_id),
                    user_id=user_id,
                    course_id=course_id,
                    quiz_id=attempt.quiz_id,
                    score=attempt_score(attempt),
                    passed=attempt_passed(attempt, quiz.pass_mark if quiz else DEFAULT_PASS_MARK),
                    completed_at=attempt.submitted_at,
                )
            )
    submissions: dict[str, SubmissionState] | None = None
    for submission_id, submission in course.submissions.items():
        if submission.submitted_at is not None and not submission.announced:
            submissions = submissions if submissions is not None else dict(course.submissions)
            submissions[submission_id] = replaced(submission, **{"announced": True})
            published.append(
                AssignmentSubmitted(
                    event_id=stable_id("AssignmentSubmitted", user_id, submission_id),
                    user_id=user_id,
                    course_id=course_id,
                    assignment_id=submission.assignment_id,
                    submitted_at=submission.submitted_at,
                )
            )
    if attempts is not None:
        update["quiz_attempts"] = attempts
    if submissions is not None:
        update["submissions"] = submissions
    derived_with = known.structure_event_id if known and known.structure else ""
    if derived_with != course.derived_with:
        update["derived_with"] = derived_with
    if update:
        course = replaced(course, **update)
    if not course.enrolled:
        return replaced(course, **{"summary": None}), None
    after = None
    if previous is not None and change is not None:
        after = summarize_after(course_id, previous, course, known, change)
    if after is not None:
        summary, module = after
        derived = _Derived(figures=(module,) if module is not None else (), partial=True)
    else:
        derived = _Derived(figures=course_figures(course, known))
        summary = summarize_course(course_id, course, known, figures=derived.figures)
    course = replaced(course, **{"summary": summary})
    announced_at = course.completion_announced_at
    if announced_at is not None:
        if before is None or before.summary is None:
            return course, derived
        # Only what the late fact itself moved: a structure change since the announcement
        # may date the completion earlier too, and that does not rewrite it.
        now = _completed_at(course_id, course, summary, known)
        then = _completed_at(course_id, before, before.summary, known)
        if now is not None and now < announced_at and (then is None or now < then):
            course = replaced(course, **{"completion_announced_at": now})
        return course, derived
    completed = summary if summary.status == "completed" else None
    completed = completed or completed_under_earlier_structure(course_id, course, known)
    if completed is not None:
        course = replaced(course, **{"completion_announced_at": completed.completed_at})
        published.append(
            CourseCompleted(
                event_id=CourseCompleted.id_for(user_id, course_id),
                user_id=user_id,
                course_id=course_id,
                completed_at=completed.completed_at,  # type: ignore[arg-type]
            )
        )
    return course, derived


def _completed_at(
    course_id: str, course: CourseState, summary: CourseSummary, known: KnownCourse | None
) -> datetime | None:
    """The earliest time the course is completed at, now or under the structure in force
    then (the older structures are summarized: for late facts only)."""
    times = [summary.completed_at if summary.status == "completed" else None]
    earlier = completed_under_earlier_structure(course_id, course, known)
    times.append(earlier.completed_at if earlier else None)
    return min((t for t in times if t is not None), default=None)


def _award_events(state: LearnerState, awards: Awards, catalog: Catalog) -> list[PublishedEvent]:
    events: list[PublishedEvent] = []
    for achievement, earned_at in awards.achievements:
        events.append(
            AchievementEarned(
                event_id=achievement_award_id(state.user_id, achievement.id),
                user_id=state.user_id,
                achievement_id=achievement.id,
                achievement_name=achievement.name,
                earned_at=earned_at,
            )
        )
    for competency_id, summary, acquired_at in awards.competencies:
        entry = catalog.competencies.get(competency_id)
        events.append(
            CompetencyAcquired(
                event_id=stable_id("CompetencyAcquired", state.user_id, competency_id),
                user_id=state.user_id,
                competency_id=competency_id,
                competency_name=entry.name if entry else competency_id,
                level=summary.level,
                acquired_at=acquired_at,
            )
        )
    return events


def _snapshot(
    state: LearnerState,
    focus: tuple[str, CourseState, KnownCourse | None] | None,
    touched: _Touched,
    derived: _Derived | None,
    original: LearnerState | None,
    row: CourseProgress | None,
) -> Snapshot:
    """The rows to send; ``row``: the focus course's (None: not enrolled). ``original``: the
    state before the event, when only the rows that differ from it are to be sent (None:
    every row, each set whole)."""
    parts: dict[str, list[object]] = {
        "course_progress": [],
        "module_progress": [],
        "lesson_progress": [],
        "quiz_attempts": [],
        "quiz_question_responses": [],
        "assignment_submissions": [],
    }
    whole_modules: dict[str, int] = {}
    if focus is not None:
        course_id, _, known = focus
        course = state.courses[course_id]
        structure = known.structure if known else None
        partial = original is not None and derived is not None and derived.partial
        # Whole, the modules are counted again if ``derived`` counted only the changed one.
        figures = derived.figures if derived is not None and derived.partial == partial else None
        if row is not None:
            then = original.courses.get(course_id) if original is not None else None
            if not partial or then is None or _course_row_differs(then, course):
                parts["course_progress"].append(row)
            parts["module_progress"] += module_rows(state, course_id, known, figures)
            if not partial:
                whole_modules[course_id] = state.version
        lessons = touched.lessons if touched.lessons is not None else sorted(course.lessons)
        parts["lesson_progress"] += [lesson_row(state, course_id, x, known) for x in lessons]
        quizzes = touched.quizzes
        if quizzes is None:
            quizzes = sorted({a.quiz_id for a in course.quiz_attempts.values()})
        only, since = _changed_attempt(course_id, course, touched, original)
        for quiz_id in quizzes:
            attempts, responses = attempt_rows(
                state.user_id,
                state.version,
                course_id,
                course,
                structure,
                quiz_id,
                touched.event,
                only=only,
                since=since,
            )
            parts["quiz_attempts"] += attempts
            parts["quiz_question_responses"] += responses
        submissions = touched.submissions
        if submissions is None:
            submissions = sorted(course.submissions)
        parts["assignment_submissions"] += [
            submission_row(
                state.user_id,
                state.version,
                course_id,
                sid,
                course.submissions[sid],
                structure,
                touched.event,
            )
            for sid in submissions
        ]
    learner_wide = learner_wide_rows(state, original)
    # Built, not validated: every row is the learner's at ``state.version`` (what the
    # snapshot's validator checks), and the sink validates the snapshot it reads. Every
    # field, in field order: ``built``'s quickest path.
    return built(
        Snapshot,
        user_id=state.user_id,
        version=state.version,
        user_progress=user_row(state, state.award_points),
        course_progress=tuple(parts["course_progress"]),
        module_progress=tuple(parts["module_progress"]),
        lesson_progress=tuple(parts["lesson_progress"]),
        quiz_attempts=tuple(parts["quiz_attempts"]),
        quiz_question_responses=tuple(parts["quiz_question_responses"]),
        assignment_submissions=tuple(parts["assignment_submissions"]),
        learning_path_progress=tuple(learner_wide.paths),
        user_competencies=tuple(learner_wide.competencies),
        user_achievements=tuple(learner_wide.achievements),
        whole_modules=whole_modules,
        whole_learner_wide=state.version if learner_wide.whole else 0,
    )


def _changed_attempt(
    course_id: str, course: CourseState, touched: _Touched, original: LearnerState | None
) -> tuple[str | None, AttemptState | None]:
    """For ``items.attempt_rows``, when only the rows that changed are sent: the attempt the
    quiz event changed, if the other attempts' numbers stand (its start did not move), and
    that attempt as it was."""
    event = touched.event
    if original is None or touched.change is None or touched.change.kind != "quiz":
        return None, None
    attempt_id = event.attempt_id  # type: ignore[union-attr]
    then_course = original.courses.get(course_id)
    then = then_course.quiz_attempts.get(attempt_id) if then_course is not None else None
    now = course.quiz_attempts[attempt_id]
    if then is None or (then.started_at or then.first_seen_at) != (
        now.started_at or now.first_seen_at
    ):
        return None, then
    return attempt_id, then


def _course_row_differs(then: CourseState, now: CourseState) -> bool:
    """Whether the course's row (``rollup.course_row``) differs but for its version."""
    a, b = then.summary, now.summary
    # The fields alone (a summary holds no model but its evidence): pydantic's __eq__ also
    # compares what summaries never have, and this runs for every event.
    return (
        (a.__dict__ != b.__dict__ if a is not None and b is not None else a is not b)
        or then.enrollment_id != now.enrollment_id
        or then.enrolled_at != now.enrolled_at
    )


# --------------------------------------------------------------------------- resnapshot


def full_snapshots(
    state: LearnerState, courses: Mapping[str, KnownCourse | None]
) -> list[Snapshot]:
    """Every row of the learner as ``state`` stands, at its version, for ``progress
    resnapshot``: the rows the sink holds once it has written every snapshot the learner's
    events made (their versions aside: each row here carries the learner's current one).

    ``courses``: the structure of each course the state holds, as the learner's partition
    knows it (missing or None: not known). One snapshot per course, each with the
    learner-wide rows (``merge`` makes them one; ``merge_within`` several when one would be
    too large), or one of the learner-wide rows alone for a learner with no course.
    Bulky content (``Row.unchanged``) is not in the state: its fields are None, "unchanged",
    so the sink keeps what it holds and writes them empty where it holds nothing.
    """
    out: list[Snapshot] = []
    for course_id, course in sorted(state.courses.items()):
        known = courses.get(course_id)
        derived = _Derived(course_figures(course, known)) if course.enrolled else None
        row = course_row(state, course_id)
        out.append(_snapshot(state, (course_id, course, known), _ALL, derived, None, row))
    return out or [_snapshot(state, None, _ALL, None, None, None)]
