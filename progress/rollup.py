"""Roll-ups: module, course and learner progress derived from facts and course structure.

Every number here is a pure function of the set of completed items and the current course
structure: nothing is incremented per event, so a duplicate cannot double-count and a
course whose structure changes is simply derived again.

Definitions (docs/events.md repeats them for producers and analysts):
- An item counts only if it is in the course's current structure.
- A module's totals count its lessons, quizzes and assignments; TotalModules counts modules
  with at least one item, since an empty module can be neither started nor finished.
- PercentComplete = completed items / items * 100, rounded to 2 decimals (0 with no items).
- Status: completed when every item is (and there is at least one), in-progress once there
  is any activity, else not-started. A completed course whose structure grows returns to
  in-progress; its CourseCompleted event is still published only once.
- TotalPoints = the points of the completed items (each item's ``points`` in the structure),
  plus, for UserProgress, the points of the learner's achievements (``learner_rules.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, TypeAlias, TypeVar

from progress.facts import earliest, latest
from progress.items import (
    assignment_done_at,
    attempt_questions,
    attempt_score,
    quiz_done_at,
)
from progress.models import (
    CourseProgress,
    EvidenceType,
    LessonProgress,
    ModuleProgress,
    ProgressStatus,
    UserProgress,
)
from progress.schema import stable_id
from progress.state import (
    AttemptState,
    CourseState,
    CourseSummary,
    EvidenceFact,
    KnownCourse,
    LearnerState,
    LessonState,
    StructureVersion,
    SubmissionState,
)
from progress.structure import CompetencyGrant, CourseStructure, ModuleDef
from progress.trusted import built, replaced

ItemKind = Literal["lesson", "quiz", "assignment"]


@dataclass(frozen=True, slots=True)
class ItemChange:
    """The one item an event merged its facts into: its kind, its id (the quiz or
    assignment, for an attempt or a submission), and the span of its facts afterwards (the
    attempt's or submission's, for a quiz or an assignment)."""

    kind: ItemKind
    item_id: str
    span: tuple[datetime | None, datetime | None]


def percent(done: int, total: int) -> float:
    return round(100.0 * done / total, 2) if total else 0.0


def status_of(done: int, total: int, active: bool) -> ProgressStatus:
    if total and done == total:
        return "completed"
    return "in-progress" if active or done else "not-started"


def lesson_percent(lesson: LessonState) -> float:
    return 100.0 if lesson.completed_at is not None else lesson.percent


def _fold_times(
    course: CourseState,
) -> tuple[datetime | None, datetime | None]:
    """Earliest start and latest activity over every item the learner touched."""
    return _fold_spans(
        course.lessons.values(), course.quiz_attempts.values(), course.submissions.values()
    )


def _fold_spans(
    lessons: Iterable[LessonState],
    attempts: Iterable[AttemptState],
    submissions: Iterable[SubmissionState],
) -> tuple[datetime | None, datetime | None]:
    started: datetime | None = None
    last: datetime | None = None
    spans = [(x.started_at, x.last_activity_at) for x in lessons]
    spans += [(a.started_at or a.first_seen_at, a.last_activity_at) for a in attempts]
    spans += [(x.first_seen_at, x.last_activity_at) for x in submissions]
    for first, latest_at in spans:
        started = earliest(started, first)
        last = latest(last, latest_at)
    return started, last


def _active(course: CourseState) -> bool:
    return bool(course.lessons or course.quiz_attempts or course.submissions)


class ModuleFigures:
    """Counts for one module of the structure, against one learner's facts."""

    def __init__(self, module: ModuleDef, course: CourseState) -> None:
        # One pass over the module's items and the course's attempts and submissions: this
        # runs for every event (twice, for the changed module: ``summarize_after``).
        self.module = module
        lessons = course.lessons
        started: datetime | None = None
        last: datetime | None = None
        points = 0
        done_times: list[datetime] = []
        lesson_done_at: list[datetime] = []
        for x in module.lessons:
            lesson = lessons.get(x.id)
            if lesson is None:
                continue
            started = earliest(started, lesson.started_at)
            last = latest(last, lesson.last_activity_at)
            if lesson.completed_at is not None:
                lesson_done_at.append(lesson.completed_at)
                points += x.points
        done_times += lesson_done_at
        quiz_done: dict[str, datetime | None] = {}
        if module.quizzes:
            by_quiz: dict[str, list[AttemptState]] = {q.id: [] for q in module.quizzes}
            for attempt in course.quiz_attempts.values():
                held = by_quiz.get(attempt.quiz_id)
                if held is not None:
                    held.append(attempt)
                    started = earliest(started, attempt.started_at or attempt.first_seen_at)
                    last = latest(last, attempt.last_activity_at)
            for q in module.quizzes:
                at = quiz_done[q.id] = quiz_done_at(q, by_quiz[q.id])
                if at:
                    done_times.append(at)
                    points += q.points
        assignment_done: dict[str, datetime | None] = {}
        if module.assignments:
            by_assignment: dict[str, list[SubmissionState]] = {a.id: [] for a in module.assignments}
            for sub in course.submissions.values():
                held_submissions = by_assignment.get(sub.assignment_id)
                if held_submissions is not None:
                    held_submissions.append(sub)
                    started = earliest(started, sub.first_seen_at)
                    last = latest(last, sub.last_activity_at)
            for task in module.assignments:
                at = assignment_done[task.id] = assignment_done_at(task, by_assignment[task.id])
                if at:
                    done_times.append(at)
                    points += task.points
        self.lesson_done_at = lesson_done_at
        self.quiz_done = quiz_done
        self.assignment_done = assignment_done
        self.total_lessons = len(module.lessons)
        self.completed_lessons = len(lesson_done_at)
        self.total_quizzes = len(module.quizzes)
        self.completed_quizzes = sum(1 for t in quiz_done.values() if t)
        self.total_assignments = len(module.assignments)
        self.completed_assignments = sum(1 for t in assignment_done.values() if t)
        self.points = points
        self.total = module.item_count
        self.done = self.completed_lessons + self.completed_quizzes + self.completed_assignments
        self.started_at, self.last_activity_at = started, last
        self.completed_at = (
            max(done_times) if self.total and self.done == self.total and done_times else None
        )
        self.status = status_of(self.done, self.total, started is not None)

    def evidence(self) -> list[EvidenceFact]:
        facts = []
        for quiz in self.module.quizzes:
            done = self.quiz_done[quiz.id]
            if done:
                facts += [_fact(g, "quiz", quiz.id, done) for g in quiz.competencies]
        for assignment in self.module.assignments:
            done = self.assignment_done[assignment.id]
            if done:
                facts += [
                    _fact(g, "assignment", assignment.id, done) for g in assignment.competencies
                ]
        return facts


