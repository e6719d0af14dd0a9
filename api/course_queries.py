"""The course views' SQL and answers: a course's roster and its statistics.

Each answer is read in one read-only REPEATABLE READ transaction, so its numbers agree with
each other. ``None`` means the course is unknown: neither in the catalog (``courses``) nor
with any enrolled learner.

Definitions (docs/api.md): enrolled learners are the course's course_progress rows; a
learner is idle after ``idle_days`` when it has not completed the course and its last
activity (its enrolment, if it never started) is at least that many days ago; an item is
completed by a learner by the catalog's rule for it (``course_items.completion``): a lesson
by its lesson_progress status, a quiz by a submitted attempt ("submitted") or a passed one
("passed"), an assignment by a submission ("submitted") or a grade of at least
``pass_ratio`` of its max score ("graded").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, LiteralString

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from api.queries import Page
from progress.course_catalog import ItemKind
from progress.models import ProgressStatus
from progress.schema import OutputModel

LearnerSort = Literal[
    "user_id", "-last_activity_at", "last_activity_at", "-percent_complete", "percent_complete"
]
# Ties (and nulls, last either way) are broken by user_id, so pages never overlap.
_ORDER: Mapping[str, LiteralString] = MappingProxyType(
    {
        "user_id": "user_id",
        "-last_activity_at": "last_activity_at desc nulls last, user_id",
        "last_activity_at": "last_activity_at asc nulls last, user_id",
        "-percent_complete": "percent_complete desc, user_id",
        "percent_complete": "percent_complete asc, user_id",
    }
)


class CourseLearner(OutputModel):
    user_id: str
    status: ProgressStatus
    percent_complete: float
    completed_items: int
    total_items: int
    started_at: datetime | None
    completed_at: datetime | None
    last_activity_at: datetime | None


class CourseLearners(Page):
    course_id: str
    learners: tuple[CourseLearner, ...]


class TimeToComplete(OutputModel):
    median: float | None
    p90: float | None


class ItemStats(OutputModel):
    item_id: str
    kind: ItemKind
    title: str
    position: int
    completed: int
    completion_rate: float


class ModuleStats(OutputModel):
    module_id: str
    title: str
    position: int
    completed: int
    completion_rate: float
    items: tuple[ItemStats, ...]


class QuizStats(OutputModel):
    quiz_id: str
    title: str
    learners: int
    attempts: int
    passed: int
    pass_rate: float
    mean_score: float | None


class IdleLearners(OutputModel):
    days: int
    learners: int


class CourseStats(OutputModel):
    course_id: str
    title: str
    enrolled: int
    not_started: int
    in_progress: int
    completed: int
    completion_rate: float
    time_to_complete_seconds: TimeToComplete
    modules: tuple[ModuleStats, ...]
    quizzes: tuple[QuizStats, ...]
    idle: IdleLearners


_KNOWN = (
    "select (select title from courses where id = %(course_id)s),"
    " exists (select 1 from courses where id = %(course_id)s)"
    " or exists (select 1 from course_progress where course_id = %(course_id)s)"
)
_ROSTER_FILTER: LiteralString = (
    " from course_progress where course_id = %(course_id)s"
    " and (%(status)s::text is null or status = %(status)s)"
    " and (%(idle)s::int is null or (status <> 'completed'"
    "  and coalesce(last_activity_at, created_at) <= now() - make_interval(days => %(idle)s)))"
)
_ROSTER_COUNT = "select count(*)" + _ROSTER_FILTER
_ROSTER_PAGE = (
    "select user_id, status, percent_complete,"
    " completed_lessons + completed_quizzes + completed_assignments as completed_items,"
    " total_lessons + total_quizzes + total_assignments as total_items,"
    " started_at, completed_at, last_activity_at" + _ROSTER_FILTER
)
_COUNTS = (
    "select count(*) as enrolled,"
    " count(*) filter (where status = 'not-started') as not_started,"
    " count(*) filter (where status = 'in-progress') as in_progress,"
    " count(*) filter (where status = 'completed') as completed,"
    " percentile_cont(0.5) within group (order by extract(epoch from completed_at - started_at))"
    " filter (where status = 'completed') as median,"
    " percentile_cont(0.9) within group (order by extract(epoch from completed_at - started_at))"
    " filter (where status = 'completed') as p90,"
    " count(*) filter (where status <> 'completed' and coalesce(last_activity_at, created_at)"
    "  <= now() - make_interval(days => %(idle)s)) as idle"
    " from course_progress where course_id = %(course_id)s"
)
_MODULES = (
    "select m.module_id, m.title, m.position, coalesce(d.completed, 0) as completed"
    " from course_modules m left join ("
    "  select module_id, count(*) as completed from module_progress"
    "  where course_id = %(course_id)s and status = 'completed' group by module_id"
    " ) d on d.module_id = m.module_id"
    " where m.course_id = %(course_id)s order by m.position"
)
# Learners who completed each item, by the catalog's rule for it (module docstring).
_ITEMS = (
    "select i.module_id, i.kind, i.item_id, i.title, i.position, coalesce(d.completed, 0)"
    " as completed from course_items i left join ("
    "  select 'lesson' as kind, lesson_id as item_id, count(*) as completed"
    "  from lesson_progress where course_id = %(course_id)s and status = 'completed'"
    "  group by lesson_id"
    " union all"
    "  select 'quiz', a.quiz_id, count(distinct a.user_id) from quiz_attempts a"
    "  join course_items q on q.course_id = a.course_id and q.kind = 'quiz'"
    "   and q.item_id = a.quiz_id"
    "  where a.course_id = %(course_id)s and a.status = 'completed'"
    "   and (q.completion = 'submitted' or a.passed)"
    "  group by a.quiz_id"
    " union all"
    "  select 'assignment', s.assignment_id, count(distinct s.user_id)"
    "  from assignment_submissions s join course_items g on g.course_id = s.course_id"
    "   and g.kind = 'assignment' and g.item_id = s.assignment_id"
    "  where s.course_id = %(course_id)s and ("
    "   (g.completion = 'submitted' and s.submitted_at is not null)"
    "   or (g.completion = 'graded' and s.graded_at is not null and s.score is not null"
    "    and s.score >= g.pass_ratio * s.max_score))"
    "  group by s.assignment_id"
    " ) d on d.kind = i.kind and d.item_id = i.item_id"
    " where i.course_id = %(course_id)s order by i.course_position"
)
# Submitted attempts (status 'completed'); passed and pass_rate count learners, not attempts.
_QUIZZES = (
    "select i.item_id as quiz_id, i.title, count(distinct a.user_id) as learners,"
    " count(a.id) as attempts,"
    " count(distinct a.user_id) filter (where a.passed) as passed,"
    " avg(a.score) as mean_score"
    " from course_items i left join quiz_attempts a on a.course_id = i.course_id"
    " and a.quiz_id = i.item_id and a.status = 'completed'"
    " where i.course_id = %(course_id)s and i.kind = 'quiz'"
    " group by i.item_id, i.title, i.course_position order by i.course_position"
)


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


async def _begin_snapshot(conn: AsyncConnection) -> None:
    # Must be the first statement of the transaction.
    await conn.execute("set transaction isolation level repeatable read, read only")


async def _rows(conn: AsyncConnection, query: Any, params: Mapping[str, Any]) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, params)
        return await cursor.fetchall()


async def _known(conn: AsyncConnection, course_id: str) -> tuple[str, bool]:
    """The course's title ("" when the catalog has none) and whether it is known."""
    cursor = await conn.execute(_KNOWN, {"course_id": course_id})
    row = await cursor.fetchone()
    assert row is not None  # a select without from always returns a row
    return row[0] or "", bool(row[1])


