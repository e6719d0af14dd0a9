"""What the worker tells about itself: readiness, consumer lag, last commit, and the metrics
read from the counts its stream keeps (``adapters/metrics.py``), served by the probe server
(``adapters/probes.py``) while the app runs.

Lag and commits come from Faust's own Monitor, which sees every message and commit anyway:
reading it when Prometheus scrapes adds nothing to the hot path.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

import faust
from faust.exceptions import ConsumerNotStarted
from faust.sensors.monitor import Monitor
from faust.tables.manager import TableManager
from prometheus_client import CollectorRegistry

from adapters.metrics import CommitClock, LagGauge, Tallies, consumer_lag
from adapters.probes import ProbeServer, Readiness
from adapters.settings import Settings
from streams.dead_letters import DeadLetters
from streams.learners import LearnerStream
from streams.monitor import QuietMonitor


class WorkerMonitor(Monitor):
    """Faust's Monitor, which also notes when offsets were committed and runs the probe
    server: Faust starts sensors first and stops them last, so /healthz and /readyz answer
    while the tables recover and while the worker stops."""

    def __init__(self, clock: CommitClock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock
        self.probes: ProbeServer | None = None

    def on_tp_commit(self, tp_offsets: Any) -> None:
        super().on_tp_commit(tp_offsets)
        self.clock.committed()

    async def on_start(self) -> None:
        await super().on_start()
        if self.probes is not None:
            await self.probes.start()

    async def on_stop(self) -> None:
        if self.probes is not None:
            await self.probes.stop()
        await super().on_stop()


class QuietWorkerMonitor(QuietMonitor, WorkerMonitor):
    """The same, without Faust's per-event statistics (streams/monitor.py)."""


def worker_monitor(settings: Settings, clock: CommitClock) -> WorkerMonitor:
    """The worker's monitor, quiet unless ``WORKER_FAUST_MONITOR=stock``."""
    if settings.worker_faust_monitor == "quiet":
        return QuietWorkerMonitor(clock)
    return WorkerMonitor(clock)


def readiness(app: faust.App, clock: CommitClock) -> Readiness:
    """Ready once the consumer group was joined (no rebalance under way) and the tables of the
    assigned partitions were recovered from their changelogs."""
    recovery = cast(TableManager, app.tables).recovery
    recovered_once = recovery.completed.is_set()
    return Readiness(
        checks={
            "group_joined": recovered_once and not app.rebalancing,
            "tables_recovered": recovered_once and not app.in_recovery,
        },
        last_commit_age_seconds=clock.age_seconds(),
    )


def lag(app: faust.App, monitor: Monitor, topics: Collection[str]) -> dict[tuple[str, int], int]:
    """Lag of the assigned partitions of ``topics`` (the input topics, not the changelogs):
    the partition's end offset, as the consumer last heard it from the broker, less the
    offset Faust last committed."""
    try:
        assignment = app.consumer.assignment()
    except ConsumerNotStarted:
        return {}
    assigned: list[tuple[str, int]] = []
    ends: dict[tuple[str, int], int] = {}
    for tp in assignment:
        if tp.topic in topics:
            assigned.append((tp.topic, tp.partition))
            end = app.consumer.highwater(tp)
            if end is not None:
                ends[tp.topic, tp.partition] = end
    # Faust's own record of the committed offsets, read from the broker when partitions are
    # assigned (private, in the releases streams/faust_fixes.py admits), so a partition has a
    # lag before this worker first commits on it; then what the monitor saw committed.
    known = getattr(app.consumer, "_committed_offset", {})
    committed = {(tp.topic, tp.partition): o for tp, o in known.items() if o is not None}
    committed.update(
        {(tp.topic, tp.partition): o for tp, o in monitor.tp_committed_offsets.items()}
    )
    return consumer_lag(assigned, ends, committed)


def register_collectors(
    registry: CollectorRegistry,
    app: faust.App,
    monitor: Monitor,
    input_topics: Collection[str],
    learner_stream: LearnerStream,
    dead_letters: DeadLetters,
) -> None:
    """Register the metrics read when Prometheus scrapes: the stream's own counts and the lag."""
    s = learner_stream
    for collector in (
        Tallies(
            "progress_worker_dead_letters",
            "Input events dead-lettered, by reason (the dead letter's error_type)",
            ("reason",),
            lambda: {(reason,): n for reason, n in dead_letters.by_type.items()},
        ),
        Tallies(
            "progress_worker_published_events",
            "Events published, by type (ProgressUpdated, CourseCompleted, ...)",
            ("type",),
            lambda: {(name,): n for name, n in s.effects.published_counts.items()},
        ),
        Tallies(
            "progress_worker_state_writes",
            "Learner states written to the learners table (at most one per learner and batch)",
            (),
            lambda: {(): s.effects.state_writes},
        ),
        Tallies(
            "progress_worker_events_ignored",
            "Learner events ignored because they predate their learner's erasure",
            (),
            lambda: {(): s.ignored},
        ),
        LagGauge("progress_worker_consumer_lag", lambda: lag(app, monitor, input_topics)),
    ):
        registry.register(collector)