CourseFigures: TypeAlias = tuple[ModuleFigures, ...]


def course_figures(course: CourseState, known: KnownCourse | None) -> CourseFigures:
    """The figures of each module of the course's structure (none while it is unknown),
    against the learner's facts in ``course``: what both the course's summary and its module
    rows count. An event's course is summarized and then its rows built from the same facts,
    so its caller computes them once and hands them to both (``figures=``)."""
    structure = known.structure if known else None
    return tuple(ModuleFigures(m, course) for m in structure.modules) if structure else ()


def module_of(structure: CourseStructure, kind: ItemKind, item_id: str) -> ModuleDef | None:
    """The module of ``structure`` that holds the item, or None if the item is not in it."""
    for module in structure.modules:
        items = (
            module.lessons
            if kind == "lesson"
            else module.quizzes
            if kind == "quiz"
            else module.assignments
        )
        if any(item.id == item_id for item in items):
            return module
    return None


def summarize_after(
    course_id: str,
    previous: CourseState,
    course: CourseState,
    known: KnownCourse | None,
    change: ItemChange,
) -> tuple[CourseSummary, ModuleFigures | None] | None:
    """The summary of ``course``, which is ``previous`` with one item's facts merged
    (``change``), from ``previous.summary`` and the figures of that item's module alone; and
    those figures (None: the item is in no module of the structure). None where this cannot
    be done (the caller then summarizes the whole course, ``summarize_course``, which is the
    reference this must equal):

    - ``previous`` was not summarized with this structure and enrollment;
    - the course is or was completed (its completion time is a maximum over every module);
    - evidence is dated by an older structure (``_dated``), or may be.

    Why the rest is exact: a module's figures depend only on its own items, which only the
    changed item's module has; counts and points are sums over modules; a lesson's or a
    submission's span only widens (facts are joins), so the course's first and last activity
    are those of ``previous`` widened by it. An attempt's span may narrow (a start arriving
    after its first answer), so a quiz change folds every item again.
    """
    old = previous.summary
    structure = known.structure if known else None
    if (
        old is None
        or structure is None
        or known is None
        or not course.enrolled
        or previous.enrolled_at != course.enrolled_at
        or previous.derived_with != known.structure_event_id
        or course.derived_with != known.structure_event_id
        or old.status == "completed"
    ):
        return None
    module = module_of(structure, change.kind, change.item_id)
    before = ModuleFigures(module, previous) if module is not None else None
    after = ModuleFigures(module, course) if module is not None else None
    lessons, quizzes, assignments, points, modules_done = (
        old.completed_lessons,
        old.completed_quizzes,
        old.completed_assignments,
        old.total_points,
        old.completed_modules,
    )
    lesson_completions: tuple[datetime, ...] | None = old.lesson_completions
    evidence: tuple[EvidenceFact, ...] | None = old.evidence
    if before is not None and after is not None:
        lessons += after.completed_lessons - before.completed_lessons
        quizzes += after.completed_quizzes - before.completed_quizzes
        assignments += after.completed_assignments - before.completed_assignments
        points += after.points - before.points
        modules_done += (after.status == "completed") - (before.status == "completed")
        if before.lesson_done_at != after.lesson_done_at:
            lesson_completions = _replaced(
                old.lesson_completions, before.lesson_done_at, after.lesson_done_at
            )
        old_facts, new_facts = before.evidence(), after.evidence()
        if old_facts or new_facts or evidence:
            since = known.structure_updated_at
            if any(
                fact.known_at is not None or (since is not None and fact.at < since)
                for fact in (*old.evidence, *new_facts)
            ):
                return None
            if old_facts != new_facts:
                evidence = _replaced(old.evidence, old_facts, new_facts, key=_evidence_order)
    if lesson_completions is None or evidence is None:
        return None  # the module's old figures are not in the summary: not derived from them
    total = old.total_lessons + old.total_quizzes + old.total_assignments
    done = lessons + quizzes + assignments
    status = status_of(done, total, _active(course))
    if status == "completed":
        return None
    if change.kind == "quiz":
        started_at, last_activity_at = _fold_times(course)
        perfect = _perfect_quiz_at(course)
    else:
        first, last = change.span
        started_at = earliest(old.started_at, first)
        last_activity_at = latest(old.last_activity_at, last)
        perfect = old.perfect_quiz_at
    structure_at = known.structure_updated_at
    updated_at = latest(latest(course.enrolled_at, last_activity_at), structure_at)
    summary = replaced(
        old,
        **{
            "status": status,
            "percent_complete": percent(done, total),
            "completed_modules": modules_done,
            "completed_lessons": lessons,
            "completed_quizzes": quizzes,
            "completed_assignments": assignments,
            "total_points": points,
            "started_at": started_at,
            "last_activity_at": last_activity_at,
            "updated_at": updated_at or course.enrolled_at or started_at,
            "lesson_completions": lesson_completions,
            "perfect_quiz_at": perfect,
            "evidence": evidence,
        },
    )
    return summary, after


