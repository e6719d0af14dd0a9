"""The rebuild procedure of docs/operations.md, end to end on the real stack: learners taken
through courses, quizzes, assignments, a path, a competency and an achievement by the running
worker and sink; their rows recorded; PostgreSQL and Redis emptied of them; ``progress
resnapshot`` run; the sink writes the same rows again, bulky content included (from the
content topic), and the API answers as before. The content topic holds each piece once, however
often its event came, and nothing but tombstones for an erased learner.

The session's database and Redis are shared with the other tests (and other runs), so
"emptied" is every row and cache entry of this test's learners and catalog entries, which is
what emptying everything does to them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import uuid4

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from adapters.cache import KEY_PREFIX
from adapters.learner_export import learner_rows
from adapters.settings import Settings
from progress.content import ContentRecord
from progress.schema import stable_id
from service.kafka_read import TopicReader
from tests.support.cli import run_progress
from tests.support.lms import Lms, at, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service")]

Tables = dict[str, list[dict[str, Any]]]
# Bookkeeping that a rebuild changes by design: rows carry the learner's current version, and
# synced_at is when the sink wrote them.
_REBUILT = {"version", "synced_at"}
_CATALOG_TABLES = ("competencies", "achievements", "learning_paths")


async def _learner(pool: AsyncConnectionPool, user: str) -> Tables:
    async with pool.connection() as conn:
        return await learner_rows(conn, user) or {}


async def _catalog(pool: AsyncConnectionPool, ids: list[str]) -> Tables:
    out: Tables = {}
    async with pool.connection() as conn:
        for table in _CATALOG_TABLES:
            cursor = await conn.execute(
                sql.SQL("select * from {} where id = any(%s) order by id").format(
                    sql.Identifier(table)
                ),
                (ids,),
            )
            names = [d.name for d in cursor.description or []]
            out[table] = [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
    return out


def _without(tables: Tables, columns: set[str]) -> Tables:
    return {
        table: [{k: v for k, v in row.items() if k not in columns} for row in rows]
        for table, rows in tables.items()
    }


async def _content_topic(settings: Settings) -> list[tuple[str, ContentRecord | None]]:
    """Every record of the content topic, each partition in order: (key, record or None)."""
    reader = TopicReader(settings)
    await reader.start()
    try:
        partitions = await reader.partitions(settings.topics.content)
        ends = await reader.ends(partitions)
        out: list[tuple[str, ContentRecord | None]] = []
        for tp in partitions:
            async for r in reader.read(tp, ends[tp]):
                value = ContentRecord.model_validate_json(r.value) if r.value else None
                out.append((r.key.decode(), value))
        return out
    finally:
        await reader.stop()


async def _settled(probe: Callable[[], Awaitable[Any]]) -> Any:
    """``probe``'s answer once two reads in a row agree: the worker and sink are done."""
    last = await probe()

    async def same() -> Any:
        nonlocal last
        now = await probe()
        agreed, last = now == last, now
        return now if agreed else None

    return await eventually(same)


async def _answers(api: aiohttp.ClientSession, lms: Lms) -> dict[str, Any]:
    """What the API answers about the learner, versions left out."""
    out: dict[str, Any] = {}
    for path in (
        "progress",
        f"courses/{lms.course}",
        "quiz-attempts",
        "assignments",
        "learning-paths",
        "competencies",
        "achievements",
    ):
        async with api.get(f"/users/{lms.user}/{path}") as response:
            assert response.status == 200, path
            out[path] = re.sub(r'"version":\d+', '"version":0', await response.text())
    return out


