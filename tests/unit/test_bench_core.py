"""The core micro-benchmark (``bench/core.py``) on a tiny workload: its counts add up. No
timing is asserted (speed is measured by the benchmark, not by tests)."""

from __future__ import annotations

import asyncio

from bench.core import measure
from bench.loadgen import generate


def test_counts_add_up() -> None:
    workload = generate(users=30, courses=3, events=400, seed=7)
    figures = asyncio.run(measure(workload, batch=50))
    assert figures["events"] == len(workload.records) == 403
    assert figures["course_events"] == 3
    assert figures["skipped"] == 0
    assert figures["events"] == (
        figures["learner_events"] + figures["course_events"] + figures["skipped"]
    )
    # One outcome per learner event; course updates come first, before any member.
    assert figures["outcomes"] == figures["learner_events"]
    # At most one state write per learner per batch, at least one per batch with learners.
    assert 0 < figures["state_writes"] <= figures["learner_events"]
    assert figures["snapshot_messages"] >= figures["state_writes"]
    assert figures["state_bytes_p50"] <= figures["state_bytes_p99"] <= figures["state_bytes_max"]
    assert figures["learners"] <= 30
    split = sum(figures[f"{p}_us_per_event"] for p in ("decode", "derive", "encode"))
    assert abs(split - figures["cpu_us_per_event"]) <= 0.5
    parts = sum(figures[f"encode_{p}_us_per_event"] for p in ("published", "states", "snapshots"))
    assert abs(parts - figures["encode_us_per_event"]) <= 0.5
    # A state's JSON is never smaller than what is stored of it (plain, or zlib from 64 KB).
    for q in ("p50", "p99", "max"):
        assert figures[f"state_json_bytes_{q}"] >= figures[f"state_bytes_{q}"]
