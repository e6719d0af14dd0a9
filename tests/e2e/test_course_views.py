"""The course catalog, the course views, the daily history and the analysts' views, end to
end: course structure and learner events into Kafka, through the worker and the sink, out of
PostgreSQL and the API (issue 14).

Three learners in one course: ``done`` completes it, ``failing`` completes a lesson and fails
the quiz, ``idle`` only enrols. What the API says is checked against the same counts taken
straight from the events sent.
"""

from __future__ import annotations

import statistics
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from api.auth import mint_token
from tests.support.lms import T0, Lms, eventually
from tests.support.stack import TEST_JWT_KEY

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service")]

STRUCTURE = [
    {
        "id": "m1",
        "title": "Basics",
        "lessons": [{"id": "l1", "title": "Intro"}, {"id": "l2", "title": "Types"}],
        "quizzes": [{"id": "q1", "title": "Check", "pass_mark": 60}],
    },
    {"id": "m2", "title": "More", "lessons": [{"id": "l3", "title": "Loops", "points": 5}]},
]


async def rows(pool: AsyncConnectionPool, query: str, *params: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cursor = await conn.execute(query, params)
        names = [d.name for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


async def get(api: aiohttp.ClientSession, path: str, **headers: str) -> tuple[int, Any, str]:
    async with api.get(path, headers=headers or None) as response:
        return response.status, await response.json(), response.headers.get("X-Cache", "")


async def take_quiz(lms: Lms, attempt: str, minute: float, answers: list[bool]) -> None:
    await lms.quiz("QuizAttemptStarted", minute, attempt, total_questions=len(answers))
    for i, correct in enumerate(answers):
        await lms.quiz(
            "QuizQuestionAnswered", minute + 1, attempt, question_id=f"x{i}", correct=correct
        )
    await lms.quiz("QuizAttemptSubmitted", minute + 2, attempt)


def learner(producer: AIOKafkaProducer, settings: Settings, course: str) -> Lms:
    lms = Lms(producer, settings)
    lms.course = course
    return lms


@pytest.fixture
async def course(
    lms: Lms, event_producer: AIOKafkaProducer, settings: Settings, api: aiohttp.ClientSession
) -> dict[str, Lms]:
    """The course with its three learners, once the API counts all their events."""
    await lms.course_structure(STRUCTURE, minute=0, title="Python 101")
    done, failing, idle = (learner(event_producer, settings, lms.course) for _ in range(3))
    for each in (done, failing, idle):
        await each.enroll(minute=0)
    await done.complete("l1", 1)
    await done.complete("l2", 2)
    await take_quiz(done, "a-done", 3, [True, True])  # 100: passed
    await done.complete("l3", 10, module="m2")
    await failing.complete("l1", 4)
    await take_quiz(failing, "a-failing", 5, [True, False])  # 50: below the pass mark

    async def settled() -> dict[str, Any] | None:
        status, body, _ = await get(api, f"/courses/{lms.course}/stats")
        return (
            body
            if status == 200
            and body["completed"] == 1
            and body["quizzes"]
            and (body["quizzes"][0]["attempts"] == 2 and body["in_progress"] == 1)
            else None
        )

    await eventually(settled)
    return {"done": done, "failing": failing, "idle": idle}


async def test_the_catalog_has_the_course_from_its_structure(
    lms: Lms, course: dict[str, Lms], pg_pool: AsyncConnectionPool
) -> None:
    (row,) = await rows(pg_pool, "select * from courses where id = %s", lms.course)
    assert (row["title"], row["total_modules"], row["total_items"]) == ("Python 101", 2, 4)
    assert row["total_points"] == 10 + 10 + 20 + 5
    modules = await rows(
        pg_pool,
        "select module_id, title, position, total_items from course_modules"
        " where course_id = %s order by position",
        lms.course,
    )
    assert [(m["module_id"], m["title"], m["position"], m["total_items"]) for m in modules] == [
        ("m1", "Basics", 1, 3),
        ("m2", "More", 2, 1),
    ]
    items = await rows(
        pg_pool,
        "select kind, item_id, module_id, position, course_position, points, completion,"
        " pass_mark from course_items where course_id = %s order by course_position",
        lms.course,
    )
    assert [tuple(i.values()) for i in items] == [
        ("lesson", "l1", "m1", 1, 1, 10, "completion-event", None),
        ("lesson", "l2", "m1", 2, 2, 10, "completion-event", None),
        ("quiz", "q1", "m1", 3, 3, 20, "passed", 60.0),
        ("lesson", "l3", "m2", 1, 4, 5, "completion-event", None),
    ]


async def test_a_newer_course_update_replaces_title_modules_and_items(
    lms: Lms, course: dict[str, Lms], pg_pool: AsyncConnectionPool
) -> None:
    await lms.course_structure([STRUCTURE[1]], minute=30, title="Python 102")

    async def replaced() -> list[dict[str, Any]] | None:
        found = await rows(
            pg_pool, "select module_id from course_modules where course_id = %s", lms.course
        )
        return found if [m["module_id"] for m in found] == ["m2"] else None

    await eventually(replaced)
    items = await rows(pg_pool, "select item_id from course_items where course_id = %s", lms.course)
    assert [i["item_id"] for i in items] == ["l3"]
    (row,) = await rows(pg_pool, "select title, total_items from courses where id = %s", lms.course)
    assert (row["title"], row["total_items"]) == ("Python 102", 1)


async def test_stats_equal_the_counts_of_the_events(
    lms: Lms, course: dict[str, Lms], api: aiohttp.ClientSession
) -> None:
    status, stats, _ = await get(api, f"/courses/{lms.course}/stats?idle_days=0")
    assert status == 200
    # From the events above: done finished at minute 10, its first activity at minute 1.
    took = (10 - 1) * 60.0
    expected_ttc = {"median": statistics.median([took]), "p90": took}
    assert stats["time_to_complete_seconds"] == pytest.approx(expected_ttc)
    assert {k: stats[k] for k in ("title", "enrolled", "not_started", "in_progress")} == {
        "title": "Python 101",
        "enrolled": 3,
        "not_started": 1,
        "in_progress": 1,
    }
    assert (stats["completed"], stats["completion_rate"]) == (1, pytest.approx(1 / 3))
    funnel = [
        (
            m["module_id"],
            m["position"],
            m["completed"],
            [(i["item_id"], i["kind"], i["completed"]) for i in m["items"]],
        )
        for m in stats["modules"]
    ]
    assert funnel == [
        ("m1", 1, 1, [("l1", "lesson", 2), ("l2", "lesson", 1), ("q1", "quiz", 1)]),
        ("m2", 2, 1, [("l3", "lesson", 1)]),
    ]
    assert stats["modules"][0]["items"][0]["completion_rate"] == pytest.approx(2 / 3)
    (quiz,) = stats["quizzes"]
    assert quiz == {
        "quiz_id": "q1",
        "title": "Check",
        "learners": 2,
        "attempts": 2,
        "passed": 1,
        "pass_rate": 0.5,
        "mean_score": pytest.approx((100 + 50) / 2),
    }
    # The events are from 2026: everyone who has not completed is idle for 0 days, no one
    # for a hundred years.
    assert stats["idle"] == {"days": 0, "learners": 2}
    _, later, _ = await get(api, f"/courses/{lms.course}/stats?idle_days=36500")
    assert later["idle"] == {"days": 36500, "learners": 0}


async def test_roster_filters_sorts_and_pages_with_a_total(
    lms: Lms, course: dict[str, Lms], api: aiohttp.ClientSession
) -> None:
    done, failing, idle = course["done"].user, course["failing"].user, course["idle"].user
    base = f"/courses/{lms.course}/learners"
    _, everyone, _ = await get(api, base)
    assert [row["user_id"] for row in everyone["learners"]] == sorted([done, failing, idle])
    assert (everyone["total"], everyone["limit"], everyone["offset"]) == (3, 100, 0)
    first = next(row for row in everyone["learners"] if row["user_id"] == done)
    assert (first["status"], first["completed_items"], first["total_items"]) == ("completed", 4, 4)

    _, by_percent, _ = await get(api, f"{base}?sort=-percent_complete")
    assert [row["user_id"] for row in by_percent["learners"]] == [done, failing, idle]
    _, by_activity, _ = await get(api, f"{base}?sort=last_activity_at")
    assert [row["user_id"] for row in by_activity["learners"]] == [failing, done, idle]
    _, in_progress, _ = await get(api, f"{base}?status=in-progress")
    assert ([row["user_id"] for row in in_progress["learners"]], in_progress["total"]) == (
        [failing],
        1,
    )
    _, idle_ones, _ = await get(api, f"{base}?idle_days=0")
    assert sorted(row["user_id"] for row in idle_ones["learners"]) == sorted([failing, idle])
    _, page, _ = await get(api, f"{base}?limit=1&offset=1")
    assert ([row["user_id"] for row in page["learners"]], page["total"]) == (
        [sorted([done, failing, idle])[1]],
        3,
    )
    _, beyond, _ = await get(api, f"{base}?offset=10")
    assert (beyond["learners"], beyond["total"]) == ([], 3)


async def test_bad_parameters_unknown_courses_and_tokens_without_the_scope(
    lms: Lms, course: dict[str, Lms], api: aiohttp.ClientSession
) -> None:
    base = f"/courses/{lms.course}/learners"
    for query in ("sort=title", "status=done", "limit=0", "limit=501", "offset=-1", "idle_days=x"):
        status, body, _ = await get(api, f"{base}?{query}")
        assert status == 400, query
        assert query.split("=")[0] in body["detail"]
    assert (await get(api, "/courses/no-such-course/stats"))[0] == 404
    assert (await get(api, "/courses/no-such-course/learners"))[0] == 404
    learner_token = mint_token(TEST_JWT_KEY, course["done"].user)
    staff_token = mint_token(TEST_JWT_KEY, "s", role="staff", scopes=("progress:read",))
    reader_token = mint_token(TEST_JWT_KEY, "s", role="staff", scopes=("courses:read",))
    for token, expected in ((learner_token, 403), (staff_token, 403), (reader_token, 200)):
        status, _, _ = await get(api, f"{base}", Authorization=f"Bearer {token}")
        assert status == expected


async def test_answers_are_cached_until_a_new_completion_changes_them(
    lms: Lms, course: dict[str, Lms], api: aiohttp.ClientSession
) -> None:
    path = f"/courses/{lms.course}/stats?idle_days=7"
    _, first, _ = await get(api, path)
    _, again, cache = await get(api, path)
    assert (again, cache) == (first, "hit")
    assert first["modules"][0]["items"][1]["completed"] == 1  # l2: done only

    await course["failing"].complete("l2", 20)

    async def changed() -> tuple[Any, str] | None:
        _, body, cache = await get(api, path)
        return (body, cache) if body["modules"][0]["items"][1]["completed"] == 2 else None

    body, _ = await eventually(changed)
    assert body["modules"][0]["items"][1]["completion_rate"] == pytest.approx(2 / 3)


async def test_history_keeps_each_day_and_the_views_answer(
    lms: Lms, course: dict[str, Lms], pg_pool: AsyncConnectionPool
) -> None:
    done = course["done"].user
    history = await rows(
        pg_pool,
        "select day, status, percent_complete, completed_items, total_items"
        " from course_progress_daily where user_id = %s and course_id = %s",
        done,
        lms.course,
    )
    assert [tuple(h.values()) for h in history] == [(T0.date(), "completed", 100.0, 4, 4)]

    (rate,) = await rows(
        pg_pool, "select * from course_completion_rates where course_id = %s", lms.course
    )
    assert (rate["enrolled"], rate["completed"], float(rate["completion_rate"])) == (
        3,
        1,
        0.3333,
    )
    funnel = await rows(
        pg_pool,
        "select module_id, completed, drop_off from module_funnel where course_id = %s"
        " order by position",
        lms.course,
    )
    assert [tuple(f.values()) for f in funnel] == [("m1", 1, 2), ("m2", 1, 0)]
    (quiz,) = await rows(pg_pool, "select * from quiz_pass_rates where course_id = %s", lms.course)
    assert (quiz["learners"], quiz["attempts"], quiz["passed"]) == (2, 2, 1)
    (ttc,) = await rows(
        pg_pool, "select * from course_time_to_complete where course_id = %s", lms.course
    )
    assert ttc["median_seconds"] == pytest.approx(540.0)
    (active,) = await rows(
        pg_pool,
        "select day, learners from daily_active_learners_by_course where course_id = %s",
        lms.course,
    )
    assert (active["day"], active["learners"]) == (T0.date(), 2)
