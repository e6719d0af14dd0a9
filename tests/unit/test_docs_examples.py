"""Every example message in docs/events.md is valid against the model it illustrates."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from progress.catalog import AchievementUpdated, CompetencyUpdated, LearningPathUpdated
from progress.events import (
    AchievementEarned,
    AssignmentSubmitted,
    CompetencyAcquired,
    CourseCompleted,
    CourseUpdated,
    DeadLetter,
    ExternalEvidenceRecorded,
    LearnerProfileUpdated,
    ProgressUpdated,
    QuizCompleted,
    UserEnrolled,
    assignment_activity_adapter,
    lesson_activity_adapter,
    quiz_activity_adapter,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
EXAMPLE = re.compile(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", re.DOTALL)


def _examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall(DOC.read_text())


def _validate(name: str, text: str) -> Any:
    models: dict[str, Any] = {
        "UserEnrolled": UserEnrolled,
        "CourseUpdated": CourseUpdated,
        "ExternalEvidenceRecorded": ExternalEvidenceRecorded,
        "LearnerProfileUpdated": LearnerProfileUpdated,
        "LearningPathUpdated": LearningPathUpdated,
        "CompetencyUpdated": CompetencyUpdated,
        "AchievementUpdated": AchievementUpdated,
        "ProgressUpdated": ProgressUpdated,
        "CourseCompleted": CourseCompleted,
        "QuizCompleted": QuizCompleted,
        "AssignmentSubmitted-published": AssignmentSubmitted,
        "AchievementEarned": AchievementEarned,
        "CompetencyAcquired": CompetencyAcquired,
        "DeadLetter": DeadLetter,
    }
    activity = {
        "Lesson": lesson_activity_adapter,
        "Quiz": quiz_activity_adapter,
        "AssignmentDraftSaved": assignment_activity_adapter,
        "AssignmentSubmitted": assignment_activity_adapter,
        "AssignmentGraded": assignment_activity_adapter,
    }
    if name in models:
        return models[name].model_validate_json(text)
    adapter = next(a for prefix, a in activity.items() if name.startswith(prefix))
    event = adapter.validate_json(text)
    assert json.loads(text).get("type", name) == name or name.startswith("Lesson")
    return event


def test_the_doc_has_an_example_of_every_consumed_and_core_published_event() -> None:
    names = {name for name, _ in _examples()}
    assert names >= {
        "UserEnrolled",
        "CourseUpdated",
        "LessonStarted",
        "LessonProgressed",
        "LessonCompleted",
        "ProgressUpdated",
        "CourseCompleted",
        "QuizQuestionAnswered",
        "AssignmentSubmitted",
        "ExternalEvidenceRecorded",
        "LearnerProfileUpdated",
        "LearningPathUpdated",
        "CompetencyUpdated",
        "AchievementUpdated",
        "QuizCompleted",
        "AchievementEarned",
        "CompetencyAcquired",
        "DeadLetter",
    }


@pytest.mark.parametrize(("name", "text"), _examples(), ids=[n for n, _ in _examples()])
def test_example_is_valid(name: str, text: str) -> None:
    assert _validate(name, text) is not None
