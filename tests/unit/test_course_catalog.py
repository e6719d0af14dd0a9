"""The course catalog rows of a known course, and the sink's pure choices for the history and
the course cache (which rows, which courses), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from progress.course_catalog import CourseSnapshot
from progress.events import CourseUpdated
from progress.facts import merge_course_update
from progress.models import CourseProgress, UserProgress
from progress.snapshots import Snapshot
from sinks.course_catalog import in_write_order
from sinks.history import daily_rows
from sinks.postgres import gather, touched_courses

T0 = datetime(2026, 5, 4, 23, 0, tzinfo=UTC)


def known(title: str, at: datetime, modules: list[dict[str, object]] | None) -> CourseSnapshot:
    event = CourseUpdated.model_validate(
        {"id": "c1", "title": title, "updated_at": at, "event_id": f"e{at}", "modules": modules}
        if modules is not None
        else {"id": "c1", "title": title, "updated_at": at}
    )
    return CourseSnapshot.of(merge_course_update(None, event))


def test_items_are_numbered_within_their_module_and_across_the_course() -> None:
    snapshot = known(
        "Course",
        T0,
        [
            {
                "id": "m1",
                "title": "One",
                "lessons": [{"id": "l1"}],
                "assignments": [{"id": "a1", "completion": "graded", "pass_ratio": 0.5}],
                "quizzes": [{"id": "q1", "points": 7, "pass_mark": 80}],
            },
            {"id": "m2", "lessons": [{"id": "l2"}, {"id": "l3"}]},
        ],
    )
    assert [(m.module_id, m.position, m.total_items) for m in snapshot.modules] == [
        ("m1", 1, 3),
        ("m2", 2, 2),
    ]
    # Lessons first, then quizzes, then assignments: the structure lists each kind apart.
    assert [(i.item_id, i.kind, i.position, i.course_position) for i in snapshot.items] == [
        ("l1", "lesson", 1, 1),
        ("q1", "quiz", 2, 2),
        ("a1", "assignment", 3, 3),
        ("l2", "lesson", 1, 4),
        ("l3", "lesson", 2, 5),
    ]
    quiz, assignment = snapshot.items[1], snapshot.items[2]
    assert (quiz.completion, quiz.pass_mark, quiz.points) == ("passed", 80.0, 7)
    assert (assignment.completion, assignment.pass_ratio) == ("graded", 0.5)
    course = snapshot.course
    assert (course.total_modules, course.total_items) == (2, 5)
    assert course.total_points == 10 + 7 + 30 + 10 + 10
    assert course.structure_updated_at == T0


def test_a_title_only_course_has_no_structure_version() -> None:
    snapshot = known("Only a title", T0, None)
    assert (snapshot.modules, snapshot.items) == ((), ())
    assert (snapshot.course.structure_updated_at, snapshot.course.structure_event_id) == (None, "")
    assert snapshot.course.title_updated_at == T0


def test_the_newest_structure_of_a_batch_is_written_last() -> None:
    later = known("B", T0 + timedelta(hours=1), [{"id": "m2"}])
    earlier = known("A", T0, [{"id": "m1"}])
    title_only = known("C", T0 + timedelta(hours=2), None)
    assert in_write_order([later, title_only, earlier]) == [title_only, earlier, later]


def course_row(
    version: int, at: datetime, course: str = "c1", status: str = "in-progress"
) -> CourseProgress:
    return CourseProgress(
        id=f"cp-u1-{course}",
        user_id="u1",
        version=version,
        course_id=course,
        enrollment_id="e1",
        status=status,  # type: ignore[arg-type]
        percent_complete=float(version),
        total_modules=1,
        completed_modules=0,
        total_lessons=3,
        completed_lessons=1,
        total_quizzes=0,
        completed_quizzes=0,
        total_assignments=0,
        completed_assignments=0,
        total_points=0,
        started_at=at,
        completed_at=None,
        last_activity_at=at,
        created_at=at,
        updated_at=at,
    )


def snapshot(version: int, *rows: CourseProgress) -> Snapshot:
    user = UserProgress.model_validate(
        {
            "id": "up-u1",
            "user_id": "u1",
            "version": version,
            **dict.fromkeys(
                (
                    "total_courses",
                    "completed_courses",
                    "in_progress_courses",
                    "total_lessons",
                    "completed_lessons",
                    "total_quizzes",
                    "completed_quizzes",
                    "total_assignments",
                    "completed_assignments",
                    "total_points",
                ),
                0,
            ),
            "last_activity_at": None,
            "created_at": T0,
            "updated_at": T0,
        }
    )
    return Snapshot(user_id="u1", version=version, user_progress=user, course_progress=rows)


def test_history_keeps_the_last_value_of_each_day_across_a_batch() -> None:
    before_midnight, after_midnight = T0 + timedelta(minutes=30), T0 + timedelta(hours=2)
    batch = [
        snapshot(1, course_row(1, T0)),
        snapshot(2, course_row(2, before_midnight)),
        snapshot(3, course_row(3, after_midnight)),
        snapshot(4, course_row(4, after_midnight, course="c2")),
    ]
    kept = daily_rows(batch)
    assert [(r.course_id, r.updated_at.date(), r.version) for r in kept] == [
        ("c1", T0.date(), 2),
        ("c1", after_midnight.date(), 3),
        ("c2", after_midnight.date(), 4),
    ]


def test_the_courses_a_batch_touches_are_its_rows_and_course_snapshots() -> None:
    learners = [snapshot(1, course_row(1, T0, course="c2"))]
    assert touched_courses(gather(learners), [known("A", T0, [{"id": "m1"}])]) == {"c1", "c2"}