T = TypeVar("T")


def _replaced(
    held: tuple[T, ...],
    removed: Iterable[T],
    added: Iterable[T],
    key: Callable[[T], Any] | None = None,
) -> tuple[T, ...] | None:
    """``held`` (sorted by ``key``) without one of each of ``removed`` and with ``added``,
    sorted; None if ``removed`` is not all in ``held``."""
    kept = list(held)
    for item in removed:
        try:
            kept.remove(item)
        except ValueError:
            return None
    kept.extend(added)
    kept.sort(key=key)
    return tuple(kept)


def _evidence_order(e: EvidenceFact) -> tuple[datetime, str, str, str]:
    return (e.at, e.type, e.reference_id, e.competency_id)


def _perfect_quiz_at(course: CourseState) -> datetime | None:
    perfect = [
        a.submitted_at
        for a in course.quiz_attempts.values()
        if a.submitted_at and attempt_questions(a) and attempt_score(a) == 100.0
    ]
    return min(perfect, default=None)


def _fact(
    grant: CompetencyGrant, kind: EvidenceType, reference_id: str, at: datetime
) -> EvidenceFact:
    return EvidenceFact(
        competency_id=grant.competency_id,
        type=kind,
        reference_id=reference_id,
        level=grant.level,
        at=at,
        description=f"{kind} {reference_id} completed",
    )


