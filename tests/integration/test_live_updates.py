"""Live updates against the real stack: the sink's notices on Redis pub/sub after each commit,
``GET /events`` forwarding them as server-sent events, and the dashboard's static files."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from adapters.cache import VERSION_FIELD, user_key
from adapters.live import course_channel, publish_changes, user_channel
from adapters.settings import Settings
from api.app import create_app
from api.auth import mint_token
from tests.integration.test_sink_api import COURSE, DONE_COURSE, learner_snapshot
from tests.support.stack import TEST_JWT_KEY, WAIT_S, Http, Sunk, fetch_one, unique_id

pytestmark = pytest.mark.integration


def bearer(subject: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(TEST_JWT_KEY, subject, **claims)}"}


async def next_event(response: aiohttp.ClientResponse) -> tuple[str, str]:
    """The next server-sent event's name and data; comments (heartbeats) are skipped."""
    name, data = "message", ""
    async with asyncio.timeout(WAIT_S):
        while True:
            line = (await response.content.readline()).decode()
            if line == "":
                raise EOFError("the stream ended")
            line = line.rstrip("\n")
            if line == "":
                if data:
                    return name, data
                continue
            field, _, value = line.partition(":")
            if field == "event":
                name = value.strip()
            elif field == "data":
                data = value.strip()


async def test_the_sink_announces_each_learner_and_course_once_the_reads_answer_them(
    sunk: Sunk, redis_client: Redis, pg_pool: AsyncConnectionPool
) -> None:
    user = unique_id("live")
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(user_channel(user), course_channel(COURSE), course_channel(DONE_COURSE))
    try:
        await sunk(learner_snapshot(user, 3, lesson_percent=40.0))
        notices: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(WAIT_S):
            # Other runs may share the course channels; the learner's is this test's alone.
            while user_channel(user) not in notices or len(notices) < 3:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    notices[message["channel"].decode()] = json.loads(message["data"])
    finally:
        await pubsub.aclose()

    assert notices[user_channel(user)] == {"user_id": user, "version": 3}
    assert notices[course_channel(COURSE)]["course_id"] == COURSE
    assert notices[course_channel(DONE_COURSE)]["course_id"] == DONE_COURSE
    # Published after PostgreSQL committed and Redis advanced: a reader finds both there.
    row = await fetch_one(pg_pool, "select version from user_progress where user_id = %s", user)
    assert row[0] == 3
    assert await redis_client.hget(user_key(user), VERSION_FIELD) == b"3"


async def test_a_learner_stream_says_ready_then_forwards_each_change(
    http: Http, redis_client: Redis
) -> None:
    user = unique_id("live")
    async with http.get(f"/events?user_id={user}", headers=bearer(user)) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert await next_event(response) == ("ready", "{}")
        await publish_changes(redis_client, {user: 7}, ())
        name, data = await next_event(response)
        assert name == "change"
        assert json.loads(data) == {"user_id": user, "version": 7}
        # Another learner's change is not this stream's.
        await publish_changes(redis_client, {unique_id("other"): 1}, ())
        await publish_changes(redis_client, {user: 8}, ())
        assert json.loads((await next_event(response))[1]) == {"user_id": user, "version": 8}


async def test_a_course_stream_forwards_the_courses_changes(
    http: Http, redis_client: Redis
) -> None:
    course = unique_id("course")
    async with http.get(f"/events?course_id={course}") as response:  # the staff token
        assert await next_event(response) == ("ready", "{}")
        await publish_changes(redis_client, {}, {course})
        name, data = await next_event(response)
        assert (name, json.loads(data)) == ("change", {"course_id": course})


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("user_id=u-1", {}, 401),
        ("user_id=u-1", {"Authorization": "Bearer not-a-jwt"}, 401),
        ("user_id=u-1", bearer("u-2"), 403),
        ("course_id=c-1", bearer("u-1"), 403),  # a learner may not follow a course
        ("", bearer("u-1"), 400),
        ("user_id=u-1&course_id=c-1", bearer("u-1"), 400),
        ("user_id=%2Fetc", bearer("u-1"), 400),
    ],
)
async def test_a_stream_needs_what_reading_its_data_needs(
    http: Http, query: str, headers: dict[str, str], status: int
) -> None:
    # A session of its own, without the test client's staff token: each case sends its own.
    async with (
        aiohttp.ClientSession(str(http.make_url(""))) as session,
        session.get(f"/events?{query}", headers=headers) as response,
    ):
        assert response.status == status
        assert (await response.json())["error"] in {"unauthorized", "forbidden", "bad_request"}


async def test_open_streams_end_when_the_api_shuts_down(settings: Settings) -> None:
    server = TestServer(create_app(settings))
    await server.start_server()
    user = unique_id("live")
    async with aiohttp.ClientSession() as session:
        url = server.make_url(f"/events?user_id={user}")
        async with session.get(url, headers=bearer(user)) as response:
            assert await next_event(response) == ("ready", "{}")
            async with asyncio.timeout(WAIT_S):
                await server.close()
            # The handler ended the stream itself (a cancelled handler drops the connection,
            # which reads as a payload error, not as the end of the stream).
            with pytest.raises(EOFError):
                await next_event(response)


async def test_the_dashboard_and_its_assets_need_no_token(http: Http) -> None:
    async with aiohttp.ClientSession(str(http.make_url(""))) as session:
        async with session.get("/dashboard") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            page = await response.text()
        assert '<script src="/dashboard/dashboard.js"' in page
        for asset, kind in [("dashboard.js", "javascript"), ("dashboard.css", "text/css")]:
            async with session.get(f"/dashboard/{asset}") as response:
                assert response.status == 200
                assert kind in response.content_type
        # Nothing but the listed files: no route serves any other name.
        async with session.get("/dashboard/..%2Fapp.py") as response:
            assert response.status == 404
        async with session.get("/dashboard/app.py", headers=bearer("u-1")) as response:
            assert response.status == 404


async def test_a_stream_notices_each_change_while_the_page_reads(
    http: Http, pg_pool: AsyncConnectionPool, sunk: Sunk
) -> None:
    """End to end in-process: the stream is subscribed before the snapshot is sunk, and the
    change it forwards is readable through the API when it arrives."""
    user = unique_id("live")
    async with http.get(f"/events?user_id={user}", headers=bearer(user)) as response:
        assert await next_event(response) == ("ready", "{}")
        await sunk(learner_snapshot(user, 5, lesson_percent=60.0))
        name, data = await next_event(response)
        assert (name, json.loads(data)) == ("change", {"user_id": user, "version": 5})
        async with http.get(f"/users/{user}/progress", headers=bearer(user)) as read:
            assert (await read.json())["version"] == 5
