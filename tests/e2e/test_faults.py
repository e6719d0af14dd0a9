"""Faults mid-stream against real processes and services: the final rows must be exact and
no once-only event may be missing (a repeat must carry the same id).

These tests run their own worker, sink and API (own topics and groups), so killing them
does not disturb the session's shared service.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from progress.catalog import AchievementUpdated, CompetencyUpdated
from progress.events import (
    CourseUpdated,
    UserEnrolled,
    assignment_activity_adapter,
    lesson_activity_adapter,
    quiz_activity_adapter,
)
from tests.e2e.test_oracle_pipeline import converged, destination, payload
from tests.generators import Scenario
from tests.oracle import Event, expected
from tests.support.lms import at, eventually, published_for
from tests.support.processes import ServiceProcess, free_port, stopped, wait_for_http
from tests.support.stack import make_settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

LESSONS = {"m1": ["l1", "l2", "l3"], "m2": ["l4", "l5", "l6"]}
LEARNERS = 12
CONVERGE_S = 180.0


class Service:
    """Worker(s), sink and API of one settings, each startable, stoppable and killable."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.processes: dict[str, ServiceProcess] = {}

    def start(self, name: str, settings: Settings | None = None) -> ServiceProcess:
        command = name.split("-")[0]
        process = ServiceProcess(command, settings or self.settings, self.log_dir, name)
        self.processes[name] = process
        if command == "worker":
            process.wait_for_log("Worker]: Ready", timeout=120)
        elif command == "api":
            s = self.settings
            wait_for_http(f"http://{s.api_host}:{s.api_port}/healthz", timeout=60)
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        self.processes.pop(name).stop(sig)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


@pytest.fixture(scope="module")
def service_under_fault(
    tmp_path_factory: pytest.TempPathFactory, pg_pool: AsyncConnectionPool
) -> Iterator[Service]:
    data = tmp_path_factory.mktemp("fault-worker")
    settings = make_settings(api_port=free_port(), worker_data_dir=data / "worker-1")
    service = Service(settings, tmp_path_factory.mktemp("fault-logs"))
    try:
        for name in ("worker", "sink", "api"):
            service.start(name)
        yield service
    finally:
        service.stop_all()


