"""Compressing the learner states the worker stores compressed (``streams/state_codec.py``:
from ``COMPRESS_FROM_BYTES`` of JSON on), on the benchmark's own states.

    .venv/bin/python -m bench.compression [--users N] [--courses N] [--events N] [--seed N]
                                          [--repeat N]

Runs the workload through the core (bench/core.py), takes the JSON of every learner's state
at the end that is at least ``COMPRESS_FROM_BYTES`` long, and times compressing them all
(µs per state, the best of ``repeat`` rounds, CPU time) with zlib at levels 1 and 6 and zstd
at levels 1 and 3, with the ratio of JSON bytes to compressed bytes for each, and zstd
level 1's decompression (the worker's reads).
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections.abc import Callable

import zstandard

from bench.core import _Core
from bench.figures import print_figures
from bench.loadgen import generate
from progress.decode import decode_event
from streams.state_codec import COMPRESS_FROM_BYTES, state_json


def large_states(users: int, courses: int, events: int, seed: int) -> list[bytes]:
    """The JSON of the workload's states at its end that the worker stores compressed."""
    core = _Core()
    for record in generate(users, courses, events, seed).records:
        for outcome in core.derive(decode_event(record.kind, record.key, record.value)):
            core.states[outcome.state.user_id] = outcome.state
    found = (state_json(state) for state in core.states.values())
    return [raw for raw in found if len(raw) >= COMPRESS_FROM_BYTES]


def measure(states: list[bytes], repeat: int) -> dict[str, float]:
    total = sum(map(len, states))
    codecs: dict[str, Callable[[bytes], bytes]] = {
        "zlib1": lambda raw: zlib.compress(raw, 1),
        "zlib6": lambda raw: zlib.compress(raw, 6),
        "zstd1": zstandard.ZstdCompressor(level=1).compress,
        "zstd3": zstandard.ZstdCompressor(level=3).compress,
    }
    figures: dict[str, float] = {"states": len(states), "json_bytes_mean": total / len(states)}
    for name, compress in codecs.items():
        best = float("inf")
        for _ in range(repeat):
            started = time.process_time()
            out = [compress(raw) for raw in states]
            best = min(best, time.process_time() - started)
        figures[f"{name}_us_per_state"] = round(best * 1e6 / len(states), 1)
        figures[f"{name}_ratio"] = round(total / sum(map(len, out)), 2)
    compressor, decompressor = zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor()
    stored = [compressor.compress(raw) for raw in states]
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for value in stored:
            decompressor.decompress(value)
        best = min(best, time.process_time() - started)
    figures["zstd1_decompress_us_per_state"] = round(best * 1e6 / len(states), 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="compressing the workload's large states")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--courses", type=int, default=50)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    states = large_states(args.users, args.courses, args.events, args.seed)
    if not states:
        raise SystemExit(f"no state of {COMPRESS_FROM_BYTES} bytes or more in this workload")
    params = {k: getattr(args, k) for k in ("users", "courses", "events", "seed", "repeat")}
    print_figures("compression", params, measure(states, args.repeat))


if __name__ == "__main__":
    main()
