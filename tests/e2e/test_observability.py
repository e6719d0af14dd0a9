"""Metrics, probes and JSON logs of the running worker, sink and API (docs/operations.md).

Counters are compared across a stretch of the run in which only this test sends anything:
each stretch starts and ends when the worker and the sink have committed everything they
read (their consumer lag is zero), so a counter's change is exactly what the stretch did.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from adapters.topics import learner_input_topics
from tests.support.lms import Lms, course_when, eventually, published
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service")]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Samples:
    """Prometheus text: every sample by name and labels."""
    samples: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a Prometheus sample: {line!r}"
        name, labels, value = match.groups()
        samples[name, frozenset(_LABEL.findall(labels or ""))] = float(value)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for a series not exported yet (a counter that never moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def base(settings: Settings, process: str) -> str:
    if process == "worker":
        return f"http://{settings.worker_http_host}:{settings.worker_http_port}"
    if process == "sink":
        return f"http://{settings.sink_http_host}:{settings.sink_http_port}"
    return f"http://{settings.api_host}:{settings.api_port}"


async def scrape(settings: Settings, process: str) -> Samples:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base(settings, process)}/metrics") as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/plain"
        return parse(await response.text())


Ready = Callable[[Samples, Samples], bool]


async def quiet(
    settings: Settings, ready: Ready = lambda worker, sink: True
) -> tuple[Samples, Samples]:
    """Worker and sink metrics once both have committed all they read, and ``ready`` says
    what the caller waits for was counted."""

    async def settled() -> tuple[Samples, Samples] | None:
        worker, sink = await scrape(settings, "worker"), await scrape(settings, "sink")
        for samples, lag in (
            (worker, "progress_worker_consumer_lag"),
            (sink, "progress_sink_consumer_lag"),
        ):
            if any(v for (name, _), v in samples.items() if name == lag):
                return None
        return (worker, sink) if ready(worker, sink) else None

    return await eventually(settled)


async def end_offsets(settings: Settings, topic: str) -> int:
    """The sum of the topic's end offsets: how many records were ever written to it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def test_worker_and_sink_answer_probes(settings: Settings) -> None:
    async with aiohttp.ClientSession() as http:
        for process, checks in (
            ("worker", {"group_joined", "tables_recovered"}),
            ("sink", {"group_joined"}),
        ):
            async with http.get(f"{base(settings, process)}/healthz") as response:
                assert response.status == 200

            async def ready(process: str = process) -> dict[str, Any] | None:
                async with http.get(f"{base(settings, process)}/readyz") as response:
                    return await response.json() if response.status == 200 else None

            body = await eventually(ready)
            assert body["status"] == "ready"
            assert set(body["checks"]) == checks
            assert set(body["checks"].values()) == {"ok"}
            age = body["last_commit_age_seconds"]
            assert age is None or age >= 0


