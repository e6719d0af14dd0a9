"""A reference oracle: the expected final state of every per-learner table, from an event log.

Written from docs/events.md and docs/catalogs.md, independently of the streaming code: the
only things imported from ``progress`` are the input classes (events, catalog entries and the
course structure they carry). Where the docs leave a definition open, the core was read to
settle it, and the place says so with "(settled by reading the core: ...)".

How it works, the simplest way I could think of:

1. Drop repeated event ids; sort the rest by event time (ties by event id).
2. Replay them in that order into plain facts: the earliest enrollment, a lesson's earliest
   and latest event, the latest answer to a question, the newest structure of a course and
   the newest catalog entries (the newest being simply the last one replayed), ...
3. After each instant of event time, derive everything from the facts held at that instant
   (the structure and catalog in force then) and note what happened for the first time: a
   course completed, a competency reaching mastery, an achievement's criterion met, each at
   the time of the facts that did it (the last item's completion, the evidence that took the
   level to 80, the n-th lesson completed...). These "once" things are what history decides:
   a course completed once stays announced even if it grows later; an achievement is earned
   when first met, in event time, by its final definition ("even for an achievement defined
   later").
4. The rows are derived from the facts at the end, against the newest structures and catalog
   entries; only UserAchievement (earned once, kept) and UserCompetency.AcquiredAt ("when the
   level first reached 80, in event time") come from the history of step 3.

Rows are plain dicts of the columns that matter, keyed by natural ids (see ``KEYS``); ids,
versions and created/updated/synced times are left out. The published "once" events are a
set of ``(kind, user_id, subject_id)``.

Left out: ProgressUpdated (not a once-event); the payloads of once-events (only who and what);
the catalog tables (competencies, achievements, learning_paths) and course titles; the wording
of an item's evidence description (the core's own; external evidence keeps the producer's);
streak days in a zone held "when it arrived" (docs/catalogs.md): the oracle files a day by the
zone held at the activity's event time, the only reading independent of arrival order.
Deleted catalog entries are honoured (a deleted path has no rows, a deleted achievement is
not awarded), but an achievement earned before its deletion is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from progress.catalog import AchievementUpdated, CompetencyUpdated, LearningPathUpdated
from progress.events import (
    AssignmentDraftSaved,
    AssignmentGraded,
    AssignmentSubmissionReceived,
    CourseUpdated,
    ExternalEvidenceRecorded,
    LearnerProfileUpdated,
    LessonCompleted,
    LessonProgressed,
    LessonStarted,
    QuizAttemptAbandoned,
    QuizAttemptStarted,
    QuizAttemptSubmitted,
    QuizQuestionAnswered,
    UserEnrolled,
)
from progress.structure import AssignmentDef, CourseStructure, ModuleDef, QuizDef

Event = (
    UserEnrolled
    | CourseUpdated
    | LessonStarted
    | LessonProgressed
    | LessonCompleted
    | QuizAttemptStarted
    | QuizQuestionAnswered
    | QuizAttemptSubmitted
    | QuizAttemptAbandoned
    | AssignmentDraftSaved
    | AssignmentSubmissionReceived
    | AssignmentGraded
    | ExternalEvidenceRecorded
    | LearnerProfileUpdated
    | LearningPathUpdated
    | CompetencyUpdated
    | AchievementUpdated
)

MASTERY = 80  # docs/catalogs.md: "mastered at 80 or more"
DEFAULT_PASS_MARK = 50.0  # docs/events.md: "a pass_mark (percent, 50 by default)"
DEFAULT_MAX_SCORE = 100.0  # docs/events.md: "an assignment has a max_score (100)"

# The natural key of each table's rows (what the row is about, in place of its opaque id).
KEYS: dict[str, tuple[str, ...]] = {
    "user_progress": ("user_id",),
    "course_progress": ("user_id", "course_id"),
    "module_progress": ("user_id", "course_id", "module_id"),
    "lesson_progress": ("user_id", "course_id", "lesson_id"),
    "quiz_attempts": ("user_id", "attempt_id"),
    "quiz_question_responses": ("user_id", "attempt_id", "question_id"),
    "assignment_submissions": ("user_id", "submission_id"),
    "learning_path_progress": ("user_id", "learning_path_id"),
    "user_competencies": ("user_id", "competency_id"),
    "competency_evidence": ("user_id", "competency_id", "type", "reference_id"),
    "user_achievements": ("user_id", "achievement_id"),
}

Key = tuple[str, ...]
Once = tuple[str, str, str]  # (published event type, user_id, subject id)


@dataclass
class Expected:
    tables: dict[str, dict[Key, dict[str, Any]]]
    once: set[Once]
    # Points of each achievement by its final definition (UserProgress.TotalPoints adds them).
    achievement_points: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- facts


@dataclass
class Lesson:
    course_id: str
    module_id: str  # as the first lesson event named it
    started_at: datetime  # earliest event
    last_activity_at: datetime  # latest event
    completed_at: datetime | None = None  # earliest LessonCompleted
    percent: float = 0.0  # highest reported
    time_spent: int = 0  # highest reported
    last_position: int = 0  # of the latest LessonProgressed


@dataclass
class Attempt:
    course_id: str
    module_id: str
    lesson_id: str
    quiz_id: str
    first_at: datetime
    last_at: datetime
    started_at: datetime | None = None
    total_questions: int = 0
    answers: dict[str, QuizQuestionAnswered] = field(default_factory=dict)  # latest each
    submitted_at: datetime | None = None
    submitted_time_spent: int = 0
    abandoned_at: datetime | None = None


@dataclass
class Submission:
    course_id: str
    module_id: str
    lesson_id: str
    assignment_id: str
    first_at: datetime
    last_at: datetime
    content: AssignmentDraftSaved | AssignmentSubmissionReceived | None = None  # latest
    submitted_at: datetime | None = None  # earliest
    grade: AssignmentGraded | None = None  # latest


@dataclass
class Learner:
    enrollments: dict[str, UserEnrolled] = field(default_factory=dict)  # earliest each
    lessons: dict[tuple[str, str], Lesson] = field(default_factory=dict)  # (course, lesson)
    attempts: dict[str, Attempt] = field(default_factory=dict)
    submissions: dict[str, Submission] = field(default_factory=dict)
    external: dict[str, ExternalEvidenceRecorded] = field(default_factory=dict)  # newest each
    zone: str = "UTC"
    days: dict[date, datetime] = field(default_factory=dict)  # local day -> first activity


@dataclass
class World:
    """Everything known after replaying some prefix of the log in event-time order."""

    learners: dict[str, Learner] = field(default_factory=dict)
    structures: dict[str, CourseStructure] = field(default_factory=dict)  # newest each
    paths: dict[str, LearningPathUpdated] = field(default_factory=dict)  # newest each
    achievements: dict[str, AchievementUpdated] = field(default_factory=dict)

    def learner(self, user_id: str) -> Learner:
        return self.learners.setdefault(user_id, Learner())

    def apply(self, e: Event) -> None:
        """One event, replayed in event-time order: 'earliest' is the first one seen,
        'latest' and 'newest' the last one."""
        t = e.event_time
        if isinstance(e, CourseUpdated):
            if e.modules is not None:  # an update without modules changes the title only
                self.structures[e.id] = e.modules
            return
        if isinstance(e, LearningPathUpdated):
            self.paths[e.id] = e
            return
        if isinstance(e, AchievementUpdated):
            self.achievements[e.id] = e
            return
        if isinstance(e, CompetencyUpdated):
            return  # names only: no learner's row depends on it
        learner = self.learner(e.user_id)
        if isinstance(e, UserEnrolled):
            learner.enrollments.setdefault(e.course_id, e)
        elif isinstance(e, ExternalEvidenceRecorded):
            learner.external[e.evidence_id] = e
        elif isinstance(e, LearnerProfileUpdated):
            learner.zone = e.time_zone
        else:
            # Lesson, quiz and assignment events are activity, filed under the local day.
            day = t.astimezone(ZoneInfo(learner.zone)).date()
            learner.days.setdefault(day, t)
            if isinstance(e, LessonStarted | LessonProgressed | LessonCompleted):
                _apply_lesson(learner, e)
            elif isinstance(
                e,
                QuizAttemptStarted
                | QuizQuestionAnswered
                | QuizAttemptSubmitted
                | QuizAttemptAbandoned,
            ):
                _apply_quiz(learner, e)
            else:
                _apply_assignment(learner, e)


def _apply_lesson(learner: Learner, e: LessonStarted | LessonProgressed | LessonCompleted) -> None:
    t = e.event_time
    key = (e.course_id, e.lesson_id)
    lesson = learner.lessons.setdefault(key, Lesson(e.course_id, e.module_id, t, t))
    lesson.last_activity_at = t
    if isinstance(e, LessonProgressed):
        lesson.percent = max(lesson.percent, e.percent_complete)
        lesson.time_spent = max(lesson.time_spent, e.time_spent)
        lesson.last_position = e.position
    elif isinstance(e, LessonCompleted) and lesson.completed_at is None:
        lesson.completed_at = t


def _apply_quiz(
    learner: Learner,
    e: QuizAttemptStarted | QuizQuestionAnswered | QuizAttemptSubmitted | QuizAttemptAbandoned,
) -> None:
    t = e.event_time
    a = learner.attempts.setdefault(
        e.attempt_id, Attempt(e.course_id, e.module_id, e.lesson_id, e.quiz_id, t, t)
    )
    a.last_at = t
    if isinstance(e, QuizAttemptStarted):
        if a.started_at is None:
            a.started_at = t
        a.total_questions = e.total_questions
    elif isinstance(e, QuizQuestionAnswered):
        a.answers[e.question_id] = e
    elif isinstance(e, QuizAttemptSubmitted):
        if a.submitted_at is None:
            a.submitted_at = t
        a.submitted_time_spent = max(a.submitted_time_spent, e.time_spent)
    elif a.abandoned_at is None:
        a.abandoned_at = t


def _apply_assignment(
    learner: Learner, e: AssignmentDraftSaved | AssignmentSubmissionReceived | AssignmentGraded
) -> None:
    t = e.event_time
    s = learner.submissions.setdefault(
        e.submission_id, Submission(e.course_id, e.module_id, e.lesson_id, e.assignment_id, t, t)
    )
    s.last_at = t
    if isinstance(e, AssignmentGraded):
        s.grade = e
    else:
        s.content = e
        if isinstance(e, AssignmentSubmissionReceived) and s.submitted_at is None:
            s.submitted_at = t


# --------------------------------------------------------------------------- derivations


def _round2(x: float) -> float:
    return round(x, 2)


def _percent(done: int, total: int) -> float:
    return _round2(100.0 * done / total) if total else 0.0


def _status(done: int, total: int, active: bool) -> str:
    if total and done == total:
        return "completed"
    return "in-progress" if active or done else "not-started"


def _questions(a: Attempt) -> int:
    # "Its questions": those the start announced, or the ones answered if more (settled by
    # reading the core: the larger of total_questions and the number answered).
    return max(a.total_questions, len(a.answers))


def _credit(answer: QuizQuestionAnswered) -> float:
    if answer.score is not None:
        return answer.score
    return 1.0 if answer.correct else 0.0


def _score(a: Attempt) -> float:
    n = _questions(a)
    return _round2(100.0 * sum(_credit(x) for x in a.answers.values()) / n) if n else 0.0


def _passed(a: Attempt, pass_mark: float) -> bool:
    return a.submitted_at is not None and _score(a) >= pass_mark


def _quiz_done_at(learner: Learner, course_id: str, quiz: QuizDef) -> datetime | None:
    times = [
        a.submitted_at
        for a in learner.attempts.values()
        if a.course_id == course_id
        and a.quiz_id == quiz.id
        and a.submitted_at is not None
        and (quiz.completion == "submitted" or _passed(a, quiz.pass_mark))
    ]
    return min(times, default=None)


def _assignment_done_at(
    learner: Learner, course_id: str, assignment: AssignmentDef
) -> datetime | None:
    times = []
    for s in learner.submissions.values():
        if s.course_id != course_id or s.assignment_id != assignment.id:
            continue
        if assignment.completion == "submitted":
            if s.submitted_at is not None:
                times.append(s.submitted_at)
        elif s.grade is not None:
            # The grade kept is the latest one (docs/events.md), so only it can qualify.
            max_score = s.grade.max_score or assignment.max_score
            if s.grade.score >= assignment.pass_ratio * max_score:
                times.append(s.grade.graded_at)
    return min(times, default=None)


def _spans(
    learner: Learner,
    course_id: str,
    lessons: set[str] | None,
    quizzes: set[str] | None,
    assignments: set[str] | None,
) -> list[tuple[datetime, datetime]]:
    """(first, last) event times of the learner's items in a course (None: every item)."""
    spans = [
        (x.started_at, x.last_activity_at)
        for (cid, lid), x in learner.lessons.items()
        if cid == course_id and (lessons is None or lid in lessons)
    ]
    spans += [
        (a.first_at, a.last_at)
        for a in learner.attempts.values()
        if a.course_id == course_id and (quizzes is None or a.quiz_id in quizzes)
    ]
    spans += [
        (s.first_at, s.last_at)
        for s in learner.submissions.values()
        if s.course_id == course_id and (assignments is None or s.assignment_id in assignments)
    ]
    return spans


