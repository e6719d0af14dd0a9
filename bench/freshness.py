"""Freshness: with worker, sink and API running and a steady load of ``rate`` events/s, the
time from producing an event to seeing its effect through the API.

The load is more of the workload's activity, for new learners of the same courses. Among it,
a few probe learners, enrolled first, complete the lessons of a course one after another: a
probe is timed from just before its LessonCompleted is handed to the producer to the first
``GET /users/{user}/courses/{course}`` that reports the lesson counted (``completed_lessons``
reaching it), polled every ``poll`` seconds, so the figures are late by up to one poll. The
API answers from Redis, which the sink advances after each PostgreSQL commit, so this is
the whole path: Kafka, worker, snapshot topic, sink, PostgreSQL, Redis, API.

Beside the latencies, the worker's and the sink's consumer lag, sampled every second from
warm-up to the end (``bench/lag.py``): a lag that grows through the section means the pipeline
does not keep up with ``rate``, one that stays small means the latency is spent waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import aiohttp
from aiokafka import AIOKafkaProducer

from adapters.topics import learner_input_topics
from bench.env import BenchEnv
from bench.lag import LagWatch, lag_figures
from bench.loadgen import ACTIVITY_KINDS, Course, LoadGenerator, topic_for
from bench.pipeline import worker_batching
from bench.services import Service


async def measure(
    env: BenchEnv,
    courses: list[Course],
    *,
    seed: int,
    rate: float = 1000.0,
    seconds: float = 30.0,
    warmup: float = 5.0,
    probes: int = 5,
    poll: float = 0.02,
) -> dict[str, float | str]:
    settings = env.settings
    t = settings.topics
    lag = LagWatch(
        settings,
        {
            # Faust's group id is its app id.
            "worker": (
                f"{settings.topic_prefix}{settings.worker_app_id}",
                [*learner_input_topics(t), t.catalog_broadcast],
            ),
            "sink": (settings.sink_group_id, [t.snapshots]),
        },
    )
    services = [
        Service.progress(env, "worker", name="worker-fresh"),
        Service.progress(env, "sink", name="sink-fresh"),
        Service.progress(env, "api", name="api-fresh"),
    ]
    base = f"http://{settings.api_host}:{settings.api_port}"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    try:
        await services[0].wait_for_log("Ready", within=120)
        await producer.start()
        async with aiohttp.ClientSession() as http:
            await _until_ready(http, f"{base}/readyz", within=60)
            users = [f"probe{env.run_id}x{i}" for i in range(probes)]
            stop = asyncio.Event()
            await lag.start()
            load = asyncio.create_task(_steady_load(producer, env, courses, seed, rate, stop))
            await asyncio.sleep(warmup)
            latencies: list[float] = []
            missed: list[str] = []
            deadline = time.monotonic() + seconds
            await asyncio.gather(
                *(
                    _probe(
                        producer, http, env, base, user, courses, deadline, poll, latencies, missed
                    )
                    for user in users
                )
            )
            stop.set()
            sent = await load
    finally:
        samples = await lag.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        for service in reversed(services):
            service.stop()
    # A probe never seen within the wait counts as infinitely late.
    ordered = sorted(latencies) + [float("inf")] * len(missed)
    if not ordered:
        raise RuntimeError("no probe was sent")
    return {
        "probes": float(len(ordered)),
        "probes_never_seen": float(len(missed)),
        "load_events_per_s": sent["events"] / sent["seconds"],
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max_ms": 1000 * ordered[-1],
        **lag_figures(samples),
        # Batches during the section: small ones under a growing lag mean the batch was cut
        # before what was waiting had been read (streams/batching.py).
        **worker_batching(services[0].log_text()),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _enrolled(user: str, course: Course) -> dict[str, object]:
    return {
        "type": "UserEnrolled",
        "id": f"enr-{user}",
        "user_id": user,
        "course_id": course.id,
        "enrolled_at": _now(),
    }


async def _send(
    producer: AIOKafkaProducer, topic: str, user: str, event: Mapping[str, object]
) -> None:
    await producer.send(topic, json.dumps(event).encode(), key=user.encode())


async def _until_ready(http: aiohttp.ClientSession, url: str, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url) as response:
                if response.status == 200:
                    return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready")
        await asyncio.sleep(0.2)


async def _visible(
    http: aiohttp.ClientSession,
    base: str,
    user: str,
    course_id: str,
    lessons: int,
    *,
    within: float,
    poll: float,
) -> float:
    """The time.perf_counter() at which the API first counts ``lessons`` completed."""
    url = f"{base}/users/{user}/courses/{course_id}"
    deadline = time.monotonic() + within
    while True:
        async with http.get(url) as response:
            if response.status == 200:
                body = await response.json()
                if body["completed_lessons"] >= lessons:
                    return time.perf_counter()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{user} never showed {lessons} lessons")
        await asyncio.sleep(poll)


async def _probe(
    producer: AIOKafkaProducer,
    http: aiohttp.ClientSession,
    env: BenchEnv,
    base: str,
    user: str,
    courses: list[Course],
    deadline: float,
    poll: float,
    latencies: list[float],
    missed: list[str],
) -> None:
    before = len(latencies)
    try:
        await _probe_courses(producer, http, env, base, user, courses, deadline, poll, latencies)
    except TimeoutError as error:
        # The pipeline fell behind the load: counted, and the probe learner stops.
        missed.append(str(error))
        return
    if len(latencies) == before:
        # The deadline passed before the probe's enrolment showed: as far behind as a miss.
        missed.append(f"{user}: no lesson timed before the deadline")


async def _probe_courses(
    producer: AIOKafkaProducer,
    http: aiohttp.ClientSession,
    env: BenchEnv,
    base: str,
    user: str,
    courses: list[Course],
    deadline: float,
    poll: float,
    latencies: list[float],
) -> None:
    topics = env.settings.topics
    # A probe learner works through the courses in turn: enrolled (not timed), then each
    # lesson completed (timed), until the deadline.
    for course in courses:
        await _send(producer, topics.enrollments, user, _enrolled(user, course))
        await _visible(http, base, user, course.id, 0, within=20, poll=poll)
        lessons = [item for item in course.items if item.kind == "lesson"]
        for done, lesson in enumerate(lessons, start=1):
            if time.monotonic() > deadline:
                return
            event = {
                "type": "LessonCompleted",
                "user_id": user,
                "course_id": course.id,
                "module_id": lesson.module_id,
                "lesson_id": lesson.id,
                "completed_at": _now(),
            }
            sent = time.perf_counter()
            await _send(producer, topics.lesson_activity, user, event)
            seen = await _visible(http, base, user, course.id, done, within=20, poll=poll)
            latencies.append(seen - sent)
            await asyncio.sleep(0.05)


async def _steady_load(
    producer: AIOKafkaProducer,
    env: BenchEnv,
    courses: list[Course],
    seed: int,
    rate: float,
    stop: asyncio.Event,
) -> dict[str, float]:
    """``rate`` events/s in 10 ms ticks, until ``stop``."""
    generator = LoadGenerator(2000, courses, seed, user_prefix=f"live{env.run_id}x")
    names = {kind: topic_for(env.settings.topics, kind) for kind in ACTIVITY_KINDS}
    started = time.perf_counter()
    sent = 0
    while not stop.is_set():
        due = int((time.perf_counter() - started) * rate) - sent
        for _ in range(due):
            record = generator.next_record()
            await producer.send(names[record.kind], record.value, key=record.key)
        sent += max(due, 0)
        await asyncio.sleep(0.01)
    return {"events": float(sent), "seconds": time.perf_counter() - started}