async def test_worker_and_sink_counters_move_by_what_was_sent(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    topics = settings.topics
    consumed = "progress_worker_events_consumed_total"
    await lms.structure({"m1": ["l1", "l2", "l3"]})

    async def course_listed() -> bool:
        async with pg_pool.connection() as conn:
            cur = await conn.execute("select 1 from courses where id = %s", (lms.course,))
            return await cur.fetchone() is not None

    # The structure's catalog snapshot is consumed before the counters are read (its row is
    # written): else it can reach the topic, or the sink, between the two readings below.
    await eventually(course_listed)
    worker_before, sink_before = await quiet(settings)
    snapshots_before = await end_offsets(settings, topics.snapshots)
    started = time.time()

    await lms.enroll(0)
    for minute, lesson in enumerate(("l1", "l2", "l3"), 1):
        await lms.complete(lesson, minute)
    await lms.send(topics.lesson_activity, lms.user, b"{not json")
    await course_when(pg_pool, lms, lambda r: r["status"] == "completed")

    def counted(worker: Samples, sink: Samples) -> bool:
        # The events are counted once handled, and committed afterwards.
        return (
            delta(worker_before, worker, consumed, topic=topics.lesson_activity) >= 4
            and delta(worker_before, worker, consumed, topic=topics.enrollments) >= 1
            and value(worker, "progress_worker_last_commit_timestamp_seconds") >= started
        )

    worker_after, _ = await quiet(settings, counted)

    # Worker: 4 lesson events (one bad) and an enrollment consumed, one dead letter.
    assert delta(worker_before, worker_after, consumed, topic=topics.lesson_activity) == 4
    assert delta(worker_before, worker_after, consumed, topic=topics.enrollments) == 1
    assert delta(worker_before, worker_after, "progress_worker_dead_letters_total",
                 reason="malformed-json") == 1  # fmt: skip
    updates = await published(settings, topics.progress_updated, lms.user)
    assert delta(worker_before, worker_after, "progress_worker_published_events_total",
                 type="ProgressUpdated") == len(updates) > 0  # fmt: skip
    assert delta(worker_before, worker_after, "progress_worker_published_events_total",
                 type="CourseCompleted") == 1  # fmt: skip
    # Batches hold the learner stream's events: these, and the structure's copies if it
    # arrived meanwhile (the catalog agent consumes the structure itself, one at a time).
    in_batches = sum(
        delta(worker_before, worker_after, consumed, topic=topic)
        for topic in (*learner_input_topics(topics), topics.catalog_broadcast)
    )
    assert delta(worker_before, worker_after, "progress_worker_batch_events_sum") == in_batches
    assert (
        1 <= delta(worker_before, worker_after, "progress_worker_batch_events_count") <= in_batches
    )
    assert 1 <= delta(worker_before, worker_after, "progress_worker_state_writes_total") <= 4

    # Sink: every snapshot the worker sent meanwhile was read and written, with its rows.
    sent = await end_offsets(settings, topics.snapshots) - snapshots_before
    assert sent > 0
    records = "progress_sink_records_consumed_total"
    _, sink_after = await quiet(
        settings,
        lambda worker, sink: delta(sink_before, sink, records, topic=topics.snapshots) >= sent,
    )
    assert delta(sink_before, sink_after, records, topic=topics.snapshots) == sent
    written = sum(
        delta(sink_before, sink_after, "progress_sink_messages_written_total", kind=kind)
        for kind in ("learner", "catalog", "erasure")
    )
    assert written == sent
    assert delta(sink_before, sink_after, "progress_sink_rows_written_total") >= sent
    assert delta(sink_before, sink_after, "progress_sink_batch_records_sum") == sent
    assert delta(sink_before, sink_after, "progress_sink_dead_letters_total",
                 reason="undecodable") == 0  # fmt: skip
    assert value(sink_after, "progress_sink_last_commit_timestamp_seconds") >= started


async def test_api_counts_requests_by_route_and_status_and_cache_lookups(
    lms: Lms, pg_pool: AsyncConnectionPool, api: aiohttp.ClientSession, settings: Settings
) -> None:
    await lms.structure({"m1": ["l1"]})
    await lms.enroll(0)
    await course_when(pg_pool, lms, lambda r: r["total_lessons"] == 1)
    # The session's API may still be reconnecting to PostgreSQL after a fault test restarted
    # it (its pool retries with a doubling delay): count only once it is ready.
    async with asyncio.timeout(120):
        while True:
            async with api.get("/readyz") as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.5)
    before = await scrape(settings, "api")

    caches = []
    for _ in range(3):
        async with api.get(f"/users/{lms.user}/progress") as response:
            assert response.status == 200
            caches.append(response.headers["X-Cache"])
    async with api.get("/no/such/route") as response:
        assert response.status == 404
    base_url = base(settings, "api")
    async with (
        aiohttp.ClientSession(base_url) as anonymous,
        anonymous.get(f"/users/{lms.user}/progress") as response,
    ):
        assert response.status == 401
    after = await scrape(settings, "api")

    name = "progress_api_request_duration_seconds_count"
    route = "/users/{user_id}/progress"
    assert delta(before, after, name, method="GET", route=route, status="200") == 3
    assert delta(before, after, name, method="GET", route=route, status="401") == 1
    assert delta(before, after, name, method="GET", route="unmatched", status="404") == 1
    for result in ("hit", "miss"):
        assert delta(before, after, "progress_api_cache_lookups_total", result=result) == (
            caches.count(result)
        )


async def test_api_echoes_or_makes_a_request_id(api: aiohttp.ClientSession) -> None:
    mine = f"test-{uuid.uuid4().hex}"
    async with api.get("/healthz", headers={"X-Request-ID": mine}) as response:
        assert response.headers["X-Request-ID"] == mine
    async with api.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}) as response:
        made = response.headers["X-Request-ID"]
    assert made != "bad id\twith spaces"
    assert re.fullmatch(r"[0-9a-f]{32}", made)


async def test_logs_are_json_with_event_and_request_ids(
    lms: Lms, api: aiohttp.ClientSession, service: dict[str, ServiceProcess]
) -> None:
    mine = f"test-{uuid.uuid4().hex}"
    async with api.get(f"/users/{lms.user}/progress", headers={"X-Request-ID": mine}) as response:
        assert response.status in (200, 404)
    await lms.send(lms.topics.lesson_activity, lms.user, b"[not an object")

    def lines(process: str) -> list[dict[str, Any]]:
        text = service[process].log_text()
        # Every line, from start-up on, is one JSON object.
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    async def dead_letter_line() -> dict[str, Any] | None:
        return next(
            (
                line
                for line in lines("worker")
                if line.get("key") == lms.user and "error_type" in line
            ),
            None,
        )

    logged = await eventually(dead_letter_line)
    assert logged["level"] == "WARNING"
    assert logged["topic"] == lms.topics.lesson_activity
    assert isinstance(logged["partition"], int)
    assert isinstance(logged["offset"], int)

    async def request_line() -> dict[str, Any] | None:
        return next((line for line in lines("api") if line.get("request_id") == mine), None)

    access = await eventually(request_line)
    assert access["path"] == f"/users/{lms.user}/progress"
    assert access["status"] == response.status
    assert {"time", "level", "logger", "message"} <= set(access)
    assert all({"time", "level", "message"} <= set(line) for line in lines("sink"))
