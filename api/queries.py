"""Every SQL query of the API, and the response models they return.

Each read of a learner runs in one read-only REPEATABLE READ transaction that also reads the
learner's version (``user_progress.version``), so the version handed to the cache is the
version of exactly the rows returned. ``None`` means the learner, or the thing asked for, is
unknown. Catalog listings are one statement each and leave deleted entries out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, LiteralString, TypeVar

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row, dict_row

from adapters.learner_export import learner_rows
from adapters.schema import table_columns
from progress.catalog import LearningPathRow
from progress.models import (
    Achievement,
    AssignmentSubmission,
    Competency,
    CompetencyEvidence,
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
)
from progress.schema import OutputModel

T = TypeVar("T")
R = TypeVar("R", bound=Row | LearningPathRow)


class Page(OutputModel):
    """The envelope of every list: ``total`` rows match, ``limit`` from ``offset`` are in it.

    These fields come first in the JSON (base fields serialize first): the API reads a
    cached list's page from the start of its body (``api.paging``).
    """

    total: int
    limit: int
    offset: int


class CourseList(Page):
    user_id: str
    courses: tuple[CourseProgress, ...]


class CourseDetail(CourseProgress):
    modules: tuple[ModuleProgress, ...]


class ModuleDetail(ModuleProgress):
    lessons: tuple[LessonProgress, ...]


class QuizAttemptDetail(QuizAttempt):
    responses: tuple[QuizQuestionResponse, ...]


class QuizAttemptList(Page):
    user_id: str
    quiz_attempts: tuple[QuizAttemptDetail, ...]


class AssignmentList(Page):
    user_id: str
    assignments: tuple[AssignmentSubmission, ...]


class LearningPathList(Page):
    user_id: str
    learning_paths: tuple[LearningPathProgress, ...]


class CompetencyList(Page):
    user_id: str
    competencies: tuple[UserCompetency, ...]


class EarnedAchievement(UserAchievement):
    """A UserAchievement with its achievement's name and points from the catalog (``None``
    if the catalog does not have the achievement)."""

    name: str | None
    points: int | None


class AchievementList(Page):
    user_id: str
    achievements: tuple[EarnedAchievement, ...]


class CompetencyCatalog(Page):
    competencies: tuple[Competency, ...]


class AchievementCatalog(Page):
    achievements: tuple[Achievement, ...]


class LearningPathCatalog(Page):
    learning_paths: tuple[LearningPathRow, ...]


@dataclass(frozen=True, slots=True)
class Read(Generic[T]):
    """What was read, and the learner version it was read at."""

    version: int
    value: T


def _select(
    model: type[Row] | type[LearningPathRow], where: LiteralString, order_by: LiteralString = ""
) -> sql.Composed:
    return sql.SQL("select {columns} from {table} where {where}{order_by}").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, table_columns(model))),
        table=sql.Identifier(model.table),
        where=sql.SQL(where),
        order_by=sql.SQL(" order by " + order_by if order_by else ""),
    )


def _count(model: type[Row] | type[LearningPathRow], where: LiteralString) -> sql.Composed:
    return sql.SQL("select count(*) from {table} where {where}").format(
        table=sql.Identifier(model.table), where=sql.SQL(where)
    )


# Every list is a page: ordered by ids within the learner, so pages are stable while
# progress changes, and counted in the same transaction.
_PAGE: LiteralString = " limit %(limit)s offset %(offset)s"

_USER_PROGRESS = _select(UserProgress, "user_id = %(user_id)s")
_LEARNER_VERSION = sql.SQL("select version from user_progress where user_id = %(user_id)s")
_BY_USER: LiteralString = "user_id = %(user_id)s"
_BY_STATUS: LiteralString = "user_id = %(user_id)s and status = %(status)s"
_COURSES = _select(CourseProgress, _BY_USER, "course_id" + _PAGE)
_COURSES_BY_STATUS = _select(CourseProgress, _BY_STATUS, "course_id" + _PAGE)
_COURSES_TOTAL = _count(CourseProgress, _BY_USER)
_COURSES_BY_STATUS_TOTAL = _count(CourseProgress, _BY_STATUS)
_COURSE = _select(CourseProgress, "user_id = %(user_id)s and course_id = %(course_id)s")
# The models carry no position, so modules and lessons come in id order.
_COURSE_MODULES = _select(
    ModuleProgress, "user_id = %(user_id)s and course_id = %(course_id)s", "module_id"
)
_MODULE = _select(
    ModuleProgress,
    "user_id = %(user_id)s and course_id = %(course_id)s and module_id = %(module_id)s",
)
_MODULE_LESSONS = _select(
    LessonProgress,
    "user_id = %(user_id)s and course_id = %(course_id)s and module_id = %(module_id)s",
    "lesson_id",
)
_LESSON = _select(
    LessonProgress,
    "user_id = %(user_id)s and course_id = %(course_id)s and lesson_id = %(lesson_id)s",
)


# Optional filters are separate statements rather than "(%(x)s is null or x = %(x)s)", so
# that each keeps a plan that uses the index once psycopg prepares it.
_ATTEMPT_ORDER: LiteralString = "quiz_id, attempt_number, course_id, id" + _PAGE
_ATTEMPT_FILTERS: dict[tuple[bool, bool], LiteralString] = {
    (False, False): "user_id = %(user_id)s",
    (True, False): "user_id = %(user_id)s and course_id = %(course_id)s",
    (False, True): "user_id = %(user_id)s and quiz_id = %(quiz_id)s",
    (True, True): "user_id = %(user_id)s and course_id = %(course_id)s and quiz_id = %(quiz_id)s",
}
_QUIZ_ATTEMPTS = {
    key: (_select(QuizAttempt, where, _ATTEMPT_ORDER), _count(QuizAttempt, where))
    for key, where in _ATTEMPT_FILTERS.items()
}
_RESPONSES = _select(
    QuizQuestionResponse,
    "user_id = %(user_id)s and quiz_attempt_id = any(%(attempt_ids)s)",
    "quiz_attempt_id, question_id",
)
_ASSIGNMENT_ORDER: LiteralString = "course_id, assignment_id, created_at, id" + _PAGE
_BY_COURSE: LiteralString = "user_id = %(user_id)s and course_id = %(course_id)s"
_ASSIGNMENTS = {
    False: (
        _select(AssignmentSubmission, _BY_USER, _ASSIGNMENT_ORDER),
        _count(AssignmentSubmission, _BY_USER),
    ),
    True: (
        _select(AssignmentSubmission, _BY_COURSE, _ASSIGNMENT_ORDER),
        _count(AssignmentSubmission, _BY_COURSE),
    ),
}
_LEARNING_PATHS = _select(LearningPathProgress, _BY_USER, "learning_path_id" + _PAGE)
_LEARNING_PATHS_TOTAL = _count(LearningPathProgress, _BY_USER)
_COMPETENCIES = _select(UserCompetency, _BY_USER, "competency_id" + _PAGE)
_COMPETENCIES_TOTAL = _count(UserCompetency, _BY_USER)
_EVIDENCE = _select(
    CompetencyEvidence,
    "user_id = %(user_id)s and user_competency_id = any(%(user_competency_ids)s)",
    "user_competency_id, created_at, id",
)
# Deleted achievements too: an achievement already earned stays earned, with its last name.
_ACHIEVEMENTS = sql.SQL(
    "select {columns}, a.name, a.points"
    " from user_achievements u left join achievements a on a.id = u.achievement_id"
    " where u.user_id = %(user_id)s order by u.earned_at, u.achievement_id"
    " limit %(limit)s offset %(offset)s"
).format(
    columns=sql.SQL(", ").join(
        sql.Identifier("u", column) for column in table_columns(UserAchievement)
    )
)
_ACHIEVEMENTS_TOTAL = _count(UserAchievement, _BY_USER)
_CATALOG_PAGE: LiteralString = "id" + _PAGE
_COMPETENCY_CATALOG = _select(Competency, "not deleted", _CATALOG_PAGE)
_ACHIEVEMENT_CATALOG = _select(Achievement, "not deleted", _CATALOG_PAGE)
_LEARNING_PATH_CATALOG = _select(LearningPathRow, "not deleted", _CATALOG_PAGE)
_COMPETENCY_CATALOG_TOTAL = _count(Competency, "not deleted")
_ACHIEVEMENT_CATALOG_TOTAL = _count(Achievement, "not deleted")
_LEARNING_PATH_CATALOG_TOTAL = _count(LearningPathRow, "not deleted")


async def _begin_snapshot(conn: AsyncConnection) -> None:
    # Must be the first statement of the transaction.
    await conn.execute("set transaction isolation level repeatable read, read only")


async def _learner_version(conn: AsyncConnection, user_id: str) -> int | None:
    cursor = await conn.execute(_LEARNER_VERSION, {"user_id": user_id})
    row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def _total(conn: AsyncConnection, query: sql.Composed, params: dict[str, object]) -> int:
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone()
    return 0 if row is None else int(row[0])


async def _one(
    conn: AsyncConnection, model: type[R], query: sql.Composed, params: dict[str, object]
) -> R | None:
    async with conn.cursor(row_factory=class_row(model)) as cursor:
        await cursor.execute(query, params)
        return await cursor.fetchone()


async def _all(
    conn: AsyncConnection, model: type[R], query: sql.Composed, params: dict[str, object]
) -> tuple[R, ...]:
    async with conn.cursor(row_factory=class_row(model)) as cursor:
        await cursor.execute(query, params)
        return tuple(await cursor.fetchall())


async def user_progress(conn: AsyncConnection, user_id: str) -> Read[UserProgress] | None:
    async with conn.transaction():
        await _begin_snapshot(conn)
        row = await _one(conn, UserProgress, _USER_PROGRESS, {"user_id": user_id})
    return None if row is None else Read(row.version, row)


async def courses(
    conn: AsyncConnection, user_id: str, status: str | None, limit: int, offset: int
) -> Read[CourseList] | None:
    params: dict[str, object] = {
        "user_id": user_id,
        "status": status,
        "limit": limit,
        "offset": offset,
    }
    query, count = (
        (_COURSES, _COURSES_TOTAL)
        if status is None
        else (_COURSES_BY_STATUS, _COURSES_BY_STATUS_TOTAL)
    )
    async with conn.transaction():
        await _begin_snapshot(conn)
        version = await _learner_version(conn, user_id)
        if version is None:
            return None
        rows = await _all(conn, CourseProgress, query, params)
        total = await _total(conn, count, params)
    listing = CourseList(user_id=user_id, courses=rows, total=total, limit=limit, offset=offset)
    return Read(version, listing)


async def course(conn: AsyncConnection, user_id: str, course_id: str) -> Read[CourseDetail] | None:
    params: dict[str, object] = {"user_id": user_id, "course_id": course_id}
    async with conn.transaction():
        await _begin_snapshot(conn)
        version = await _learner_version(conn, user_id)
        if version is None:
            return None
        row = await _one(conn, CourseProgress, _COURSE, params)
        if row is None:
            return None
        modules = await _all(conn, ModuleProgress, _COURSE_MODULES, params)
    return Read(version, CourseDetail(**dict(row), modules=modules))


async def module(
    conn: AsyncConnection, user_id: str, course_id: str, module_id: str
) -> Read[ModuleDetail] | None:
    params: dict[str, object] = {
        "user_id": user_id,
        "course_id": course_id,
        "module_id": module_id,
    }
    async with conn.transaction():
        await _begin_snapshot(conn)
        version = await _learner_version(conn, user_id)
        if version is None:
            return None
        row = await _one(conn, ModuleProgress, _MODULE, params)
        if row is None:
            return None
        lessons = await _all(conn, LessonProgress, _MODULE_LESSONS, params)
    return Read(version, ModuleDetail(**dict(row), lessons=lessons))


async def lesson(
    conn: AsyncConnection, user_id: str, course_id: str, lesson_id: str
) -> Read[LessonProgress] | None:
    params: dict[str, object] = {
        "user_id": user_id,
        "course_id": course_id,
        "lesson_id": lesson_id,
    }
    async with conn.transaction():
        await _begin_snapshot(conn)
        version = await _learner_version(conn, user_id)
        if version is None:
            return None
        row = await _one(conn, LessonProgress, _LESSON, params)
    return None if row is None else Read(version, row)


async def quiz_attempts(
    conn: AsyncConnection,
    user_id: str,
    course_id: str | None,
    quiz_id: str | None,
    limit: int,
    offset: int,
) -> Read[QuizAttemptList] | None:
    params: dict[str, object] = {
        "user_id": user_id,
        "course_id": course_id,
        "quiz_id": quiz_id,
        "limit": limit,
        "offset": offset,
    }
    query, count = _QUIZ_ATTEMPTS[course_id is not None, quiz_id is not None]
    async with conn.transaction():
        await _begin_snapshot(conn)
        version = await _learner_version(conn, user_id)
        if version is None:
            return None
        attempts = await _all(conn, QuizAttempt, query, params)
        total = await _total(conn, count, params)
        responses = await _all(
            conn,
            QuizQuestionResponse,
            _RESPONSES,
            {"user_id": user_id, "attempt_ids": [attempt.id for attempt in attempts]},
        )
    by_attempt: dict[str, list[QuizQuestionResponse]] = {}
    for response in responses:
        by_attempt.setdefault(response.quiz_attempt_id, []).append(response)
    details = tuple(
        QuizAttemptDetail(**dict(attempt), responses=tuple(by_attempt.get(attempt.id, ())))
        for attempt in attempts
    )
    listing = QuizAttemptList(
        user_id=user_id, quiz_attempts=details, total=total, limit=limit, offset=offset
    )
    return Read(version, listing)


async def assignments(
    conn: AsyncConnection, user_id: str, course_id: str | None, limit: int, offset: int
) -> Read[AssignmentList] | None:
    params: dict[str, object] = {
        "user_id": user_id,
        "course_id": course_id,
        "limit": limit,
        "offset": offset,
    }
    query, count = _ASSIGNMENTS[course_id is not None]
    async with conn.transaction():
        await _begin_snapshot(conn)
        version = await _learner_version(conn, user_id)
        if version is None:
            return None
        rows = await _all(conn, AssignmentSubmission, query, params)
        total = await _total(conn, count, params)
    listing = AssignmentList(
        user_id=user_id, assignments=rows, total=total, limit=limit, offset=offset
    )
    return Read(version, listing)


async def learning_paths(
    conn: AsyncConnection, user_id: str, limit: int, offset: int
) -> Read[LearningPathList] | None:
    params: dict[str, object] = {"user_id": user_id, "limit": limit, "offset": offset}
    async with conn.transaction():
        await _begin_snapshot(conn)
        version = await _learner_version(conn, user_id)
        if version is None:
            return None
        rows = await _all(conn, LearningPathProgress, _LEARNING_PATHS, params)
        total = await _total(conn, _LEARNING_PATHS_TOTAL, params)
    listing = LearningPathList(
        user_id=user_id, learning_paths=rows, total=total, limit=limit, offset=offset
    )
    return Read(version, listing)


async def competencies(
    conn: AsyncConnection, user_id: str, limit: int, offset: int
) -> Read[CompetencyList] | None:
    params: dict[str, object] = {"user_id": user_id, "limit": limit, "offset": offset}
    async with conn.transaction():
        await _begin_snapshot(conn)
        version = await _learner_version(conn, user_id)
        if version is None:
            return None
        # Dicts, not models: a UserCompetency needs its evidence, read next.
        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(_COMPETENCIES, params)
            held: list[dict[str, Any]] = await cursor.fetchall()
        total = await _total(conn, _COMPETENCIES_TOTAL, params)
        evidence = await _all(
            conn,
            CompetencyEvidence,
            _EVIDENCE,
            {"user_id": user_id, "user_competency_ids": [row["id"] for row in held]},
        )
    by_competency: dict[str, list[CompetencyEvidence]] = {}
    for item in evidence:
        by_competency.setdefault(item.user_competency_id, []).append(item)
    rows = tuple(UserCompetency(**row, evidence=by_competency.get(row["id"], [])) for row in held)
    listing = CompetencyList(
        user_id=user_id, competencies=rows, total=total, limit=limit, offset=offset
    )
    return Read(version, listing)


async def achievements(
    conn: AsyncConnection, user_id: str, limit: int, offset: int
) -> Read[AchievementList] | None:
    params: dict[str, object] = {"user_id": user_id, "limit": limit, "offset": offset}
    async with conn.transaction():
        await _begin_snapshot(conn)
        version = await _learner_version(conn, user_id)
        if version is None:
            return None
        async with conn.cursor(row_factory=class_row(EarnedAchievement)) as cursor:
            await cursor.execute(_ACHIEVEMENTS, params)
            rows = tuple(await cursor.fetchall())
        total = await _total(conn, _ACHIEVEMENTS_TOTAL, params)
    listing = AchievementList(
        user_id=user_id, achievements=rows, total=total, limit=limit, offset=offset
    )
    return Read(version, listing)


async def _catalog_page(
    conn: AsyncConnection,
    model: type[R],
    query: sql.Composed,
    count: sql.Composed,
    limit: int,
    offset: int,
) -> tuple[tuple[R, ...], int]:
    # One snapshot for the rows and their count.
    params: dict[str, object] = {"limit": limit, "offset": offset}
    async with conn.transaction():
        await _begin_snapshot(conn)
        rows = await _all(conn, model, query, params)
        total = await _total(conn, count, params)
    return rows, total


async def competency_catalog(conn: AsyncConnection, limit: int, offset: int) -> CompetencyCatalog:
    rows, total = await _catalog_page(
        conn, Competency, _COMPETENCY_CATALOG, _COMPETENCY_CATALOG_TOTAL, limit, offset
    )
    return CompetencyCatalog(competencies=rows, total=total, limit=limit, offset=offset)


async def achievement_catalog(conn: AsyncConnection, limit: int, offset: int) -> AchievementCatalog:
    rows, total = await _catalog_page(
        conn, Achievement, _ACHIEVEMENT_CATALOG, _ACHIEVEMENT_CATALOG_TOTAL, limit, offset
    )
    return AchievementCatalog(achievements=rows, total=total, limit=limit, offset=offset)


async def learning_path_catalog(
    conn: AsyncConnection, limit: int, offset: int
) -> LearningPathCatalog:
    rows, total = await _catalog_page(
        conn,
        LearningPathRow,
        _LEARNING_PATH_CATALOG,
        _LEARNING_PATH_CATALOG_TOTAL,
        limit,
        offset,
    )
    return LearningPathCatalog(learning_paths=rows, total=total, limit=limit, offset=offset)


async def ping(conn: AsyncConnection) -> None:
    await conn.execute("select 1")


async def learner_export(conn: AsyncConnection, user_id: str) -> dict[str, Any] | None:
    """Every row of the learner, grouped by table (``adapters.learner_export``), as the
    export answers it; None for a learner no table holds."""
    tables = await learner_rows(conn, user_id)
    if tables is None:
        return None
    return {"user_id": user_id, "tables": tables}
