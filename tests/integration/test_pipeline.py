"""End to end on the real stack: events into Kafka, worker, sink, PostgreSQL, Redis, API.

Each test uses its own learner and course ids, so all share one worker, sink and API.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import uuid4

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from service.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service")]

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
T = TypeVar("T")


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


class Lms:
    """Produces events the way an LMS would, for one learner and one course."""

    def __init__(self, producer: AIOKafkaProducer, settings: Settings) -> None:
        self.producer = producer
        self.topics = settings.topics
        tag = uuid4().hex[:10]
        self.user = f"u-{tag}"
        self.course = f"c-{tag}"

    async def send(self, topic: str, key: str, value: dict[str, Any] | bytes) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        await self.producer.send_and_wait(topic, key=key.encode(), value=raw)

    async def structure(self, lessons_by_module: dict[str, list[str]], minute: float = 0) -> None:
        modules = [
            {"id": m, "lessons": [{"id": lesson} for lesson in lessons]}
            for m, lessons in lessons_by_module.items()
        ]
        event = {"id": self.course, "title": "T", "updated_at": at(minute), "modules": modules}
        await self.send(self.topics.course_updates, self.course, event)

    async def enroll(self, minute: float = 0) -> None:
        event = {
            "id": f"enr-{self.user}",
            "course_id": self.course,
            "user_id": self.user,
            "enrolled_at": at(minute),
        }
        await self.send(self.topics.enrollments, self.user, event)

    def lesson_completed(self, lesson: str, minute: float, module: str = "m1") -> dict[str, Any]:
        return {
            "UserID": self.user,  # the seed's own spelling
            "CourseID": self.course,
            "ModuleID": module,
            "LessonID": lesson,
            "CompletedAt": at(minute),
        }

    async def complete(self, lesson: str, minute: float, module: str = "m1") -> None:
        event = self.lesson_completed(lesson, minute, module)
        await self.send(self.topics.lesson_activity, self.user, event)


async def eventually(probe: Callable[[], Awaitable[T | None]]) -> T:
    """The first truthy result of ``probe``, polled for 30 s at most."""
    async with asyncio.timeout(30.0):
        while True:
            result = await probe()
            if result:
                return result
            await asyncio.sleep(0.1)


async def course_row(pool: AsyncConnectionPool, user: str, course: str) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "select status, percent_complete, completed_lessons, total_lessons, total_modules,"
            " completed_modules, version from course_progress"
            " where user_id = %s and course_id = %s",
            (user, course),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        names = [d.name for d in cur.description or []]
        return dict(zip(names, row, strict=True))


async def published(settings: Settings, topic: str, key: str, settle: float = 2.0) -> list[Any]:
    """Every record on ``topic`` with ``key``, read from the start until quiet for ``settle``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[Any] = []
    try:
        idle_since = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - idle_since < settle:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                if records:
                    idle_since = asyncio.get_running_loop().time()
                found.extend(r for r in records if r.key == key.encode())
    finally:
        await consumer.stop()
    return found


async def published_json(settings: Settings, topic: str, key: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in await published(settings, topic, key)]


