"""Exporting a learner's data (access requests): the admin route and ``progress export``, on
the real API, database and sink."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from api.app import create_app
from progress.models import ALL_ROW_MODELS, VersionedRow
from tests.integration.test_api_access import bearer
from tests.integration.test_sink_api import learner_snapshot
from tests.support.cli import run_progress
from tests.support.stack import Http

pytestmark = pytest.mark.integration

EXPORTER = bearer("dpo", "staff", "learners:export")
# Every table the sink writes per learner; the export may list more (any table with user_id).
LEARNER_TABLES = {m.table for m in ALL_ROW_MODELS if issubclass(m, VersionedRow)} | {
    "competency_evidence"
}


@pytest.fixture
async def anonymous(settings: Settings, pg_pool: AsyncConnectionPool) -> AsyncIterator[Http]:
    """The API with token checks on; the client sends no token by itself."""
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
async def learner(sunk: Callable[..., Awaitable[None]], new_id: Callable[[str], str]) -> str:
    user = new_id("u")
    await sunk(learner_snapshot(user, 3, lesson_percent=30.0))
    return user


async def _count(pool: AsyncConnectionPool, table: str, user: str) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute(f"select count(*) from {table} where user_id = %s", (user,))
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_the_export_holds_every_row_of_the_learner_grouped_by_table(
    anonymous: Http,
    learner: str,
    pg_pool: AsyncConnectionPool,
) -> None:
    response = await anonymous.get(f"/admin/learners/{learner}/export", headers=EXPORTER)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["user_id"] == learner
    tables = body["tables"]
    assert set(tables) >= LEARNER_TABLES
    for table, rows in tables.items():
        assert len(rows) == await _count(pg_pool, table, learner), table
        assert all(row["user_id"] == learner for row in rows)
    # Rows whole, every column: versions and the sink's own bookkeeping too.
    [user_row] = tables["user_progress"]
    assert (user_row["version"], user_row["completed_courses"]) == (3, 1)
    assert "synced_at" in user_row
    assert len(tables["course_progress"]) == 2


async def test_the_export_needs_its_own_scope(
    anonymous: Http,
    learner: str,
) -> None:
    url = f"/admin/learners/{learner}/export"
    for headers in (
        bearer(learner),  # the learner's own token: staff or service only
        bearer("s", "staff", "progress:read"),
        bearer("s", "service", "learners:erase"),
        {},
    ):
        response = await anonymous.get(url, headers=headers)
        assert response.status in (401, 403), headers
    assert (await anonymous.get(url, headers=bearer("svc", "service", "learners:export"))).ok


async def test_an_unknown_learner_is_404(
    anonymous: Http,
    new_id: Callable[[str], str],
) -> None:
    response = await anonymous.get(f"/admin/learners/{new_id('u')}/export", headers=EXPORTER)
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


async def test_the_cli_prints_what_the_route_answers(
    anonymous: Http,
    learner: str,
    settings: Settings,
) -> None:
    response = await anonymous.get(f"/admin/learners/{learner}/export", headers=EXPORTER)
    done = await run_progress(settings, "export", learner)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == await response.json()


async def test_the_cli_says_in_one_line_that_a_learner_is_unknown(
    settings: Settings, new_id: Callable[[str], str], pg_pool: AsyncConnectionPool
) -> None:
    user = new_id("u")
    done = await run_progress(settings, "export", user)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"progress export: no data of learner {user}\n"
