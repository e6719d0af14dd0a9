"""Every SQL query of the API, and the response models they return.

Each read runs in one read-only REPEATABLE READ transaction that also reads the learner's
version (``user_progress.version``), so the version handed to the cache is the version of
exactly the rows returned. ``None`` means the learner, or the thing asked for, is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, LiteralString, TypeVar

from psycopg import AsyncConnection, sql
from psycopg.rows import class_row

from progress.models import CourseProgress, LessonProgress, ModuleProgress, Row, UserProgress
from progress.schema import OutputModel
from sinks.postgres import table_columns

T = TypeVar("T")
R = TypeVar("R", bound=Row)


class CourseList(OutputModel):
    user_id: str
    courses: tuple[CourseProgress, ...]
    limit: int
    offset: int


class CourseDetail(CourseProgress):
    modules: tuple[ModuleProgress, ...]


class ModuleDetail(ModuleProgress):
    lessons: tuple[LessonProgress, ...]


@dataclass(frozen=True, slots=True)
class Read(Generic[T]):
    """What was read, and the learner version it was read at."""

    version: int
    value: T


def _select(model: type[Row], where: LiteralString, order_by: LiteralString = "") -> sql.Composed:
    return sql.SQL("select {columns} from {table} where {where}{order_by}").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, table_columns(model))),
        table=sql.Identifier(model.table),
        where=sql.SQL(where),
        order_by=sql.SQL(" order by " + order_by if order_by else ""),
    )


_USER_PROGRESS = _select(UserProgress, "user_id = %(user_id)s")
_LEARNER_VERSION = sql.SQL("select version from user_progress where user_id = %(user_id)s")
# Ordered by id within the learner, so pages are stable while progress changes.
_COURSES = _select(
    CourseProgress, "user_id = %(user_id)s", "course_id limit %(limit)s offset %(offset)s"
)
_COURSES_BY_STATUS = _select(
    CourseProgress,
    "user_id = %(user_id)s and status = %(status)s",
    "course_id limit %(limit)s offset %(offset)s",
)
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


async def _begin_snapshot(conn: AsyncConnection) -> None:
    # Must be the first statement of the transaction.
    await conn.execute("set transaction isolation level repeatable read, read only")


async def _learner_version(conn: AsyncConnection, user_id: str) -> int | None:
    cursor = await conn.execute(_LEARNER_VERSION, {"user_id": user_id})
    row = await cursor.fetchone()
    return None if row is None else int(row[0])


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
    params: dict[str, object] = {"user_id": user_id, "limit": limit, "offset": offset}
    async with conn.transaction():
        await _begin_snapshot(conn)
        version = await _learner_version(conn, user_id)
        if version is None:
            return None
        if status is None:
            rows = await _all(conn, CourseProgress, _COURSES, params)
        else:
            rows = await _all(
                conn, CourseProgress, _COURSES_BY_STATUS, {**params, "status": status}
            )
    listing = CourseList(user_id=user_id, courses=rows, limit=limit, offset=offset)
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


async def ping(conn: AsyncConnection) -> None:
    await conn.execute("select 1")