async def course_learners(
    conn: AsyncConnection,
    course_id: str,
    *,
    status: str | None,
    idle_days: int | None,
    sort: LearnerSort,
    limit: int,
    offset: int,
) -> CourseLearners | None:
    params = {
        "course_id": course_id,
        "status": status,
        "idle": idle_days,
        "limit": limit,
        "offset": offset,
    }
    page = sql.SQL(
        _ROSTER_PAGE + " order by " + _ORDER[sort] + " limit %(limit)s offset %(offset)s"
    )
    async with conn.transaction():
        await _begin_snapshot(conn)
        _, known = await _known(conn, course_id)
        if not known:
            return None
        cursor = await conn.execute(_ROSTER_COUNT, params)
        counted = await cursor.fetchone()
        total = int(counted[0]) if counted else 0
        rows = await _rows(conn, page, params)
    return CourseLearners(
        course_id=course_id,
        learners=tuple(CourseLearner.model_validate(row) for row in rows),
        total=total,
        limit=limit,
        offset=offset,
    )


async def course_stats(conn: AsyncConnection, course_id: str, idle_days: int) -> CourseStats | None:
    params = {"course_id": course_id, "idle": idle_days}
    async with conn.transaction():
        await _begin_snapshot(conn)
        title, known = await _known(conn, course_id)
        if not known:
            return None
        (counts,) = await _rows(conn, _COUNTS, params)
        modules = await _rows(conn, _MODULES, params)
        items = await _rows(conn, _ITEMS, params)
        quizzes = await _rows(conn, _QUIZZES, params)
    enrolled = int(counts["enrolled"])
    by_module: dict[str, list[ItemStats]] = {}
    for item in items:
        by_module.setdefault(item["module_id"], []).append(
            ItemStats(
                item_id=item["item_id"],
                kind=item["kind"],
                title=item["title"],
                position=item["position"],
                completed=item["completed"],
                completion_rate=_rate(item["completed"], enrolled),
            )
        )
    return CourseStats(
        course_id=course_id,
        title=title,
        enrolled=enrolled,
        not_started=counts["not_started"],
        in_progress=counts["in_progress"],
        completed=counts["completed"],
        completion_rate=_rate(counts["completed"], enrolled),
        time_to_complete_seconds=TimeToComplete(median=counts["median"], p90=counts["p90"]),
        modules=tuple(
            ModuleStats(
                module_id=module["module_id"],
                title=module["title"],
                position=module["position"],
                completed=module["completed"],
                completion_rate=_rate(module["completed"], enrolled),
                items=tuple(by_module.get(module["module_id"], ())),
            )
            for module in modules
        ),
        quizzes=tuple(
            QuizStats(
                quiz_id=quiz["quiz_id"],
                title=quiz["title"],
                learners=quiz["learners"],
                attempts=quiz["attempts"],
                passed=quiz["passed"],
                pass_rate=_rate(quiz["passed"], quiz["learners"]),
                mean_score=None if quiz["mean_score"] is None else float(quiz["mean_score"]),
            )
            for quiz in quizzes
        ),
        idle=IdleLearners(days=idle_days, learners=counts["idle"]),
    )
