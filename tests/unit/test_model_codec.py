"""The worker's msgspec encoding (``streams.model_codec``) against pydantic's JSON.

The states are generated from the models' own field annotations, so a field added to any
model of the learner state is generated too; each must encode to pydantic's exact bytes, and
read back (``decode_state``) to an equal state. States as older workers wrote them (pydantic's
JSON, compressed or not, with the bulky fields since dropped) must still load.
"""

from __future__ import annotations

import json
import types
import typing
import zlib
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_serializer,
)

import streams.effects
from adapters.topics import SNAPSHOT_MAX_BYTES
from bench.codecs import _Sampling
from bench.core import _Core
from bench.loadgen import generate as generate_workload
from progress.decode import decode_event
from progress.events import PublishedEvent
from progress.snapshots import Snapshot, merge_within
from progress.state import LearnerState, PathSummary
from streams.effects import snapshot_messages
from streams.model_codec import encode, require_field_dicts
from streams.state_codec import (
    COMPRESS_FROM_BYTES,
    ZSTD_MAGIC,
    decode_state,
    encode_state,
    stored_json,
)

_OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
_TIMES = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=_OFFSETS
)
# Below 1e16: from there pydantic writes 1e+16 where msgspec writes 1e16, the same number
# (``test_floats_from_1e16_differ_in_spelling_only``); scores and percents stay far below.
_FLOATS = st.floats(min_value=-9e15, max_value=9e15) | st.sampled_from([0.0, 1.0, 0.1, 1.5e-7])
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
_TEXT = st.text(max_size=12)  # any code point, lone surrogates aside (JSON cannot carry them)


def values_of(annotation: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for a field annotated ``annotation``, as the models declare their fields."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return models_of(annotation, depth + 1)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: _TEXT,
        int: st.integers(min_value=-(2**53), max_value=2**53),
        float: _FLOATS,
        bool: st.booleans(),
        datetime: _TIMES,
        date: st.dates(),
    }
    if annotation in simple:
        return simple[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return values_of(args[0], depth)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([values_of(arg, depth) for arg in args])
    if origin is dict:
        small = 0 if depth > 2 else 3
        return st.dictionaries(values_of(args[0], depth), values_of(args[1], depth), max_size=small)
    if origin in (tuple, list):
        small = 0 if depth > 2 else 3
        items = st.lists(values_of(args[0], depth), max_size=small)
        return items.map(tuple) if origin is tuple else items
    if annotation is type(None):
        return st.none()
    raise TypeError(f"no strategy for {annotation!r}: add one for the new field type")


def models_of(model: type[BaseModel], depth: int = 0) -> st.SearchStrategy[Any]:
    """Instances of ``model`` with every field drawn, defaults included."""
    fields = {name: values_of(info.annotation, depth) for name, info in model.model_fields.items()}

    def build(values: dict[str, Any]) -> Any:
        try:
            return model(**values)
        except ValidationError:  # a model's own checks (a snapshot's rows are its learner's)
            reject()

    return st.fixed_dictionaries(fields).map(build)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models_of(LearnerState))
def test_a_state_encodes_to_pydantics_json_and_reads_back_equal(state: LearnerState) -> None:
    raw = encode(state)
    assert raw == state.model_dump_json().encode()
    assert decode_state(encode_state(state)) == state


def _snapshot_rows() -> st.SearchStrategy[Any]:
    """Rows of every table a snapshot carries (a whole generated snapshot rarely passes its
    check that every row is its learner's; the encoding is the rows' and the versions')."""
    kinds = {model for info in Snapshot.model_fields.values() for model in _models(info.annotation)}
    return st.one_of([models_of(kind) for kind in sorted(kinds, key=lambda m: m.__name__)])


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_snapshot_rows())
def test_snapshot_rows_encode_to_pydantics_json(row: BaseModel) -> None:
    assert encode(row) == row.model_dump_json().encode()


@pytest.mark.parametrize("big", [1e16, -2.5e20, 1.7976931348623157e308])
def test_floats_from_1e16_differ_in_spelling_only(big: float) -> None:
    state = LearnerState(user_id="u1", created_at=T0, updated_at=T0)
    summary = {"status": "in-progress", "percent_complete": big, "total_courses": 1}
    summary |= {"completed_courses": 0, "current_course_id": "c1", "started_at": None}
    summary |= {"completed_at": None, "last_activity_at": None}
    summary |= {"created_at": T0, "updated_at": T0}
    state = state.model_copy(update={"paths": {"p1": PathSummary(**summary)}})
    assert encode(state) != state.model_dump_json().encode()
    assert json.loads(encode(state)) == json.loads(state.model_dump_json())
    assert decode_state(encode_state(state)) == state


def test_every_model_the_worker_encodes_writes_its_field_dict() -> None:
    require_field_dicts(LearnerState)
    require_field_dicts(Snapshot)
    for published in PublishedEvent.__subclasses__():
        require_field_dicts(published)


