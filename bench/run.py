"""The benchmark: one command, one seeded workload, every measurement on it, side by side.

    .venv/bin/python -m bench.run [--users N] [--courses M] [--events E] [--seed S] [--quick]
                                  [--profile] [--only SECTION ...]

Assumes the stack is up (``scripts/stack.sh up``; ``scripts/bench.sh`` does it all). A run
works in its own corner of the shared stack (bench/env.py): topics under
``bench-<run id>.``, its own consumer groups, the ``progress_bench`` database (created
afresh), Redis db 1; its topics are deleted at the end. It produces the workload once, then
runs each section of ``SECTIONS`` in order, prints a table with the pipeline's ratios to the
ceiling and the peers and the issue's targets, and writes everything to
``bench/results/latest.json`` (and a copy named by the run's time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.settings import Settings
from bench import (
    api_load,
    ceiling,
    core,
    course_views,
    faust_floor,
    freshness,
    naive_peer,
    pipeline,
    quix_peer,
    sink_rows,
    state_recovery,
)
from bench.env import BenchEnv, cleanup, create_env, prepare
from bench.loadgen import Workload, generate, produce, self_check

log = logging.getLogger("bench")

RESULTS = Path(__file__).parent / "results"


@dataclass(slots=True)
class Context:
    """What a section gets: the run's corner of the stack, the workload, the options."""

    env: BenchEnv
    workload: Workload
    args: argparse.Namespace
    results: dict[str, Any] = field(default_factory=dict)


Measure = Callable[[Context], Awaitable[dict[str, Any]]]


async def _ceiling(ctx: Context) -> dict[str, Any]:
    return await ceiling.measure(ctx.env)


async def _core(ctx: Context) -> dict[str, Any]:
    return await core.measure(ctx.workload)


async def _pipeline(ctx: Context) -> dict[str, Any]:
    profile = RESULTS / "worker.pyspy" if ctx.args.profile else None
    return await pipeline.measure(ctx.env, profile=profile)


async def _faust_floor(ctx: Context) -> dict[str, Any]:
    return await faust_floor.measure(ctx.env)


async def _naive(ctx: Context) -> dict[str, Any]:
    return await naive_peer.measure(ctx.env, budget=ctx.args.naive_seconds)


async def _quix(ctx: Context) -> dict[str, Any]:
    return await quix_peer.measure(ctx.env, ctx.workload.courses)


async def _freshness(ctx: Context) -> dict[str, Any]:
    # After the pipeline section: the worker resumes on its state, the sink at its offsets.
    return await freshness.measure(
        ctx.env,
        ctx.workload.courses,
        seed=ctx.args.seed + 1,
        seconds=ctx.args.freshness_seconds,
    )


async def _sink_rows(ctx: Context) -> dict[str, Any]:
    if ctx.args.quick:  # the sizes of ``python -m bench.sink_rows --quick``
        return await sink_rows.measure(learners=400, per_row_rows=3000)
    return await sink_rows.measure()


async def _api_load(ctx: Context) -> dict[str, Any]:
    if ctx.args.quick:  # as ``python -m bench.api_load --quick``
        quick = api_load.Plan(
            seconds=5.0, per_endpoint_seconds=0.0, rate_seconds=8.0, rate_repeats=1
        )
        return await api_load.measure(500, quick)
    return await api_load.measure()


async def _course_views(ctx: Context) -> dict[str, Any]:
    if ctx.args.quick:  # as ``python -m bench.course_views --quick``
        return await course_views.measure(learners=1000, seconds=5.0)
    return await course_views.measure()


async def _state_recovery(ctx: Context) -> dict[str, Any]:
    if ctx.args.quick:  # as ``python -m bench.state_recovery --quick``
        return await state_recovery.measure(keys=100_000, built=1000)
    return await state_recovery.measure()


# Run in this order; freshness needs the pipeline's worker state. New sections go here.
SECTIONS: list[tuple[str, Measure]] = [
    ("ceiling", _ceiling),
    ("core", _core),
    ("pipeline", _pipeline),
    ("faust_floor", _faust_floor),
    ("naive_peer", _naive),
    ("quix_peer", _quix),
    ("freshness", _freshness),
    ("sink_rows", _sink_rows),
    ("api_load", _api_load),
    ("course_views", _course_views),
    ("state_recovery", _state_recovery),
]


