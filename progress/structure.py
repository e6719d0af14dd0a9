"""Course structure: what a course is made of, which totals and percentages are counted against.

The seed's CourseUpdated carries only id, title and time; this service extends it with the
structure (modules, each with lessons, quizzes and assignments) because no percentage can be
exact without totals. Items carry the points they are worth (see ``rollup.points_for``).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from progress.ranges import (
    MAX_ITEMS_PER_MODULE,
    MAX_MODULES,
    Fraction,
    GrantLevel,
    MaxScore,
    Percent,
    Points,
)
from progress.schema import Id, InputModel

DEFAULT_LESSON_POINTS = 10
DEFAULT_QUIZ_POINTS = 20
DEFAULT_ASSIGNMENT_POINTS = 30
DEFAULT_PASS_MARK = 50.0


class CompetencyGrant(InputModel):
    """Completing the item (or the course) is evidence of this competency at this level."""

    competency_id: Id
    level: GrantLevel


Grants = tuple[CompetencyGrant, ...]


class LessonDef(InputModel):
    id: Id
    title: str = ""
    points: Points = DEFAULT_LESSON_POINTS
    # Recorded on LessonProgress; a lesson is complete when a LessonCompleted arrives.
    completion_criteria: str = "completion-event"


class QuizDef(InputModel):
    id: Id
    title: str = ""
    points: Points = DEFAULT_QUIZ_POINTS
    pass_mark: Percent = DEFAULT_PASS_MARK
    completion: Literal["passed", "submitted"] = "passed"
    competencies: Grants = ()


class AssignmentDef(InputModel):
    id: Id
    title: str = ""
    points: Points = DEFAULT_ASSIGNMENT_POINTS
    max_score: MaxScore = 100.0
    completion: Literal["submitted", "graded"] = "submitted"
    # An assignment graded below this share of its max score does not count as done,
    # when ``completion`` is "graded".
    pass_ratio: Fraction = 0.0
    competencies: Grants = ()


class ModuleDef(InputModel):
    id: Id
    title: str = ""
    lessons: tuple[LessonDef, ...] = Field(default=(), max_length=MAX_ITEMS_PER_MODULE)
    quizzes: tuple[QuizDef, ...] = Field(default=(), max_length=MAX_ITEMS_PER_MODULE)
    assignments: tuple[AssignmentDef, ...] = Field(default=(), max_length=MAX_ITEMS_PER_MODULE)

    @property
    def item_count(self) -> int:
        return len(self.lessons) + len(self.quizzes) + len(self.assignments)


class CourseStructure(InputModel):
    modules: tuple[ModuleDef, ...] = Field(default=(), max_length=MAX_MODULES)
    # Completing the whole course is evidence of these.
    competencies: Grants = ()

    @model_validator(mode="after")
    def _ids_unique(self) -> Self:
        seen: set[str] = set()
        for kind, ids in (
            ("module", [m.id for m in self.modules]),
            ("lesson", [x.id for m in self.modules for x in m.lessons]),
            ("quiz", [x.id for m in self.modules for x in m.quizzes]),
            ("assignment", [x.id for m in self.modules for x in m.assignments]),
        ):
            seen.clear()
            for item_id in ids:
                if item_id in seen:
                    raise ValueError(f"{kind} id {item_id!r} appears twice in the course structure")
                seen.add(item_id)
        return self

    def quiz(self, quiz_id: str) -> QuizDef | None:
        for module in self.modules:
            for quiz in module.quizzes:
                if quiz.id == quiz_id:
                    return quiz
        return None

    def assignment(self, assignment_id: str) -> AssignmentDef | None:
        for module in self.modules:
            for assignment in module.assignments:
                if assignment.id == assignment_id:
                    return assignment
        return None

    def lesson_module(self, lesson_id: str) -> str | None:
        """The module a lesson belongs to in this structure, or None if it is not part of it."""
        for module in self.modules:
            if any(lesson.id == lesson_id for lesson in module.lessons):
                return module.id
        return None
