"""Every example message in docs/events.md is valid against the model it illustrates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from progress.events import (
    CourseCompleted,
    CourseUpdated,
    DeadLetter,
    ProgressUpdated,
    UserEnrolled,
    lesson_activity_adapter,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
EXAMPLE = re.compile(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", re.DOTALL)


def _examples() -> list[tuple[str, str]]:
    return EXAMPLE.findall(DOC.read_text())


def _validate(name: str, text: str) -> Any:
    models: dict[str, Any] = {
        "UserEnrolled": UserEnrolled,
        "CourseUpdated": CourseUpdated,
        "ProgressUpdated": ProgressUpdated,
        "CourseCompleted": CourseCompleted,
        "DeadLetter": DeadLetter,
    }
    if name.startswith("Lesson"):
        event = lesson_activity_adapter.validate_json(text)
        assert type(event).__name__ == name
        return event
    return models[name].model_validate_json(text)


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
        "DeadLetter",
    }


@pytest.mark.parametrize(("name", "text"), _examples(), ids=[n for n, _ in _examples()])
def test_example_is_valid(name: str, text: str) -> None:
    assert _validate(name, text) is not None
