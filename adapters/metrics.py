"""Prometheus metrics of the three processes, each on its own registry (no global state: the
tests run a sink and APIs in one process), served as text at ``GET /metrics``.

Every metric is listed in docs/operations.md#metrics. Hot paths pay little: the worker counts
per batch, not per event, and what its stream already counts (dead letters, published events,
state writes) is read when Prometheus scrapes (``Tallies``), not copied on every change.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "exposition"]

# Events in a batch: the worker takes up to WORKER_BATCH_MAX_EVENTS (1000), the sink up to
# SINK_BATCH_MAX_RECORDS (2000).
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
# Seconds, from a cached API answer (about a millisecond) to a sink batch waiting out an outage.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

TopicPartition = tuple[str, int]


def new_registry() -> CollectorRegistry:
    """A registry with the process's own metrics (CPU, memory, open files, GC, Python)."""
    # The ``_created`` series of every counter and histogram double the text for nothing a
    # dashboard reads (a process-wide switch of prometheus-client; every registry here wants it).
    disable_created_metrics()
    # Not auto_describe: collectors read live objects, which may not exist before the start.
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format (``CONTENT_TYPE_LATEST``)."""
    return generate_latest(registry)


def consumer_lag(
    assigned: Iterable[TopicPartition],
    end_offsets: Mapping[TopicPartition, int],
    positions: Mapping[TopicPartition, int],
) -> dict[TopicPartition, int]:
    """Records not yet consumed, per assigned partition: its end offset (the next offset the
    broker will write) less the consumer's position (the next offset it will commit). A
    partition whose end or position is not known yet is left out rather than guessed."""
    lag: dict[TopicPartition, int] = {}
    for tp in assigned:
        end = end_offsets.get(tp)
        position = positions.get(tp)
        if end is not None and position is not None:
            lag[tp] = max(end - position, 0)
    return lag


class Tallies(Collector):
    """A counter family read from counts the code keeps anyway, when Prometheus scrapes.

    ``read`` returns the running totals by label values (one tuple per series, in the order
    of ``labels``); totals only ever grow, as a counter's must.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: tuple[str, ...],
        read: Callable[[], Mapping[tuple[str, ...], float]],
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = labels
        self._read = read

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        for values, total in sorted(self._read().items()):
            family.add_metric(list(values), total)
        yield family


class LagGauge(Collector):
    """``<prefix>_consumer_lag{topic,partition}``, computed when Prometheus scrapes."""

    def __init__(self, name: str, read: Callable[[], Mapping[TopicPartition, int]]) -> None:
        self._name = name
        self._read = read

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            self._name,
            "Records of the partition not yet consumed: end offset less committed position",
            labels=("topic", "partition"),
        )
        for (topic, partition), lag in sorted(self._read().items()):
            family.add_metric([topic, str(partition)], lag)
        yield family


def count_by(values: Iterable[str]) -> dict[tuple[str], int]:
    """Counts of each value, keyed as ``Tallies`` reads them."""
    return {(value,): count for value, count in collections.Counter(values).items()}


@dataclass(slots=True)
class CommitClock:
    """When offsets were last committed: for the ``last commit age`` of /readyz and the
    ``last_commit_timestamp_seconds`` gauge."""

    monotonic: float | None = None
    wall: float | None = None

    def committed(self) -> None:
        self.monotonic = time.monotonic()
        self.wall = time.time()

    def age_seconds(self) -> float | None:
        """Seconds since the last commit; None before the first."""
        return None if self.monotonic is None else time.monotonic() - self.monotonic


def last_commit_gauge(prefix: str, registry: CollectorRegistry, clock: CommitClock) -> None:
    """``<prefix>_last_commit_timestamp_seconds``: NaN before the first commit."""
    gauge = Gauge(
        f"{prefix}_last_commit_timestamp_seconds",
        "Unix time of the last offset commit (NaN before the first)",
        registry=registry,
    )
    gauge.set_function(lambda: math.nan if clock.wall is None else clock.wall)


class WorkerMetrics:
    """The worker's metrics that it updates itself, once per batch; the rest are
    ``Tallies`` and a ``LagGauge`` registered by ``streams/app.py``."""

    def __init__(self, registry: CollectorRegistry, clock: CommitClock) -> None:
        self.registry = registry
        last_commit_gauge("progress_worker", registry, clock)
        self.consumed = Counter(
            "progress_worker_events_consumed",
            "Input events the worker consumed, by topic (dead-lettered ones included)",
            ["topic"],
            registry=registry,
        )
        self._consumed: dict[str, Any] = {}
        self.batch_events = Histogram(
            "progress_worker_batch_events",
            "Learner events per batch",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            "progress_worker_batch_duration_seconds",
            "Time to handle a batch of learner events and flush its effects",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def batch(self, topics: Iterable[str], seconds: float) -> None:
        """A batch was handled: the topic of each of its events, and how long it took."""
        counts = collections.Counter(topics)
        for topic, count in counts.items():
            child = self._consumed.get(topic)
            if child is None:  # labels() takes a lock and builds a key: once per topic
                child = self._consumed[topic] = self.consumed.labels(topic)
            child.inc(count)
        self.batch_events.observe(sum(counts.values()))
        self.batch_duration.observe(seconds)


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry, clock: CommitClock) -> None:
        self.registry = registry
        last_commit_gauge("progress_sink", registry, clock)
        self.records = Counter(
            "progress_sink_records_consumed",
            "Snapshot-topic records the sink read, by topic",
            ["topic"],
            registry=registry,
        )
        self.messages = Counter(
            "progress_sink_messages_written",
            "Messages written to PostgreSQL, by kind (learner, catalog, erasure)",
            ["kind"],
            registry=registry,
        )
        self.rows = Counter(
            "progress_sink_rows_written",
            "Rows upserted into PostgreSQL (an older version is sent but changes nothing)",
            registry=registry,
        )
        self.dead_letters = Counter(
            "progress_sink_dead_letters",
            "Snapshot-topic records dead-lettered, by reason (undecodable, unwritable)",
            ["reason"],
            registry=registry,
        )
        self.retries = Counter(
            "progress_sink_retries",
            "Failed attempts that were retried, by operation "
            "(migrations, postgres, dead_letters, redis)",
            ["operation"],
            registry=registry,
        )
        self.batch_records = Histogram(
            "progress_sink_batch_records",
            "Records per batch",
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            "progress_sink_batch_duration_seconds",
            "Time from a batch read to its offsets committed (PostgreSQL, Redis, retries)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Histogram(
            "progress_api_request_duration_seconds",
            "Time to answer a request, by method, route pattern and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cache = Counter(
            "progress_api_cache_lookups",
            "Answers from Redis (hit) or from PostgreSQL (miss)",
            ["result"],
            registry=registry,
        )
