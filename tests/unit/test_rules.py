"""The pure domain core: merging facts, deriving roll-ups, deciding what to publish."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from progress.decode import InvalidEvent, decode_event
from progress.events import (
    CourseCompleted,
    CourseUpdated,
    ProgressUpdated,
    UserEnrolled,
    lesson_activity_adapter,
)
from progress.facts import LessonEventT, merge_course_update
from progress.learner_rules import Catalog
from progress.outcomes import Outcome, on_course_known, on_enrollment, on_lesson_activity
from progress.schema import seed_name
from progress.state import KnownCourse, LearnerState

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NO_CATALOG = Catalog()


def completed(outcome: Outcome) -> CourseCompleted | None:
    found = [e for e in outcome.published if isinstance(e, CourseCompleted)]
    return found[0] if found else None


def progress_updated(outcome: Outcome) -> ProgressUpdated | None:
    found = [e for e in outcome.published if isinstance(e, ProgressUpdated)]
    return found[0] if found else None


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def course(
    lessons_by_module: dict[str, list[str]], minute: int = 0, cid: str = "c1"
) -> CourseUpdated:
    return CourseUpdated.model_validate(
        {
            "id": cid,
            "title": "Course",
            "updated_at": at(minute),
            "modules": [
                {"id": m, "lessons": [{"id": lesson} for lesson in lessons]}
                for m, lessons in lessons_by_module.items()
            ],
        }
    )


def known(update: CourseUpdated, held: KnownCourse | None = None) -> KnownCourse:
    return merge_course_update(held, update)


def enrolled(minute: int = 0, user: str = "u1", cid: str = "c1") -> UserEnrolled:
    return UserEnrolled.model_validate(
        {"id": f"e-{user}-{cid}", "course_id": cid, "user_id": user, "enrolled_at": at(minute)}
    )


def lesson(
    kind: str, lesson_id: str, minute: int, module: str = "m1", **extra: object
) -> LessonEventT:
    time_field = {"LessonStarted": "started_at", "LessonProgressed": "occurred_at"}.get(
        kind, "completed_at"
    )
    return lesson_activity_adapter.validate_python(
        {
            "type": kind,
            "user_id": "u1",
            "course_id": "c1",
            "module_id": module,
            "lesson_id": lesson_id,
            time_field: at(minute),
            **extra,
        }
    )


def run(events: list[object], structure: KnownCourse | None) -> list[Outcome]:
    state: LearnerState | None = None
    outcomes = []
    for event in events:
        if isinstance(event, UserEnrolled):
            outcome = on_enrollment(state, event, structure, NO_CATALOG)
        else:
            outcome = on_lesson_activity(state, event, structure, NO_CATALOG)  # type: ignore[arg-type]
        outcomes.append(outcome)
        state = outcome.state
    return outcomes


TWO_LESSONS = known(course({"m1": ["l1", "l2"]}))


def test_course_goes_from_zero_to_complete_and_announces_once() -> None:
    outcomes = run(
        [enrolled(0), lesson("LessonCompleted", "l1", 5), lesson("LessonCompleted", "l2", 9)],
        TWO_LESSONS,
    )
    percents = [o.snapshot.course_progress[0].percent_complete for o in outcomes]
    assert percents == [0.0, 50.0, 100.0]
    final = outcomes[-1].snapshot
    assert final.course_progress[0].status == "completed"
    assert final.course_progress[0].completed_at == T0 + timedelta(minutes=9)
    assert final.module_progress[0].status == "completed"
    assert final.user_progress is not None and final.user_progress.completed_courses == 1
    completions = [completed(o) for o in outcomes if completed(o)]
    assert len(completions) == 1
    assert completions[0].completed_at == T0 + timedelta(minutes=9)


def test_duplicate_event_changes_nothing_and_publishes_nothing() -> None:
    _first, second, duplicate = run(
        [enrolled(0), lesson("LessonCompleted", "l1", 5), lesson("LessonCompleted", "l1", 5)],
        TWO_LESSONS,
    )
    assert not duplicate.changed
    assert duplicate.state == second.state
    assert progress_updated(duplicate) is None and completed(duplicate) is None
    # ...but the rows are sent again, identical, so a replay after a crash still delivers them:
    # all of them, since which ones the event that made this version changed is not known.
    again = {(row.table, row.id): row for row in duplicate.snapshot.rows()}
    assert second.snapshot.rows()
    assert all(again[row.table, row.id] == row for row in second.snapshot.rows())
    assert duplicate.snapshot.whole_modules and not second.snapshot.whole_modules


def test_every_order_of_the_same_events_ends_in_the_same_state() -> None:
    events: list[object] = [
        enrolled(0),
        lesson("LessonStarted", "l1", 1),
        lesson("LessonProgressed", "l1", 3, position=120, time_spent=100, percent_complete=40),
        lesson("LessonProgressed", "l1", 4, position=90, time_spent=160, percent_complete=70),
        lesson("LessonCompleted", "l1", 6),
        lesson("LessonCompleted", "l2", 8),
    ]
    finals = set()
    for order in itertools.permutations(events):
        outcomes = run(list(order), TWO_LESSONS)
        final = outcomes[-1].state
        # Dict order may differ with arrival order; the content may not.
        finals.add(json.dumps(final.model_dump(mode="json", exclude={"version"}), sort_keys=True))
        assert sum(1 for o in outcomes if completed(o)) == 1
    assert len(finals) == 1
    state = LearnerState.model_validate(json.loads(finals.pop()) | {"version": 0})
    l1 = state.courses["c1"].lessons["l1"]
    assert (l1.started_at, l1.last_position, l1.time_spent) == (T0 + timedelta(minutes=1), 90, 160)


def test_late_lesson_start_moves_started_at_back_but_not_last_activity() -> None:
    *_, final = run(
        [enrolled(0), lesson("LessonCompleted", "l1", 10), lesson("LessonStarted", "l1", 2)],
        TWO_LESSONS,
    )
    row = final.snapshot.lesson_progress[0]
    assert row.started_at == T0 + timedelta(minutes=2)
    assert row.last_activity_at == T0 + timedelta(minutes=10)
    assert row.status == "completed" and row.percent_complete == 100.0


def test_lesson_before_enrollment_is_kept_and_counted_on_enrollment() -> None:
    before, after = run([lesson("LessonCompleted", "l1", 1), enrolled(5)], TWO_LESSONS)
    assert before.snapshot.course_progress == ()
    assert before.snapshot.lesson_progress[0].status == "completed"
    assert progress_updated(before) is None
    assert after.snapshot.course_progress[0].completed_lessons == 1
    assert after.snapshot.course_progress[0].percent_complete == 50.0


def test_lesson_for_unknown_course_counts_once_structure_arrives() -> None:
    *_, last = run([enrolled(0), lesson("LessonCompleted", "l1", 1)], None)
    assert last.snapshot.course_progress[0].total_lessons == 0
    assert last.snapshot.course_progress[0].status == "in-progress"
    outcome = on_course_known(last.state, TWO_LESSONS, NO_CATALOG)
    assert outcome.changed
    assert outcome.snapshot.course_progress[0].percent_complete == 50.0
    assert len(outcome.snapshot.module_progress) == 1


def test_course_that_grows_reopens_without_a_second_completion() -> None:
    *_, done = run(
        [enrolled(0), lesson("LessonCompleted", "l1", 1), lesson("LessonCompleted", "l2", 2)],
        TWO_LESSONS,
    )
    grown = known(course({"m1": ["l1", "l2"], "m2": ["l3"]}, minute=30), TWO_LESSONS)
    reopened = on_course_known(done.state, grown, NO_CATALOG)
    row = reopened.snapshot.course_progress[0]
    assert (row.status, row.percent_complete, row.total_modules) == ("in-progress", 66.67, 2)
    assert completed(reopened) is None
    assert progress_updated(reopened) is not None
    finished = on_lesson_activity(
        reopened.state, lesson("LessonCompleted", "l3", 40, "m2"), grown, NO_CATALOG
    )
    assert finished.snapshot.course_progress[0].status == "completed"
    assert completed(finished) is None  # CourseCompleted is published once per course


def test_course_that_shrinks_can_complete() -> None:
    *_, half = run([enrolled(0), lesson("LessonCompleted", "l1", 1)], TWO_LESSONS)
    shrunk = known(course({"m1": ["l1"]}, minute=30), TWO_LESSONS)
    outcome = on_course_known(half.state, shrunk, NO_CATALOG)
    assert outcome.snapshot.course_progress[0].status == "completed"
    assert completed(outcome) is not None


def test_older_structure_never_replaces_newer_one() -> None:
    newer = known(course({"m1": ["l1", "l2", "l3"]}, minute=20))
    after_late = merge_course_update(newer, course({"m1": ["l1"]}, minute=10))
    assert (after_late.structure, after_late.structure_updated_at) == (
        newer.structure,
        newer.structure_updated_at,
    )
    # ... but it is remembered, for activity from its time that arrives later.
    assert [v.updated_at for v in after_late.earlier] == [datetime.fromisoformat(at(10))]
    assert merge_course_update(after_late, course({"m1": ["l1"]}, minute=10)) == after_late
    title_only = CourseUpdated.model_validate(
        {"id": "c1", "title": "Renamed", "updated_at": at(30)}
    )
    renamed = merge_course_update(newer, title_only)
    assert renamed.title == "Renamed" and renamed.structure == newer.structure


def test_total_points_are_the_points_of_completed_items() -> None:
    structure = known(
        CourseUpdated.model_validate(
            {
                "id": "c1",
                "updated_at": at(0),
                "modules": [{"id": "m1", "lessons": [{"id": "l1", "points": 7}, {"id": "l2"}]}],
            }
        )
    )
    *_, last = run([enrolled(0), lesson("LessonCompleted", "l1", 1)], structure)
    assert last.snapshot.course_progress[0].total_points == 7
    assert last.snapshot.user_progress is not None and last.snapshot.user_progress.total_points == 7


def test_published_ids_are_deterministic() -> None:
    events = [enrolled(0), lesson("LessonCompleted", "l1", 1), lesson("LessonCompleted", "l2", 2)]
    a, b = run(events, TWO_LESSONS), run(events, TWO_LESSONS)
    assert [progress_updated(o) for o in a] == [progress_updated(o) for o in b]
    assert [o.published for o in a] == [o.published for o in b]


def test_seed_field_names_are_accepted() -> None:
    assert seed_name("user_id") == "UserID" and seed_name("enrolled_at") == "EnrolledAt"
    seed = UserEnrolled.model_validate(
        {"ID": "e1", "CourseID": "c1", "UserID": "u1", "EnrolledAt": at(0)}
    )
    assert seed == enrolled(0, cid="c1").model_copy(update={"id": "e1", "event_id": seed.event_id})
    assert seed.event_id == UserEnrolled.model_validate(seed.model_dump()).event_id


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        (b"", "empty"),
        (b"{not json", "malformed-json"),
        (b'{"type": "LessonTeleported"}', "unknown-type"),
        (b'{"type": "LessonStarted", "user_id": "u1"}', "invalid"),
        (
            b'{"type":"LessonStarted","user_id":"u1","course_id":"c","module_id":"m",'
            b'"lesson_id":"l","started_at":"2026-01-01T00:00:00"}',
            "invalid",
        ),
        (
            b'{"type":"LessonStarted","user_id":"u2","course_id":"c","module_id":"m",'
            b'"lesson_id":"l","started_at":"2026-01-01T00:00:00Z"}',
            "wrong-key",
        ),
        (b"x" * 1_000_001, "oversize"),
        (
            b'{"type":"LessonStarted","user_id":"u1","course_id":"c","module_id":"m",'
            b'"lesson_id":"l","started_at":"2999-01-01T00:00:00Z"}',
            "invalid",
        ),
        (
            b'{"type":"LessonStarted","user_id":"u1","course_id":"c","module_id":"m",'
            b'"lesson_id":"l","started_at":"1969-12-31T23:59:59Z"}',
            "invalid",
        ),
        (
            b'{"type":"LessonProgressed","user_id":"u1","course_id":"c","module_id":"m",'
            b'"lesson_id":"l","occurred_at":"2026-01-01T00:00:00Z","time_spent":"lots"}',
            "invalid",
        ),
    ],
)
def test_bad_input_is_refused_with_a_reason(value: bytes, error_type: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event("lesson-activity", b"u1", value)
    assert caught.value.error_type == error_type
    assert caught.value.reason


def test_duplicate_ids_in_a_structure_are_refused() -> None:
    with pytest.raises(ValueError, match="lesson id 'l1' appears twice"):
        course({"m1": ["l1"], "m2": ["l1"]})
