"""End to end on the real stack: events into Kafka, worker, sink, PostgreSQL, Redis, API.

Each test uses its own learner and course ids, so all share one worker, sink and API.
"""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from tests.support.lms import (
    Lms,
    api_course,
    course_row,
    course_when,
    eventually,
    published,
    published_json,
    when,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service")]


async def test_course_completed_end_to_end(
    lms: Lms, pg_pool: AsyncConnectionPool, api: aiohttp.ClientSession, settings: Settings
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
        lambda: when(api_course(api, lms), lambda v: v["status"] == "completed")
    )
    assert [m["status"] for m in view["modules"]] == ["completed", "completed"]
    async with api.get(f"/users/{lms.user}/progress") as response:
        overall = await response.json()
    assert (overall["completed_courses"], overall["completed_lessons"]) == (1, 3)
    async with api.get(f"/users/{lms.user}/courses/{lms.course}/lessons/l3") as response:
        assert (await response.json())["module_id"] == "m2"

    completions = await published(settings, settings.topics.course_completed, lms.user)
    assert len(completions) == 1
    assert json.loads(completions[0].value)["course_id"] == lms.course
    updates = await published_json(settings, settings.topics.progress_updated, lms.user)
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
    updates = await published_json(settings, settings.topics.progress_updated, lms.user)
    ids = [u["event_id"] for u in updates]
    assert len(ids) == len(set(ids))  # duplicates changed nothing, so published nothing
    # Enrollments, lessons and the structure travel on different topics, so which of 0% and
    # 50% were ever seen depends on arrival order; the progress only goes up, to 100%.
    percents = _changes([u["percent_complete"] for u in updates])
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert set(percents) <= {0.0, 50.0, 100.0}


async def test_lesson_event_before_enrollment_is_counted(
    lms: Lms, pg_pool: AsyncConnectionPool, api: aiohttp.ClientSession
) -> None:
    await lms.complete("l1", 5)  # neither enrollment nor structure known yet
    await lms.structure({"m1": ["l1", "l2"]})
    await asyncio.sleep(0.5)
    assert await course_row(pg_pool, lms.user, lms.course) is None  # not enrolled: not counted
    await lms.enroll(10)
    row = await course_when(pg_pool, lms, lambda r: r["completed_lessons"])
    assert (row["percent_complete"], row["status"]) == (50.0, "in-progress")
    view = await eventually(lambda: api_course(api, lms))
    assert view["percent_complete"] == 50.0


async def test_course_update_recomputes_totals_after_completion(
    lms: Lms, pg_pool: AsyncConnectionPool, api: aiohttp.ClientSession, settings: Settings
) -> None:
    await lms.structure({"m1": ["l1", "l2"]}, minute=0)
    await lms.enroll(0)
    await lms.complete("l1", 1)
    await lms.complete("l2", 2)
    await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    await eventually(lambda: when(api_course(api, lms), lambda v: v["status"] == "completed"))

    await lms.structure({"m1": ["l1", "l2"], "m2": ["l3"]}, minute=30)  # the course grows
    row = await course_when(pg_pool, lms, lambda r: r["total_lessons"] == 3)
    assert (row["status"], row["percent_complete"], row["total_modules"]) == (
        "in-progress",
        66.67,
        2,
    )
    # The API answers the new figures, not a cached 100%.
    view = await eventually(lambda: when(api_course(api, lms), lambda v: v["total_lessons"] == 3))
    assert view["percent_complete"] == 66.67

    await lms.structure({"m1": ["l1", "l2"], "m2": []}, minute=20)  # late and older: ignored
    await lms.complete("l3", 40, "m2")
    row = await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    assert row["total_lessons"] == 3
    completions = await published(settings, settings.topics.course_completed, lms.user)
    assert len(completions) == 1  # completing again after the course grew is not news


async def test_a_module_removed_from_the_course_leaves_the_learners_rows(
    lms: Lms, pg_pool: AsyncConnectionPool, api: aiohttp.ClientSession
) -> None:
    await lms.structure({"m1": ["l1"], "m2": ["l2"]}, minute=0)
    await lms.enroll(0)
    await lms.complete("l1", 1)
    await course_when(pg_pool, lms, lambda r: r["total_modules"] == 2 and r["completed_lessons"])

    await lms.structure({"m1": ["l1"]}, minute=30)
    row = await course_when(pg_pool, lms, lambda r: r["total_modules"] == 1)
    assert (row["status"], row["percent_complete"]) == ("completed", 100.0)
    async with pg_pool.connection() as conn:
        cur = await conn.execute(
            "select module_id from module_progress where user_id = %s and course_id = %s",
            (lms.user, lms.course),
        )
        assert await cur.fetchall() == [("m1",)]
    view = await eventually(lambda: when(api_course(api, lms), lambda v: v["total_modules"] == 1))
    assert [m["module_id"] for m in view["modules"]] == ["m1"]


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

    letters = await published_json(settings, settings.topics.dead_letter, lms.user)
    assert [(base64.b64decode(d["value"]), d["error_type"]) for d in letters] == bad
    for letter in letters:
        assert letter["source_topic"] == settings.topics.lesson_activity
        assert letter["offset"] >= 0 and letter["partition"] >= 0 and letter["reason"]
    wrong_key = await published(settings, settings.topics.dead_letter, "someone-else")
    assert json.loads(wrong_key[0].value)["error_type"] == "wrong-key"


def _changes(values: list[float]) -> list[float]:
    """The values with repeats in a row folded: a structure that lands after an enrollment
    publishes a second 0% (totals changed, percent did not)."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
