"""The daily history of learner-courses: ``course_progress_daily``.

Contract: for every course_progress row a batch offers, the row's status and percent are
kept for its (user, course, day), day being the UTC date of the row's ``updated_at`` (an
event time); the higher learner version wins within a day, so the day's last value stays
and a replayed older snapshot changes nothing. History rows are never overwritten by a
later day's and never deleted with course_progress changes; an erasure deletes them all
(``ERASE``).

Taken from every snapshot of the batch, not only the newest row per id the batch writes to
course_progress: a batch that spans midnight keeps the last value of each day.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date
from typing import Any

from psycopg import AsyncCursor, sql

from progress.models import CourseProgress
from progress.snapshots import Snapshot

_MERGE = sql.SQL(
    "insert into course_progress_daily (user_id, course_id, day, version, status,"
    " percent_complete, completed_items, total_items, last_activity_at)"
    # Binary arrays (%b): as text, psycopg formats every element and checks every string
    # for characters to quote, about six times the CPU for a batch's history (measured).
    " select * from unnest(%(user_id)b::text[], %(course_id)b::text[], %(day)b::date[],"
    " %(version)b::bigint[], %(status)b::text[], %(percent_complete)b::float8[],"
    " %(completed_items)b::int[], %(total_items)b::int[], %(last_activity_at)b::timestamptz[])"
    # Sorted by key below: the lock order two overlapping sinks share.
    " on conflict (user_id, course_id, day) do update set version = excluded.version,"
    " status = excluded.status, percent_complete = excluded.percent_complete,"
    " completed_items = excluded.completed_items, total_items = excluded.total_items,"
    " last_activity_at = excluded.last_activity_at, synced_at = now()"
    " where course_progress_daily.version < excluded.version"
)
ERASE = sql.SQL("delete from course_progress_daily where user_id = any(%s)")


def day_of(row: CourseProgress) -> date:
    return row.updated_at.astimezone(UTC).date()


def daily_rows(snapshots: Iterable[Snapshot]) -> list[CourseProgress]:
    """The newest course_progress row per (user, course, day) across the snapshots, sorted
    by that key; the first of equal versions, as the stored row wins a tie."""
    newest: dict[tuple[str, str, date], CourseProgress] = {}
    for snapshot in snapshots:
        for row in snapshot.course_progress:
            key = (row.user_id, row.course_id, day_of(row))
            kept = newest.get(key)
            if kept is None or row.version > kept.version:
                newest[key] = row
    return [newest[key] for key in sorted(newest)]


def _items(row: CourseProgress, prefix: str) -> int:
    return int(
        getattr(row, f"{prefix}_lessons")
        + getattr(row, f"{prefix}_quizzes")
        + getattr(row, f"{prefix}_assignments")
    )


async def write_history(cursor: AsyncCursor[Any], rows: list[CourseProgress]) -> None:
    """Merge ``daily_rows`` into the history, in one statement."""
    if not rows:
        return
    await cursor.execute(
        _MERGE,
        {
            "user_id": [row.user_id for row in rows],
            "course_id": [row.course_id for row in rows],
            "day": [day_of(row) for row in rows],
            "version": [row.version for row in rows],
            "status": [row.status for row in rows],
            "percent_complete": [row.percent_complete for row in rows],
            "completed_items": [_items(row, "completed") for row in rows],
            "total_items": [_items(row, "total") for row in rows],
            "last_activity_at": [row.last_activity_at for row in rows],
        },
    )
