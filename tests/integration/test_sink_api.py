"""The sink and the API against the real stack: snapshots in Kafka, rows in PostgreSQL,
versions in Redis, answers over HTTP.

Snapshots are built here, as the worker would build them, so these tests need no worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias, TypeVar

import psycopg
import pytest
import redis.exceptions
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from api import queries
from api.app import create_app
from progress.models import (
    AssignmentSubmission,
    CompetencyEvidence,
    CourseProgress,
    LearningPathProgress,
    LessonProgress,
    ModuleProgress,
    ProgressStatus,
    QuizAttempt,
    QuizQuestionResponse,
    UserAchievement,
    UserCompetency,
    UserProgress,
)
from progress.schema import stable_id
from progress.snapshots import Snapshot
from service.config import Settings
from sinks import runner
from sinks.cache import VERSION_FIELD, ProgressCache, user_key
from sinks.postgres import write_snapshots
from sinks.runner import run_sink
from tests.integration.support import create_topics, delete_topics, make_settings

pytestmark = pytest.mark.integration

T = TypeVar("T")
Http: TypeAlias = TestClient[web.Request, web.Application]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# An Open edX course key: ":" and "+" are valid in ids and must survive URLs and cache fields.
COURSE = "course-v1:Acme+PY101+2026"
DONE_COURSE = "course-v1:Acme+GIT100+2026"
WAIT_S = 20.0

PER_USER_TABLES = (
    "user_progress",
    "course_progress",
    "module_progress",
    "lesson_progress",
    "quiz_attempts",
    "quiz_question_responses",
    "assignment_submissions",
    "learning_path_progress",
    "user_competencies",
    "competency_evidence",
    "user_achievements",
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def learner_snapshot(user_id: str, version: int, *, lesson_percent: float) -> Snapshot:
    """A learner two courses in: PY101 half done (its lesson l2 at ``lesson_percent``), GIT100
    completed; one quiz attempt, one assignment, a learning path, a competency, an achievement.
    ``version`` doubles as the minute of the last activity."""
    now = at(version)
    common: dict[str, Any] = {"user_id": user_id, "version": version, "updated_at": now}
    py101_percent = round((100 + lesson_percent) / 3, 2)
    user = UserProgress(
        id=stable_id("user_progress", user_id),
        total_courses=2,
        completed_courses=1,
        in_progress_courses=1,
        total_lessons=5,
        completed_lessons=3 if lesson_percent < 100 else 4,
        total_quizzes=1,
        completed_quizzes=1,
        total_assignments=1,
        completed_assignments=1,
        total_points=90,
        last_activity_at=now,
        created_at=at(0),
        **common,
    )
    courses = (
        CourseProgress(
            id=stable_id("course_progress", user_id, COURSE),
            course_id=COURSE,
            enrollment_id=f"enr-{user_id}-py101",
            status="in-progress",
            percent_complete=py101_percent,
            total_modules=2,
            completed_modules=0,
            total_lessons=3,
            completed_lessons=1,
            total_quizzes=1,
            completed_quizzes=1,
            total_assignments=1,
            completed_assignments=1,
            total_points=60,
            started_at=at(0),
            completed_at=None,
            last_activity_at=now,
            created_at=at(0),
            **common,
        ),
        CourseProgress(
            id=stable_id("course_progress", user_id, DONE_COURSE),
            course_id=DONE_COURSE,
            enrollment_id=f"enr-{user_id}-git100",
            status="completed",
            percent_complete=100.0,
            total_modules=1,
            completed_modules=1,
            total_lessons=2,
            completed_lessons=2,
            total_quizzes=0,
            completed_quizzes=0,
            total_assignments=0,
            completed_assignments=0,
            total_points=30,
            started_at=at(0),
            completed_at=at(0.5),
            last_activity_at=at(0.5),
            created_at=at(0),
            **common,
        ),
    )
    module_states: tuple[tuple[str, ProgressStatus, float, int], ...] = (
        ("m1", "in-progress", round((100 + lesson_percent) / 2, 2), 2),
        ("m2", "not-started", 0.0, 1),
    )
    lesson_states: tuple[tuple[str, str, ProgressStatus, float], ...] = (
        ("m1", "l1", "completed", 100.0),
        ("m1", "l2", "in-progress", lesson_percent),
        ("m2", "l3", "not-started", 0.0),
    )
    modules = tuple(
        ModuleProgress(
            id=stable_id("module_progress", user_id, COURSE, module_id),
            course_id=COURSE,
            module_id=module_id,
            status=status,
            percent_complete=percent,
            total_lessons=lessons,
            completed_lessons=1 if module_id == "m1" else 0,
            total_quizzes=1 if module_id == "m1" else 0,
            completed_quizzes=1 if module_id == "m1" else 0,
            total_assignments=1 if module_id == "m1" else 0,
            completed_assignments=1 if module_id == "m1" else 0,
            started_at=at(0) if module_id == "m1" else None,
            completed_at=None,
            last_activity_at=now if module_id == "m1" else None,
            created_at=at(0),
            **common,
        )
        for module_id, status, percent, lessons in module_states
    )
    lessons = tuple(
        LessonProgress(
            id=stable_id("lesson_progress", user_id, COURSE, lesson_id),
            course_id=COURSE,
            module_id=module_id,
            lesson_id=lesson_id,
            status=status,
            percent_complete=percent,
            time_spent=int(percent * 6),
            last_position=int(percent * 3),
            completion_criteria="completion-event",
            started_at=at(0) if percent else None,
            completed_at=at(0.2) if percent == 100 else None,
            last_activity_at=now if percent else None,
            created_at=at(0),
            **common,
        )
        for module_id, lesson_id, status, percent in lesson_states
    )
    attempt_id = stable_id("quiz_attempts", user_id, COURSE, "q1", "1")
    user_competency_id = stable_id("user_competencies", user_id, "python-basics")
    return Snapshot(
        user_id=user_id,
        version=version,
        user_progress=user,
        course_progress=courses,
        module_progress=modules,
        lesson_progress=lessons,
        quiz_attempts=(
            QuizAttempt(
                id=attempt_id,
                course_id=COURSE,
                module_id="m1",
                lesson_id="l1",
                quiz_id="q1",
                status="completed",
                score=80.0,
                total_questions=5,
                correct_answers=4,
                incorrect_answers=1,
                unanswered_questions=0,
                time_spent=240,
                passed=True,
                attempt_number=1,
                started_at=at(0.1),
                completed_at=at(0.15),
                created_at=at(0.1),
                **common,
            ),
        ),
        quiz_question_responses=(
            QuizQuestionResponse(
                id=stable_id("quiz_question_responses", attempt_id, "qq1"),
                quiz_attempt_id=attempt_id,
                question_id="qq1",
                selected_options=["opt-a", "opt-c"],
                text_response="",
                correct=True,
                score=1.0,
                time_spent=35,
                created_at=at(0.1),
                **common,
            ),
        ),
        assignment_submissions=(
            AssignmentSubmission(
                id=stable_id("assignment_submissions", user_id, COURSE, "a1"),
                course_id=COURSE,
                module_id="m1",
                lesson_id="l1",
                assignment_id="a1",
                status="submitted",
                submission_type="link",
                text_content="",
                file_url="",
                link_url="https://git.example.org/learner/py101-a1",
                score=None,
                max_score=100.0,
                feedback="",
                graded_by="",
                submitted_at=at(0.3),
                graded_at=None,
                created_at=at(0.25),
                **common,
            ),
        ),
        learning_path_progress=(
            LearningPathProgress(
                id=stable_id("learning_path_progress", user_id, "python-dev"),
                learning_path_id="python-dev",
                status="in-progress",
                percent_complete=50.0,
                total_courses=2,
                completed_courses=1,
                current_course_id=COURSE,
                started_at=at(0),
                completed_at=None,
                last_activity_at=now,
                created_at=at(0),
                **common,
            ),
        ),
        user_competencies=(
            UserCompetency(
                id=user_competency_id,
                competency_id="python-basics",
                level=40,
                status="in-progress",
                evidence=[
                    CompetencyEvidence(
                        id=stable_id("competency_evidence", user_competency_id, "q1"),
                        user_competency_id=user_competency_id,
                        type="quiz",
                        reference_id="q1",
                        description="Passed the PY101 module 1 quiz",
                        url="",
                        created_at=at(0.15),
                        **common,
                    )
                ],
                acquired_at=None,
                created_at=at(0.15),
                **common,
            ),
        ),
        user_achievements=(
            UserAchievement(
                id=stable_id("user_achievements", user_id, "first-course"),
                achievement_id="first-course",
                earned_at=at(0.5),
                created_at=at(0.5),
                **common,
            ),
        ),
    )


# ------------------------------------------------------------------ helpers


async def fetch_one(pool: AsyncConnectionPool, query: str, *params: object) -> Any:
    async with pool.connection() as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchone()


async def lesson_row(pool: AsyncConnectionPool, user_id: str, lesson_id: str) -> Any:
    return await fetch_one(
        pool,
        "select version, percent_complete, synced_at from lesson_progress"
        " where user_id = %s and lesson_id = %s",
        user_id,
        lesson_id,
    )


async def eventually(probe: Callable[[], Awaitable[T]], what: str) -> T:
    """The first truthy result of ``probe``, polled for up to WAIT_S seconds."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                result = await probe()
                if result:
                    return result
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out after {WAIT_S}s waiting for {what}")