def summarize_course(
    course_id: str,
    course: CourseState,
    known: KnownCourse | None,
    *,
    history: bool = True,
    figures: CourseFigures | None = None,
) -> CourseSummary:
    """The learner's roll-up of one course against its structure (empty while unknown).

    ``history``: also date the evidence a newer structure made retroactive (``known_at``);
    off when summarizing under an older structure for that very purpose. ``figures``: the
    ``course_figures`` of this course and structure, if the caller has them."""
    structure = known.structure if known else None
    if figures is None:
        figures = course_figures(course, known)
    started_at, last_activity_at = _fold_times(course)
    total = sum(f.total for f in figures)
    done = sum(f.done for f in figures)
    status = status_of(done, total, _active(course))
    completed_at = None
    evidence = [fact for f in figures for fact in f.evidence()]
    if status == "completed":
        completed_at = max((f.completed_at for f in figures if f.completed_at), default=None)
        if structure and completed_at:
            evidence += [
                _fact(g, "course", course_id, completed_at) for g in structure.competencies
            ]
    if history and known is not None:
        evidence = _dated(course_id, course, known, evidence)
    structure_at = known.structure_updated_at if known else None
    updated_at = latest(latest(course.enrolled_at, last_activity_at), structure_at)
    return CourseSummary(
        status=status,
        percent_complete=percent(done, total),
        total_modules=sum(1 for f in figures if f.total),
        completed_modules=sum(1 for f in figures if f.status == "completed"),
        total_lessons=sum(f.total_lessons for f in figures),
        completed_lessons=sum(f.completed_lessons for f in figures),
        total_quizzes=sum(f.total_quizzes for f in figures),
        completed_quizzes=sum(f.completed_quizzes for f in figures),
        total_assignments=sum(f.total_assignments for f in figures),
        completed_assignments=sum(f.completed_assignments for f in figures),
        total_points=sum(f.points for f in figures),
        started_at=started_at,
        completed_at=completed_at,
        last_activity_at=last_activity_at,
        updated_at=updated_at or course.enrolled_at or started_at,  # type: ignore[arg-type]
        lesson_completions=tuple(sorted(t for f in figures for t in f.lesson_done_at)),
        perfect_quiz_at=_perfect_quiz_at(course),
        evidence=tuple(sorted(evidence, key=_evidence_order)),
    )


def _dated(
    course_id: str, course: CourseState, known: KnownCourse, evidence: list[EvidenceFact]
) -> list[EvidenceFact]:
    """The evidence with ``known_at`` set where the structure in force at its time did not
    grant it: from when the first structure that does came into force.

    Mastery is judged at each instant by what held then (``learner.mastered_at``): a course
    completed retroactively by a structure that arrived later must not count together with
    external evidence replaced before that structure arrived."""
    since = known.structure_updated_at
    if since is None or not any(fact.at < since for fact in evidence):
        return evidence  # the usual case: the current structure was in force at every fact
    assert known.structure is not None
    versions = [
        *known.earlier,
        StructureVersion(
            updated_at=since, event_id=known.structure_event_id, structure=known.structure
        ),
    ]
    granted: dict[int, set[tuple[str, str, str]]] = {}  # version index -> evidence keys

    def grants(index: int) -> set[tuple[str, str, str]]:
        if index not in granted:
            version = versions[index]
            then = replaced(
                known,
                **{"structure": version.structure, "structure_updated_at": version.updated_at},
            )
            summary = summarize_course(course_id, course, then, history=False)
            granted[index] = {_evidence_key(fact) for fact in summary.evidence}
        return granted[index]

    dated = []
    for fact in evidence:
        if fact.at < since:
            in_force = max(
                (i for i, v in enumerate(versions) if v.updated_at <= fact.at), default=0
            )
            for index in range(in_force, len(versions) - 1):
                if _evidence_key(fact) in grants(index):
                    held_from = max(fact.at, versions[index].updated_at)
                    break
            else:
                held_from = since
            if held_from > fact.at:
                fact = replaced(fact, **{"known_at": held_from})
        dated.append(fact)
    return dated


