"""How big a learner's state is, as the worker serializes it for its table, on the benchmark's
workload: what the worker's largest single cost (``model_dump_json`` of the whole state, once
per learner and batch) grows with.

    .venv/bin/python -m bench.state_sizes [--users N] [--courses N] [--events N] [--seed N]

The events are derived by the domain core in process, as the worker derives them; every 10th
event's resulting state is measured (so the figures weigh learners by their activity, as the
worker's batches do). No Kafka, PostgreSQL or Redis.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from typing import Any

from bench.loadgen import generate
from bench.seeding import _outcome
from progress.decode import decode_event
from progress.events import CourseUpdated
from progress.facts import merge_course_update
from progress.learner import Catalog
from progress.state import KnownCourse, LearnerState


def measure(users: int, courses: int, events: int, seed: int) -> dict[str, Any]:
    workload = generate(users, courses, events, seed)
    known: dict[str, KnownCourse] = {}
    for record in workload.course_records:
        update = decode_event(record.kind, record.key, record.value)
        assert isinstance(update, CourseUpdated)
        known[update.id] = merge_course_update(None, update)
    catalog = Catalog()
    states: dict[str, LearnerState] = {}
    sizes: list[int] = []
    dump_seconds = 0.0
    for index, record in enumerate(workload.activity):
        event = decode_event(record.kind, record.key, record.value)
        outcome = _outcome(states.get(event.user_id), event, known[event.course_id], catalog)  # type: ignore[union-attr]
        states[event.user_id] = outcome.state  # type: ignore[union-attr]
        if index % 10 == 0:
            started = time.perf_counter()
            sizes.append(len(outcome.state.model_dump_json()))
            dump_seconds += time.perf_counter() - started
    sizes.sort()
    return {
        "measured_states": len(sizes),
        "state_bytes_mean": round(statistics.mean(sizes)),
        "state_bytes_median": sizes[len(sizes) // 2],
        "state_bytes_p90": sizes[int(len(sizes) * 0.9)],
        "state_bytes_max": sizes[-1],
        "dump_us_mean": round(1e6 * dump_seconds / len(sizes), 1),
        "courses_per_learner_mean": round(
            statistics.mean(len(s.courses) for s in states.values()), 2
        ),
        "share_of_largest_20": _shares(sorted(states.values(), key=_size, reverse=True)[:20]),
    }


def _size(state: LearnerState) -> int:
    return len(state.model_dump_json())


def _shares(states: list[LearnerState]) -> dict[str, float]:
    """Which parts of the largest states their JSON is made of, in percent."""
    parts: Counter[str] = Counter()
    for state in states:
        parts["learner (all but courses)"] += len(state.model_dump_json(exclude={"courses"}))
        for course in state.courses.values():
            for name in type(course).model_fields:
                parts[name] += len(course.model_dump_json(include={name}))
    total = sum(parts.values())
    return {name: round(100 * size / total, 1) for name, size in parts.most_common(6)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--courses", type=int, default=50)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    for name, value in measure(args.users, args.courses, args.events, args.seed).items():
        print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