async def produce(
    producer: AIOKafkaProducer, settings: Settings, snapshots: Iterable[Snapshot]
) -> list[RecordMetadata]:
    return [
        await producer.send_and_wait(
            settings.topics.snapshots,
            key=snapshot.user_id.encode(),
            value=snapshot.model_dump_json().encode(),
        )
        for snapshot in snapshots
    ]


async def committed(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def wait_committed(
    admin: AIOKafkaAdminClient, group: str, records: Iterable[RecordMetadata]
) -> None:
    """Until the group has committed past every one of ``records``."""
    wanted: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        wanted[tp] = max(wanted.get(tp, 0), record.offset + 1)

    async def done() -> bool:
        have = await committed(admin, group)
        return all(have.get(tp, -1) >= offset for tp, offset in wanted.items())

    await eventually(done, f"group {group} to commit {wanted}")


class Outage:
    """An injected outage: ``down`` until cleared; counts the attempts it made fail."""

    def __init__(self) -> None:
        self.down = True
        self.failures = 0
        self._failed_twice = asyncio.Event()

    def fail(self, error: Exception) -> None:
        self.failures += 1
        if self.failures >= 2:
            self._failed_twice.set()
        raise error

    async def failed_twice(self) -> None:
        """Until two attempts failed: the sink retried, and went on not committing."""
        async with asyncio.timeout(WAIT_S):
            await self._failed_twice.wait()


class SinkTask:
    """``run_sink`` as a task, stopped the way the process stops it."""

    def __init__(self, settings: Settings) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_sink(settings, stop=self.stop))

    async def close(self) -> None:
        self.stop.set()
        async with asyncio.timeout(WAIT_S):
            await self.task  # re-raises whatever ended the sink


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
async def producer(kafka: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture(scope="module")
async def admin(kafka: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap)
    await admin.start()
    yield admin
    await admin.close()


@pytest.fixture(scope="module")
async def sink(kafka: Settings, pg_pool: AsyncConnectionPool) -> AsyncIterator[Settings]:
    """A sink of this module's own, on its own snapshot topic and group, apart from the
    service processes of the pipeline tests. Yields its settings."""
    own = make_settings()
    await create_topics(own, own.topics.snapshots)
    task = SinkTask(own)
    yield own
    await task.close()
    await delete_topics(own)


@pytest.fixture(scope="module")
async def http(settings: Settings, pg_pool: AsyncConnectionPool) -> AsyncIterator[Http]:
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
async def sunk(
    sink: Settings, producer: AIOKafkaProducer, admin: AIOKafkaAdminClient
) -> Callable[..., Awaitable[None]]:
    """Produce snapshots and return once the sink has committed them (so written them)."""

    async def sink_them(*snapshots: Snapshot) -> None:
        records = await produce(producer, sink, snapshots)
        await wait_committed(admin, sink.sink_group_id, records)

    return sink_them


# ------------------------------------------------------------------ the writer


async def test_write_snapshots_keeps_the_highest_version_within_a_batch(
    pg_pool: AsyncConnectionPool, new_id: Callable[[str], str]
) -> None:
    user = new_id("u")
    v3, v5, v4 = (learner_snapshot(user, v, lesson_percent=v * 10.0) for v in (3, 5, 4))

    async with pg_pool.connection() as conn:
        assert await write_snapshots(conn, [v3, v5, v4]) == {user: 5}
    version, percent, synced_at = await lesson_row(pg_pool, user, "l2")
    assert (version, percent) == (5, 50.0)
    for table in PER_USER_TABLES:
        versions = await fetch_one(
            pg_pool, f"select array_agg(distinct version) from {table} where user_id = %s", user
        )
        assert versions == ([5],), table

    # Later batches with an older or the same version change nothing, not even synced_at.
    async with pg_pool.connection() as conn:
        await write_snapshots(conn, [v4])
        await write_snapshots(conn, [v5])
    assert await lesson_row(pg_pool, user, "l2") == (5, 50.0, synced_at)


# ------------------------------------------------------------------ the sink


async def test_sink_writes_every_table_and_ignores_older_and_duplicate_snapshots(
    sunk: Callable[..., Awaitable[None]],
    pg_pool: AsyncConnectionPool,
    redis_client: Redis,
    new_id: Callable[[str], str],
) -> None:
    user = new_id("u")
    v2 = learner_snapshot(user, 2, lesson_percent=40.0)
    await sunk(v2)

    counts = {
        table: (await fetch_one(pg_pool, f"select count(*) from {table} where user_id = %s", user))[
            0
        ]
        for table in PER_USER_TABLES
    }
    assert counts == {**dict.fromkeys(PER_USER_TABLES, 1), "course_progress": 2,
                      "module_progress": 2, "lesson_progress": 3}  # fmt: skip
    options = await fetch_one(
        pg_pool, "select selected_options from quiz_question_responses where user_id = %s", user
    )
    assert options == (["opt-a", "opt-c"],)
    version, percent, synced_at = await lesson_row(pg_pool, user, "l2")
    assert (version, percent) == (2, 40.0)
    assert await redis_client.hget(user_key(user), VERSION_FIELD) == b"2"

    older = learner_snapshot(user, 1, lesson_percent=90.0)
    await sunk(older, v2)  # an older version after a newer one, then a duplicate
    assert await lesson_row(pg_pool, user, "l2") == (2, 40.0, synced_at)
    assert await redis_client.hget(user_key(user), VERSION_FIELD) == b"2"


async def test_sink_skips_a_snapshot_it_cannot_decode_and_goes_on(
    sink: Settings,
    producer: AIOKafkaProducer,
    admin: AIOKafkaAdminClient,
    pg_pool: AsyncConnectionPool,
    new_id: Callable[[str], str],
) -> None:
    user = new_id("u")
    bad = await producer.send_and_wait(sink.topics.snapshots, key=user.encode(), value=b"{not json")
    [good] = await produce(producer, sink, [learner_snapshot(user, 1, lesson_percent=10.0)])
    await wait_committed(admin, sink.sink_group_id, [bad, good])
    assert (await lesson_row(pg_pool, user, "l2"))[:2] == (1, 10.0)


async def test_offsets_are_committed_only_after_postgres_and_then_redis_succeed(
    isolated_settings: Settings,
    producer: AIOKafkaProducer,
    admin: AIOKafkaAdminClient,
    pg_pool: AsyncConnectionPool,
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
    new_id: Callable[[str], str],
) -> None:
    settings = isolated_settings
    group = settings.sink_group_id
    user, later_user = new_id("u"), new_id("u")
    written_users: list[str] = []
    postgres, redis_ = Outage(), Outage()  # both down for this learner's batches
    real_write, real_advance = write_snapshots, ProgressCache.advance

    async def flaky_write(conn: AsyncConnection, snapshots: list[Snapshot]) -> dict[str, int]:
        if postgres.down and any(s.user_id == user for s in snapshots):
            postgres.fail(psycopg.OperationalError("injected: PostgreSQL is unavailable"))
        written_users.extend(s.user_id for s in snapshots)
        return await real_write(conn, snapshots)

    async def flaky_advance(self: ProgressCache, versions: Mapping[str, int]) -> int:
        if redis_.down and user in versions:
            redis_.fail(redis.exceptions.ConnectionError("injected: Redis is unavailable"))
        return await real_advance(self, versions)

    monkeypatch.setattr(runner, "write_snapshots", flaky_write)
    monkeypatch.setattr(ProgressCache, "advance", flaky_advance)

    first = SinkTask(settings)
    records = await produce(producer, settings, [learner_snapshot(user, 1, lesson_percent=20.0)])
    await postgres.failed_twice()
    assert await lesson_row(pg_pool, user, "l2") is None
    assert await committed(admin, group) == {}

    postgres.down = False  # PostgreSQL is back; Redis is still down
    await redis_.failed_twice()
    assert (await lesson_row(pg_pool, user, "l2"))[:2] == (1, 20.0)
    assert await committed(admin, group) == {}

    redis_.down = False
    await wait_committed(admin, group, records)
    assert await redis_client.hget(user_key(user), VERSION_FIELD) == b"1"
    await first.close()

    # Restarted with the same group, the sink reads on from the commit: nothing twice.
    written_users.clear()
    second = SinkTask(settings)
    records = await produce(
        producer, settings, [learner_snapshot(later_user, 1, lesson_percent=5.0)]
    )
    await wait_committed(admin, group, records)
    await second.close()
    assert written_users == [later_user]


# ------------------------------------------------------------------ the API


async def test_api_serves_each_endpoint_from_postgres_then_from_the_cache(
    sunk: Callable[..., Awaitable[None]], http: Http, new_id: Callable[[str], str]
) -> None:
    user = new_id("u")
    snapshot = learner_snapshot(user, 1, lesson_percent=30.0)
    await sunk(snapshot)
    assert snapshot.user_progress is not None
    py101, git100 = snapshot.course_progress
    m1, m2 = snapshot.module_progress
    l1, l2, _ = snapshot.lesson_progress

    def as_json(*rows: Any, **extra: Any) -> Any:
        dumped = [row.model_dump(mode="json") for row in rows]
        return {**dumped[0], **extra} if extra else dumped[0]

    course_url = f"/users/{user}/courses/{COURSE}"
    expected = {
        f"/users/{user}/progress": as_json(snapshot.user_progress),
        f"/users/{user}/courses": {
            "user_id": user,
            "courses": [as_json(git100), as_json(py101)],  # by course id
            "limit": 100,
            "offset": 0,
        },
        f"/users/{user}/courses?status=completed": {
            "user_id": user,
            "courses": [as_json(git100)],
            "limit": 100,
            "offset": 0,
        },
        f"/users/{user}/courses?limit=1&offset=1": {
            "user_id": user,
            "courses": [as_json(py101)],
            "limit": 1,
            "offset": 1,
        },
        course_url: as_json(py101, modules=[as_json(m1), as_json(m2)]),
        f"{course_url}/modules/m1": as_json(m1, lessons=[as_json(l1), as_json(l2)]),
        f"{course_url}/lessons/l2": as_json(l2),
    }
    for url, body in expected.items():
        for cache in ("miss", "hit"):
            response = await http.get(url)
            assert response.status == 200, (url, await response.text())
            assert response.headers["X-Cache"] == cache, url
            assert response.content_type == "application/json"
            assert await response.json() == body, (url, cache)


async def test_api_answers_the_new_version_once_the_sink_advanced_the_cache(
    sunk: Callable[..., Awaitable[None]], http: Http, new_id: Callable[[str], str]
) -> None:
    user = new_id("u")
    lesson_url = f"/users/{user}/courses/{COURSE}/lessons/l2"
    await sunk(learner_snapshot(user, 1, lesson_percent=30.0))
    for cache in ("miss", "hit"):
        response = await http.get(lesson_url)
        assert (response.headers["X-Cache"], (await response.json())["percent_complete"]) == (
            cache,
            30.0,
        )

    await sunk(learner_snapshot(user, 2, lesson_percent=70.0))
    for cache in ("miss", "hit"):
        response = await http.get(lesson_url)
        body = await response.json()
        assert (response.headers["X-Cache"], body["percent_complete"], body["version"]) == (
            cache,
            70.0,
            2,
        )


async def test_a_fill_read_before_the_sink_advanced_never_reaches_the_cache(
    redis_client: Redis, settings: Settings, new_id: Callable[[str], str]
) -> None:
    cache = ProgressCache(redis_client, settings.cache_ttl_seconds)
    user = new_id("u")
    assert await cache.fill(user, "overview", 3, b'{"v":3}')
    assert await cache.advance({user: 4}) == 1  # the sink committed version 4
    assert await cache.get(user, "overview") is None
    assert not await cache.fill(user, "overview", 3, b'{"v":3}')  # a reader that read v3
    assert await cache.get(user, "overview") is None
    assert await cache.fill(user, "overview", 4, b'{"v":4}')
    assert await cache.advance({user: 4}) == 0  # a redelivered batch keeps the fields
    assert await cache.get(user, "overview") == b'{"v":4}'
    assert await redis_client.ttl(user_key(user)) > 0


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/users/{user}/progress", "user"),
        ("/users/{user}/courses", "user"),
        ("/users/{known}/courses/course-v1:Acme+NOPE+2026", "course"),
        ("/users/{known}/courses/{course}/modules/m9", "module 'm9'"),
        ("/users/{known}/courses/{course}/lessons/l9", "lesson 'l9'"),
        ("/nowhere", "GET /nowhere"),
    ],
)
async def test_api_answers_404_for_what_it_does_not_know(
    path: str,
    detail: str,
    sunk: Callable[..., Awaitable[None]],
    http: Http,
    new_id: Callable[[str], str],
) -> None:
    known = new_id("u")
    await sunk(learner_snapshot(known, 1, lesson_percent=0.0))
    response = await http.get(path.format(user=new_id("u"), known=known, course=COURSE))
    assert response.status == 404
    body = await response.json()
    assert body["error"] == "not_found"
    assert detail in body["detail"]


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/users/bad%20id/progress", "user_id"),
        ("/users/-leading-dash/courses", "user_id"),
        ("/users/u-1/courses/%C3%A9t%C3%A9", "course_id"),
        ("/users/u-1/courses/c-1/modules/" + "m" * 129, "module_id"),
        ("/users/u-1/courses/c-1/lessons/l%3Bdrop", "lesson_id"),
        ("/users/u-1/courses?status=done", "status"),
        ("/users/u-1/courses?limit=0", "limit"),
        ("/users/u-1/courses?limit=501", "limit"),
        ("/users/u-1/courses?limit=ten", "limit"),
        ("/users/u-1/courses?offset=-1", "offset"),
    ],
)
async def test_api_answers_400_naming_the_bad_parameter(
    path: str, parameter: str, http: Http
) -> None:
    response = await http.get(path)
    assert response.status == 400, await response.text()
    body = await response.json()
    assert body["error"] == "bad_request"
    assert parameter in body["detail"]


