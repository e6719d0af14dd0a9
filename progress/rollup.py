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
- TotalPoints = the points of the completed items (each item's ``points`` in the structure).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from progress.facts import earliest, latest
from progress.models import (
    CourseProgress,
    LessonProgress,
    ModuleProgress,
    ProgressStatus,
    UserProgress,
)
from progress.schema import stable_id
from progress.state import CourseState, CourseSummary, KnownCourse, LearnerState, LessonState
from progress.structure import ModuleDef


def percent(done: int, total: int) -> float:
    return round(100.0 * done / total, 2) if total else 0.0


def status_of(done: int, total: int, active: bool) -> ProgressStatus:
    if total and done == total:
        return "completed"
    return "in-progress" if active or done else "not-started"


def lesson_percent(lesson: LessonState) -> float:
    return 100.0 if lesson.completed_at is not None else lesson.percent


def _fold_times(
    lessons: Iterable[LessonState],
) -> tuple[datetime | None, datetime | None]:
    started: datetime | None = None
    last: datetime | None = None
    for lesson in lessons:
        started = earliest(started, lesson.started_at)
        last = latest(last, lesson.last_activity_at)
    return started, last


class _ModuleFigures:
    """Counts for one module of the structure, against one learner's lesson facts."""

    def __init__(self, module: ModuleDef, lessons: dict[str, LessonState]) -> None:
        self.module = module
        present = [lessons[x.id] for x in module.lessons if x.id in lessons]
        done = [x for x in present if x.completed_at is not None]
        self.total_lessons = len(module.lessons)
        self.completed_lessons = len(done)
        # Quizzes and assignments are tracked from their own streams (issue #3).
        self.total_quizzes = len(module.quizzes)
        self.completed_quizzes = 0
        self.total_assignments = len(module.assignments)
        self.completed_assignments = 0
        self.points = sum(
            x.points for x in module.lessons if x.id in lessons and lessons[x.id].completed_at
        )
        self.total = module.item_count
        self.done = self.completed_lessons + self.completed_quizzes + self.completed_assignments
        self.started_at, self.last_activity_at = _fold_times(present)
        self.completed_at = (
            max(x.completed_at for x in done if x.completed_at)
            if self.total and self.done == self.total and done
            else None
        )
        self.status = status_of(self.done, self.total, bool(present))


def summarize_course(course: CourseState, known: KnownCourse | None) -> CourseSummary:
    """The learner's roll-up of one course against its structure (empty while unknown)."""
    modules = known.structure.modules if known and known.structure else ()
    figures = [_ModuleFigures(m, course.lessons) for m in modules]
    started_at, last_activity_at = _fold_times(course.lessons.values())
    total = sum(f.total for f in figures)
    done = sum(f.done for f in figures)
    status = status_of(done, total, bool(course.lessons))
    completed_at = None
    if status == "completed":
        completed_at = max((f.completed_at for f in figures if f.completed_at), default=None)
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
    )


# --------------------------------------------------------------------------- rows


def lesson_row(
    state: LearnerState, course_id: str, lesson_id: str, known: KnownCourse | None
) -> LessonProgress:
    lesson = state.courses[course_id].lessons[lesson_id]
    structure = known.structure if known else None
    module_id = (structure.lesson_module(lesson_id) if structure else None) or lesson.module_id
    criteria = "completion-event"
    if structure:
        for module in structure.modules:
            for item in module.lessons:
                if item.id == lesson_id:
                    criteria = item.completion_criteria
    return LessonProgress(
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
    state: LearnerState, course_id: str, known: KnownCourse | None
) -> list[ModuleProgress]:
    if known is None or known.structure is None:
        return []
    course = state.courses[course_id]
    rows = []
    for module in known.structure.modules:
        f = _ModuleFigures(module, course.lessons)
        structure_at = known.structure_updated_at
        created_at = earliest(course.enrolled_at, structure_at) or structure_at
        rows.append(
            ModuleProgress(
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
                created_at=created_at,  # type: ignore[arg-type]
                updated_at=latest(latest(f.last_activity_at, structure_at), course.enrolled_at),  # type: ignore[arg-type]
            )
        )
    return rows


def course_row(state: LearnerState, course_id: str) -> CourseProgress | None:
    course = state.courses[course_id]
    summary = course.summary
    if summary is None or course.enrollment_id is None or course.enrolled_at is None:
        return None
    return CourseProgress(
        id=stable_id("course_progress", state.user_id, course_id),
        user_id=state.user_id,
        version=state.version,
        course_id=course_id,
        enrollment_id=course.enrollment_id,
        created_at=course.enrolled_at,
        **summary.model_dump(),
    )


def user_row(state: LearnerState) -> UserProgress:
    summaries = [c.summary for c in state.courses.values() if c.summary is not None]
    last_activity: datetime | None = None
    for s in summaries:
        last_activity = latest(last_activity, s.last_activity_at)
    return UserProgress(
        id=stable_id("user_progress", state.user_id),
        user_id=state.user_id,
        version=state.version,
        total_courses=len(summaries),
        completed_courses=sum(1 for s in summaries if s.status == "completed"),
        in_progress_courses=sum(1 for s in summaries if s.status == "in-progress"),
        total_lessons=sum(s.total_lessons for s in summaries),
        completed_lessons=sum(s.completed_lessons for s in summaries),
        total_quizzes=sum(s.total_quizzes for s in summaries),
        completed_quizzes=sum(s.completed_quizzes for s in summaries),
        total_assignments=sum(s.total_assignments for s in summaries),
        completed_assignments=sum(s.completed_assignments for s in summaries),
        total_points=sum(s.total_points for s in summaries),
        last_activity_at=last_activity,
        created_at=state.created_at,
        updated_at=state.updated_at,
    )
