"""The Faust worker, top to bottom: app, topics, tables, agents.

lms.enrollments, lms.lesson-activity, ─┐
lms.quiz-activity, lms.assignment-activity,
lms.competency-evidence, lms.learner-profiles ─┼─▶ learner_events ──▶ tables
progress.catalog-broadcast ────────────────────┘        │
                                                        ├─▶ progress.progress-updated,
lms.course-updates, lms.learning-paths,                 │   course-completed, quiz-completed,
lms.competencies, lms.achievements                      │   assignment-submitted,
    └─▶ catalog_updates (copies each entry to every     │   achievement-earned,
        partition of progress.catalog-broadcast)        │   competency-acquired
                                                        └─▶ progress.snapshots ─▶ sink
bad input of any topic ─▶ progress.dead-letter
"""

from __future__ import annotations

import logging
import time
from contextlib import aclosing
from typing import Any

import faust
from faust.sensors import Monitor
from faust.types import TableT

from adapters.metrics import CommitClock, WorkerMetrics, new_registry
from adapters.probes import ProbeServer
from adapters.settings import Settings
from adapters.topics import (
    CATALOG_TABLE,
    COURSES_TABLE,
    ERASURES_TABLE,
    INDEXES_TABLE,
    LEARNERS_TABLE,
    PRODUCER_MAX_REQUEST_BYTES,
    TABLE_VALUE_MAX_BYTES,
    TABLES,
    catalog_topics,
    consumed_kinds,
    learner_input_topics,
    published_topics,
)
from progress.decode import InvalidEvent, decode_event
from progress.events import PublishedEvent
from streams import faust_fixes
from streams.batching import stream_batches
from streams.credentials import broker_credentials
from streams.dead_letters import DeadLetters
from streams.learners import LearnerStream
from streams.monitor import QuietMonitor
from streams.monitoring import readiness, register_collectors, worker_monitor
from streams.records import EffectsFailed, Records, delivered, halt

log = logging.getLogger(__name__)


def app_options(settings: Settings) -> dict[str, Any]:
    """The worker's Faust settings but its id and data dir: one place, shared with the
    benchmark's Faust floor peer (bench/faust_floor.py), which must do I/O as the worker does."""
    return {
        "broker": f"kafka://{settings.kafka_bootstrap}",
        "broker_credentials": broker_credentials(settings),
        "store": settings.worker_store,
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": 1,
        # At-least-once with idempotent derivation (streams/effects.py): every effect of
        # an event is flushed before its offset is committed.
        "processing_guarantee": "at_least_once",
        "producer_acks": -1,
        "producer_linger": settings.worker_producer_linger_ms / 1000,
        "producer_max_batch_size": settings.worker_producer_batch_bytes,
        # Dead letters carry their original message, snapshots every row an event touched:
        # both topics take larger records (adapters/topics.py).
        "producer_max_request_size": PRODUCER_MAX_REQUEST_BYTES,
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": settings.worker_session_timeout_seconds,
        "broker_heartbeat_interval": settings.worker_session_timeout_seconds / 3,
        "web_enabled": False,
        # Without the web pages nothing reads the Monitor's per-event statistics.
        "Monitor": QuietMonitor if settings.worker_faust_monitor == "quiet" else Monitor,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }


def create_app(settings: Settings) -> faust.App:
    faust_fixes.apply()  # without it, a rebalance can skip input (streams/faust_fixes.py)
    t = settings.topics
    app = faust.App(
        f"{settings.topic_prefix}{settings.worker_app_id}",
        datadir=str(settings.worker_data_dir),
        **app_options(settings),
    )
    # Metrics, and the probe server that serves them (adapters/probes.py), run by the monitor.
    registry = new_registry()
    commits = CommitClock()
    metrics = WorkerMetrics(registry, commits)
    monitor = worker_monitor(settings, commits)
    monitor.probes = ProbeServer(
        "worker",
        settings.worker_http_host,
        settings.worker_http_port,
        lambda: readiness(app, commits),
        registry,
    )
    app.monitor = monitor

    # Topics. Values are raw bytes: decoding is ours, so bad input can be dead-lettered
    # with its original bytes instead of failing inside Faust.
    def topic(*names: str, **options: Any) -> faust.TopicT:
        return app.topic(*names, key_type=bytes, value_type=bytes, **options)

    learner_input = topic(*learner_input_topics(t), t.catalog_broadcast)
    catalogs = topic(*catalog_topics(t))
    catalog_broadcast = topic(t.catalog_broadcast, partitions=settings.topic_partitions)
    snapshots = topic(t.snapshots)
    content = topic(t.content)
    dead_letter = topic(t.dead_letter)
    published: dict[type[PublishedEvent], faust.TopicT] = {
        model: topic(name) for model, name in published_topics(t).items()
    }
    kinds = consumed_kinds(t)

    # Tables: changelog-backed, partitioned like the learner input; named, with what they
    # hold, in adapters/topics.py, which creates their changelog topics.
    def table(name: str, **options: Any) -> TableT[Any, Any]:
        return app.Table(
            name,
            default=None,
            # Keys are str, values JSON-able dicts (the domain's models dumped in JSON mode):
            # Faust stores both as JSON, in RocksDB and in the changelog alike.
            key_type=str,
            partitions=settings.topic_partitions,
            help=TABLES[name],
            **options,
        )

    # Learner states are written on nearly every event: stored as the model's own JSON bytes
    # (``value_type=bytes`` selects the raw codec), dumped and parsed by pydantic in one step,
    # instead of a dict that Faust encodes again. Values written as JSON dicts before are the
    # same JSON text, so an existing changelog still loads (``streams/state_codec.py``).
    learners = table(LEARNERS_TABLE, value_type=bytes)
    erasures = table(ERASURES_TABLE)
    courses = table(COURSES_TABLE)
    catalog = table(CATALOG_TABLE)
    indexes = table(INDEXES_TABLE)

    records = Records(app)

    async def send_dead_letter(key: bytes | None, value: bytes) -> Any:
        return await records.send(dead_letter, key, value)

    dead_letters = DeadLetters(send_dead_letter)
    learner_stream = LearnerStream(
        settings,
        learners=learners,
        erasures=erasures,
        courses=courses,
        catalog=catalog,
        indexes=indexes,
        published=published,
        snapshots=snapshots,
        content=content,
        dead_letters=dead_letters,
        records=records,
    )
    input_topics = {*learner_input_topics(t), t.catalog_broadcast, *catalog_topics(t)}
    register_collectors(registry, app, monitor, input_topics, learner_stream, dead_letters)

    # Whatever the worker keeps in memory of the tables is dropped whenever partitions move:
    # another worker may have changed a partition's state while it was away from this one.
    # (mode's handler type, with its string-named signal= argument, admits no function.)
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_cached(sender: Any, revoked: Any, **kwargs: Any) -> None:
        learner_stream.forget_cached()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def forget_cached_on_assignment(sender: Any, assigned: Any, **kwargs: Any) -> None:
        learner_stream.forget_cached()

    # Agents.
    @app.agent(learner_input, name="learner_events")
    async def learner_events(stream: faust.StreamT[bytes]) -> None:
        # In batches of what is waiting (streams/batching.py): one wait for the deliveries
        # of a whole batch's published events instead of a broker round trip per event, and
        # one state write per learner and batch (streams/effects.py). Acks are ours: an
        # event's offset may be committed only once its batch was handled and flushed.
        stream.enable_acks = False
        gathered = stream_batches(stream, settings)
        async with aclosing(gathered):
            async for events in gathered:
                started = time.perf_counter()
                try:
                    await learner_stream.handle_batch(events)
                except Exception as error:
                    # Effects not written (EffectsFailed), or a failure outside any one
                    # event's handling: the batch must not be acknowledged.
                    halt(error)
                # Counted once per batch, not per event (adapters/metrics.py).
                metrics.batch((e.message.topic for e in events), time.perf_counter() - started)
                for event in events:
                    await stream.ack(event)

    @app.agent(catalogs, name="catalog_updates")
    async def fan_out_catalog_updates(stream: faust.StreamT[bytes]) -> None:
        """Send each valid catalog entry to every partition of the learner stream; the
        entry's offset moves on only once every copy, or its dead letter, was delivered."""
        async for event in stream.events():
            message = event.message
            metrics.consumed.labels(message.topic).inc()  # catalog entries are few
            try:
                try:
                    await fan_out(message)
                except EffectsFailed:
                    raise
                except Exception as error:
                    log.exception("fanning out %s@%d failed", message.topic, message.offset)
                    reason = f"{type(error).__name__}: {error}"
                    await (await dead_letters.send(message, reason, "internal-error"))
            except Exception as error:
                halt(error)

    async def fan_out(message: Any) -> None:
        try:
            entry = decode_event(kinds[message.topic], message.key, message.value)
        except InvalidEvent as error:
            await (await dead_letters.send(message, error.reason, error.error_type))
            return
        payload = entry.model_dump_json().encode()
        if len(payload) > TABLE_VALUE_MAX_BYTES:
            # Stored, it would pass a Kafka record's limit (streams/records.py).
            reason = (
                f"the entry takes {len(payload)} bytes, over the limit of "
                f"{TABLE_VALUE_MAX_BYTES} (docs/reliability.md#bounds)"
            )
            await (await dead_letters.send(message, reason, "too-large"))
            return
        copies = [
            await records.send(catalog_broadcast, message.key, payload, partition=partition)
            for partition in range(settings.topic_partitions)
        ]
        await delivered(copies)

    def report() -> None:
        s = learner_stream
        log.info(
            "processed %d learner events, dead-lettered %d, ignored %d from before an erasure; "
            "%d batches of %.1f events on average, %.3f learner-state writes per event",
            s.processed,
            dead_letters.count,
            s.ignored,
            s.batches,
            s.batched_events / max(s.batches, 1),
            s.effects.state_writes / max(s.batched_events, 1),
        )

    @app.timer(interval=30.0)
    async def report_every_30_s() -> None:
        report()

    # And once more on the way out: a short run may end before the first report.
    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def report_on_shutdown(sender: Any, **kwargs: Any) -> None:
        report()

    return app
