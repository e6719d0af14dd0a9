"""Course snapshots into the course catalog: ``courses``, ``course_modules``, ``course_items``.

Contract: each part of a course is written only if it is newer than the stored one, by the
clock the worker merged it by (``progress.course_catalog``): the title by
``title_updated_at``, the structure by ``(structure_updated_at, structure_event_id)``. When a
snapshot's structure wins, the course's modules and items are replaced as a whole, in the
same transaction, so a module or item the course no longer has is gone. An older or equal
snapshot changes nothing; so redelivery and replay end in the newest course.

Course snapshots are rare (one per CourseUpdated), so each is a few plain statements.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncCursor, sql

from progress.course_catalog import CourseItemRow, CourseModuleRow, CourseSnapshot

_UPSERT_STRUCTURE = sql.SQL(
    "insert into courses (id, title, title_updated_at, structure_updated_at,"
    " structure_event_id, total_modules, total_items, total_points)"
    " values (%(id)s, %(title)s, %(title_updated_at)s, %(structure_updated_at)s,"
    " %(structure_event_id)s, %(total_modules)s, %(total_items)s, %(total_points)s)"
    " on conflict (id) do update set structure_updated_at = excluded.structure_updated_at,"
    " structure_event_id = excluded.structure_event_id,"
    " total_modules = excluded.total_modules, total_items = excluded.total_items,"
    " total_points = excluded.total_points, synced_at = now()"
    # A course known by its title only has no structure version: older than any structure.
    " where (coalesce(courses.structure_updated_at, '-infinity'), courses.structure_event_id)"
    " < (coalesce(excluded.structure_updated_at, '-infinity'), excluded.structure_event_id)"
    # A row back: inserted, or updated because this snapshot's structure is newer.
    " returning id"
)
_UPDATE_TITLE = sql.SQL(
    "update courses set title = %(title)s, title_updated_at = %(title_updated_at)s,"
    " synced_at = now()"
    " where id = %(id)s and %(title_updated_at)s::timestamptz is not null"
    " and (title_updated_at is null or title_updated_at < %(title_updated_at)s)"
)
_NO_STRUCTURE = datetime.min.replace(tzinfo=UTC)
_DELETE_MODULES = sql.SQL("delete from course_modules where course_id = %s")
_DELETE_ITEMS = sql.SQL("delete from course_items where course_id = %s")


def _insert(table: str, columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("insert into {table} ({columns}) values ({values})").format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(sql.Identifier(column) for column in columns),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
    )


_MODULE_COLUMNS = tuple(CourseModuleRow.model_fields)
_ITEM_COLUMNS = tuple(CourseItemRow.model_fields)
_INSERT_MODULE = _insert(CourseModuleRow.table, _MODULE_COLUMNS)
_INSERT_ITEM = _insert(CourseItemRow.table, _ITEM_COLUMNS)


def in_write_order(snapshots: Iterable[CourseSnapshot]) -> list[CourseSnapshot]:
    """By course id (the lock order two overlapping sinks share), then oldest structure
    first, so the newest of a batch is written last and wins."""
    return sorted(
        snapshots,
        key=lambda s: (
            s.course.id,
            s.course.structure_updated_at or _NO_STRUCTURE,
            s.course.structure_event_id,
        ),
    )


async def write_courses(cursor: AsyncCursor[Any], snapshots: Iterable[CourseSnapshot]) -> None:
    """Write the course snapshots, each part if newer (module docstring)."""
    for snapshot in in_write_order(snapshots):
        course = snapshot.course.model_dump()
        await cursor.execute(_UPSERT_STRUCTURE, course)
        if await cursor.fetchone() is not None:
            await cursor.execute(_DELETE_MODULES, (snapshot.course.id,))
            await cursor.execute(_DELETE_ITEMS, (snapshot.course.id,))
            if snapshot.modules:
                await cursor.executemany(
                    _INSERT_MODULE,
                    [tuple(getattr(m, c) for c in _MODULE_COLUMNS) for m in snapshot.modules],
                )
            if snapshot.items:
                await cursor.executemany(
                    _INSERT_ITEM,
                    [tuple(getattr(i, c) for c in _ITEM_COLUMNS) for i in snapshot.items],
                )
        await cursor.execute(_UPDATE_TITLE, course)
