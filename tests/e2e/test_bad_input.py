"""Bad input on the real pipeline: thousands of malformed messages among good ones, and
re-driving dead letters once they are valid."""

from __future__ import annotations

import base64
import json
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from service.redrive import redrive
from tests.support.lms import at, eventually, published_for
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service")]

BAD_MESSAGES = 2000
LEARNERS = 20
KNOWN_ERRORS = {"malformed-json", "unknown-type", "invalid", "wrong-key", "empty", "oversize"}


def _lesson(user: str, course: str, lesson: str, minute: float) -> dict[str, Any]:
    return {
        "user_id": user,
        "course_id": course,
        "module_id": "m1",
        "lesson_id": lesson,
        "completed_at": at(minute),
    }


def bad_message_makers(
    t: Any, course: str
) -> list[Callable[[random.Random, str], tuple[str, str, bytes]]]:
    """Ways a producer gets a message wrong; each returns (topic, key, value)."""

    def dumps(value: Any) -> bytes:
        return json.dumps(value).encode()

    def mutated(rng: random.Random, user: str, **change: Any) -> bytes:
        event = _lesson(user, course, f"l{rng.randint(1, 3)}", rng.randint(1, 50))
        for name, value in change.items():
            if value is None:
                event.pop(name, None)
            else:
                event[name] = value
        return dumps(event)

    return [
        lambda rng, u: (t.lesson_activity, u, rng.randbytes(rng.randint(1, 64))),
        lambda rng, u: (t.lesson_activity, u, mutated(rng, u)[: rng.randint(1, 40)]),
        lambda rng, u: (t.lesson_activity, u, dumps(rng.choice([[1, 2], 42, "text", None]))),
        lambda rng, u: (t.lesson_activity, u, mutated(rng, u, completed_at=None)),
        lambda rng, u: (t.lesson_activity, u, mutated(rng, u, lesson_id=["l1"])),
        lambda rng, u: (t.lesson_activity, u, mutated(rng, u, lesson_id="has space")),
        lambda rng, u: (t.lesson_activity, u, mutated(rng, u, type="LessonTeleported")),
        lambda rng, u: (t.lesson_activity, u, mutated(rng, u, completed_at="2999-01-01T00:00:00Z")),
        lambda rng, u: (t.lesson_activity, u, mutated(rng, u, completed_at="1960-01-01T00:00:00Z")),
        lambda rng, u: (t.lesson_activity, u, mutated(rng, u, completed_at="2026-05-04T08:00:00")),
        lambda rng, u: (
            t.lesson_activity,
            u,
            mutated(
                rng,
                u,
                type="LessonProgressed",
                completed_at=None,
                occurred_at=at(1),
                percent_complete=150,
            ),
        ),
        lambda rng, u: (t.lesson_activity, f"{u}-elsewhere", mutated(rng, u)),
        lambda rng, u: (t.lesson_activity, u, b""),
        lambda rng, u: (t.enrollments, u, dumps({"id": "e", "user_id": u, "course_id": course})),
        lambda rng, u: (t.quiz_activity, u, dumps({"type": "QuizAttemptStarted", "user_id": u})),
        lambda rng, u: (
            t.achievements,
            f"ach-{u}",
            dumps(
                {
                    "id": f"ach-{u}",
                    "name": "x",
                    "criteria": {"kind": "telepathy"},
                    "updated_at": at(0),
                }
            ),
        ),
        lambda rng, u: (
            t.learning_paths,
            f"path-{u}",
            dumps({"id": f"path-{u}", "course_ids": ["a", "a"], "updated_at": at(0)}),
        ),
    ]