async def course_when(
    pool: AsyncConnectionPool, lms: Lms, accept: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    """The learner's course_progress row, once ``accept`` takes it."""
    return await eventually(lambda: _when(course_row(pool, lms.user, lms.course), accept))


@pytest.fixture
async def producer(settings: Settings) -> Any:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def lms(producer: AIOKafkaProducer, settings: Settings) -> Lms:
    return Lms(producer, settings)


@pytest.fixture
async def http(settings: Settings) -> Any:
    async with aiohttp.ClientSession(f"http://{settings.api_host}:{settings.api_port}") as s:
        yield s


async def api_course(http: aiohttp.ClientSession, lms: Lms) -> dict[str, Any] | None:
    async with http.get(f"/users/{lms.user}/courses/{lms.course}") as response:
        return await response.json() if response.status == 200 else None


async def test_course_completed_end_to_end(
    lms: Lms, pg_pool: AsyncConnectionPool, http: aiohttp.ClientSession, settings: Settings
) -> None:
    await lms.structure({"m1": ["l1", "l2"], "m2": ["l3"]})
    await lms.enroll(0)
    # The structure travels through the fan-out agent and may land after the enrollment.
    await course_when(pg_pool, lms, lambda r: r["total_lessons"] == 3)
    for minute, (lesson, module) in enumerate([("l1", "m1"), ("l2", "m1"), ("l3", "m2")], 1):
        await lms.complete(lesson, minute, module)

    row = await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    assert row["percent_complete"] == 100.0
    assert (row["completed_lessons"], row["total_lessons"]) == (3, 3)
    assert (row["completed_modules"], row["total_modules"]) == (2, 2)

    view = await eventually(
        lambda: _when(api_course(http, lms), lambda v: v["status"] == "completed")
    )
    assert [m["status"] for m in view["modules"]] == ["completed", "completed"]
    async with http.get(f"/users/{lms.user}/progress") as response:
        overall = await response.json()
    assert (overall["completed_courses"], overall["completed_lessons"]) == (1, 3)
    async with http.get(f"/users/{lms.user}/courses/{lms.course}/lessons/l3") as response:
        assert (await response.json())["module_id"] == "m2"

    completions = await published(settings, settings.topics.course_completed, lms.user)
    assert len(completions) == 1
    assert json.loads(completions[0].value)["course_id"] == lms.course
    updates = [
        json.loads(r.value)
        for r in await published(settings, settings.topics.progress_updated, lms.user)
    ]
    assert _changes([u["percent_complete"] for u in updates]) == [0.0, 33.33, 66.67, 100.0]


async def test_duplicated_events_count_once(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    await lms.structure({"m1": ["l1", "l2"]})
    for _ in range(2):
        await lms.enroll(0)
    for lesson, minute in [("l1", 1), ("l1", 1), ("l2", 2), ("l1", 1), ("l2", 2)]:
        await lms.complete(lesson, minute)

    row = await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    assert row["completed_lessons"] == 2
    completions = await published(settings, settings.topics.course_completed, lms.user)
    assert len(completions) == 1
    updates = [
        json.loads(r.value)
        for r in await published(settings, settings.topics.progress_updated, lms.user)
    ]
    ids = [u["event_id"] for u in updates]
    assert len(ids) == len(set(ids))  # duplicates changed nothing, so published nothing
    assert _changes([u["percent_complete"] for u in updates]) == [0.0, 50.0, 100.0]


async def test_lesson_event_before_enrollment_is_counted(
    lms: Lms, pg_pool: AsyncConnectionPool, http: aiohttp.ClientSession
) -> None:
    await lms.complete("l1", 5)  # neither enrollment nor structure known yet
    await lms.structure({"m1": ["l1", "l2"]})
    await asyncio.sleep(0.5)
    assert await course_row(pg_pool, lms.user, lms.course) is None  # not enrolled: not counted
    await lms.enroll(10)
    row = await course_when(pg_pool, lms, lambda r: r["completed_lessons"])
    assert (row["percent_complete"], row["status"]) == (50.0, "in-progress")
    view = await eventually(lambda: api_course(http, lms))
    assert view["percent_complete"] == 50.0


async def test_course_update_recomputes_totals_after_completion(
    lms: Lms, pg_pool: AsyncConnectionPool, http: aiohttp.ClientSession, settings: Settings
) -> None:
    await lms.structure({"m1": ["l1", "l2"]}, minute=0)
    await lms.enroll(0)
    await lms.complete("l1", 1)
    await lms.complete("l2", 2)
    await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    await eventually(lambda: _when(api_course(http, lms), lambda v: v["status"] == "completed"))

    await lms.structure({"m1": ["l1", "l2"], "m2": ["l3"]}, minute=30)  # the course grows
    row = await course_when(pg_pool, lms, lambda r: r["total_lessons"] == 3)
    assert (row["status"], row["percent_complete"], row["total_modules"]) == (
        "in-progress",
        66.67,
        2,
    )
    # The API answers the new figures, not a cached 100%.
    view = await eventually(lambda: _when(api_course(http, lms), lambda v: v["total_lessons"] == 3))
    assert view["percent_complete"] == 66.67

    await lms.structure({"m1": ["l1", "l2"], "m2": []}, minute=20)  # late and older: ignored
    await lms.complete("l3", 40, "m2")
    row = await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    assert row["total_lessons"] == 3
    completions = await published(settings, settings.topics.course_completed, lms.user)
    assert len(completions) == 1  # completing again after the course grew is not news


async def test_malformed_messages_are_dead_lettered_and_the_rest_processed(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    await lms.structure({"m1": ["l1", "l2"]})
    await lms.enroll(0)
    bad: list[tuple[bytes, str]] = [
        (b"{this is not json", "malformed-json"),
        (json.dumps({"type": "LessonTeleported", "user_id": lms.user}).encode(), "unknown-type"),
        (json.dumps({"UserID": lms.user, "CourseID": lms.course}).encode(), "invalid"),
        (
            json.dumps(lms.lesson_completed("l1", 1) | {"CompletedAt": "yesterday"}).encode(),
            "invalid",
        ),
    ]
    await lms.complete("l1", 1)
    for value, _ in bad:
        await lms.send(settings.topics.lesson_activity, lms.user, value)
    await lms.send(settings.topics.lesson_activity, "someone-else", lms.lesson_completed("l2", 2))
    await lms.complete("l2", 2)

    row = await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    assert row["completed_lessons"] == 2

    letters = [
        json.loads(r.value)
        for r in await published(settings, settings.topics.dead_letter, lms.user)
    ]
    assert [(base64.b64decode(d["value"]), d["error_type"]) for d in letters] == bad
    for letter in letters:
        assert letter["source_topic"] == settings.topics.lesson_activity
        assert letter["offset"] >= 0 and letter["partition"] >= 0 and letter["reason"]
    wrong_key = await published(settings, settings.topics.dead_letter, "someone-else")
    assert json.loads(wrong_key[0].value)["error_type"] == "wrong-key"


async def _when(probe: Awaitable[T | None], accept: Callable[[T], Any]) -> T | None:
    value = await probe
    return value if value is not None and accept(value) else None


def _changes(values: list[float]) -> list[float]:
    """The values with repeats in a row folded: a structure that lands after an enrollment
    publishes a second 0% (totals changed, percent did not)."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
