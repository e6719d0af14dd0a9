"""The daily history of learner-courses: ``course_progress_daily``.

Contract: for every course_progress row a batch offers, the row's status and percent are
kept for its (user, course, day), day being the UTC date of the row's ``updated_at`` (an
event time); the higher learner version wins within a day, so the day's last value stays
and a replayed older snapshot changes nothing. History rows are never overwritten by a
later day's and never deleted with course_progress changes; an erasure deletes them all
(``ERASE``).

Taken from every snapshot of the batch, not only the newest row per id the batch writes to
course_progress: a batch that spans midnight keeps the last value of each day.

Written by one statement after the batch's course_progress merge: the day's row of each
course_progress row the batch writes is read from the staging table that merge read (the
newest row per id is its own day's newest), and only the rows of other days in the batch
(``other_days``, rare: a batch spanning a day's end) travel as parameters. Sending every
day's row as arrays cost the sink about as much CPU as all the other tables' COPY together
(about 22 ms of the client's and 12 of PostgreSQL's per 2,000-snapshot batch, measured).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date
from typing import Any

from psycopg import AsyncCursor, sql

from progress.models import CourseProgress
from progress.snapshots import Snapshot

# The day's row of each course_progress row the batch writes, read from the staging table the
# batch COPYed them into (``sinks.postgres._Staged``): the sink formats nothing more for them.
# Its integer columns are bigint there; the cast into the history's checks the range.
_FROM_STAGE = sql.SQL(
    "select user_id, course_id, (updated_at at time zone 'UTC')::date as day, version, status,"
    " percent_complete,"
    " completed_lessons + completed_quizzes + completed_assignments as completed_items,"
    " total_lessons + total_quizzes + total_assignments as total_items, last_activity_at"
    " from {stage}"
)
# The other days' rows, as arrays (binary, %b: as text, psycopg formats every element and
# checks every string for characters to quote, about six times the CPU).
_OTHER_DAYS = sql.SQL(
    "select * from unnest(%(user_id)b::text[], %(course_id)b::text[], %(day)b::date[],"
    " %(version)b::bigint[], %(status)b::text[], %(percent_complete)b::float8[],"
    " %(completed_items)b::bigint[], %(total_items)b::bigint[],"
    " %(last_activity_at)b::timestamptz[])"
)
_MERGE = sql.SQL(
    "insert into course_progress_daily (user_id, course_id, day, version, status,"
    " percent_complete, completed_items, total_items, last_activity_at)"
    " select * from ({source}) d"
    # Sorted by key: the lock order two overlapping sinks share.
    " order by user_id, course_id, day"
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


def other_days(
    snapshots: Iterable[Snapshot], kept: Mapping[str, CourseProgress]
) -> list[CourseProgress]:
    """``daily_rows`` without the days of the ``kept`` rows (the newest row per id, which the
    batch writes to course_progress): the rows of a learner-course's other days in the
    batch, a batch that spans the day's end. The kept row is its day's row: the newest
    version of the id, the first of equal ones, so the newest and first of that day too."""
    kept_days: dict[str, date] = {}
    newest: dict[tuple[str, str, date], CourseProgress] = {}
    for snapshot in snapshots:
        for row in snapshot.course_progress:
            final = kept[row.id]
            if row is final:
                continue
            final_day = kept_days.get(row.id)
            if final_day is None:
                final_day = kept_days[row.id] = day_of(final)
            day = day_of(row)
            if day == final_day:
                continue
            key = (row.user_id, row.course_id, day)
            earlier = newest.get(key)
            if earlier is None or row.version > earlier.version:
                newest[key] = row
    return [newest[key] for key in sorted(newest)]


def _items(row: CourseProgress, prefix: str) -> int:
    return int(
        getattr(row, f"{prefix}_lessons")
        + getattr(row, f"{prefix}_quizzes")
        + getattr(row, f"{prefix}_assignments")
    )


async def write_history(
    cursor: AsyncCursor[Any],
    stage: sql.Identifier,
    snapshots: Iterable[Snapshot],
    kept: Mapping[str, CourseProgress],
) -> None:
    """Merge the snapshots' ``daily_rows`` into the history, in one statement: the ``kept``
    rows (the newest per id) from ``stage``, where the batch COPYed them, and the rows of any
    other day (``other_days``) as parameters."""
    from_stage = _FROM_STAGE.format(stage=stage)
    rows = other_days(snapshots, kept)
    if not rows:
        await cursor.execute(_MERGE.format(source=from_stage))
        return
    await cursor.execute(
        _MERGE.format(source=from_stage + sql.SQL(" union all ") + _OTHER_DAYS),
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
