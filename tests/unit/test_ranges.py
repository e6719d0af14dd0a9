"""Every number of a consumed event or catalog entry has a range (progress/ranges.py):
out of range is refused with the field's name, the extremes of the range are accepted."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.publishing import InvalidCatalogEntry, validate_entry
from progress.decode import InvalidEvent, StreamKind, decode_event
from progress.ranges import MAX_ITEMS_PER_MODULE, MAX_MODULES, MAX_POINTS, MAX_POSITION, MAX_SECONDS

AT = "2026-05-04T08:00:00Z"
USER = "u1"
LESSON = {"user_id": USER, "course_id": "c1", "module_id": "m1", "lesson_id": "l1"}
QUIZ = {**LESSON, "quiz_id": "q1", "attempt_id": "a1"}
ASSIGNMENT = {**LESSON, "assignment_id": "as1", "submission_id": "s1"}
COURSE: dict[str, Any] = {
    "type": "CourseUpdated",
    "id": "c1",
    "updated_at": AT,
    "modules": [
        {
            "id": "m1",
            "lessons": [{"id": "l1", "points": 10}],
            "quizzes": [{"id": "q1", "points": 20, "pass_mark": 50}],
            "assignments": [
                {
                    "id": "as1",
                    "points": 30,
                    "max_score": 100,
                    "pass_ratio": 0.5,
                    "competencies": [{"competency_id": "k1", "level": 50}],
                }
            ],
        }
    ],
    "competencies": [{"competency_id": "k1", "level": 50}],
}
ACHIEVEMENT = {
    "type": "AchievementUpdated",
    "id": "ach1",
    "name": "Keen",
    "updated_at": AT,
    "points": 15,
    "criteria": {"kind": "lessons", "count": 3},
}

BASES: dict[str, tuple[StreamKind, str, dict[str, Any]]] = {
    "LessonProgressed": (
        "lesson-activity",
        USER,
        {**LESSON, "type": "LessonProgressed", "occurred_at": AT},
    ),
    "QuizAttemptStarted": (
        "quiz-activity",
        USER,
        {**QUIZ, "type": "QuizAttemptStarted", "started_at": AT, "total_questions": 5},
    ),
    "QuizQuestionAnswered": (
        "quiz-activity",
        USER,
        {
            **QUIZ,
            "type": "QuizQuestionAnswered",
            "answered_at": AT,
            "question_id": "qq1",
            "correct": True,
        },
    ),
    "QuizAttemptSubmitted": (
        "quiz-activity",
        USER,
        {**QUIZ, "type": "QuizAttemptSubmitted", "submitted_at": AT},
    ),
    "AssignmentGraded": (
        "assignment-activity",
        USER,
        {**ASSIGNMENT, "type": "AssignmentGraded", "graded_at": AT, "score": 80, "graded_by": "t"},
    ),
    "ExternalEvidenceRecorded": (
        "competency-evidence",
        USER,
        {
            "user_id": USER,
            "competency_id": "k1",
            "evidence_id": "e1",
            "level": 40,
            "recorded_at": AT,
        },
    ),
    "CourseUpdated": ("course-updates", "c1", COURSE),
    "AchievementUpdated": ("achievements", "ach1", ACHIEVEMENT),
}

# JSON text put in place of the field's value as it is: 1e400 parses as infinity, and
# Infinity and NaN are JSON extensions that the parser accepts.
INF = "1e400"


@dataclass(frozen=True)
class Case:
    event: str
    path: tuple[str | int, ...]  # where the number is, in the event's JSON
    value: str  # JSON text

    @property
    def field(self) -> str:
        return str(self.path[-1])

    def __str__(self) -> str:
        return f"{self.event}.{'.'.join(map(str, self.path))}={self.value}"


def _cases(event: str, path: tuple[str | int, ...], *values: object) -> list[Case]:
    return [Case(event, path, v if isinstance(v, str) else json.dumps(v)) for v in values]


LESSON_0 = ("modules", 0, "lessons", 0)
QUIZ_0 = ("modules", 0, "quizzes", 0)
ASSIGNMENT_0 = ("modules", 0, "assignments", 0)

OUT_OF_RANGE = [
    *_cases("LessonProgressed", ("time_spent",), -1, MAX_SECONDS + 1, 10**20, INF),
    *_cases("LessonProgressed", ("position",), -1, MAX_POSITION + 1, 10**19, INF),
    *_cases("LessonProgressed", ("percent_complete",), -0.5, 100.5, INF, "Infinity", "NaN"),
    *_cases("QuizAttemptStarted", ("total_questions",), -1, 10_001, INF),
    *_cases("QuizQuestionAnswered", ("score",), -0.1, 1.01, INF, "NaN"),
    *_cases("QuizQuestionAnswered", ("time_spent",), -1, MAX_SECONDS + 1, 10**20),
    *_cases("QuizAttemptSubmitted", ("time_spent",), -1, MAX_SECONDS + 1, 10**20, INF),
    *_cases("AssignmentGraded", ("score",), -1, MAX_POINTS + 1, INF, "Infinity", "NaN"),
    *_cases("AssignmentGraded", ("max_score",), 0, MAX_POINTS + 1, INF),
    *_cases("ExternalEvidenceRecorded", ("level",), -1, 101, INF),
    *_cases("CourseUpdated", (*LESSON_0, "points"), -1, MAX_POINTS + 1, 10**19),
    *_cases("CourseUpdated", (*QUIZ_0, "points"), -1, MAX_POINTS + 1, INF),
    *_cases("CourseUpdated", (*QUIZ_0, "pass_mark"), -1, 100.5, INF, "NaN"),
    *_cases("CourseUpdated", (*ASSIGNMENT_0, "points"), MAX_POINTS + 1, 10**19),
    *_cases("CourseUpdated", (*ASSIGNMENT_0, "max_score"), 0, MAX_POINTS + 1, INF),
    *_cases("CourseUpdated", (*ASSIGNMENT_0, "pass_ratio"), -0.1, 1.5, "NaN"),
    *_cases("CourseUpdated", (*ASSIGNMENT_0, "competencies", 0, "level"), 0, 101),
    *_cases("CourseUpdated", ("competencies", 0, "level"), 0, 101),
    *_cases("AchievementUpdated", ("points",), -1, MAX_POINTS + 1, 10**19, INF),
    *_cases("AchievementUpdated", ("criteria", "count"), 0, 100_001),
]

IN_RANGE_EXTREMES = [
    *_cases("LessonProgressed", ("time_spent",), 0, MAX_SECONDS),
    *_cases("LessonProgressed", ("position",), 0, MAX_POSITION),
    *_cases("LessonProgressed", ("percent_complete",), 0, 100),
    *_cases("QuizAttemptStarted", ("total_questions",), 0, 10_000),
    *_cases("QuizQuestionAnswered", ("score",), 0, 1),
    *_cases("QuizQuestionAnswered", ("time_spent",), MAX_SECONDS),
    *_cases("QuizAttemptSubmitted", ("time_spent",), MAX_SECONDS),
    *_cases("AssignmentGraded", ("score",), 0, MAX_POINTS),
    *_cases("AssignmentGraded", ("max_score",), 0.01, MAX_POINTS),
    *_cases("ExternalEvidenceRecorded", ("level",), 0, 100),
    *_cases("CourseUpdated", (*LESSON_0, "points"), 0, MAX_POINTS),
    *_cases("CourseUpdated", (*QUIZ_0, "pass_mark"), 0, 100),
    *_cases("CourseUpdated", (*ASSIGNMENT_0, "max_score"), MAX_POINTS),
    *_cases("CourseUpdated", (*ASSIGNMENT_0, "pass_ratio"), 0, 1),
    *_cases("CourseUpdated", ("competencies", 0, "level"), 1, 100),
    *_cases("AchievementUpdated", ("points",), 0, MAX_POINTS),
    *_cases("AchievementUpdated", ("criteria", "count"), 1, 100_000),
]

_MARK = "__the_value__"


def _decode(case: Case) -> Any:
    """The event of ``case.event`` with the number at ``case.path`` set to ``case.value``."""
    kind, key, base = BASES[case.event]
    event = copy.deepcopy(base)
    parent: Any = event
    for step in case.path[:-1]:
        parent = parent[step]
    parent[case.path[-1]] = _MARK
    raw = json.dumps(event).replace(json.dumps(_MARK), case.value)
    return decode_event(kind, key.encode(), raw.encode())


@pytest.mark.parametrize("case", OUT_OF_RANGE, ids=str)
def test_a_number_out_of_range_is_invalid_and_the_reason_names_its_field(case: Case) -> None:
    with pytest.raises(InvalidEvent) as refused:
        _decode(case)
    assert refused.value.error_type == "invalid"
    # The reason locates the number: its field, under the item that holds it.
    where = ".".join(map(str, case.path))
    assert where in refused.value.reason, refused.value.reason


@pytest.mark.parametrize("case", IN_RANGE_EXTREMES, ids=str)
def test_the_extremes_of_a_range_are_accepted(case: Case) -> None:
    event = _decode(case)
    value: Any = event.model_dump()
    # A CourseUpdated keeps its modules and competencies in one structure, under "modules".
    path = ("modules", *case.path) if case.event == "CourseUpdated" else case.path
    for step in path:
        value = value[step]
    assert value == json.loads(case.value)


def test_a_course_has_at_most_so_many_modules_and_a_module_so_many_items() -> None:
    kind, key, _ = BASES["CourseUpdated"]
    at_most = {**COURSE, "modules": [{"id": f"m{i}"} for i in range(MAX_MODULES)]}
    assert len(decode_event(kind, key.encode(), json.dumps(at_most).encode()).modules.modules) == (
        MAX_MODULES
    )
    too_many = {**COURSE, "modules": [{"id": f"m{i}"} for i in range(MAX_MODULES + 1)]}
    with pytest.raises(InvalidEvent) as refused:
        decode_event(kind, key.encode(), json.dumps(too_many).encode())
    assert refused.value.error_type == "invalid"
    assert "modules.modules" in refused.value.reason
    lessons = [{"id": f"l{i}"} for i in range(MAX_ITEMS_PER_MODULE + 1)]
    crowded = {**COURSE, "modules": [{"id": "m1", "lessons": lessons}]}
    with pytest.raises(InvalidEvent) as refused:
        decode_event(kind, key.encode(), json.dumps(crowded).encode())
    assert "modules.0.lessons" in refused.value.reason


@pytest.mark.parametrize(
    ("kind", "entry", "field"),
    [
        (
            "courses",
            {**COURSE, "modules": [{"id": "m1", "lessons": [{"id": "l1", "points": 10**19}]}]},
            "points",
        ),
        ("achievements", {**ACHIEVEMENT, "points": 10**19}, "points"),
        # What the API's JSON parser makes of 1e400.
        (
            "courses",
            {
                **COURSE,
                "modules": [{"id": "m1", "assignments": [{"id": "a", "max_score": float("inf")}]}],
            },
            "max_score",
        ),
    ],
)
def test_the_admin_api_refuses_a_catalog_entry_out_of_range(
    kind: Any, entry: dict[str, Any], field: str
) -> None:
    # validate_entry's refusal is what PUT /admin/catalog/{kind}/{id} answers 400 with.
    with pytest.raises(InvalidCatalogEntry, match=field):
        validate_entry(kind, entry, entry_id=entry["id"])