def _value(results: dict[str, Any], section: str, name: str) -> float | None:
    found = results.get(section, {}).get(name)
    return float(found) if isinstance(found, int | float) and not isinstance(found, bool) else None


def targets(results: dict[str, Any]) -> list[tuple[str, float | None, str, bool | None]]:
    """(target, measured, threshold, met) for the issue's targets this run measured."""
    worker = _value(results, "pipeline", "worker_events_per_s")
    ceiling_rate = _value(results, "ceiling", "events_per_s")
    quix = _value(results, "quix_peer", "events_per_s")
    naive = _value(results, "naive_peer", "events_per_s")
    p99 = _value(results, "freshness", "p99_ms")

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    rows: list[tuple[str, float | None, str, bool | None]] = []
    share = ratio(worker, ceiling_rate)
    rows.append(("pipeline / ceiling", share, ">= 0.50", None if share is None else share >= 0.5))
    floor = ratio(worker, _value(results, "faust_floor", "events_per_s"))
    at_floor = None if floor is None else floor >= 0.5
    rows.append(("pipeline / Faust floor", floor, ">= 0.50", at_floor))
    ahead = ratio(worker, quix)
    rows.append(("pipeline / Quix Streams", ahead, "> 1", None if ahead is None else ahead > 1))
    times = ratio(worker, naive)
    rows.append(("pipeline / naive peer", times, ">= 10", None if times is None else times >= 10))
    core_us = _value(results, "core", "cpu_us_per_event")
    rows.append(
        ("core CPU us per event", core_us, "<= 150", None if core_us is None else core_us <= 150)
    )
    rows.append(("freshness p99 (ms)", p99, "<= 1000", None if p99 is None else p99 <= 1000))
    sink = _value(results, "sink_rows", "batched_rows_per_s")
    rows.append(("sink rows/s, batched", sink, ">= 50000", None if sink is None else sink >= 50000))
    cached = _value(results, "api_load", "fixed_rate_cached_p99_ms")
    rate = _value(results, "api_load", "fixed_rate_cached_requests_per_s")
    held = None if cached is None or rate is None else cached <= 5 and rate >= 1900
    rows.append(("cached API p99 ms @2000/s", cached, "<= 5", held))
    return rows