async def test_resnapshot_rebuilds_postgres_and_redis(
    settings: Settings,
    pg_pool: AsyncConnectionPool,
    redis_client: Redis,
    event_producer: AIOKafkaProducer,
    api: aiohttp.ClientSession,
) -> None:
    tag = uuid4().hex[:8]
    competency = f"py-{tag}"
    kept, other, erased = (Lms(event_producer, settings) for _ in range(3))
    modules = [
        {
            "id": "m1",
            "lessons": [{"id": "l1"}, {"id": "l2"}],
            "quizzes": [{"id": "q1", "competencies": [{"competency_id": competency, "level": 50}]}],
            "assignments": [
                {"id": "a1", "competencies": [{"competency_id": competency, "level": 40}]}
            ],
        }
    ]
    t = settings.topics
    await kept.catalog(t.competencies, {"id": competency, "name": "Py", "updated_at": at(0)})
    achievement = {
        "id": f"fin-{tag}",
        "name": "Finisher",
        "points": 25,
        "criteria": {"kind": "course-completed", "course_id": kept.course},
        "updated_at": at(0),
    }
    await kept.catalog(t.achievements, achievement)
    path = {
        "id": f"p-{tag}",
        "title": "Path",
        "course_ids": [kept.course, other.course],
        "updated_at": at(0),
    }
    await kept.catalog(t.learning_paths, path)
    for lms in (kept, other, erased):
        await lms.course_structure(modules)
        await lms.enroll(0)
        await lms.complete("l1", 1)
        await lms.quiz("QuizAttemptStarted", 2, "t1", total_questions=2)
        await lms.quiz(
            "QuizQuestionAnswered",
            3,
            "t1",
            question_id="x0",
            correct=True,
            text_response=f"why {lms.user}",
        )
        await lms.quiz(
            "QuizQuestionAnswered",
            4,
            "t1",
            question_id="x1",
            correct=True,
            selected_options=["b", lms.user],
            text_response="and",
        )
        await lms.quiz("QuizAttemptSubmitted", 5, "t1", time_spent=60)
        submitted = {
            "submission_type": "text",
            "text_content": f"essay of {lms.user}",
            "file_url": f"https://files.example/{lms.user}.pdf",
            "link_url": f"https://links.example/{lms.user}",
        }
        await lms.assignment("AssignmentSubmitted", 6, "s1", **submitted)
        # The same event again (a producer's retry): its content is on the topic once.
        await lms.assignment("AssignmentSubmitted", 6, "s1", **submitted)
        await lms.assignment(
            "AssignmentGraded", 7, "s1", score=90, feedback=f"great, {lms.user}", graded_by="t"
        )
    await kept.complete("l2", 8)
    async with api.delete(f"/admin/learners/{erased.user}") as response:
        assert response.status == 202

    async def done() -> bool:
        a = await _learner(pg_pool, kept.user)
        b = await _learner(pg_pool, other.user)
        gone = await _learner(pg_pool, erased.user)
        return bool(
            not gone
            and [c["status"] for c in a.get("course_progress", [])] == ["completed"]
            # Other tests' catalogs share the session's topics: only this test's achievement.
            and [x["achievement_id"] for x in a.get("user_achievements", [])].count(f"fin-{tag}")
            == 1
            and len(a.get("learning_path_progress", [])) == 1
            and len(b.get("user_competencies", [])) == 1
            and [s["feedback"] for s in b.get("assignment_submissions", [])]
            == [f"great, {other.user}"]
        )

    try:
        await eventually(done)
    except TimeoutError:
        seen = {u: await _learner(pg_pool, u) for u in (kept.user, other.user, erased.user)}
        pytest.fail(f"the pipeline did not get there: {seen}")
    users = [kept.user, other.user]
    catalog_ids = [competency, achievement["id"], path["id"]]

    async def everything() -> tuple[list[Tables], Tables]:
        return [await _learner(pg_pool, u) for u in users], await _catalog(pg_pool, catalog_ids)

    before, catalog_before = await _settled(everything)
    assert all(len(rows) == 1 for rows in catalog_before.values())
    answers_before = [await _answers(api, lms) for lms in (kept, other)]

    # Empty PostgreSQL and Redis of them, as losing both would.
    async with pg_pool.connection() as conn:
        for table in before[0]:
            await conn.execute(
                sql.SQL("delete from {} where user_id = any(%s)").format(sql.Identifier(table)),
                (users,),
            )
        for table in _CATALOG_TABLES:
            await conn.execute(
                sql.SQL("delete from {} where id = any(%s)").format(sql.Identifier(table)),
                (catalog_ids,),
            )
    await redis_client.delete(*(f"{KEY_PREFIX}{u}" for u in users))
    assert [await _learner(pg_pool, u) for u in users] == [{}, {}]

    run = await run_progress(settings, "resnapshot")
    assert run.returncode == 0, run.stderr
    sent = re.match(
        r"sent (\d+) learners in (\d+) snapshots, (\d+) catalog rows, (\d+) contents", run.stdout
    )
    assert sent is not None, run.stdout
    # Each learner's two answers, a submission's content and its feedback, at least.
    assert int(sent[1]) >= 2 and int(sent[3]) >= 3 and int(sent[4]) >= 8

    async def rebuilt() -> tuple[list[Tables], Tables] | None:
        now = await everything()
        counts = [{t: len(rows) for t, rows in tables.items()} for tables in now[0]]
        expected = [{t: len(rows) for t, rows in tables.items()} for tables in before]
        whole = all(len(rows) == 1 for rows in now[1].values())
        return now if counts == expected and whole else None

    async def restored() -> tuple[list[Tables], Tables] | None:
        # The content restores follow the learners' rows: equal once they are written too.
        now = await rebuilt()
        if now is None:
            return None
        equal = all(
            _without(n, _REBUILT) == _without(w, _REBUILT)
            for w, n in zip(before, now[0], strict=True)
        )
        return now if equal else None

    try:
        after, catalog_after = await eventually(restored)
    except TimeoutError:
        after, catalog_after = await everything()
    # Every row and column back as it was, bulky content included, but versions and sync
    # times.
    for was, now in zip(before, after, strict=True):
        assert _without(now, _REBUILT) == _without(was, _REBUILT)
    assert _without(catalog_after, {"synced_at"}) == _without(catalog_before, {"synced_at"})
    for lms, tables in zip((kept, other), after, strict=True):
        [user] = tables["user_progress"]
        assert {r["version"] for rows in tables.values() for r in rows} == {user["version"]}
        answers = {r["question_id"]: r for r in tables["quiz_question_responses"]}
        assert (answers["x0"]["text_response"], answers["x0"]["selected_options"]) == (
            f"why {lms.user}",
            [],
        )
        assert (answers["x1"]["text_response"], answers["x1"]["selected_options"]) == (
            "and",
            ["b", lms.user],
        )
        [submission] = tables["assignment_submissions"]
        assert submission["text_content"] == f"essay of {lms.user}"
        assert submission["file_url"] == f"https://files.example/{lms.user}.pdf"
        assert submission["link_url"] == f"https://links.example/{lms.user}"
        assert submission["feedback"] == f"great, {lms.user}"
    # Erased stays erased.
    assert await _learner(pg_pool, erased.user) == {}
    # The API answers as before (the cache was emptied too).
    answers_after = [await _answers(api, lms) for lms in (kept, other)]
    for was, now in zip(answers_before, answers_after, strict=True):
        for name in was:
            assert now[name] == was[name], name

    # The content topic: each piece once, though its submission came twice; the erased
    # learner's pieces (the same row ids) each end in a tombstone.
    records = await _content_topic(settings)
    for lms in (kept, other):
        mine = [key for key, record in records if record and record.user_id == lms.user]
        assert len(mine) == len(set(mine)) == 4, mine
    row = stable_id("assignment_submission", erased.user, "s1")
    answer = stable_id("quiz_question_response", erased.user, "t1", "x0")
    erased_keys = {f"{row}/submission", f"{row}/feedback", f"{answer}/answer"}
    last = dict(records)
    assert {key: last.get(key, "missing") for key in erased_keys} == dict.fromkeys(erased_keys)
    assert [r for _, r in records if r and r.user_id == erased.user]  # they were written