@dataclass
class Figures:
    """Counts of one module, or of a whole course (the sum of its modules)."""

    total_lessons: int = 0
    completed_lessons: int = 0
    total_quizzes: int = 0
    completed_quizzes: int = 0
    total_assignments: int = 0
    completed_assignments: int = 0
    points: int = 0
    done_times: list[datetime] = field(default_factory=list)
    lesson_done_times: list[datetime] = field(default_factory=list)
    # (competency, type, reference, level, at) for completed items that grant one
    evidence: list[tuple[str, str, str, int, datetime]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.total_lessons + self.total_quizzes + self.total_assignments

    @property
    def done(self) -> int:
        return self.completed_lessons + self.completed_quizzes + self.completed_assignments

    def add(self, other: Figures) -> None:
        for name in (
            "total_lessons",
            "completed_lessons",
            "total_quizzes",
            "completed_quizzes",
            "total_assignments",
            "completed_assignments",
            "points",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.done_times += other.done_times
        self.lesson_done_times += other.lesson_done_times
        self.evidence += other.evidence


def _module_figures(learner: Learner, course_id: str, module: ModuleDef) -> Figures:
    f = Figures(
        total_lessons=len(module.lessons),
        total_quizzes=len(module.quizzes),
        total_assignments=len(module.assignments),
    )
    for lesson in module.lessons:
        held = learner.lessons.get((course_id, lesson.id))
        if held is not None and held.completed_at is not None:
            f.completed_lessons += 1
            f.points += lesson.points
            f.done_times.append(held.completed_at)
            f.lesson_done_times.append(held.completed_at)
    for quiz in module.quizzes:
        at = _quiz_done_at(learner, course_id, quiz)
        if at is not None:
            f.completed_quizzes += 1
            f.points += quiz.points
            f.done_times.append(at)
            f.evidence += [
                (g.competency_id, "quiz", quiz.id, g.level, at) for g in quiz.competencies
            ]
    for assignment in module.assignments:
        at = _assignment_done_at(learner, course_id, assignment)
        if at is not None:
            f.completed_assignments += 1
            f.points += assignment.points
            f.done_times.append(at)
            f.evidence += [
                (g.competency_id, "assignment", assignment.id, g.level, at)
                for g in assignment.competencies
            ]
    return f


def _times(spans: list[tuple[datetime, datetime]]) -> tuple[datetime | None, datetime | None]:
    return min((s[0] for s in spans), default=None), max((s[1] for s in spans), default=None)


def _module_row(learner: Learner, course_id: str, module: ModuleDef) -> dict[str, Any]:
    f = _module_figures(learner, course_id, module)
    spans = _spans(
        learner,
        course_id,
        {x.id for x in module.lessons},
        {x.id for x in module.quizzes},
        {x.id for x in module.assignments},
    )
    started, last = _times(spans)
    status = _status(f.done, f.total, bool(spans))
    return {
        "status": status,
        "percent_complete": _percent(f.done, f.total),
        "total_lessons": f.total_lessons,
        "completed_lessons": f.completed_lessons,
        "total_quizzes": f.total_quizzes,
        "completed_quizzes": f.completed_quizzes,
        "total_assignments": f.total_assignments,
        "completed_assignments": f.completed_assignments,
        "started_at": started,
        "completed_at": max(f.done_times) if status == "completed" else None,
        "last_activity_at": last,
    }


@dataclass
class CourseView:
    row: dict[str, Any]
    modules: dict[str, dict[str, Any]]
    lesson_done_times: list[datetime]
    evidence: list[tuple[str, str, str, int, datetime]]
    perfect_quiz_at: list[datetime]


def _course(learner: Learner, course_id: str, structure: CourseStructure | None) -> CourseView:
    """An enrolled learner's course against a structure (none yet: nothing to count)."""
    modules = structure.modules if structure else ()
    total = Figures()
    module_rows: dict[str, dict[str, Any]] = {}
    completed_modules = 0
    for module in modules:
        f = _module_figures(learner, course_id, module)
        total.add(f)
        module_rows[module.id] = _module_row(learner, course_id, module)
        if module_rows[module.id]["status"] == "completed":
            completed_modules += 1
    spans = _spans(learner, course_id, None, None, None)
    started, last = _times(spans)
    status = _status(total.done, total.total, bool(spans))
    completed_at = max(total.done_times) if status == "completed" else None
    evidence = list(total.evidence)
    if completed_at is not None and structure is not None:
        evidence += [
            (g.competency_id, "course", course_id, g.level, completed_at)
            for g in structure.competencies
        ]
    enrollment = learner.enrollments[course_id]
    row = {
        "enrollment_id": enrollment.id,
        "status": status,
        "percent_complete": _percent(total.done, total.total),
        # "TotalModules": modules with at least one item (settled by reading the core: an
        # empty module can be neither started nor finished).
        "total_modules": sum(1 for m in modules if m.item_count),
        "completed_modules": completed_modules,
        "total_lessons": total.total_lessons,
        "completed_lessons": total.completed_lessons,
        "total_quizzes": total.total_quizzes,
        "completed_quizzes": total.completed_quizzes,
        "total_assignments": total.total_assignments,
        "completed_assignments": total.completed_assignments,
        "total_points": total.points,
        # StartedAt / LastActivityAt: the earliest / latest event of any item of the course
        # the learner touched, counted or not (settled by reading the core).
        "started_at": started,
        # CompletedAt: when the last item was done (settled by reading the core; a course
        # that completes because it shrank keeps its last item's time).
        "completed_at": completed_at,
        "last_activity_at": last,
    }
    perfect = [
        a.submitted_at
        for a in learner.attempts.values()
        if a.course_id == course_id
        and a.submitted_at is not None
        and _questions(a) > 0
        and _score(a) == 100.0
    ]
    return CourseView(row, module_rows, total.lesson_done_times, evidence, perfect)


def _path(path: LearningPathUpdated, courses: dict[str, CourseView]) -> dict[str, Any] | None:
    """A learner is on a path once enrolled in any of its courses."""
    on = [c for c in path.course_ids if c in courses]
    if not on:
        return None
    done = [c for c in on if courses[c].row["status"] == "completed"]
    total = len(path.course_ids)
    started = min(
        (courses[c].row["started_at"] for c in on if courses[c].row["started_at"]), default=None
    )
    last = max(
        (courses[c].row["last_activity_at"] for c in on if courses[c].row["last_activity_at"]),
        default=None,
    )
    complete = len(done) == total
    return {
        # Started once any of its courses started (settled by reading the core).
        "status": _status(len(done), total, started is not None),
        "percent_complete": _percent(len(done), total),
        "total_courses": total,
        "completed_courses": len(done),
        "current_course_id": next((c for c in path.course_ids if c not in done), ""),
        "started_at": started,
        "completed_at": max(courses[c].row["completed_at"] for c in done) if complete else None,
        "last_activity_at": last,
    }


@dataclass
class LearnerView:
    courses: dict[str, CourseView]
    paths: dict[str, dict[str, Any]]
    # competency -> [(type, reference, level, at, description, url)]
    evidence: dict[str, list[tuple[str, str, int, datetime, str, str]]]

    def level(self, competency_id: str) -> int:
        return min(100, sum(e[2] for e in self.evidence.get(competency_id, [])))


def _view(world: World, learner: Learner) -> LearnerView:
    courses = {cid: _course(learner, cid, world.structures.get(cid)) for cid in learner.enrollments}
    paths = {}
    for pid, path in world.paths.items():
        if not path.deleted and (row := _path(path, courses)) is not None:
            paths[pid] = row
    evidence: dict[str, list[tuple[str, str, int, datetime, str, str]]] = {}
    for view in courses.values():
        for competency, kind, ref, level, at in view.evidence:
            evidence.setdefault(competency, []).append((kind, ref, level, at, "", ""))
    for x in learner.external.values():
        evidence.setdefault(x.competency_id, []).append(
            ("external", x.evidence_id, x.level, x.recorded_at, x.description, x.url)
        )
    return LearnerView(courses, paths, evidence)


def _nth(times: list[datetime], n: int) -> datetime | None:
    ordered = sorted(times)
    return ordered[n - 1] if len(ordered) >= n else None


def _criterion_time(
    achievement: AchievementUpdated,
    learner: Learner,
    view: LearnerView,
    first_completed: dict[str, datetime],
) -> datetime | None:
    """When the achievement's criterion was met, if it holds now (docs/catalogs.md).

    The time is that of the facts that meet it: the n-th counted lesson completion, the
    course's or path's CompletedAt, the perfect attempt's submission, the first activity of
    the day that completed the streak (settled by reading the core: a lesson completed before
    the structure that counts it arrived, in event time, is met at its completion). Lessons and
    courses count in enrolled courses, against the structure in force (settled by reading the
    core: a lesson outside the structure or an unenrolled course is not counted); a perfect
    quiz is a submitted attempt of at least one question at 100%. Courses count as they were
    first completed (``first_completed``), "even if it grew since" (docs/catalogs.md): a course
    completed, then reopened by a regrade, still counts towards ``courses``.
    """
    c = achievement.criteria
    completed = dict(first_completed)
    lessons = [t for v in view.courses.values() for t in v.lesson_done_times]
    match c.kind:
        case "first-lesson":
            return _nth(lessons, 1)
        case "lessons":
            return _nth(lessons, c.count)
        case "course-completed":
            if c.course_id is not None:
                return completed.get(c.course_id)
            return _nth(list(completed.values()), 1)
        case "courses":
            return _nth(list(completed.values()), c.count)
        case "perfect-quiz":
            return _nth([t for v in view.courses.values() for t in v.perfect_quiz_at], 1)
        case "learning-path-completed":
            done = {
                pid: p["completed_at"]
                for pid, p in view.paths.items()
                if p["status"] == "completed"
            }
            if c.learning_path_id is not None:
                return done.get(c.learning_path_id)
            return _nth(list(done.values()), 1)
        case "streak":
            return _streak_time(learner.days, c.count)
    raise AssertionError(f"unknown criterion {c.kind}")


def _streak_time(days: dict[date, datetime], length: int) -> datetime | None:
    """The first activity of the day that completed the first run of ``length`` days."""
    run = 0
    previous: date | None = None
    for day in sorted(days):
        run = run + 1 if previous is not None and day - previous == timedelta(days=1) else 1
        previous = day
        if run >= length:
            return days[day]
    return None


def _mastered_at(facts: list[tuple[str, str, int, datetime, str, str]]) -> datetime | None:
    """When the running sum of the evidence, in event time, first reached mastery."""
    level = 0
    for _kind, _ref, points, at, _description, _url in sorted(facts, key=lambda f: f[3]):
        level += points
        if level >= MASTERY:
            return at
    return None


# --------------------------------------------------------------------------- the oracle


def expected(log: list[Event]) -> Expected:
    unique: dict[str, Event] = {}
    for e in log:
        assert e.event_id is not None
        unique.setdefault(e.event_id, e)
    ordered = sorted(unique.values(), key=lambda e: (e.event_time, e.event_id or ""))

    # Achievements are judged by their final definition, over the whole history.
    final_achievements: dict[str, AchievementUpdated] = {}
    for e in ordered:
        if isinstance(e, AchievementUpdated):
            final_achievements[e.id] = e
    live_achievements = {k: a for k, a in final_achievements.items() if not a.deleted}

    world = World()
    completed_once: set[tuple[str, str]] = set()
    first_completed: dict[str, dict[str, datetime]] = {}  # user -> course -> CompletedAt
    mastered_at: dict[tuple[str, str], datetime] = {}
    earned_at: dict[tuple[str, str], datetime] = {}
    i = 0
    while i < len(ordered):
        now = ordered[i].event_time
        while i < len(ordered) and ordered[i].event_time == now:
            world.apply(ordered[i])
            i += 1
        # What holds at this instant of event time, for the first time.
        for user_id, learner in world.learners.items():
            view = _view(world, learner)
            for cid, course in view.courses.items():
                if course.row["status"] == "completed":
                    completed_once.add((user_id, cid))
                    first_completed.setdefault(user_id, {}).setdefault(
                        cid, course.row["completed_at"]
                    )
            for competency, facts in view.evidence.items():
                key = (user_id, competency)
                if key not in mastered_at and (reached := _mastered_at(facts)) is not None:
                    mastered_at[key] = reached
            for aid, achievement in live_achievements.items():
                key = (user_id, aid)
                if (
                    key not in earned_at
                    and (
                        met := _criterion_time(
                            achievement, learner, view, first_completed.get(user_id, {})
                        )
                    )
                    is not None
                ):
                    earned_at[key] = met

    return _final(world, live_achievements, completed_once, mastered_at, earned_at)


def _final(
    world: World,
    achievements: dict[str, AchievementUpdated],
    completed_once: set[tuple[str, str]],
    mastered_at: dict[tuple[str, str], datetime],
    earned_at: dict[tuple[str, str], datetime],
) -> Expected:
    tables: dict[str, dict[Key, dict[str, Any]]] = {name: {} for name in KEYS}
    once: set[Once] = {("CourseCompleted", u, c) for u, c in completed_once}
    once |= {("CompetencyAcquired", u, c) for u, c in mastered_at}
    once |= {("AchievementEarned", u, a) for u, a in earned_at}

    for user_id, learner in sorted(world.learners.items()):
        view = _view(world, learner)
        _lesson_rows(tables, world, user_id, learner)
        _quiz_rows(tables, world, user_id, learner, once)
        _submission_rows(tables, world, user_id, learner, once)
        for cid, course in view.courses.items():
            tables["course_progress"][(user_id, cid)] = course.row
            for mid, row in course.modules.items():
                tables["module_progress"][(user_id, cid, mid)] = row
        for pid, row in view.paths.items():
            tables["learning_path_progress"][(user_id, pid)] = row
        for competency, facts in view.evidence.items():
            level = view.level(competency)
            tables["user_competencies"][(user_id, competency)] = {
                "level": level,
                "status": "mastered"
                if level >= MASTERY
                else "in-progress"
                if level
                else "not-started",
                "acquired_at": mastered_at.get((user_id, competency)),
            }
            for kind, ref, _level, _at, description, url in facts:
                row: dict[str, Any] = {"url": url}
                if kind == "external":  # the core words its own descriptions of items
                    row["description"] = description
                tables["competency_evidence"][(user_id, competency, kind, ref)] = row
        points = 0
        for (u, aid), at in earned_at.items():
            if u == user_id:
                tables["user_achievements"][(user_id, aid)] = {"earned_at": at}
                points += achievements[aid].points
        rows = [c.row for c in view.courses.values()]
        tables["user_progress"][(user_id,)] = {
            "total_courses": len(rows),
            "completed_courses": sum(1 for r in rows if r["status"] == "completed"),
            "in_progress_courses": sum(1 for r in rows if r["status"] == "in-progress"),
            **{
                name: sum(r[name] for r in rows)
                for name in (
                    "total_lessons",
                    "completed_lessons",
                    "total_quizzes",
                    "completed_quizzes",
                    "total_assignments",
                    "completed_assignments",
                )
            },
            "total_points": sum(r["total_points"] for r in rows) + points,
            "last_activity_at": max(
                (r["last_activity_at"] for r in rows if r["last_activity_at"]), default=None
            ),
            **_streak(learner.days),
        }
    return Expected(tables, once, {aid: a.points for aid, a in achievements.items()})


def _streak(days: dict[date, datetime]) -> dict[str, Any]:
    """The run of consecutive local days ending on the last, counted from the start."""
    run, previous = 0, None
    for day in sorted(days):
        run = run + 1 if previous is not None and (day - previous).days == 1 else 1
        previous = day
    return {"current_streak_days": run, "last_active_day": previous}


def _lesson_rows(
    tables: dict[str, dict[Key, dict[str, Any]]], world: World, user_id: str, learner: Learner
) -> None:
    """A lesson's row exists once it has an event, enrolled or not, in the structure or not."""
    for (cid, lid), x in learner.lessons.items():
        module_id, criteria = x.module_id, "completion-event"
        structure = world.structures.get(cid)
        for module in structure.modules if structure else ():
            for lesson in module.lessons:
                if lesson.id == lid:
                    module_id, criteria = module.id, lesson.completion_criteria
        tables["lesson_progress"][(user_id, cid, lid)] = {
            "module_id": module_id,
            # A completed lesson is at 100% and "completed", any other "in-progress"
            # (settled by reading the core).
            "status": "completed" if x.completed_at else "in-progress",
            "percent_complete": 100.0 if x.completed_at else x.percent,
            "time_spent": x.time_spent,
            "last_position": x.last_position,
            "completion_criteria": criteria,
            "started_at": x.started_at,
            "completed_at": x.completed_at,
            "last_activity_at": x.last_activity_at,
        }


def _quiz_rows(
    tables: dict[str, dict[Key, dict[str, Any]]],
    world: World,
    user_id: str,
    learner: Learner,
    once: set[Once],
) -> None:
    for attempt_id, a in learner.attempts.items():
        structure = world.structures.get(a.course_id)
        quiz = next(
            (q for m in structure.modules for q in m.quizzes if q.id == a.quiz_id)
            if structure
            else iter(()),
            None,
        )
        pass_mark = quiz.pass_mark if quiz else DEFAULT_PASS_MARK
        # AttemptNumber: rank by start time among the learner's attempts at the quiz; the
        # start of an attempt without QuizAttemptStarted is its earliest event, and equal
        # starts go by attempt id (settled by reading the core).
        rivals = sorted(
            (b.started_at or b.first_at, bid)
            for bid, b in learner.attempts.items()
            if b.course_id == a.course_id and b.quiz_id == a.quiz_id
        )
        number = rivals.index((a.started_at or a.first_at, attempt_id)) + 1
        correct = sum(1 for x in a.answers.values() if x.correct)
        questions = _questions(a)
        tables["quiz_attempts"][(user_id, attempt_id)] = {
            "course_id": a.course_id,
            "module_id": a.module_id,
            "lesson_id": a.lesson_id,
            "quiz_id": a.quiz_id,
            "status": "completed"
            if a.submitted_at
            else "abandoned"
            if a.abandoned_at
            else "in-progress",
            "score": _score(a),
            "total_questions": questions,
            "correct_answers": correct,
            "incorrect_answers": len(a.answers) - correct,
            "unanswered_questions": questions - len(a.answers),
            # The submitted total, or the answers' sum if larger (settled by reading the core).
            "time_spent": max(
                a.submitted_time_spent, sum(x.time_spent for x in a.answers.values())
            ),
            "passed": _passed(a, pass_mark),
            "attempt_number": number,
            "started_at": a.started_at or a.first_at,
            "completed_at": a.submitted_at,
        }
        for question_id, x in a.answers.items():
            tables["quiz_question_responses"][(user_id, attempt_id, question_id)] = {
                "selected_options": list(x.selected_options),
                "text_response": x.text_response,
                "correct": x.correct,
                "score": _credit(x),
                "time_spent": x.time_spent,
            }
        if a.submitted_at is not None:
            once.add(("QuizCompleted", user_id, attempt_id))


def _submission_rows(
    tables: dict[str, dict[Key, dict[str, Any]]],
    world: World,
    user_id: str,
    learner: Learner,
    once: set[Once],
) -> None:
    for submission_id, s in learner.submissions.items():
        structure = world.structures.get(s.course_id)
        assignment = structure and next(
            (x for m in structure.modules for x in m.assignments if x.id == s.assignment_id), None
        )
        grade = s.grade
        content = s.content
        tables["assignment_submissions"][(user_id, submission_id)] = {
            "course_id": s.course_id,
            "module_id": s.module_id,
            "lesson_id": s.lesson_id,
            "assignment_id": s.assignment_id,
            "status": "graded" if grade else "submitted" if s.submitted_at else "draft",
            # A submission only graded so far has no content: "text", empty (settled by
            # reading the core).
            "submission_type": content.submission_type if content else "text",
            "text_content": content.text_content if content else "",
            "file_url": content.file_url if content else "",
            "link_url": content.link_url if content else "",
            "score": grade.score if grade else None,
            "max_score": (grade.max_score if grade and grade.max_score else None)
            or (assignment.max_score if assignment else DEFAULT_MAX_SCORE),
            "feedback": grade.feedback if grade else "",
            "graded_by": grade.graded_by if grade else "",
            "submitted_at": s.submitted_at,
            "graded_at": grade.graded_at if grade else None,
        }
        if s.submitted_at is not None:
            once.add(("AssignmentSubmitted", user_id, submission_id))
