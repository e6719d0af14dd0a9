"""The Faust worker, top to bottom: app, topics, tables, agents.

lms.enrollments ──┐
lms.lesson-activity ─┼─▶ learner_events ──▶ tables: learners, courses, course-members
progress.course-broadcast ┘        │        ├─▶ progress.progress-updated
                                   │        ├─▶ progress.course-completed
lms.course-updates ─▶ course_updates (fan-out to every partition of the broadcast)
                                   └─▶ progress.snapshots ─▶ sink ─▶ PostgreSQL, Redis
bad input of any topic ─▶ progress.dead-letter
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from progress.decode import InvalidEvent, decode_event
from service.config import Settings
from streams.dead_letters import DeadLetters
from streams.learners import LearnerStream

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> faust.App:
    t = settings.topics
    app = faust.App(
        f"{settings.topic_prefix}{settings.worker_app_id}",
        broker=f"kafka://{settings.kafka_bootstrap}",
        store=settings.worker_store,
        datadir=str(settings.worker_data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        # At-least-once with idempotent derivation (docs/reliability.md): every effect of
        # an event is flushed before its offset is committed.
        processing_guarantee="at_least_once",
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
    )

    # Topics. Values are raw bytes: decoding is ours, so bad input can be dead-lettered
    # with its original bytes instead of failing inside Faust.
    def topic(*names: str, **options: Any) -> faust.TopicT:
        return app.topic(*names, key_type=bytes, value_type=bytes, **options)

    learner_input = topic(t.enrollments, t.lesson_activity, t.course_broadcast)
    course_updates = topic(t.course_updates)
    course_broadcast = topic(t.course_broadcast, partitions=settings.topic_partitions)
    progress_updated = topic(t.progress_updated)
    course_completed = topic(t.course_completed)
    snapshots = topic(t.snapshots)
    dead_letter = topic(t.dead_letter)

    # Tables: changelog-backed, partitioned like the learner input.
    def table(name: str, help_: str) -> faust.TableT:
        return app.Table(
            name,
            default=None,
            # Keys are str, values JSON-able dicts (the domain's models dumped in JSON mode):
            # Faust stores both as JSON, in RocksDB and in the changelog alike.
            key_type=str,
            partitions=settings.topic_partitions,
            help=help_,
        )

    learners = table("learners", "LearnerState by user_id")
    courses = table("courses", "KnownCourse by '<partition>/<course_id>'")
    members = table("course-members", "sorted user ids by '<partition>/<course_id>'")

    dead_letters = DeadLetters(dead_letter)
    learner_stream = LearnerStream(
        settings,
        learners=learners,
        courses=courses,
        members=members,
        progress_updated=progress_updated,
        course_completed=course_completed,
        snapshots=snapshots,
        dead_letters=dead_letters,
    )

    # Agents.
    @app.agent(learner_input, name="learner_events")
    async def learner_events(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await learner_stream.handle(event.message)

    @app.agent(course_updates, name="course_updates")
    async def fan_out_course_updates(stream: faust.StreamT[bytes]) -> None:
        """Send each valid course update to every partition of the learner stream."""
        async for event in stream.events():
            message = event.message
            try:
                update = decode_event("course-updates", message.key, message.value)
            except InvalidEvent as error:
                await dead_letters.send(message, error)
                continue
            payload = update.model_dump_json().encode()
            for partition in range(settings.topic_partitions):
                await course_broadcast.send(key=message.key, value=payload, partition=partition)

    @app.timer(interval=30.0)
    async def report() -> None:
        log.info(
            "processed %d learner events, dead-lettered %d",
            learner_stream.processed,
            dead_letters.count,
        )

    return app
