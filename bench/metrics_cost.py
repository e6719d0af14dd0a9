"""What the worker's metrics cost per batch and per event (adapters/metrics.py).

    .venv/bin/python -m bench.metrics_cost

``WorkerMetrics.batch`` is the only metrics work on the worker's hot path: once per batch,
it counts the batch's events by topic and observes two histograms. The rest (dead letters,
published events, state writes, lag) is read when Prometheus scrapes. The best of five
repeats, on stand-ins for Faust events; compare with Faust's own floor of about 100 us of
CPU per event (BENCHMARKS.md).
"""

from __future__ import annotations

import collections
import timeit
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from adapters.metrics import CommitClock, WorkerMetrics


@dataclass(slots=True)
class _Message:
    topic: str


@dataclass(slots=True)
class _Event:
    message: _Message


def main() -> None:
    metrics = WorkerMetrics(CollectorRegistry(), CommitClock())
    for size in (1, 50, 1000):
        events = [_Event(_Message(f"lms.topic-{i % 3}")) for i in range(size)]
        number = max(20_000 // size, 200)

        def one_batch(events: list[_Event] = events) -> None:
            metrics.batch((e.message.topic for e in events), 0.01)

        best = min(timeit.repeat(one_batch, number=number, repeat=5))
        per_batch = best / number
        print(
            f"batch of {size:5d} events: {per_batch * 1e6:7.2f} us per batch, "
            f"{per_batch / size * 1e9:8.1f} ns per event"
        )
    tally: collections.Counter[str] = collections.Counter()
    number = 1_000_000
    best = min(
        timeit.repeat("tally['ProgressUpdated'] += 1", globals={"tally": tally}, number=number)
    )
    print(f"a published-event or dead-letter tally: {best / number * 1e9:.1f} ns per increment")


if __name__ == "__main__":
    main()
