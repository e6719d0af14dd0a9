"""Driving the running service as an LMS would, and looking at what it produced."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import uuid4

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings

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

    async def course_structure(
        self, modules: list[dict[str, Any]], minute: float = 0, **extra: Any
    ) -> None:
        """A structure with quizzes and assignments, given as the LMS would send it."""
        event = {"id": self.course, "updated_at": at(minute), "modules": modules, **extra}
        await self.send(self.topics.course_updates, self.course, event)

    async def quiz(self, kind: str, minute: float, attempt: str, **fields: Any) -> None:
        time_field = {
            "QuizAttemptStarted": "started_at",
            "QuizQuestionAnswered": "answered_at",
            "QuizAttemptSubmitted": "submitted_at",
            "QuizAttemptAbandoned": "abandoned_at",
        }[kind]
        event = {
            "type": kind,
            "user_id": self.user,
            "course_id": self.course,
            "module_id": fields.pop("module_id", "m1"),
            "quiz_id": fields.pop("quiz_id", "q1"),
            "attempt_id": attempt,
            time_field: at(minute),
            **fields,
        }
        await self.send(self.topics.quiz_activity, self.user, event)

    async def assignment(self, kind: str, minute: float, submission: str, **fields: Any) -> None:
        time_field = {
            "AssignmentDraftSaved": "saved_at",
            "AssignmentSubmitted": "submitted_at",
            "AssignmentGraded": "graded_at",
        }[kind]
        event = {
            "type": kind,
            "user_id": self.user,
            "course_id": self.course,
            "module_id": fields.pop("module_id", "m1"),
            "assignment_id": fields.pop("assignment_id", "a1"),
            "submission_id": submission,
            time_field: at(minute),
            **fields,
        }
        await self.send(self.topics.assignment_activity, self.user, event)

    async def catalog(self, topic: str, entry: dict[str, Any]) -> None:
        await self.send(topic, entry["id"], entry)


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
    return await published_for(settings, topic, {key}, settle)


async def published_for(
    settings: Settings, topic: str, keys: set[str], settle: float = 2.0
) -> list[Any]:
    """Every record on ``topic`` whose key is one of ``keys``, read as ``published`` does."""
    wanted = {k.encode() for k in keys}
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
                found.extend(r for r in records if r.key in wanted)
    finally:
        await consumer.stop()
    return found


async def published_json(settings: Settings, topic: str, key: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in await published(settings, topic, key)]


async def course_when(
    pool: AsyncConnectionPool, lms: Lms, accept: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    """The learner's course_progress row, once ``accept`` takes it."""
    return await eventually(lambda: when(course_row(pool, lms.user, lms.course), accept))


async def api_course(http: aiohttp.ClientSession, lms: Lms) -> dict[str, Any] | None:
    async with http.get(f"/users/{lms.user}/courses/{lms.course}") as response:
        return await response.json() if response.status == 200 else None


async def when(probe: Awaitable[T | None], accept: Callable[[T], Any]) -> T | None:
    value = await probe
    return value if value is not None and accept(value) else None