async def test_api_hides_unexpected_errors_behind_a_500(
    http: Http, monkeypatch: pytest.MonkeyPatch, new_id: Callable[[str], str]
) -> None:
    async def broken(conn: AsyncConnection, user_id: str) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(queries, "user_progress", broken)
    response = await http.get(f"/users/{new_id('u')}/progress")
    assert response.status == 500
    assert await response.json() == {"error": "internal"}


async def test_health_and_readiness(http: Http) -> None:
    response = await http.get("/healthz")
    assert (response.status, await response.json()) == (200, {"status": "ok"})
    response = await http.get("/readyz")
    assert (response.status, await response.json()) == (
        200,
        {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}},
    )


async def test_api_keeps_answering_from_postgres_without_redis(
    settings: Settings, sunk: Callable[..., Awaitable[None]], new_id: Callable[[str], str]
) -> None:
    user = new_id("u")
    await sunk(learner_snapshot(user, 1, lesson_percent=10.0))
    no_redis = Settings(
        **{**settings.model_dump(), "redis_url": "redis://127.0.0.1:1/0"}  # nothing listens
    )
    async with TestClient(TestServer(create_app(no_redis))) as client:
        response = await client.get(f"/users/{user}/progress")
        assert (response.status, response.headers["X-Cache"]) == (200, "miss")
        assert (await response.json())["user_id"] == user
        response = await client.get("/readyz")
        body = await response.json()
        assert response.status == 503
        assert body["status"] == "not-ready"
        assert body["checks"]["postgres"] == "ok"
        assert body["checks"]["redis"] != "ok"
