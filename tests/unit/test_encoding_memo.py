"""A state's JSON with its courses' bytes remembered per object (``streams.encoding_memo``,
``streams.state_codec.state_json``) is the JSON encoded from scratch, byte for byte.

The sequences replace courses as the core does (new objects along the changed path, the
other courses the same objects), share course objects between learners, drop courses and
states; the memo must never return another object's bytes (ids are reused once an object
dies) and must not keep a dead model, or its entry, alive.
"""

from __future__ import annotations

import gc
import weakref
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.core import _Core
from bench.loadgen import generate as generate_workload
from progress.state import CourseState, LearnerState, LessonState
from progress.trusted import replaced
from streams.encoding_memo import EncodingMemo
from streams.model_codec import encode
from streams.state_codec import encode_state, state_json, stored_json
from tests.unit.test_model_codec import models_of

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)

# One step of a learner's history: which learner, which course key, and what happens to it.
_STEPS = st.tuples(
    st.integers(0, 2),
    st.sampled_from(["c1", "c2", "c3", "c4"]),
    st.sampled_from(["new", "replace-lesson", "share", "drop", "touch-learner"]),
)


def _stored_json(state: LearnerState) -> bytes:
    return stored_json(encode_state(state))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(models_of(CourseState), min_size=1, max_size=4),
    st.lists(_STEPS, min_size=1, max_size=25),
)
def test_remembered_courses_give_the_json_encoded_from_scratch(
    pool: list[CourseState], steps: list[tuple[int, str, str]]
) -> None:
    states = [LearnerState(user_id=f"u{n}", created_at=T0, updated_at=T0) for n in range(3)]
    for n, (who, key, step) in enumerate(steps):
        state = states[who]
        courses = dict(state.courses)
        if step == "new":  # a course object never seen: a copy of one from the pool
            courses[key] = replaced(pool[n % len(pool)])
        elif step == "replace-lesson" and key in courses:  # the core's copy along the path
            course = courses[key]
            lesson = LessonState(module_id="m", started_at=T0, last_activity_at=T0, percent=n)
            courses[key] = replaced(course, lessons={**course.lessons, f"l{n}": lesson})
        elif step == "share":  # the same object held by another learner's state too
            other = states[(who + 1) % 3].courses
            if other:
                courses[key] = next(iter(other.values()))
        elif step == "drop":
            courses.pop(key, None)
        updated = T0 + timedelta(seconds=n)
        states[who] = replaced(state, courses=courses, updated_at=updated, version=n)
        for each in states:
            expected = each.model_dump_json().encode()
            assert state_json(each) == expected
            assert _stored_json(each) == expected
        gc.collect() if n % 7 == 0 else None  # some dead objects' ids free for reuse


def test_states_the_core_derives_are_written_as_encoded_from_scratch() -> None:
    # The benchmark's workload through the core: every state written after the first of its
    # learner holds courses written before, and big ones are compressed.
    workload = generate_workload(users=30, courses=4, events=3_000, seed=21)
    core = _Core()
    written = 0
    reused = 0  # courses a write holds as the same object as the learner's write before
    for start in range(0, len(workload.records), 50):
        before = dict(core.states)
        core.batch(workload.records[start : start + 50])
        for user_id, state in core.states.items():
            previous = before.get(user_id)
            if previous is state:
                continue
            # Once as the worker writes it (remembered courses), once from scratch.
            assert state_json(state) == encode(state) == state.model_dump_json().encode()
            written += 1
            if previous is not None:
                reused += sum(previous.courses.get(k) is c for k, c in state.courses.items())
    assert written > 1_000
    assert reused > 100  # the case the memo is for


def test_an_entry_leaves_with_its_model_and_does_not_keep_it_alive() -> None:
    memo = EncodingMemo(encode)
    kept = [_course(n) for n in range(5)]
    for course in kept:
        assert bytes(memo.json(course)) == course.model_dump_json().encode()
    assert len(memo) == 5
    assert memo.kept_bytes() == sum(len(encode(course)) for course in kept)
    del course  # the loop's name held the last one
    gone = weakref.ref(kept.pop())
    gc.collect()
    assert gone() is None  # the memo held no strong reference
    assert len(memo) == 4
    kept.clear()
    gc.collect()
    assert len(memo) == 0


def test_an_id_reused_by_a_new_model_gets_the_new_models_json() -> None:
    memo = EncodingMemo(encode)
    ids: set[int] = set()
    reused = 0
    for n in range(200):
        course = _course(n)  # the previous one has just died: its memory is free again
        reused += id(course) in ids
        ids.add(id(course))
        assert bytes(memo.json(course)) == course.model_dump_json().encode()
        assert bytes(memo.json(course)) == course.model_dump_json().encode()  # remembered
    assert reused > 0  # the case under test happened
    assert len(memo) <= 1


def test_the_same_object_is_encoded_once() -> None:
    calls: list[CourseState] = []

    def counting(model: CourseState) -> bytes:  # type: ignore[override]
        calls.append(model)
        return encode(model)

    memo = EncodingMemo(counting)  # type: ignore[arg-type]
    course = _course(1)
    first = memo.json(course)
    assert memo.json(course) is first
    assert memo.json(replaced(course)) is not first  # an equal copy is another object
    assert len(calls) == 2


def _course(n: int) -> CourseState:
    lesson = LessonState(module_id=f"m{n}", started_at=T0, last_activity_at=T0, percent=n)
    return CourseState(enrollment_id=f"e{n}", enrolled_at=T0, lessons={f"l{n}": lesson})
