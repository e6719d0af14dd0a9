"""The domain core alone, at the worker's I/O shape: decode + derive + encode per event, over the
benchmark's workload, in process. No Kafka, no Faust, no tables.

    .venv/bin/python -m bench.core [--users N] [--courses N] [--events N] [--seed N]
                                   [--batch N] [--quick] [--profile]

What the worker (``streams/learners.py``, ``streams/effects.py``) does per event, and so what
is measured here, in batches of ``batch`` consecutive events:

- decode the message bytes (``progress.decode.decode_event``);
- apply the event as its kind's line in ``progress.kinds`` says (``handling_of``): the
  learner's rule for learner events; for a CourseUpdated, the worker's step in its simplest
  faithful form (merge the structure into the known course, re-derive the course's members
  with ``on_course_known``). Catalog entries and erasures are not in the generated workload;
  one met here is counted in ``skipped`` and not applied;
- encode what the worker writes: each published event's JSON as it is derived, and at the end
  of the batch each changed learner's state (``streams.state_codec.encode_state``) and its
  snapshots merged (``streams.effects.snapshot_messages``), once per learner per batch.

The garbage collector is tuned as in the worker's process (``WORKER_GC_THRESHOLD``,
``adapters/collector.py``); ``--gc-threshold 700`` measures with Python's default.

Not included: the worker's erasure check, member-index bookkeeping, the exact size check of
``_fits`` (it encodes only near the limit) and anything Faust or Kafka do.

Times are CPU time (``time.process_time``), taken per batch and phase (encode also per part:
published events, states, snapshots), so the split adds a few timer reads per batch, not per
event. Within a batch all messages are decoded first, then derived, then encoded: the same
work the worker interleaves. ``--profile`` prints cProfile's top 20 functions by cumulative
time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import time
from dataclasses import dataclass, field
from typing import Any

from adapters.collector import tune_collector
from adapters.settings import Settings
from bench.loadgen import Record, Workload, generate
from progress.decode import decode_event
from progress.events import CourseUpdated, PublishedEvent
from progress.facts import merge_course_update
from progress.kinds import InCourse, handling_of
from progress.learner_rules import Catalog
from progress.outcomes import Outcome, on_course_known
from progress.snapshots import Snapshot
from progress.state import KnownCourse, LearnerState
from streams.effects import snapshot_messages
from streams.state_codec import encode_state, stored_json

# The worker's batch bound (streams/app.py: take_events).
BATCH = 500


@dataclass(slots=True)
class _Core:
    """What the worker keeps between events: learners' states, known courses, each course's
    members, the catalog (empty: the workload has no catalog entries)."""

    states: dict[str, LearnerState] = field(default_factory=dict)
    known: dict[str, KnownCourse] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    catalog: Catalog = field(default_factory=Catalog)
    # Counts and sizes, over the whole run.
    events: int = 0
    learner_events: int = 0
    course_events: int = 0
    skipped: int = 0
    outcomes: int = 0
    published: int = 0
    published_bytes: int = 0
    snapshot_messages: int = 0
    snapshot_bytes: int = 0
    state_sizes: list[int] = field(default_factory=list)  # as stored, per write
    json_sizes: list[int] = field(default_factory=list)  # the same states' JSON
    compressed_writes: int = 0
    seconds: dict[str, float] = field(
        default_factory=lambda: {"decode": 0.0, "derive": 0.0, "encode": 0.0}
    )
    # The encode phase by what it writes (its three parts sum to it).
    encode_split: dict[str, float] = field(
        default_factory=lambda: {"published": 0.0, "states": 0.0, "snapshots": 0.0}
    )

    def derive(self, event: Any) -> list[Outcome]:
        """The event's outcomes, as the worker's dispatch (``LearnerStream._apply``) makes them."""
        handling = handling_of(event)
        if handling == "course":
            assert isinstance(event, CourseUpdated)
            self.course_events += 1
            known = merge_course_update(self.known.get(event.id), event)
            self.known[event.id] = known
            # Re-derived even when nothing changed, as the worker does.
            return [
                on_course_known(self.states[user_id], known, self.catalog)
                for user_id in sorted(self.members.get(event.id, ()))
                if event.id in self.states[user_id].courses
            ]
        if isinstance(handling, str):  # a catalog entry or an erasure: not measured
            self.skipped += 1
            return []
        self.learner_events += 1
        state = self.states.get(event.user_id)
        if isinstance(handling, InCourse):
            self.members.setdefault(event.course_id, set()).add(event.user_id)
            outcome = handling.derive(state, event, self.known.get(event.course_id), self.catalog)
        else:
            outcome = handling.derive(state, event, self.catalog)
        return [outcome]

    def batch(self, records: list[Record]) -> None:
        """One batch: decode all, derive in order, then encode what the worker would write."""
        t0 = time.process_time()
        events = [decode_event(r.kind, r.key, r.value) for r in records]
        t1 = time.process_time()
        changed: dict[str, LearnerState] = {}
        snapshots: dict[str, list[Snapshot]] = {}
        published: list[PublishedEvent] = []
        for event in events:
            for outcome in self.derive(event):
                state = outcome.state
                # The next event of the learner sees this state (the worker's ``held``).
                self.states[state.user_id] = state
                if outcome.changed:
                    changed[state.user_id] = state
                snapshots.setdefault(state.user_id, []).append(outcome.snapshot)
                published.extend(outcome.published)
                self.outcomes += 1
        t2 = time.process_time()
        published_bytes = sum(len(e.model_dump_json().encode()) for e in published)
        t_states = time.process_time()
        stored = [encode_state(state) for state in changed.values()]
        t_snapshots = time.process_time()
        messages = [len(value) for made in snapshots.values() for value in snapshot_messages(made)]
        t3 = time.process_time()
        # Outside the timed phases: the JSON size of the states stored compressed.
        for value in stored:
            compressed = value[:1] != b"{"
            self.compressed_writes += compressed
            self.state_sizes.append(len(value))
            self.json_sizes.append(len(stored_json(value)))
        self.events += len(records)
        self.published += len(published)
        self.published_bytes += published_bytes
        self.snapshot_messages += len(messages)
        self.snapshot_bytes += sum(messages)
        self.seconds["decode"] += t1 - t0
        self.seconds["derive"] += t2 - t1
        self.seconds["encode"] += t3 - t2
        self.encode_split["published"] += t_states - t2
        self.encode_split["states"] += t_snapshots - t_states
        self.encode_split["snapshots"] += t3 - t_snapshots


def run_core(
    workload: Workload, batch: int = BATCH, gc_threshold: int | None = None
) -> dict[str, Any]:
    """Run the workload's records (its courses first, then its activity, as generated) through
    the core in batches of ``batch``, with the garbage collector tuned as the worker's process
    is (``gc_threshold``, None: the worker's setting, ``WORKER_GC_THRESHOLD``); return the
    figures (see ``measure``). The collector's own settings are restored after."""
    if gc_threshold is None:
        gc_threshold = Settings().worker_gc_threshold
    core = _Core()
    records = workload.records
    saved, enabled = gc.get_threshold(), gc.isenabled()
    tune_collector(gc_threshold)
    try:
        wall = time.perf_counter()
        for start in range(0, len(records), batch):
            core.batch(records[start : start + batch])
        wall = time.perf_counter() - wall
    finally:
        gc.set_threshold(*saved)
        if enabled:
            gc.enable()
    cpu = sum(core.seconds.values())
    n = core.events
    sizes = sorted(core.state_sizes)
    json_sizes = sorted(core.json_sizes)

    def pct(values: list[int], q: float) -> int:
        return values[min(len(values) - 1, int(len(values) * q))] if values else 0

    return {
        "events": n,
        "learner_events": core.learner_events,
        "course_events": core.course_events,
        "skipped": core.skipped,
        "outcomes": core.outcomes,
        "batch": batch,
        "gc_threshold": gc_threshold,
        "cpu_us_per_event": round(1e6 * cpu / n, 1),
        "events_per_s": round(n / cpu),
        "wall_events_per_s": round(n / wall),
        "decode_us_per_event": round(1e6 * core.seconds["decode"] / n, 1),
        "derive_us_per_event": round(1e6 * core.seconds["derive"] / n, 1),
        "encode_us_per_event": round(1e6 * core.seconds["encode"] / n, 1),
        **{
            f"encode_{part}_us_per_event": round(1e6 * seconds / n, 1)
            for part, seconds in core.encode_split.items()
        },
        "published_per_event": round(core.published / n, 3),
        "published_bytes_per_event": round(core.published_bytes / n),
        "snapshot_messages": core.snapshot_messages,
        "snapshot_bytes_per_event": round(core.snapshot_bytes / n),
        "state_writes": len(sizes),
        "state_writes_per_event": round(len(sizes) / n, 3),
        "state_compressed_writes": core.compressed_writes,
        "state_bytes_p50": pct(sizes, 0.5),
        "state_bytes_p99": pct(sizes, 0.99),
        "state_bytes_max": pct(sizes, 1.0),
        "state_json_bytes_p50": pct(json_sizes, 0.5),
        "state_json_bytes_p99": pct(json_sizes, 0.99),
        "state_json_bytes_max": pct(json_sizes, 1.0),
        "learners": len(core.states),
    }


async def measure(
    workload: Workload, batch: int = BATCH, gc_threshold: int | None = None
) -> dict[str, Any]:
    """The core's cost per event on ``workload`` (``run_core``; CPU-bound, runs in the loop's
    thread). Figures: ``cpu_us_per_event`` and ``events_per_s`` (CPU time, process-wide),
    the split ``decode/derive/encode_us_per_event`` (summing to the first), counts
    (``events == learner_events + course_events + skipped``), published events and snapshot
    bytes per event, state writes per event and their size p50/p99/max as stored
    (``encode_state``: zstd from 64 KB) and as JSON."""
    return run_core(workload, batch, gc_threshold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # bench/run.py's defaults, and its --quick sizes.
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--courses", type=int, default=50)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument(
        "--gc-threshold",
        type=int,
        default=None,
        help="the collector's young-generation threshold (default: WORKER_GC_THRESHOLD's; "
        "700 is Python's own, 0 turns it off)",
    )
    parser.add_argument("--quick", action="store_true", help="bench.run --quick's sizes")
    parser.add_argument("--profile", action="store_true", help="cProfile: top 20, cumulative")
    args = parser.parse_args()
    if args.quick:
        args.users, args.courses, args.events = 2000, 20, 20_000
    workload = generate(args.users, args.courses, args.events, args.seed)
    if not args.profile:
        figures = asyncio.run(measure(workload, args.batch, args.gc_threshold))
        for name, value in figures.items():
            print(f"{name:28} {value}")
        return
    # Profiled outside the event loop, so the top lines are the core's, not asyncio's.
    profiler = cProfile.Profile()
    profiler.enable()
    figures = run_core(workload, args.batch, args.gc_threshold)
    profiler.disable()
    for name, value in figures.items():
        print(f"{name:28} {value}")
    print("\ncProfile (the times include its own overhead), top 20 by cumulative time:")
    pstats.Stats(profiler).strip_dirs().sort_stats("cumulative").print_stats(20)


if __name__ == "__main__":
    main()
