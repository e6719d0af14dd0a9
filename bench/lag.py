"""Consumer lag over time, sampled from the broker while a section runs: how far a consumer
group's committed offsets are behind the ends of the topics it reads.

A lag that keeps growing through a section says the consumer does not keep up with the load
(throughput); a lag that stays small while latency is high points at waits (batching, commit
and poll intervals). Committed offsets move only when the consumer commits (Faust every
``broker_commit_every``/``broker_commit_interval``, the sink after each batch), so a sample is
late by up to one commit interval: enough to tell a trend from a plateau.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from adapters.settings import Settings


@dataclass(frozen=True, slots=True)
class Sample:
    """The summed lag of each watched group, ``seconds`` after the watch started."""

    seconds: float
    lags: Mapping[str, int]


@dataclass
class LagWatch:
    """Samples the lag of ``groups`` (name -> (group id, topics)) every ``every`` seconds,
    from ``start`` until ``stop``. A partition the group never committed counts from the
    partition's beginning (the sections start their consumers on fresh topics)."""

    settings: Settings
    groups: Mapping[str, tuple[str, Sequence[str]]]
    every: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[Sample]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.samples

    async def _run(self) -> None:
        bootstrap = self.settings.kafka_bootstrap
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await admin.start()
        await consumer.start()
        started = time.monotonic()
        try:
            while True:
                lags = {
                    name: await _group_lag(admin, consumer, group, topics, self.settings)
                    for name, (group, topics) in self.groups.items()
                }
                self.samples.append(Sample(round(time.monotonic() - started, 1), lags))
                await asyncio.sleep(self.every)
        finally:
            await consumer.stop()
            await admin.close()


async def _group_lag(
    admin: AIOKafkaAdminClient,
    consumer: AIOKafkaConsumer,
    group: str,
    topics: Sequence[str],
    settings: Settings,
) -> int:
    partitions = [
        TopicPartition(topic, p) for topic in topics for p in range(settings.topic_partitions)
    ]
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    total = 0
    for tp in partitions:
        meta = committed.get(tp)
        position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
        total += max(0, ends[tp] - position)
    return total


def lag_figures(samples: Sequence[Sample]) -> dict[str, float | str]:
    """Per group: the largest lag, the lag at the last sample, and the timeline as
    ``seconds:lag`` pairs (every sample), for the report."""
    figures: dict[str, float | str] = {}
    if not samples:
        return figures
    for name in samples[0].lags:
        series = [(s.seconds, s.lags[name]) for s in samples]
        figures[f"{name}_lag_max"] = float(max(lag for _, lag in series))
        figures[f"{name}_lag_end"] = float(series[-1][1])
        figures[f"{name}_lag_timeline"] = " ".join(f"{t:g}:{lag}" for t, lag in series)
    return figures
