"""A built-in demo stream: one learner takes one course from 0% to 100%, watched via the API.

Needs the worker, sink and API running (``scripts/demo.sh`` starts them). Each run uses a
new learner id, so it can be run again and again against the same stack.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service.config import Settings

COURSE_ID = "demo-python-101"
STRUCTURE = {
    "id": COURSE_ID,
    "title": "Python 101",
    "modules": [
        {"id": "basics", "title": "Basics", "lessons": [{"id": "variables"}, {"id": "loops"}]},
        {"id": "functions", "title": "Functions", "lessons": [{"id": "def"}, {"id": "lambdas"}]},
    ],
}


def _lesson_events(user_id: str, start: datetime) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    minute = 1
    for module in STRUCTURE["modules"]:
        for lesson in module["lessons"]:  # type: ignore[index]
            base = {
                "user_id": user_id,
                "course_id": COURSE_ID,
                "module_id": module["id"],  # type: ignore[index]
                "lesson_id": lesson["id"],
            }
            t = start + timedelta(minutes=minute)
            events.append(("started", {**base, "type": "LessonStarted", "started_at": t}))
            events.append(
                (
                    "watched half",
                    {
                        **base,
                        "type": "LessonProgressed",
                        "occurred_at": t + timedelta(minutes=3),
                        "position": 180,
                        "time_spent": 180,
                        "percent_complete": 50,
                    },
                )
            )
            events.append(
                (
                    "completed",
                    {**base, "type": "LessonCompleted", "completed_at": t + timedelta(minutes=6)},
                )
            )
            minute += 10
    return events


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, default=lambda v: v.isoformat()).encode()


async def _course_view(http: aiohttp.ClientSession, base: str, user_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/users/{user_id}/courses/{COURSE_ID}") as response:
        return await response.json() if response.status == 200 else {}


async def _wait_for(
    http: aiohttp.ClientSession, base: str, user_id: str, check: Any
) -> dict[str, Any]:
    """Poll the API until ``check`` accepts the course view (15 s at most)."""
    async with asyncio.timeout(15.0):
        while True:
            view = await _course_view(http, base, user_id)
            if view and check(view):
                return view
            await asyncio.sleep(0.1)


async def run_demo(settings: Settings) -> int:
    t = settings.topics
    user_id = f"demo-learner-{int(time.time())}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    api = f"http://{settings.api_host}:{settings.api_port}"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    completions = AIOKafkaConsumer(
        t.course_completed,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    await completions.start()
    try:
        async with aiohttp.ClientSession() as http:
            print(f"demo: learner {user_id}, course {COURSE_ID} (4 lessons in 2 modules)")
            await producer.send_and_wait(
                t.course_updates,
                key=COURSE_ID.encode(),
                value=_encode({**STRUCTURE, "updated_at": start}),
            )
            await producer.send_and_wait(
                t.enrollments,
                key=user_id.encode(),
                value=_encode(
                    {
                        "id": f"enr-{user_id}",
                        "course_id": COURSE_ID,
                        "user_id": user_id,
                        "enrolled_at": start,
                    }
                ),
            )
            view = await _wait_for(http, api, user_id, lambda v: v.get("total_lessons") == 4)
            print(f"  enrolled            -> {view['percent_complete']:6.2f}%  {view['status']}")

            completed = 0
            for what, event in _lesson_events(user_id, start):
                await producer.send_and_wait(
                    t.lesson_activity, key=user_id.encode(), value=_encode(event)
                )
                if what != "completed":
                    continue
                completed += 1
                view = await _wait_for(
                    http, api, user_id, lambda v, n=completed: v["completed_lessons"] >= n
                )
                print(
                    f"  {event['lesson_id']:<10} completed -> "
                    f"{view['percent_complete']:6.2f}%  {view['status']}"
                )

            # The same completion again, and a message that is not an event at all.
            await producer.send_and_wait(
                t.lesson_activity, key=user_id.encode(), value=_encode(event)
            )
            await producer.send_and_wait(t.lesson_activity, key=user_id.encode(), value=b"{oops")
            await asyncio.sleep(1.0)

            count = await _count_completions(completions, user_id)
            view = await _course_view(http, api, user_id)
            print(
                f"  final: {view['percent_complete']:.2f}% {view['status']}, "
                f"CourseCompleted events for this learner: {count}"
            )
            print(
                "\nwhere to look:\n"
                f"  {api}/users/{user_id}/progress\n"
                f"  {api}/users/{user_id}/courses/{COURSE_ID}\n"
                f"  {api}/readyz\n"
                f"  psql {settings.database_url} -c 'table course_progress'\n"
                f"  topics: {t.course_completed}, {t.progress_updated}, {t.dead_letter}"
            )
            ok = view.get("status") == "completed" and count == 1
            print("demo: OK" if ok else "demo: FAILED")
            return 0 if ok else 1
    finally:
        await producer.stop()
        await completions.stop()


async def _count_completions(consumer: AIOKafkaConsumer, user_id: str) -> int:
    count = 0
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=300)
        for records in batches.values():
            count += sum(1 for r in records if r.key == user_id.encode())
    return count