class Cohort:
    """Learners taking one course: the workload every fault test replays, and its oracle.

    Each learner enrolls, completes six lessons, passes a quiz and submits an assignment;
    the course, the quiz and the assignment grant a competency (50 + 40 + 30: mastered on
    completion), and an achievement is for completing the course. Some events are sent
    twice. PostgreSQL must end up with the oracle's rows, and every once-event must be
    published (a repeat carrying the same id).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = f"f{uuid4().hex[:8]}-"
        self.course = f"{self.prefix}c1"
        self.users = [f"{self.prefix}u{i}" for i in range(LEARNERS)]
        log = self._log()
        again = log[::7]  # redelivered by the LMS
        self.scenario = Scenario(self.prefix, tuple(self.users), tuple(log), (*log, *again))

    @property
    def arrivals(self) -> list[Event]:
        return list(self.scenario.arrivals)

    def _log(self) -> list[Event]:
        skill = f"{self.prefix}k1"
        grant = [{"competency_id": skill, "level": 50}]
        modules = [
            {
                "id": "m1",
                "lessons": [{"id": x} for x in LESSONS["m1"]],
                "quizzes": [{"id": "q1", "competencies": grant}],
            },
            {
                "id": "m2",
                "lessons": [{"id": x} for x in LESSONS["m2"]],
                "assignments": [
                    {"id": "a1", "competencies": [{"competency_id": skill, "level": 40}]}
                ],
            },
        ]
        log: list[Event] = [
            CourseUpdated.model_validate(
                {
                    "id": self.course,
                    "title": "Faults",
                    "updated_at": at(0),
                    "modules": modules,
                    "competencies": [{"competency_id": skill, "level": 30}],
                }
            ),
            CompetencyUpdated.model_validate(
                {"id": skill, "name": "Recovering", "updated_at": at(0)}
            ),
            AchievementUpdated.model_validate(
                {
                    "id": f"{self.prefix}h1",
                    "name": "Finisher",
                    "criteria": {"kind": "course-completed", "course_id": self.course},
                    "points": 5,
                    "updated_at": at(0),
                }
            ),
        ]
        for user in self.users:
            log.append(
                UserEnrolled(id=f"e-{user}", course_id=self.course, user_id=user, enrolled_at=at(1))
            )
        minute = 2
        for module, lessons in LESSONS.items():
            for lesson in lessons:
                for user in self.users:
                    log.append(self._lesson(user, module, lesson, minute))
                minute += 1
        for user in self.users:
            log += self._quiz(user, minute)
            log.append(self._assignment(user, minute + 5))
        return log

    def _lesson(self, user: str, module: str, lesson: str, minute: int) -> Event:
        return lesson_activity_adapter.validate_python(
            {
                "type": "LessonCompleted",
                "user_id": user,
                "course_id": self.course,
                "module_id": module,
                "lesson_id": lesson,
                "completed_at": at(minute),
            }
        )

    def _quiz(self, user: str, minute: int) -> list[Event]:
        ids = {
            "user_id": user,
            "course_id": self.course,
            "module_id": "m1",
            "quiz_id": "q1",
            "attempt_id": f"{user}-t1",
        }
        steps: list[dict[str, Any]] = [
            {"type": "QuizAttemptStarted", "started_at": at(minute), "total_questions": 2},
            *(
                {
                    "type": "QuizQuestionAnswered",
                    "question_id": question,
                    "correct": True,
                    "answered_at": at(minute + 1 + n),
                }
                for n, question in enumerate(("x", "y"))
            ),
            {"type": "QuizAttemptSubmitted", "submitted_at": at(minute + 3)},
        ]
        return [quiz_activity_adapter.validate_python({**ids, **step}) for step in steps]

    def _assignment(self, user: str, minute: int) -> Event:
        return assignment_activity_adapter.validate_python(
            {
                "type": "AssignmentSubmitted",
                "user_id": user,
                "course_id": self.course,
                "module_id": "m2",
                "assignment_id": "a1",
                "submission_id": f"{user}-s1",
                "submission_type": "text",
                "text_content": "done",
                "submitted_at": at(minute),
            }
        )

    async def send(self, events: list[Event]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for event in events:
                topic, key = destination(event, self.settings)
                await producer.send_and_wait(topic, key=key.encode(), value=payload(event))
        finally:
            await producer.stop()

    async def send_raw(self, events: list[tuple[str, str, dict[str, Any]]]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for topic, key, value in events:
                await producer.send_and_wait(
                    topic, key=key.encode(), value=json.dumps(value).encode()
                )
        finally:
            await producer.stop()

    async def converged(self, pool: AsyncConnectionPool) -> None:
        """PostgreSQL holds the oracle's rows for every learner, and every once-event was
        published, each under one id (a repeat after a crash carries the same one)."""
        oracle = expected(list(self.scenario.log))
        assert ("CourseCompleted", self.users[-1], self.course) in oracle.once  # the workload
        problems = await converged(
            pool, self.settings, self.scenario, oracle, within=CONVERGE_S, repeats=True
        )
        assert not problems, "\n".join(problems)


async def test_worker_killed_mid_stream_and_restarted_loses_nothing(
    service_under_fault: Service, pg_pool: AsyncConnectionPool
) -> None:
    cohort = Cohort(service_under_fault.settings)
    events = cohort.arrivals
    half = len(events) // 2
    await cohort.send(events[:half])
    await asyncio.sleep(1.0)  # let it get going: state, changelogs and snapshots in flight
    service_under_fault.stop("worker", signal.SIGKILL)
    await cohort.send(events[half:])
    await asyncio.to_thread(service_under_fault.start, "worker")
    await cohort.converged(pg_pool)


async def test_second_worker_joining_and_leaving_loses_nothing(
    service_under_fault: Service, pg_pool: AsyncConnectionPool
) -> None:
    # Twice: four rebalances, each moving partitions with records in flight. Before
    # streams/faust_fixes.py, runs lost input here (docs/reliability.md, fault matrix).
    settings = service_under_fault.settings
    cohort = Cohort(settings)
    events = cohort.arrivals
    fifth = len(events) // 5
    alone_1, shared_1, alone_2, shared_2 = (events[i * fifth : (i + 1) * fifth] for i in range(4))
    second = settings.model_copy(
        update={"worker_data_dir": Path(str(settings.worker_data_dir)).parent / "worker-2"}
    )
    for alone, shared in ((alone_1, shared_1), (alone_2, shared_2)):
        await cohort.send(alone)
        await asyncio.to_thread(service_under_fault.start, "worker-2", second)
        await cohort.send(shared)
        await asyncio.to_thread(service_under_fault.stop, "worker-2")
    await cohort.send(events[4 * fifth :])
    await cohort.converged(pg_pool)


async def test_sink_killed_and_restarted_loses_nothing(
    service_under_fault: Service, pg_pool: AsyncConnectionPool
) -> None:
    cohort = Cohort(service_under_fault.settings)
    events = cohort.arrivals
    half = len(events) // 2
    await cohort.send(events[:half])
    await asyncio.sleep(0.5)
    service_under_fault.stop("sink", signal.SIGKILL)
    await cohort.send(events[half:])
    await asyncio.sleep(2.0)
    await asyncio.to_thread(service_under_fault.start, "sink")
    await cohort.converged(pg_pool)


async def test_postgres_stopped_for_30_seconds_loses_nothing(
    service_under_fault: Service, pg_pool: AsyncConnectionPool
) -> None:
    cohort = Cohort(service_under_fault.settings)
    async with stopped("postgres", for_seconds=30):
        await cohort.send(cohort.arrivals)
    await cohort.converged(pg_pool)


async def test_kafka_broker_restarted_loses_nothing(
    service_under_fault: Service, pg_pool: AsyncConnectionPool
) -> None:
    cohort = Cohort(service_under_fault.settings)
    events = cohort.arrivals
    half = len(events) // 2
    await cohort.send(events[:half])
    async with stopped("kafka", for_seconds=5):
        pass
    await cohort.send(events[half:])
    await cohort.converged(pg_pool)


async def rows_of(pool: AsyncConnectionPool, user: str) -> int:
    """How many progress rows the learner has in PostgreSQL."""
    async with pool.connection() as conn:
        total = 0
        for table in ("user_progress", "course_progress", "lesson_progress"):
            query = sql.SQL("select count(*) from {} where user_id = %s").format(
                sql.Identifier(table)
            )
            row = await (await conn.execute(query, (user,))).fetchone()
            total += row[0] if row else 0
        return total


async def erase_a_learner(service: Service, pool: AsyncConnectionPool) -> tuple[Cohort, str]:
    """A cohort completes its course, then its first learner is erased (rows gone)."""
    settings = service.settings
    cohort = Cohort(settings)
    await cohort.send(cohort.arrivals)
    await cohort.converged(pool)
    erased = cohort.users[0]
    request = {
        "user_id": erased,
        "request_id": f"req-{erased}",
        "requested_at": datetime.now(UTC).isoformat(),
    }
    await cohort.send_raw([(settings.topics.erasure_requests, erased, request)])
    await eventually(lambda: _is(rows_of(pool, erased), 0))
    return cohort, erased


async def test_erasure_removes_the_learners_rows_and_announces_it(
    service_under_fault: Service, pg_pool: AsyncConnectionPool
) -> None:
    cohort, erased = await erase_a_learner(service_under_fault, pg_pool)
    assert await rows_of(pg_pool, cohort.users[1]) == 1 + 1 + 6
    topic = cohort.settings.topics.learner_erased
    announced = await published_for(cohort.settings, topic, {erased}, 1.0)
    assert [json.loads(r.value)["request_id"] for r in announced] == [f"req-{erased}"]


async def test_erased_learner_stays_erased_after_a_worker_restart(
    service_under_fault: Service, pg_pool: AsyncConnectionPool
) -> None:
    settings = service_under_fault.settings
    cohort, erased = await erase_a_learner(service_under_fault, pg_pool)
    # Killed right after the erasure: the restart replays whatever was not committed,
    # from every input topic in any order, and recovers the tables from their changelogs.
    service_under_fault.stop("worker", signal.SIGKILL)
    await asyncio.to_thread(service_under_fault.start, "worker")
    # Events from before the erasure, sent again, must not bring the learner back...
    await cohort.send([e for e in cohort.arrivals if getattr(e, "user_id", None) == erased])
    await asyncio.sleep(3.0)
    assert await rows_of(pg_pool, erased) == 0

    # ...while new activity starts them afresh.
    now = datetime.now(UTC)
    course = cohort.course
    fresh = [
        (
            settings.topics.enrollments,
            erased,
            {"id": "again", "course_id": course, "user_id": erased, "enrolled_at": now.isoformat()},
        ),
        (
            settings.topics.lesson_activity,
            erased,
            {
                "user_id": erased,
                "course_id": course,
                "module_id": "m1",
                "lesson_id": "l1",
                "completed_at": (now + timedelta(seconds=1)).isoformat(),
            },
        ),
    ]
    await cohort.send_raw(fresh)

    async def completed_lessons() -> int | None:
        async with pg_pool.connection() as conn:
            cur = await conn.execute(
                "select completed_lessons from user_progress where user_id = %s", (erased,)
            )
            row = await cur.fetchone()
        return row[0] if row else None

    await eventually(lambda: _is(completed_lessons(), 1))
    await asyncio.sleep(1.0)
    assert await completed_lessons() == 1


async def _is(probe: Awaitable[object], expected: object) -> bool:
    return await probe == expected
