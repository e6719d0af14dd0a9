"""Content restores (``progress resnapshot`` behind a learner's rows) in the sink and the
cache, against the real PostgreSQL and Redis: written into the row they belong to, where the
row is at their version or newer and still without the content, and nowhere else."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from adapters.cache import ProgressCache
from progress.content import ContentRestore, ContentValue
from progress.snapshots import Erasure, Snapshot
from sinks.postgres import write_batch
from tests.integration.test_sink_api import at, learner_snapshot

pytestmark = pytest.mark.integration

ESSAY = {"text_content": "essay", "file_url": "https://f.example/1", "link_url": ""}


def rebuilt(user: str, version: int) -> Snapshot:
    """The learner's rows as a rebuild sends them: bulky content "unchanged" (None)."""
    snapshot = learner_snapshot(user, version, lesson_percent=50)
    unchanged = dict.fromkeys(("text_content", "file_url", "link_url", "feedback"))
    rows = tuple(row.model_copy(update=unchanged) for row in snapshot.assignment_submissions)
    return snapshot.model_copy(update={"assignment_submissions": rows})


def restore(
    snapshot: Snapshot, version: int, part: Any, fields: dict[str, ContentValue]
) -> ContentRestore:
    row = snapshot.assignment_submissions[0]
    return ContentRestore(
        user_id=snapshot.user_id,
        version=version,
        table="assignment_submissions",
        id=row.id,
        part=part,
        fields=fields,
    )


async def submission(conn: AsyncConnection, user: str) -> tuple[Any, ...]:
    """The learner's first submission row (the one the restores name)."""
    row_id = rebuilt(user, 1).assignment_submissions[0].id
    cursor = await conn.execute(
        "select version, text_content, file_url, link_url, feedback"
        " from assignment_submissions where id = %s",
        (row_id,),
    )
    [row] = await cursor.fetchall()
    return tuple(row)


async def test_a_restore_writes_only_where_the_row_is_still_the_one_it_belongs_to(
    pg_pool: AsyncConnectionPool,
) -> None:
    user = f"restore-{uuid4().hex[:8]}"
    at2 = rebuilt(user, 2)
    async with pg_pool.connection() as conn:
        await write_batch(conn, [at2])
        assert await submission(conn, user) == (2, "", "", "", "")
        # At the row's version: written. Older than a row that has the part: not written.
        written = await write_batch(
            conn,
            [
                restore(at2, 2, "submission", ESSAY),
                restore(at2, 1, "submission", {**ESSAY, "text_content": "old"}),
            ],
        )
        assert written.restored == {user: 2}
        assert await submission(conn, user) == (2, "essay", "https://f.example/1", "", "")
        # The worker sent the row again meanwhile, without the content: a restore of the
        # older version fills the part still empty, and leaves the one with content.
        await write_batch(conn, [rebuilt(user, 3)])
        await write_batch(
            conn,
            [
                restore(at2, 2, "feedback", {"feedback": "late"}),
                restore(at2, 2, "submission", {**ESSAY, "text_content": "stale"}),
            ],
        )
        assert await submission(conn, user) == (3, "essay", "https://f.example/1", "", "late")
        # A restore before its learner's erasure in a batch is of rows the erasure removes.
        erased = Erasure(user_id=user, erased_at=at(90))
        written = await write_batch(conn, [restore(at2, 3, "feedback", {"feedback": "x"}), erased])
        assert written.restored == {}
        cursor = await conn.execute(
            "select count(*) from assignment_submissions where user_id = %s", (user,)
        )
        assert await cursor.fetchone() == (0,)


async def test_a_restored_learner_is_not_served_from_the_cache_read_before(
    redis_client: Redis,
) -> None:
    cache = ProgressCache(redis_client, 60)
    user = f"restore-{uuid4().hex[:8]}"
    assert await cache.fill(user, "assignments", 2, b"without content")
    assert await cache.content_restored({user: 2}) == 1
    assert await cache.get(user, "assignments") is None
    # A reader that read PostgreSQL at version 2 before the restore cannot fill it in.
    assert not await cache.fill(user, "assignments", 2, b"without content")
    # The learner's next version caches as usual.
    assert await cache.advance({user: 3}) == 1
    assert await cache.fill(user, "assignments", 3, b"with content")
    assert await cache.get(user, "assignments") == b"with content"