async def test_fuzz_bad_messages_are_dead_lettered_and_every_good_one_processed(
    settings: Settings, pg_pool: AsyncConnectionPool, service: dict[str, ServiceProcess]
) -> None:
    rng = random.Random(20261124)
    tag = uuid4().hex[:8]
    course = f"fz-{tag}"
    users = [f"fz-{tag}-{i}" for i in range(LEARNERS)]
    t = settings.topics
    makers = bad_message_makers(t, course)

    good: list[tuple[str, str, bytes]] = []
    for user in users:
        enrollment = {"id": f"e-{user}", "course_id": course, "user_id": user, "enrolled_at": at(0)}
        good.append((t.enrollments, user, json.dumps(enrollment).encode()))
        for i, lesson in enumerate(["l1", "l2", "l3"], 1):
            good.append(
                (t.lesson_activity, user, json.dumps(_lesson(user, course, lesson, i)).encode())
            )
    bad = [rng.choice(makers)(rng, rng.choice(users)) for _ in range(BAD_MESSAGES)]
    oversize = [(t.lesson_activity, users[0], b'{"pad": "' + b"x" * 1_000_100 + b'"}')]
    bad += oversize
    structure = {
        "id": course,
        "updated_at": at(0),
        "modules": [{"id": "m1", "lessons": [{"id": "l1"}, {"id": "l2"}, {"id": "l3"}]}],
    }
    mixed = [*good, *bad]
    rng.shuffle(mixed)
    # Each learner's good events keep their order, so the stream is a plausible one.
    per_user = {user: iter([g for g in good if g[1] == user]) for user in users}
    stream = [next(per_user[m[1]]) if m in good else m for m in mixed]

    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        max_request_size=2_000_000,
        linger_ms=5,
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            t.course_updates, key=course.encode(), value=json.dumps(structure).encode()
        )
        for topic, key, value in stream:
            await producer.send(topic, key=key.encode(), value=value)
        await producer.flush()
    finally:
        await producer.stop()

    async def all_completed() -> bool:
        async with pg_pool.connection() as conn:
            cur = await conn.execute(
                "select count(*) from course_progress"
                " where course_id = %s and status = 'completed'",
                (course,),
            )
            row = await cur.fetchone()
        return bool(row and row[0] == LEARNERS)

    await eventually(all_completed)

    keys = {key for _, key, _ in bad}
    letters = [json.loads(r.value) for r in await published_for(settings, t.dead_letter, keys, 3.0)]
    assert len(letters) == len(bad)
    assert Counter(base64.b64decode(d["value"]) for d in letters) == Counter(v for _, _, v in bad)
    assert {d["error_type"] for d in letters} <= KNOWN_ERRORS
    assert all(d["reason"] and d["offset"] >= 0 for d in letters)
    assert any(d["error_type"] == "oversize" for d in letters)
    assert service["worker"].proc.poll() is None  # never stopped


async def test_redrive_resends_dead_letters_that_are_valid_now(
    settings: Settings, pg_pool: AsyncConnectionPool
) -> None:
    tag = uuid4().hex[:8]
    user, course = f"rd-{tag}", f"rdc-{tag}"
    t = settings.topics
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    structure = {
        "id": course,
        "updated_at": at(0),
        "modules": [{"id": "m1", "lessons": [{"id": "l1"}]}],
    }
    enrollment = {"id": f"e-{user}", "course_id": course, "user_id": user, "enrolled_at": at(0)}
    # As an older version of the service would have dead-lettered them: one is valid today.
    now_valid = json.dumps(_lesson(user, course, "l1", 5)).encode()
    still_bad = b"{still not json"
    letters = [
        {
            "source_topic": t.lesson_activity,
            "partition": 0,
            "offset": 0,
            "key": user,
            "value": base64.b64encode(value).decode(),
            "reason": "unknown event type (in an older version)",
            "error_type": f"legacy-{tag}",
            "failed_at": datetime.now(UTC).isoformat(),
        }
        for value in (now_valid, still_bad)
    ]
    try:
        await producer.send_and_wait(
            t.course_updates, key=course.encode(), value=json.dumps(structure).encode()
        )
        await producer.send_and_wait(
            t.enrollments, key=user.encode(), value=json.dumps(enrollment).encode()
        )
        for letter in letters:
            await producer.send_and_wait(
                t.dead_letter, key=user.encode(), value=json.dumps(letter).encode()
            )
    finally:
        await producer.stop()

    dry = await redrive(settings, error_type=f"legacy-{tag}", dry_run=True)
    assert (dry.resent, sum(dry.still_invalid.values())) == (1, 1)

    async def lesson_completed() -> bool:
        async with pg_pool.connection() as conn:
            cur = await conn.execute(
                "select completed_lessons from course_progress where user_id = %s", (user,)
            )
            row = await cur.fetchone()
        return bool(row and row[0] == 1)

    assert not await lesson_completed()  # a dry run sends nothing
    report = await redrive(settings, error_type=f"legacy-{tag}")
    assert report.resent == 1
    assert list(report.still_invalid.values()) == [1]
    await eventually(lesson_completed)