def print_report(report: dict[str, Any]) -> None:
    results = report["results"]
    params = report["params"]
    print()
    print(
        f"bench {report['run_id']} {report['date']}: "
        + ", ".join(f"{k}={v}" for k, v in params.items())
    )
    produced = report["produce"]
    print(f"load generator: {produced['events_per_s']:,.0f} events/s produced")
    worker = _value(results, "pipeline", "worker_events_per_s")
    print()
    print(f"{'measurement':<42} {'events/s':>12} {'pipeline x':>11}")
    rows = [
        ("ceiling (aiokafka read + decode_event)", "ceiling", "events_per_s"),
        ("core: decode + derive + encode, no Kafka", "core", "events_per_s"),
        ("pipeline: worker, to tables + published", "pipeline", "worker_events_per_s"),
        ("pipeline: worker then sink, to PostgreSQL", "pipeline", "to_postgres_events_per_s"),
        ("Faust floor: worker's I/O, no domain work", "faust_floor", "events_per_s"),
        ("peer 1: naive, one upsert per event", "naive_peer", "events_per_s"),
        ("peer 2: Quix Streams roll-up", "quix_peer", "events_per_s"),
    ]
    for label, section, name in rows:
        rate = _value(results, section, name)
        if rate is None:
            print(f"{label:<42} {'-':>12} {'-':>11}")
            continue
        times = f"{worker / rate:.2f}" if worker and section != "pipeline" else ""
        print(f"{label:<42} {rate:>12,.0f} {times:>11}")
    cpu = [
        f"{label} {us:,.0f}"
        for label, section, name in (
            ("worker", "pipeline", "worker_cpu_us_per_event"),
            ("Faust floor", "faust_floor", "cpu_us_per_event"),
        )
        if (us := _value(results, section, name)) is not None
    ]
    if cpu:
        print("CPU µs per event: " + ", ".join(cpu))
    fresh = results.get("freshness", {})
    if "p99_ms" in fresh:
        print(
            f"freshness at {fresh['load_events_per_s']:,.0f} events/s: p50 "
            f"{fresh['p50_ms']:.0f} ms, p99 {fresh['p99_ms']:.0f} ms ({fresh['probes']:.0f} probes)"
        )
    print()
    print(f"{'target':<28} {'measured':>10} {'wanted':>9}  met")
    for name, measured, wanted, met in targets(results):
        shown = "-" if measured is None else f"{measured:,.2f}"
        verdict = "-" if met is None else ("met" if met else "NOT met")
        print(f"{name:<28} {shown:>10} {wanted:>9}  {verdict}")
    for section, figures in results.items():
        if section in {"ceiling", "pipeline", "naive_peer", "quix_peer", "freshness"}:
            continue
        print(f"\n{section}:")
        for name, value in figures.items():
            print(f"  {name:<36} {value}")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Settings()
    env = create_env(base, api_port=args.api_port)
    log.info("run %s: topics %s*, work dir %s", env.run_id, env.settings.topic_prefix, env.work_dir)
    report: dict[str, Any] = {
        "run_id": env.run_id,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": _cpus(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "params": {
            "users": args.users,
            "courses": args.courses,
            "events": args.events,
            "seed": args.seed,
            "quick": args.quick,
        },
        "results": {},
    }
    try:
        await prepare(env, base)
        started = time.perf_counter()
        workload = generate(args.users, args.courses, args.events, args.seed)
        checked = self_check(workload)
        log.info(
            "generated %d records in %.1fs (%d decoded as a check): %s",
            len(workload.records),
            time.perf_counter() - started,
            checked,
            workload.counts(),
        )
        report["workload"] = workload.counts()
        report["produce"] = await produce(
            env.settings.kafka_bootstrap, env.settings.topics, workload.records
        )
        ctx = Context(env=env, workload=workload, args=args, results=report["results"])
        for name, measure in SECTIONS:
            if args.only and name not in args.only:
                continue
            log.info("section %s", name)
            section_started = time.perf_counter()
            try:
                ctx.results[name] = await measure(ctx)
            except Exception as error:
                # One broken section must not lose the others' figures.
                log.exception("section %s failed", name)
                ctx.results[name] = {"error": f"{type(error).__name__}: {error}"}
            log.info(
                "section %s: %.0fs %s",
                name,
                time.perf_counter() - section_started,
                ctx.results[name],
            )
    finally:
        await cleanup(env, keep_work_dir=args.keep)
    report["targets"] = [
        {"target": t, "measured": m, "wanted": w, "met": ok}
        for t, m, w, ok in targets(report["results"])
    ]
    return report


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--courses", type=int, default=50)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true", help="a small run, about 4 minutes")
    parser.add_argument("--profile", action="store_true", help="py-spy the worker")
    parser.add_argument("--only", nargs="*", help="run only these sections")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    parser.add_argument("--api-port", type=int, default=18180)
    parser.add_argument("--naive-seconds", type=float, default=30.0)
    parser.add_argument("--freshness-seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.quick:
        args.users, args.courses, args.events = 2000, 20, 20_000
        args.naive_seconds, args.freshness_seconds = 5.0, 10.0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("aiokafka", "quixstreams"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    report = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    (RESULTS / "latest.json").write_text(text)
    (RESULTS / f"{report['run_id']}.json").write_text(text)
    print_report(report)
    if args.profile and (RESULTS / "worker.pyspy").exists():
        from bench.profile import summarize

        print("\nworker profile, top own costs (% of samples):")
        for frame, pct in summarize(RESULTS / "worker.pyspy", 15)["own"]:
            print(f"  {pct:5.1f}  {frame}")


if __name__ == "__main__":
    main()
