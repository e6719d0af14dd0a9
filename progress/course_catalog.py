"""The course catalog: a course's title, modules and items as rows, for PostgreSQL.

The worker knows each course as a ``KnownCourse`` (title and structure, each the newest by
its own clock). Whenever it applies a CourseUpdated it publishes the course as a
``CourseSnapshot`` on ``progress.snapshots`` (keyed ``course/<course_id>``), and the sink
writes the rows: ``courses``, ``course_modules``, ``course_items``.

Each part is versioned by the clock the worker merged it by: the title by
``title_updated_at``, the structure (modules and items, as a set) by
``(structure_updated_at, structure_event_id)``. The sink keeps the newer of each, so
snapshots written again or out of order end in the newest course.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from progress.schema import OutputModel
from progress.state import KnownCourse
from progress.structure import ModuleDef

ItemKind = Literal["lesson", "quiz", "assignment"]


class CourseRow(OutputModel):
    table: ClassVar[str] = "courses"
    id: str
    title: str
    title_updated_at: datetime | None
    structure_updated_at: datetime | None
    structure_event_id: str
    total_modules: int
    total_items: int
    total_points: int


class CourseModuleRow(OutputModel):
    table: ClassVar[str] = "course_modules"
    course_id: str
    module_id: str
    title: str
    position: int
    total_items: int
    total_points: int


class CourseItemRow(OutputModel):
    table: ClassVar[str] = "course_items"
    course_id: str
    kind: ItemKind
    item_id: str
    module_id: str
    title: str
    # 1-based within the module: its lessons, then its quizzes, then its assignments.
    position: int
    # 1-based across the course, modules in order.
    course_position: int
    points: int
    # What makes the item done (progress.structure): a lesson its completion criteria
    # ("completion-event": a LessonCompleted), a quiz "passed" or "submitted", an
    # assignment "submitted" or "graded".
    completion: str
    pass_mark: float | None = None
    max_score: float | None = None
    pass_ratio: float | None = None


class CourseSnapshot(OutputModel):
    """A course as the worker holds it, for the sink, keyed ``course/<course_id>``."""

    kind: Literal["course"] = "course"
    course: CourseRow
    modules: tuple[CourseModuleRow, ...] = ()
    items: tuple[CourseItemRow, ...] = ()

    @staticmethod
    def key_for(course_id: str) -> str:
        return f"course/{course_id}"

    @classmethod
    def of(cls, known: KnownCourse) -> CourseSnapshot:
        """The course's rows: its current structure only (the earlier ones the worker keeps
        judge late activity; no reader of the catalog needs them)."""
        structure = known.structure
        modules: list[CourseModuleRow] = []
        items: list[CourseItemRow] = []
        for index, module in enumerate(structure.modules if structure else (), start=1):
            module_items = _items(known.course_id, module, first=len(items) + 1)
            items.extend(module_items)
            modules.append(
                CourseModuleRow(
                    course_id=known.course_id,
                    module_id=module.id,
                    title=module.title,
                    position=index,
                    total_items=len(module_items),
                    total_points=sum(item.points for item in module_items),
                )
            )
        course = CourseRow(
            id=known.course_id,
            title=known.title,
            title_updated_at=known.title_updated_at,
            structure_updated_at=known.structure_updated_at if structure else None,
            structure_event_id=known.structure_event_id if structure else "",
            total_modules=len(modules),
            total_items=len(items),
            total_points=sum(item.points for item in items),
        )
        return cls(course=course, modules=tuple(modules), items=tuple(items))


def _items(course_id: str, module: ModuleDef, *, first: int) -> list[CourseItemRow]:
    rows: list[CourseItemRow] = []

    def add(
        kind: ItemKind, item_id: str, title: str, points: int, completion: str, **rule: float
    ) -> None:
        rows.append(
            CourseItemRow(
                course_id=course_id,
                kind=kind,
                item_id=item_id,
                module_id=module.id,
                title=title,
                position=len(rows) + 1,
                course_position=first + len(rows),
                points=points,
                completion=completion,
                **rule,
            )
        )

    for lesson in module.lessons:
        add("lesson", lesson.id, lesson.title, lesson.points, lesson.completion_criteria)
    for quiz in module.quizzes:
        add("quiz", quiz.id, quiz.title, quiz.points, quiz.completion, pass_mark=quiz.pass_mark)
    for assignment in module.assignments:
        add(
            "assignment",
            assignment.id,
            assignment.title,
            assignment.points,
            assignment.completion,
            max_score=assignment.max_score,
            pass_ratio=assignment.pass_ratio,
        )
    return rows