def _evidence_key(fact: EvidenceFact) -> tuple[str, str, str]:
    return (fact.competency_id, fact.type, fact.reference_id)


def completed_under_earlier_structure(
    course_id: str, course: CourseState, known: KnownCourse | None
) -> CourseSummary | None:
    """The course's roll-up under an older structure that it was completed under while that
    structure was in force, if any: completion is judged at the time it happened, so an
    activity that arrives after a newer structure still completes the course of its time."""
    if known is None or not known.earlier or known.structure_updated_at is None:
        return None
    started_at, _ = _fold_times(course)
    if started_at is None or course.enrolled_at is None:
        return None
    ends = [v.updated_at for v in known.earlier[1:]] + [known.structure_updated_at]
    for version, ended_at in zip(known.earlier, ends, strict=True):
        if ended_at <= started_at or ended_at <= course.enrolled_at:
            continue  # superseded before the learner began: it cannot have been completed
        then = replaced(
            known, **{"structure": version.structure, "structure_updated_at": version.updated_at}
        )
        summary = summarize_course(course_id, course, then, history=False)
        if (
            summary.status == "completed"
            and summary.completed_at is not None
            and max(summary.completed_at, version.updated_at) < ended_at
        ):
            return summary
    return None


# --------------------------------------------------------------------------- rows

# Structures are immutable and few (one per course, and its older ones): each one's lesson
# index is built once rather than the structure scanned for every lesson row. Keyed by the
# object (checked by identity, since an id can be reused once the structure is gone).
_PLACES_KEPT = 256
_places: dict[int, tuple[CourseStructure, dict[str, tuple[str, str]]]] = {}


def _lesson_places(structure: CourseStructure) -> dict[str, tuple[str, str]]:
    """Each lesson of ``structure``: its module's id and its completion criteria."""
    held = _places.get(id(structure))
    if held is not None and held[0] is structure:
        return held[1]
    if len(_places) >= _PLACES_KEPT:
        _places.clear()
    places = {
        item.id: (module.id, item.completion_criteria)
        for module in structure.modules
        for item in module.lessons
    }
    _places[id(structure)] = (structure, places)
    return places


def lesson_row(
    state: LearnerState, course_id: str, lesson_id: str, known: KnownCourse | None
) -> LessonProgress:
    lesson = state.courses[course_id].lessons[lesson_id]
    structure = known.structure if known else None
    place = _lesson_places(structure).get(lesson_id) if structure else None
    module_id, criteria = place or (lesson.module_id, "completion-event")
    return built(
        LessonProgress,
        id=stable_id("lesson_progress", state.user_id, course_id, lesson_id),
        user_id=state.user_id,
        version=state.version,
        course_id=course_id,
        module_id=module_id,
        lesson_id=lesson_id,
        status="completed" if lesson.completed_at else "in-progress",
        percent_complete=lesson_percent(lesson),
        time_spent=lesson.time_spent,
        last_position=lesson.last_position,
        completion_criteria=criteria,
        started_at=lesson.started_at,
        completed_at=lesson.completed_at,
        last_activity_at=lesson.last_activity_at,
        created_at=lesson.started_at,
        updated_at=lesson.last_activity_at,
    )


