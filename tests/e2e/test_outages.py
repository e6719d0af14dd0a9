"""Real outages of PostgreSQL and Redis, stopped and started with the project's own script,
while the worker, sink and API keep running."""

from __future__ import annotations

import aiohttp
import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from tests.support.lms import Lms, api_course, course_when, eventually, published, when
from tests.support.processes import ServiceProcess, stopped

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service")]


async def test_sink_waits_out_a_postgres_outage_and_loses_nothing(
    lms: Lms,
    pg_pool: AsyncConnectionPool,
    api: aiohttp.ClientSession,
    settings: Settings,
    service: dict[str, ServiceProcess],
) -> None:
    await lms.structure({"m1": ["l1", "l2", "l3"]})
    await lms.enroll(0)
    await course_when(pg_pool, lms, lambda r: r["total_lessons"] == 3)

    async with stopped("postgres"):
        for minute, lesson in enumerate(["l1", "l2", "l3"], 1):
            await lms.complete(lesson, minute)
        # The worker needs no PostgreSQL: the course completes while the database is down.
        completions = await eventually(
            lambda: published(settings, settings.topics.course_completed, lms.user, 0.5)
        )
        assert len(completions) == 1
        await eventually(lambda: _logged(service["sink"], "write to PostgreSQL failed"))
        async with api.get("/readyz") as response:
            assert response.status == 503
            assert (await response.json())["checks"]["postgres"] != "ok"

    # The sink catches up on its own once PostgreSQL is back.
    row = await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    assert (row["completed_lessons"], row["percent_complete"]) == (3, 100.0)
    view = await eventually(lambda: api_course(api, lms))
    assert view["status"] == "completed"


async def test_api_answers_from_postgres_while_redis_is_down(
    lms: Lms,
    pg_pool: AsyncConnectionPool,
    api: aiohttp.ClientSession,
    service: dict[str, ServiceProcess],
) -> None:
    await lms.structure({"m1": ["l1", "l2"]})
    await lms.enroll(0)
    await lms.complete("l1", 1)
    await course_when(pg_pool, lms, lambda r: r["completed_lessons"] == 1)

    async with stopped("redis"):
        async with api.get(f"/users/{lms.user}/courses/{lms.course}") as response:
            assert (response.status, response.headers["X-Cache"]) == (200, "miss")
            assert (await response.json())["percent_complete"] == 50.0
        async with api.get("/readyz") as response:
            body = await response.json()
            assert response.status == 503
            assert (body["checks"]["postgres"], body["checks"]["redis"] != "ok") == ("ok", True)
        await lms.complete("l2", 2)
        # The sink commits nothing to Kafka until it could advance the cache...
        await eventually(lambda: _logged(service["sink"], "advance the cache failed"))

    # ...and then the API answers the new figures, from PostgreSQL, then from the cache.
    view = await eventually(
        lambda: when(api_course(api, lms), lambda v: v["status"] == "completed")
    )
    assert view["percent_complete"] == 100.0
    async with api.get(f"/users/{lms.user}/courses/{lms.course}") as response:
        assert response.headers["X-Cache"] == "hit"


async def _logged(process: ServiceProcess, needle: str) -> bool:
    return needle in process.log_text()
