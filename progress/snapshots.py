"""The snapshot: what the worker hands the sink after processing one event for one learner.

One message on ``progress.snapshots``, keyed by user_id, carrying every row the event
touched, all at the learner's state ``version``. The sink writes them in one transaction, so
PostgreSQL never shows half of an event's effect.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import model_validator

from progress.models import (
    AssignmentSubmission,
    CourseProgress,
    LearningPathProgress,
    LessonProgress,
    ModuleProgress,
    QuizAttempt,
    QuizQuestionResponse,
    Row,
    UserAchievement,
    UserCompetency,
    UserProgress,
    VersionedRow,
)
from progress.schema import OutputModel


class Snapshot(OutputModel):
    user_id: str
    version: int
    # Always present: its version is the learner's, which the API's cache is keyed on.
    user_progress: UserProgress
    course_progress: tuple[CourseProgress, ...] = ()
    module_progress: tuple[ModuleProgress, ...] = ()
    lesson_progress: tuple[LessonProgress, ...] = ()
    quiz_attempts: tuple[QuizAttempt, ...] = ()
    quiz_question_responses: tuple[QuizQuestionResponse, ...] = ()
    assignment_submissions: tuple[AssignmentSubmission, ...] = ()
    learning_path_progress: tuple[LearningPathProgress, ...] = ()
    user_competencies: tuple[UserCompetency, ...] = ()
    user_achievements: tuple[UserAchievement, ...] = ()

    @model_validator(mode="after")
    def _rows_are_the_learners(self) -> Self:
        for row in self.rows():
            if isinstance(row, VersionedRow) and (row.user_id, row.version) != (
                self.user_id,
                self.version,
            ):
                raise ValueError(
                    f"{row.table} row {row.id} is for {row.user_id}@{row.version}, "
                    f"not {self.user_id}@{self.version}"
                )
        return self

    def rows(self) -> list[Row]:
        """Every row in the snapshot, user_progress first; evidence travels inside its
        UserCompetency and is listed after it."""
        out: list[Row] = [self.user_progress]
        for group in (
            self.course_progress,
            self.module_progress,
            self.lesson_progress,
            self.quiz_attempts,
            self.quiz_question_responses,
            self.assignment_submissions,
            self.learning_path_progress,
            self.user_competencies,
            self.user_achievements,
        ):
            out.extend(group)
        for competency in self.user_competencies:
            out.extend(competency.evidence)
        return out


class Erasure(OutputModel):
    """On ``progress.snapshots`` keyed by user_id: delete every row of this learner, in
    order with the learner's snapshots (same key, same partition)."""

    kind: Literal["erasure"] = "erasure"
    user_id: str
    erased_at: datetime