class _Aliased(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    user_id: str = Field(serialization_alias="UserID")


class _Serialized(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    at: datetime

    @field_serializer("at")
    def _epoch(self, at: datetime) -> float:
        return at.timestamp()


class _Computed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    a: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def b(self) -> int:
        return self.a + 1


class _Holding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    inner: dict[str, tuple[_Computed, ...]] = {}


@pytest.mark.parametrize("model", [_Aliased, _Serialized, _Computed, _Holding])
def test_a_model_whose_json_is_not_its_field_dict_is_refused(model: type[BaseModel]) -> None:
    with pytest.raises(TypeError, match="not its field dict"):
        require_field_dicts(model)


def _old_state_json() -> dict[str, Any]:
    """A state as a worker before the bulky fields left the state wrote it: a quiz response
    with its answer, a submission with its content, a grade with its feedback."""
    at = T0.isoformat().replace("+00:00", "Z")
    response = {
        "question_id": "q1",
        "selected_options": ["b"],
        "text_response": "",
        "correct": True,
        "credit": 1.0,
        "time_spent": 5,
        "answered_at": at,
        "answer_id": "e1",
        "first_answered_at": at,
    }
    attempt = {
        "quiz_id": "quiz1",
        "module_id": "m1",
        "lesson_id": "l1",
        "first_seen_at": at,
        "last_activity_at": at,
        "responses": {"q1": response},
    }
    submission = {
        "assignment_id": "a1",
        "module_id": "m1",
        "lesson_id": "l2",
        "first_seen_at": at,
        "last_activity_at": at,
        "submission_type": "text",
        "text_content": "my essay",
        "file_url": "",
        "link_url": "",
        "content_at": at,
        "grade": {
            "score": 8.0,
            "max_score": 10.0,
            "feedback": "good",
            "graded_by": "t1",
            "graded_at": at,
        },
    }
    course = {"quiz_attempts": {"quiz1:1": attempt}, "submissions": {"a1": submission}}
    return {"user_id": "u1", "created_at": at, "updated_at": at, "courses": {"c1": course}}


def test_states_written_by_older_workers_still_load() -> None:
    old = _old_state_json()
    raw = json.dumps(old).encode()
    state = decode_state(raw)
    course = state.courses["c1"]
    assert course.quiz_attempts["quiz1:1"].responses["q1"].answer_digest != ""
    assert course.submissions["a1"].content_digest != ""
    assert course.submissions["a1"].grade is not None
    assert course.submissions["a1"].grade.feedback_digest != ""
    # Compressed with zlib, as workers before zstd stored a large one; and re-stored in
    # today's form, equal again.
    assert decode_state(zlib.compress(raw)) == state
    assert decode_state(encode_state(state)) == state


def test_a_large_state_is_still_compressed_and_its_json_is_pydantics() -> None:
    days = {f"2026-{n:05d}": T0 for n in range(5_000)}
    large = LearnerState(user_id="u1", created_at=T0, updated_at=T0, activity_days=days)
    stored = encode_state(large)
    assert len(large.model_dump_json()) >= COMPRESS_FROM_BYTES
    assert stored[:4] == ZSTD_MAGIC
    assert stored_json(stored) == large.model_dump_json().encode()
    assert decode_state(stored) == large


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of([models_of(kind) for kind in PublishedEvent.__subclasses__()]))
def test_published_events_encode_to_pydantics_json(event: PublishedEvent) -> None:
    assert encode(event) == event.model_dump_json().encode()


def test_states_the_core_derives_encode_to_pydantics_json_and_read_back_equal() -> None:
    # Real states, not only generated field values: the benchmark's workload through the
    # core (bench/core.py), quizzes, submissions, evidence and all.
    workload = generate_workload(users=40, courses=3, events=1_500, seed=11)
    core = _Core()
    for start in range(0, len(workload.records), 100):
        core.batch(workload.records[start : start + 100])
    assert len(core.states) > 20
    courses = [c for state in core.states.values() for c in state.courses.values()]
    assert any(c.quiz_attempts for c in courses) and any(c.submissions for c in courses)
    for state in core.states.values():
        assert encode(state) == state.model_dump_json().encode()
        assert decode_state(encode_state(state)) == state


def test_snapshots_the_core_derives_encode_to_pydantics_json() -> None:
    workload = generate_workload(users=40, courses=3, events=1_500, seed=12)
    core = _Sampling()
    for start in range(0, len(workload.records), 100):
        core.batch(workload.records[start : start + 100])
    assert len(core.sampled) > 20
    for snapshot in core.sampled:
        assert encode(snapshot) == snapshot.model_dump_json().encode()


def test_a_learners_snapshots_are_sent_as_merge_within_would_encode_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workload = generate_workload(users=10, courses=2, events=600, seed=13)
    made: dict[str, list[Snapshot]] = {}
    core = _Core()
    for record in workload.records:
        for outcome in core.derive(decode_event(record.kind, record.key, record.value)):
            core.states[outcome.state.user_id] = outcome.state
            made.setdefault(outcome.state.user_id, []).append(outcome.snapshot)
    runs = [snapshots[:n] for snapshots in made.values() for n in (1, 2, len(snapshots))]
    assert any(len(run) > 2 for run in runs)
    for run in runs:
        assert snapshot_messages(run) == merge_within(run, SNAPSHOT_MAX_BYTES)
    # Over the limit, merged by runs: as merge_within does.
    monkeypatch.setattr(streams.effects, "SNAPSHOT_MAX_BYTES", 3_000)
    split = [run for run in runs if len(merge_within(run, 3_000)) > 1]
    assert split
    for run in split:
        assert snapshot_messages(run) == merge_within(run, 3_000)
