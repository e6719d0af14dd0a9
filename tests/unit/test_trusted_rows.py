"""What the core builds without validation (``progress.trusted``) is what validation makes.

The core builds rows, snapshots and state copies with ``built`` and ``replaced``, trusting
its inputs' types; a value of another type (an int in a float field, a list for a tuple)
would change the JSON without failing anywhere. Here the benchmark's workload runs through
the core, and every snapshot, published event and state it made is validated again from its
own fields: the JSON must be byte for byte the same as the one written without validation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bench.core import _Core
from bench.loadgen import generate
from progress.decode import decode_event
from progress.events import ProgressUpdated, PublishedEvent
from progress.models import ModuleProgress
from progress.snapshots import Snapshot
from progress.state import LearnerState, LessonState
from progress.trusted import built, replaced
from streams.model_codec import encode

AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def test_built_is_what_validation_makes_and_refuses_unknown_or_missing_fields() -> None:
    fields: dict[str, Any] = dict(
        id="r1", user_id="u1", version=3, course_id="c1", module_id="m1", status="in-progress",
        percent_complete=50.0, total_lessons=2, completed_lessons=1, total_quizzes=0,
        completed_quizzes=0, total_assignments=0, completed_assignments=0, started_at=AT,
        completed_at=None, last_activity_at=AT, created_at=AT, updated_at=AT,
    )  # fmt: skip
    row = built(ModuleProgress, **fields)
    assert row == ModuleProgress(**fields)
    assert encode(row) == ModuleProgress(**fields).model_dump_json().encode()
    # Defaults are filled as validation fills them.
    state = built(LearnerState, user_id="u1", created_at=AT, updated_at=AT)
    assert state == LearnerState(user_id="u1", created_at=AT, updated_at=AT)
    with pytest.raises(TypeError):
        built(ModuleProgress, **fields, colour="red")
    with pytest.raises(TypeError):
        built(ModuleProgress, **{k: v for k, v in fields.items() if k != "status"})


def test_replaced_is_model_copy() -> None:
    lesson = LessonState(module_id="m1", started_at=AT, last_activity_at=AT)
    copy = replaced(lesson, percent=40.0)
    assert copy == lesson.model_copy(update={"percent": 40.0})
    assert copy.model_fields_set == lesson.model_copy(update={"percent": 40.0}).model_fields_set
    assert lesson.percent == 0.0  # the original is untouched


def test_what_the_core_builds_on_the_workload_validates_to_the_same_json() -> None:
    workload = generate(users=40, courses=3, events=1_500, seed=23)
    core = _Core()
    snapshots: list[Snapshot] = []
    published: list[PublishedEvent] = []
    for record in workload.records:
        event = decode_event(record.kind, record.key, record.value)
        for outcome in core.derive(event):
            core.states[outcome.state.user_id] = outcome.state
            snapshots.append(outcome.snapshot)
            published.extend(outcome.published)
    assert len(snapshots) > 1_000
    kinds = {name for s in snapshots for name in Snapshot.model_fields if getattr(s, name)}
    assert {"module_progress", "lesson_progress", "quiz_attempts"} <= kinds
    for snapshot in snapshots:
        again = Snapshot.model_validate(snapshot.model_dump())
        assert encode(snapshot) == again.model_dump_json().encode()
    assert any(isinstance(e, ProgressUpdated) for e in published)
    for event in published:
        again_event = type(event).model_validate(event.model_dump())
        assert encode(event) == again_event.model_dump_json().encode()
    for state in core.states.values():
        again_state = LearnerState.model_validate(state.model_dump())
        assert encode(state) == again_state.model_dump_json().encode()
