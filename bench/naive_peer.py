"""Peer 1, what a team writes first: an aiokafka consumer that, for each event, validates it
(``decode_event``), upserts one PostgreSQL row (autocommit, so one transaction per event)
and commits the event's offset before taking the next.

Its rows are the item-level progress a dashboard would read: one row per learner, course
and item (lesson, quiz, assignment) with its last event and whether it is done, plus one per
enrollment. Being slow, it runs on the same input for at most ``budget`` seconds and is timed
over the events it handled: its rate does not depend on how far it gets, since every event
costs the same two round trips.
"""

from __future__ import annotations

import time
from datetime import datetime

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.env import BenchEnv
from bench.loadgen import ACTIVITY_KINDS, topic_for
from progress.decode import InvalidEvent, decode_event
from progress.events import UserEnrolled
from progress.kinds import StreamKind

# The peer's own table: not the project's schema, so it lives only in the bench database.
_SCHEMA = """
create table if not exists naive_item_progress (
    user_id text not null,
    course_id text not null,
    item_id text not null,
    last_event text not null,
    done boolean not null default false,
    updated_at timestamptz not null,
    primary key (user_id, course_id, item_id)
)
"""
_UPSERT = """
insert into naive_item_progress (user_id, course_id, item_id, last_event, done, updated_at)
values (%s, %s, %s, %s, %s, %s)
on conflict (user_id, course_id, item_id) do update set
    last_event = excluded.last_event,
    done = naive_item_progress.done or excluded.done,
    updated_at = greatest(naive_item_progress.updated_at, excluded.updated_at)
"""
_DONE = {"LessonCompleted", "QuizAttemptSubmitted", "AssignmentSubmitted", "AssignmentGraded"}


def _row(event: object) -> tuple[str, str, str, str, bool, datetime]:
    kind = str(getattr(event, "type", type(event).__name__))
    at: datetime = event.event_time  # type: ignore[attr-defined]
    if isinstance(event, UserEnrolled):
        return (event.user_id, event.course_id, "", kind, False, at)
    item = next(
        getattr(event, name)
        for name in ("lesson_id", "quiz_id", "assignment_id")
        if getattr(event, name, "")
    )
    return (event.user_id, event.course_id, item, kind, kind in _DONE, at)  # type: ignore[attr-defined]


async def measure(env: BenchEnv, *, budget: float = 30.0) -> dict[str, float]:
    settings = env.settings
    kinds: dict[str, StreamKind] = {
        topic_for(settings.topics, kind): kind for kind in ACTIVITY_KINDS
    }
    consumer = AIOKafkaConsumer(
        *kinds,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=env.group("naive"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    handled = 0
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True
    ) as conn:
        await conn.execute(_SCHEMA)
        await consumer.start()
        try:
            started: float | None = None
            while started is None or time.perf_counter() - started < budget:
                record = await consumer.getone()
                if started is None:
                    started = time.perf_counter()
                    cpu = time.process_time()
                try:
                    event = decode_event(kinds[record.topic], record.key, record.value)
                except InvalidEvent:
                    continue
                await conn.execute(_UPSERT, _row(event))
                tp = TopicPartition(record.topic, record.partition)
                await consumer.commit({tp: record.offset + 1})
                handled += 1
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu
        finally:
            await consumer.stop()
    return {
        "events": float(handled),
        "seconds": elapsed,
        "events_per_s": handled / elapsed,
        # The client's CPU only (this process): PostgreSQL's own work is not in it.
        "cpu_us_per_event": cpu * 1e6 / max(handled, 1),
    }
