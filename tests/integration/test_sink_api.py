"""The sink and the API against the real stack: snapshots in Kafka, rows in PostgreSQL,
versions in Redis, answers over HTTP.

Snapshots are built here, as the worker would build them, so these tests need no worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
import redis.exceptions
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from adapters.cache import VERSION_FIELD, ProgressCache, user_key
from adapters.settings import Settings
from api import queries
from api.app import create_app
from progress.catalog import AchievementUpdated, Criterion
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
from sinks import runner
from sinks.postgres import Written, write_batch, write_snapshots
from tests.support.stack import (
    WAIT_S,
    Http,
    SinkTask,
    Sunk,
    catalog_snapshot,
    committed,
    fetch_all,
    fetch_one,
    produce,
    staff_headers,
    wait_committed,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# An Open edX course key: ":" and "+" are valid in ids and must survive URLs and cache fields.
COURSE = "course-v1:Acme+PY101+2026"
DONE_COURSE = "course-v1:Acme+GIT100+2026"

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


def learner_snapshot(
    user_id: str,
    version: int,
    *,
    lesson_percent: float,
    evidence: Iterable[str] = ("q1", "cert-1"),
) -> Snapshot:
    """A learner two courses in: PY101 half done (its lesson l2 at ``lesson_percent``), GIT100
    completed; and every learner-wide table filled (``learner_wide_rows``). ``version``
    doubles as the minute of the last activity."""
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
    return Snapshot(
        user_id=user_id,
        version=version,
        user_progress=user,
        course_progress=courses,
        module_progress=modules,
        lesson_progress=lessons,
        **learner_wide_rows(user_id, version, evidence=evidence),
    )


def achievement_ids(user_id: str) -> tuple[str, str]:
    """The learner's two achievements: ids of their own, since the catalog is shared."""
    return f"{user_id}.first-lesson", f"{user_id}.first-course"