def module_rows(
    state: LearnerState,
    course_id: str,
    known: KnownCourse | None,
    figures: CourseFigures | None = None,
) -> list[ModuleProgress]:
    """The rows of the course's modules; ``figures``: the ``course_figures`` of the learner's
    course and ``known``, if the caller has them."""
    if known is None or known.structure is None:
        return []
    course = state.courses[course_id]
    if figures is None:
        figures = course_figures(course, known)
    rows = []
    for f in figures:
        module = f.module
        structure_at = known.structure_updated_at
        created_at = earliest(course.enrolled_at, structure_at) or structure_at
        rows.append(
            built(
                ModuleProgress,
                id=stable_id("module_progress", state.user_id, course_id, module.id),
                user_id=state.user_id,
                version=state.version,
                course_id=course_id,
                module_id=module.id,
                status=f.status,
                percent_complete=percent(f.done, f.total),
                total_lessons=f.total_lessons,
                completed_lessons=f.completed_lessons,
                total_quizzes=f.total_quizzes,
                completed_quizzes=f.completed_quizzes,
                total_assignments=f.total_assignments,
                completed_assignments=f.completed_assignments,
                started_at=f.started_at,
                completed_at=f.completed_at,
                last_activity_at=f.last_activity_at,
                created_at=created_at,
                updated_at=latest(latest(f.last_activity_at, structure_at), course.enrolled_at),
            )
        )
    return rows


def course_row(state: LearnerState, course_id: str) -> CourseProgress | None:
    course = state.courses[course_id]
    summary = course.summary
    if summary is None or course.enrollment_id is None or course.enrolled_at is None:
        return None
    return built(
        CourseProgress,
        id=stable_id("course_progress", state.user_id, course_id),
        user_id=state.user_id,
        version=state.version,
        course_id=course_id,
        enrollment_id=course.enrollment_id,
        created_at=course.enrolled_at,
        # The summary's own fields (scalars and times: nothing a dump would copy).
        **{k: v for k, v in summary.__dict__.items() if k not in _LEARNER_WIDE_ONLY},
    )


# Summary fields that feed learner-wide derivations and are not CourseProgress columns.
_LEARNER_WIDE_ONLY = {"lesson_completions", "perfect_quiz_at", "evidence"}


def user_row(state: LearnerState, achievement_points: int) -> UserProgress:
    """``achievement_points``: the points of the learner's achievements, which count in
    TotalPoints beside the points of completed items."""
    # One pass over the courses (this runs for every event, and a learner has many).
    courses = completed = in_progress = 0
    lessons = lessons_done = quizzes = quizzes_done = tasks = tasks_done = points = 0
    last_activity: datetime | None = None
    for course in state.courses.values():
        s = course.summary
        if s is None:
            continue
        courses += 1
        completed += s.status == "completed"
        in_progress += s.status == "in-progress"
        lessons += s.total_lessons
        lessons_done += s.completed_lessons
        quizzes += s.total_quizzes
        quizzes_done += s.completed_quizzes
        tasks += s.total_assignments
        tasks_done += s.completed_assignments
        points += s.total_points
        last_activity = latest(last_activity, s.last_activity_at)
    streak_days, last_day = streak(state.activity_days)
    return built(
        UserProgress,
        id=stable_id("user_progress", state.user_id),
        user_id=state.user_id,
        version=state.version,
        total_courses=courses,
        completed_courses=completed,
        in_progress_courses=in_progress,
        total_lessons=lessons,
        completed_lessons=lessons_done,
        total_quizzes=quizzes,
        completed_quizzes=quizzes_done,
        total_assignments=tasks,
        completed_assignments=tasks_done,
        total_points=points + achievement_points,
        last_activity_at=last_activity,
        created_at=state.created_at,
        updated_at=state.updated_at,
        current_streak_days=streak_days,
        last_active_day=last_day,
    )


def streak(days: Mapping[str, object]) -> tuple[int, date | None]:
    """The length of the run of consecutive ``days`` (ISO dates) that ends on the last one,
    and that day; (0, None) without days. Walks back from the last day only: a learner's
    every event builds this row."""
    if not days:
        return 0, None
    last = date.fromisoformat(max(days))
    run = 1
    while (last - timedelta(days=run)).isoformat() in days:
        run += 1
    return run, last
