"""The daily history (``course_progress_daily``) as the sink's batched write leaves it, in the
real PostgreSQL: every column's value and type as offered (NULL last activity, large
versions), each day's newest row across the batch's snapshots, and older rows losing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from progress.models import CourseProgress, UserProgress
from progress.schema import stable_id
from progress.snapshots import Snapshot
from sinks.postgres import write_snapshots
from tests.support.stack import fetch_all

pytestmark = pytest.mark.integration

# 23:00 UTC: a snapshot two hours later is on the next day.
T0 = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)
COURSE = "course-v1:Acme+HIST1+2026"
# Past 2**31: must arrive as bigint, not wrapped.
BASE = 3_000_000_000


def snapshot(
    user_id: str, version: int, hours: float, completed: int, *, active: bool = True
) -> Snapshot:
    """The learner at ``version``, ``hours`` after T0, with ``completed`` of 6 lessons done;
    without ``active``, no last activity (NULL)."""
    now = T0 + timedelta(hours=hours)
    common: dict[str, Any] = {"user_id": user_id, "version": version, "updated_at": now}
    counts: dict[str, int] = {
        "total_lessons": 6,
        "completed_lessons": completed,
        "total_quizzes": 1,
        "completed_quizzes": 0,
        "total_assignments": 1,
        "completed_assignments": 0,
    }
    course = CourseProgress(
        id=stable_id("course_progress", user_id, COURSE),
        course_id=COURSE,
        enrollment_id=f"enr-{user_id}",
        status="in-progress" if completed else "not-started",
        percent_complete=round(100 * completed / 8, 2),
        total_modules=2,
        completed_modules=0,
        total_points=0,
        started_at=T0,
        completed_at=None,
        last_activity_at=now if active else None,
        created_at=T0,
        **counts,
        **common,
    )
    user = UserProgress(
        id=stable_id("user_progress", user_id),
        total_courses=1,
        completed_courses=0,
        in_progress_courses=1,
        total_points=0,
        last_activity_at=now if active else None,
        created_at=T0,
        **counts,
        **common,
    )
    return Snapshot(
        user_id=user_id,
        version=version,
        user_progress=user,
        course_progress=(course,),
        whole_modules={},
        whole_learner_wide=0,
    )


HISTORY = (
    "select day, version, status, percent_complete, completed_items, total_items,"
    " last_activity_at from course_progress_daily where user_id = %s order by day"
)


async def test_a_batch_keeps_each_days_newest_row_with_every_column_as_offered(
    pg_pool: AsyncConnectionPool, new_id: Callable[[str], str]
) -> None:
    user, other = new_id("u"), new_id("u")
    batch = [
        snapshot(user, BASE + 1, 0.0, 0, active=False),
        snapshot(other, 1, 0.5, 1),
        snapshot(user, BASE + 2, 0.5, 1),
        # The next day (UTC): a day of its own, not a newer value of the first.
        snapshot(user, BASE + 3, 2.0, 2),
        snapshot(user, BASE + 4, 3.0, 3, active=False),
    ]
    async with pg_pool.connection() as conn:
        assert await write_snapshots(conn, batch) == {user: BASE + 4, other: 1}

    first, second = date(2026, 3, 2), date(2026, 3, 3)
    assert await fetch_all(pg_pool, HISTORY, user) == [
        (first, BASE + 2, "in-progress", 12.5, 1, 8, T0 + timedelta(hours=0.5)),
        (second, BASE + 4, "in-progress", 37.5, 3, 8, None),
    ]
    assert await fetch_all(pg_pool, HISTORY, other) == [
        (first, 1, "in-progress", 12.5, 1, 8, T0 + timedelta(hours=0.5)),
    ]

    # Older rows of a day, in a later batch, change nothing; a newer one replaces the day's.
    async with pg_pool.connection() as conn:
        await write_snapshots(conn, [snapshot(user, BASE + 1, 0.25, 5)])
        await write_snapshots(conn, [snapshot(user, BASE + 5, 4.0, 6)])
    assert await fetch_all(pg_pool, HISTORY, user) == [
        (first, BASE + 2, "in-progress", 12.5, 1, 8, T0 + timedelta(hours=0.5)),
        (second, BASE + 5, "in-progress", 75.0, 6, 8, T0 + timedelta(hours=4)),
    ]