def learner_wide_rows(user_id: str, version: int, *, evidence: Iterable[str]) -> dict[str, Any]:
    """Two attempts at quiz q1 (failed, then passed) with their responses; a submitted and
    a graded assignment in two courses; a learning path; competencies python-basics (with
    ``evidence``: reference ids among q1, a1, cert-1) and git (mastered); two achievements
    (``achievement_ids``)."""
    now = at(version)
    common: dict[str, Any] = {"user_id": user_id, "version": version, "updated_at": now}
    attempts = tuple(
        QuizAttempt(
            id=stable_id("quiz_attempts", user_id, COURSE, "q1", str(number)),
            course_id=COURSE,
            module_id="m1",
            lesson_id="l1",
            quiz_id="q1",
            status="completed",
            score=score,
            total_questions=5,
            correct_answers=int(score / 20),
            incorrect_answers=5 - int(score / 20),
            unanswered_questions=0,
            time_spent=240,
            passed=score >= 70,
            attempt_number=number,
            started_at=at(0.1 * number),
            completed_at=at(0.1 * number + 0.05),
            created_at=at(0.1 * number),
            **common,
        )
        for number, score in ((1, 40.0), (2, 80.0))
    )
    first, second = attempts
    responses: tuple[tuple[QuizAttempt, str, list[str], str, bool, float], ...] = (
        (first, "qq1", ["opt-b"], "", False, 0.0),
        (second, "qq1", ["opt-a", "opt-c"], "", True, 1.0),
        (second, "qq2", [], "A list comprehension builds a list.", True, 0.5),
    )
    python_id = stable_id("user_competencies", user_id, "python-basics")
    git_id = stable_id("user_competencies", user_id, "git")
    kinds: dict[str, tuple[Any, str, str]] = {
        "q1": ("quiz", "Passed the PY101 module 1 quiz", ""),
        "a1": ("assignment", "Submitted the PY101 assignment", ""),
        "cert-1": ("external", "PCEP certificate", "https://certs.example.org/pcep/1"),
    }
    return {
        "quiz_attempts": attempts,
        "quiz_question_responses": tuple(
            QuizQuestionResponse(
                id=stable_id("quiz_question_responses", attempt.id, question),
                quiz_attempt_id=attempt.id,
                question_id=question,
                selected_options=options,
                text_response=text,
                correct=correct,
                score=score,
                time_spent=35,
                created_at=at(0.1 * attempt.attempt_number),
                **common,
            )
            for attempt, question, options, text, correct, score in responses
        ),
        "assignment_submissions": (
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
            AssignmentSubmission(
                id=stable_id("assignment_submissions", user_id, DONE_COURSE, "a9"),
                course_id=DONE_COURSE,
                module_id="g1",
                lesson_id="",
                assignment_id="a9",
                status="graded",
                submission_type="text",
                text_content="git rebase -i HEAD~3",
                file_url="",
                link_url="",
                score=27.0,
                max_score=30.0,
                feedback="Squash the fixups too.",
                graded_by="instructor-7",
                submitted_at=at(0.35),
                graded_at=at(0.45),
                created_at=at(0.35),
                **common,
            ),
        ),
        "learning_path_progress": (
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
        "user_competencies": (
            UserCompetency(
                id=git_id,
                competency_id="git",
                level=80,
                status="mastered",
                evidence=[
                    CompetencyEvidence(
                        id=stable_id("competency_evidence", git_id, DONE_COURSE),
                        user_competency_id=git_id,
                        type="course",
                        reference_id=DONE_COURSE,
                        description="Completed GIT100",
                        url="",
                        created_at=at(0.5),
                        **common,
                    )
                ],
                acquired_at=at(0.5),
                created_at=at(0.5),
                **common,
            ),
            UserCompetency(
                id=python_id,
                competency_id="python-basics",
                level=40,
                status="in-progress",
                evidence=[
                    CompetencyEvidence(
                        id=stable_id("competency_evidence", python_id, reference),
                        user_competency_id=python_id,
                        type=kinds[reference][0],
                        reference_id=reference,
                        description=kinds[reference][1],
                        url=kinds[reference][2],
                        created_at=at(0.15),
                        **common,
                    )
                    for reference in evidence
                ],
                acquired_at=None,
                created_at=at(0.15),
                **common,
            ),
        ),
        "user_achievements": tuple(
            UserAchievement(
                id=stable_id("user_achievements", user_id, achievement),
                achievement_id=achievement,
                earned_at=earned,
                created_at=earned,
                **common,
            )
            for achievement, earned in zip(
                achievement_ids(user_id), (at(0.2), at(0.5)), strict=True
            )
        ),
    }


# ------------------------------------------------------------------ helpers


async def lesson_row(pool: AsyncConnectionPool, user_id: str, lesson_id: str) -> Any:
    return await fetch_one(
        pool,
        "select version, percent_complete, synced_at from lesson_progress"
        " where user_id = %s and lesson_id = %s",
        user_id,
        lesson_id,
    )


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
    sunk: Sunk,
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
    assert counts == {"user_progress": 1, "course_progress": 2, "module_progress": 2,
                      "lesson_progress": 3, "quiz_attempts": 2, "quiz_question_responses": 3,
                      "assignment_submissions": 2, "learning_path_progress": 1,
                      "user_competencies": 2, "competency_evidence": 3,
                      "user_achievements": 2}  # fmt: skip
    responses = await fetch_all(
        pg_pool,
        "select a.attempt_number, r.question_id, r.selected_options, r.text_response, r.score"
        " from quiz_question_responses r join quiz_attempts a on a.id = r.quiz_attempt_id"
        " where r.user_id = %s order by 1, 2",
        user,
    )
    assert responses == [
        (1, "qq1", ["opt-b"], "", 0.0),
        (2, "qq1", ["opt-a", "opt-c"], "", 1.0),
        (2, "qq2", [], "A list comprehension builds a list.", 0.5),
    ]
    graded = await fetch_one(
        pg_pool,
        "select status, score, max_score, graded_by, graded_at from assignment_submissions"
        " where user_id = %s and assignment_id = 'a9'",
        user,
    )
    assert graded == ("graded", 27.0, 30.0, "instructor-7", at(0.45))
    version, percent, synced_at = await lesson_row(pg_pool, user, "l2")
    assert (version, percent) == (2, 40.0)
    assert await redis_client.hget(user_key(user), VERSION_FIELD) == b"2"

    older = learner_snapshot(user, 1, lesson_percent=90.0)
    await sunk(older, v2)  # an older version after a newer one, then a duplicate
    assert await lesson_row(pg_pool, user, "l2") == (2, 40.0, synced_at)
    assert await redis_client.hget(user_key(user), VERSION_FIELD) == b"2"


async def test_a_newer_snapshot_replaces_evidence_and_module_sets_for_good(
    sunk: Sunk, pg_pool: AsyncConnectionPool, new_id: Callable[[str], str]
) -> None:
    user = new_id("u")

    async def evidence() -> list[tuple[str, int]]:
        return await fetch_all(
            pg_pool,
            "select e.reference_id, e.version from competency_evidence e"
            " join user_competencies u on u.id = e.user_competency_id"
            " where e.user_id = %s and u.competency_id = 'python-basics' order by 1",
            user,
        )

    async def modules() -> list[tuple[str, int]]:
        return await fetch_all(
            pg_pool,
            "select module_id, version from module_progress where user_id = %s order by 1",
            user,
        )

    v1 = learner_snapshot(user, 1, lesson_percent=10.0, evidence=("q1", "cert-1"))
    await sunk(v1)
    assert await evidence() == [("cert-1", 1), ("q1", 1)]
    assert await modules() == [("m1", 1), ("m2", 1)]

    # v2: the certificate is withdrawn and the assignment counts; module m2 left the course.
    v2 = learner_snapshot(user, 2, lesson_percent=20.0, evidence=("q1", "a1"))
    v2 = v2.model_copy(update={"module_progress": v2.module_progress[:1]})
    await sunk(v2)
    assert await evidence() == [("a1", 2), ("q1", 2)]
    assert await modules() == [("m1", 2)]

    # v1 again (a replay, or a second sink overlapping a rebalance): nothing comes back.
    await sunk(v1)
    assert await evidence() == [("a1", 2), ("q1", 2)]
    assert await modules() == [("m1", 2)]
    git_evidence = await fetch_one(
        pg_pool,
        "select count(*) from competency_evidence where user_id = %s and reference_id = %s",
        user,
        DONE_COURSE,
    )
    assert git_evidence == (1,)  # another competency's evidence is its own set


def partial(snapshot: Snapshot, **rows: Any) -> Snapshot:
    """``snapshot`` as the worker sends it after an ordinary event: only ``rows`` (the other
    row sets empty but for user_progress), no set whole."""
    empty = dict.fromkeys(
        (
            "course_progress",
            "module_progress",
            "lesson_progress",
            "quiz_attempts",
            "quiz_question_responses",
            "assignment_submissions",
            "learning_path_progress",
            "user_competencies",
            "user_achievements",
        ),
        (),
    )
    data = {**snapshot.model_dump(), **empty, **rows}
    return Snapshot.model_validate({**data, "whole_modules": {}, "whole_learner_wide": 0})


async def test_a_partial_snapshot_keeps_the_rows_it_leaves_out_and_removed_ones_stay_out(
    sunk: Sunk, pg_pool: AsyncConnectionPool, new_id: Callable[[str], str]
) -> None:
    user = new_id("u")

    async def versions(table: str, column: str) -> list[tuple[str, int]]:
        return await fetch_all(
            pg_pool,
            f"select {column}, version from {table} where user_id = %s order by 1, 2",
            user,
        )

    v1 = learner_snapshot(user, 1, lesson_percent=10.0)
    await sunk(v1)
    paths = await versions("learning_path_progress", "learning_path_id")
    competencies = await versions("user_competencies", "competency_id")
    assert await versions("module_progress", "module_id") == [("m1", 1), ("m2", 1)]

    # v2 changed module m2 alone: m1, the paths and the competencies stay as they are.
    v2 = learner_snapshot(user, 2, lesson_percent=20.0)
    await sunk(partial(v2, module_progress=v2.module_progress[1:]))
    assert await versions("module_progress", "module_id") == [("m1", 1), ("m2", 2)]
    assert await versions("learning_path_progress", "learning_path_id") == paths
    assert await versions("user_competencies", "competency_id") == competencies
    assert await versions("user_progress", "user_id") == [(user, 2)]

    # v3 carries the modules whole, without m2 (it left the course): m2 goes.
    v3 = learner_snapshot(user, 3, lesson_percent=30.0)
    await sunk(v3.model_copy(update={"module_progress": v3.module_progress[:1]}))
    assert await versions("module_progress", "module_id") == [("m1", 3)]

    # v2 again (a re-read, or a second sink overlapping a rebalance): m2 does not come back.
    await sunk(partial(v2, module_progress=v2.module_progress[1:]))
    assert await versions("module_progress", "module_id") == [("m1", 3)]


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
    real_write, real_advance = write_batch, ProgressCache.advance

    async def flaky_write(conn: AsyncConnection, snapshots: list[Snapshot]) -> Written:
        if postgres.down and any(s.user_id == user for s in snapshots):
            postgres.fail(psycopg.OperationalError("injected: PostgreSQL is unavailable"))
        written_users.extend(s.user_id for s in snapshots)
        return await real_write(conn, snapshots)

    async def flaky_advance(self: ProgressCache, versions: Mapping[str, int]) -> int:
        if redis_.down and user in versions:
            redis_.fail(redis.exceptions.ConnectionError("injected: Redis is unavailable"))
        return await real_advance(self, versions)

    monkeypatch.setattr(runner, "write_batch", flaky_write)
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
    sunk: Sunk, http: Http, new_id: Callable[[str], str]
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
            "total": 2,
            "limit": 100,
            "offset": 0,
        },
        f"/users/{user}/courses?status=completed": {
            "user_id": user,
            "courses": [as_json(git100)],
            "total": 1,
            "limit": 100,
            "offset": 0,
        },
        f"/users/{user}/courses?limit=1&offset=1": {
            "user_id": user,
            "courses": [as_json(py101)],
            "total": 2,
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


async def test_api_serves_attempts_assignments_paths_competencies_and_achievements(
    sunk: Sunk, http: Http, new_id: Callable[[str], str]
) -> None:
    user = new_id("u")
    snapshot = learner_snapshot(user, 1, lesson_percent=30.0, evidence=("q1", "cert-1", "a1"))
    await sunk(snapshot)
    attempt1, attempt2 = (a.model_dump(mode="json") for a in snapshot.quiz_attempts)
    r1, r2a, r2b = (r.model_dump(mode="json") for r in snapshot.quiz_question_responses)
    a1, a9 = (a.model_dump(mode="json") for a in snapshot.assignment_submissions)
    git, python = (c.model_dump(mode="json") for c in snapshot.user_competencies)
    # Evidence in creation order, then by id.
    python["evidence"].sort(key=lambda e: (e["created_at"], e["id"]))
    attempts = [{**attempt1, "responses": [r1]}, {**attempt2, "responses": [r2a, r2b]}]
    # No catalog entries for these achievements: no name, no points.
    earned = [
        {**a.model_dump(mode="json"), "name": None, "points": None}
        for a in snapshot.user_achievements
    ]

    # "+" in a query string is a space: a course key there is percent-encoded.
    course, done_course = quote(COURSE, safe=""), quote(DONE_COURSE, safe="")

    def page(rows: str, listed: list[Any], total: int | None = None) -> dict[str, Any]:
        # Every list is a page: the default one here, whose total is what it lists.
        count = len(listed) if total is None else total
        return {"user_id": user, rows: listed, "total": count, "limit": 100, "offset": 0}

    expected = {
        f"/users/{user}/quiz-attempts": page("quiz_attempts", attempts),
        f"/users/{user}/quiz-attempts?course_id={course}&quiz_id=q1": page(
            "quiz_attempts", attempts
        ),
        f"/users/{user}/quiz-attempts?quiz_id=q2": page("quiz_attempts", []),
        f"/users/{user}/quiz-attempts?course_id={done_course}": page("quiz_attempts", []),
        f"/users/{user}/assignments": page("assignments", [a9, a1]),  # by course
        f"/users/{user}/assignments?course_id={course}": page("assignments", [a1]),
        f"/users/{user}/learning-paths": page(
            "learning_paths", [snapshot.learning_path_progress[0].model_dump(mode="json")]
        ),
        f"/users/{user}/competencies": page("competencies", [git, python]),
        f"/users/{user}/achievements": page("achievements", earned),
        # The second page of one: its rows, and the whole list's total.
        f"/users/{user}/quiz-attempts?limit=1&offset=1": {
            **page("quiz_attempts", [attempts[1]], total=2),
            "limit": 1,
            "offset": 1,
        },
        f"/users/{user}/competencies?limit=1": {
            **page("competencies", [git], total=2),
            "limit": 1,
        },
    }
    for url, body in expected.items():
        for cache in ("miss", "hit"):
            response = await http.get(url)
            assert response.status == 200, (url, await response.text())
            assert response.headers["X-Cache"] == cache, url
            assert await response.json() == body, (url, cache)


async def test_earned_achievements_show_the_catalogs_current_name_and_points(
    sunk: Sunk, http: Http, new_id: Callable[[str], str]
) -> None:
    user = new_id("u")
    first_lesson, first_course = achievement_ids(user)

    def defined(name: str, points: int, minute: float, *, deleted: bool = False) -> Any:
        return catalog_snapshot(
            AchievementUpdated(
                id=first_course,
                name=name,
                points=points,
                criteria=Criterion(kind="course-completed"),
                updated_at=at(minute),
                deleted=deleted,
            )
        )

    async def earned(cache: str) -> list[tuple[str, str | None, int | None]]:
        response = await http.get(f"/users/{user}/achievements")
        assert (response.status, response.headers["X-Cache"]) == (200, cache)
        body = await response.json()
        return [(a["achievement_id"], a["name"], a["points"]) for a in body["achievements"]]

    await sunk(defined("First course", 50, 1), learner_snapshot(user, 1, lesson_percent=5.0))
    expected = [(first_lesson, None, None), (first_course, "First course", 50)]  # by earned_at
    assert await earned("miss") == expected
    assert await earned("hit") == expected

    # The catalog changes, the learner does not: the cached join is not served any more.
    await sunk(defined("Course finisher", 75, 2))
    expected = [(first_lesson, None, None), (first_course, "Course finisher", 75)]
    assert await earned("miss") == expected
    assert await earned("hit") == expected

    # Withdrawn from the catalog: earned stays earned, with its last definition.
    await sunk(defined("(deleted)", 0, 3, deleted=True))
    assert await earned("miss") == expected


async def test_api_answers_the_new_version_once_the_sink_advanced_the_cache(
    sunk: Sunk, http: Http, new_id: Callable[[str], str]
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
        ("/users/{user}/quiz-attempts?quiz_id=q1", "user"),
        ("/users/{user}/assignments", "user"),
        ("/users/{user}/learning-paths", "user"),
        ("/users/{user}/competencies", "user"),
        ("/users/{user}/achievements", "user"),
        ("/nowhere", "GET /nowhere"),
    ],
)
async def test_api_answers_404_for_what_it_does_not_know(
    path: str,
    detail: str,
    sunk: Sunk,
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
        ("/users/u-1/quiz-attempts?course_id=c%201", "course_id"),
        ("/users/u-1/quiz-attempts?quiz_id=-q", "quiz_id"),
        ("/users/u-1/assignments?course_id=" + "c" * 129, "course_id"),
        ("/users/bad%20id/learning-paths", "user_id"),
        ("/users/bad%20id/competencies", "user_id"),
        ("/users/bad%20id/achievements", "user_id"),
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
    settings: Settings, sunk: Sunk, new_id: Callable[[str], str]
) -> None:
    user = new_id("u")
    await sunk(learner_snapshot(user, 1, lesson_percent=10.0))
    no_redis = Settings(
        **{**settings.model_dump(), "redis_url": "redis://127.0.0.1:1/0"}  # nothing listens
    )
    async with TestClient(TestServer(create_app(no_redis)), headers=staff_headers()) as client:
        response = await client.get(f"/users/{user}/progress")
        assert (response.status, response.headers["X-Cache"]) == (200, "miss")
        assert (await response.json())["user_id"] == user
        response = await client.get("/readyz")
        body = await response.json()
        assert response.status == 503
        assert body["status"] == "not-ready"
        assert body["checks"]["postgres"] == "ok"
        assert body["checks"]["redis"] != "ok"
