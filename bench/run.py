"""The benchmark: one command, one seeded workload, every measurement on it, side by side.

    .venv/bin/python -m bench.run [--users N] [--courses M] [--events E] [--seed S] [--quick]
                                  [--profile] [--only SECTION ...]

Assumes the stack is up (``scripts/stack.sh up``; ``scripts/bench.sh`` does it all). A run
works in its own corner of the shared stack (bench/env.py): topics under
``bench-<run id>.``, its own consumer groups, its own database (``progress_bench_<run id>``),
Redis db 1; its topics and database are deleted at the end. It produces the workload once, then
runs each section of ``SECTIONS`` in order, prints a table of events/s, CPU µs per event,
mean batch and state writes per event of the worker, the core and every peer, the worker's
ratio to each peer and of two workers to one, the stored state sizes, and issue 12's
targets, and writes everything to ``bench/results/latest.json`` (and a copy named by the
run's time).
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
    faust_overhead,
    freshness,
    naive_peer,
    pipeline,
    quix_peer,
    sink_rows,
    state_recovery,
    two_workers,
)
from bench.env import BenchEnv, cleanup, create_env, prepare
from bench.loadgen import Workload, generate, produce, self_check
from bench.offsets import Offsets
from bench.priming import prime

log = logging.getLogger("bench")

RESULTS = Path(__file__).parent / "results"


@dataclass(slots=True)
class Context:
    """What a section gets: the run's corner of the stack, the workload, the options."""

    env: BenchEnv
    workload: Workload
    args: argparse.Namespace
    results: dict[str, Any] = field(default_factory=dict)
    # The snapshot topic's end after the worker handled the courses alone (bench/priming.py).
    primed: Offsets = field(default_factory=dict)


Measure = Callable[[Context], Awaitable[dict[str, Any]]]


async def _ceiling(ctx: Context) -> dict[str, Any]:
    return await ceiling.measure(ctx.env)


async def _core(ctx: Context) -> dict[str, Any]:
    return await core.measure(ctx.workload)


async def _pipeline(ctx: Context) -> dict[str, Any]:
    profile = RESULTS / "worker.pyspy" if ctx.args.profile else None
    return await pipeline.measure(ctx.env, ctx.primed, profile=profile)


async def _faust_floor(ctx: Context) -> dict[str, Any]:
    return await faust_floor.measure(ctx.env)


async def _faust_overhead(ctx: Context) -> dict[str, Any]:
    return await faust_overhead.measure(ctx.env)


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
        rate=ctx.args.freshness_rate,
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


async def _two_workers(ctx: Context) -> dict[str, Any]:
    return await two_workers.measure(ctx.env, ctx.workload)


# Run in this order; freshness needs the pipeline's worker state. New sections go here.
SECTIONS: list[tuple[str, Measure]] = [
    ("ceiling", _ceiling),
    ("core", _core),
    ("pipeline", _pipeline),
    ("faust_floor", _faust_floor),
    ("faust_overhead", _faust_overhead),
    ("naive_peer", _naive),
    ("quix_peer", _quix),
    ("freshness", _freshness),
    ("sink_rows", _sink_rows),
    ("api_load", _api_load),
    ("course_views", _course_views),
    ("state_recovery", _state_recovery),
    ("two_workers", _two_workers),
]


def _value(results: dict[str, Any], section: str, name: str) -> float | None:
    found = results.get(section, {}).get(name)
    return float(found) if isinstance(found, int | float) and not isinstance(found, bool) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# The peers the worker's events/s is set against: (short name, label, section, figure).
PEERS = [
    ("ceiling", "ceiling (aiokafka read + decode_event)", "ceiling", "events_per_s"),
    ("Faust floor", "Faust floor: worker's I/O, no domain work", "faust_floor", "events_per_s"),
    ("naive peer", "peer 1: naive, one upsert per event", "naive_peer", "events_per_s"),
    ("Quix Streams", "peer 2: Quix Streams roll-up", "quix_peer", "events_per_s"),
]


def ratios(results: dict[str, Any]) -> list[tuple[str, float | None]]:
    """The worker's events/s over each peer's, and two workers' over one's."""
    worker = _value(results, "pipeline", "worker_events_per_s")
    rows = [
        (f"worker / {short}", _ratio(worker, _value(results, section, name)))
        for short, _, section, name in PEERS
    ]
    two = _value(results, "two_workers", "events_per_s")
    rows.append(("two workers / one worker", _ratio(two, worker)))
    return rows


def targets(results: dict[str, Any]) -> list[tuple[str, float | None, str, bool | None]]:
    """(target, measured, threshold, met) for issue 12's targets this run measured."""
    worker = _value(results, "pipeline", "worker_events_per_s")
    rows: list[tuple[str, float | None, str, bool | None]] = []

    def at_least(name: str, measured: float | None, wanted: float) -> None:
        met = None if measured is None else measured >= wanted
        rows.append((name, measured, f">= {wanted:g}", met))

    def at_most(name: str, measured: float | None, wanted: float) -> None:
        met = None if measured is None else measured <= wanted
        rows.append((name, measured, f"<= {wanted:g}", met))

    at_least(
        "worker / Faust floor", _ratio(worker, _value(results, "faust_floor", "events_per_s")), 0.5
    )
    at_least(
        "worker / naive peer", _ratio(worker, _value(results, "naive_peer", "events_per_s")), 2
    )
    at_most("core CPU us per event", _value(results, "core", "cpu_us_per_event"), 150)
    at_most("worker CPU us per event", _value(results, "pipeline", "worker_cpu_us_per_event"), 300)
    p99 = _value(results, "freshness", "p99_ms")
    load = _value(results, "freshness", "load_events_per_s")
    # At 1,000 events/s: a p99 under a lighter load does not count.
    fresh = None if p99 is None or load is None else p99 <= 500 and load >= 950
    rows.append(("freshness p99 ms @1000 ev/s", p99, "<= 500", fresh))
    at_least("sink rows/s, batched", _value(results, "sink_rows", "batched_rows_per_s"), 70_000)
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
    print(
        f"{'measurement':<42} {'events/s':>10} {'worker x':>9} {'CPU us/ev':>10} "
        f"{'mean batch':>10} {'writes/ev':>9}"
    )
    # (label, section, events/s figure, CPU µs/event, mean batch, state writes per event)
    rows = [
        (PEERS[0][1], "ceiling", "events_per_s", "cpu_us_per_event", "", ""),
        (
            "core: decode + derive + encode, no Kafka",
            "core",
            "events_per_s",
            "cpu_us_per_event",
            "batch",
            "state_writes_per_event",
        ),
        (
            "worker: to tables + published",
            "pipeline",
            "worker_events_per_s",
            "worker_cpu_us_per_event",
            "worker_mean_batch",
            "worker_state_writes_per_event",
        ),
        (
            "two workers, one group, same input",
            "two_workers",
            "events_per_s",
            "cpu_us_per_event",
            "worker1_mean_batch",
            "worker1_state_writes_per_event",
        ),
        (
            "pipeline: worker then sink, to PostgreSQL",
            "pipeline",
            "to_postgres_events_per_s",
            "",
            "",
            "",
        ),
        (
            PEERS[1][1],
            "faust_floor",
            "events_per_s",
            "cpu_us_per_event",
            "mean_batch",
            "writes_per_event",
        ),
        (PEERS[2][1], "naive_peer", "events_per_s", "cpu_us_per_event", "", ""),
        (PEERS[3][1], "quix_peer", "events_per_s", "cpu_us_per_event", "", ""),
    ]

    def shown(section: str, name: str, form: str) -> str:
        value = _value(results, section, name) if name else None
        return "-" if value is None else format(value, form)

    for label, section, name, cpu, batch, writes in rows:
        rate = _value(results, section, name)
        times = (
            f"{worker / rate:.3g}"
            if worker and rate and section not in ("pipeline", "two_workers")
            else ""
        )
        print(
            f"{label:<42} {shown(section, name, ',.0f'):>10} {times:>9} "
            f"{shown(section, cpu, ',.0f'):>10} {shown(section, batch, ',.1f'):>10} "
            f"{shown(section, writes, '.3f'):>9}"
        )
    sizes = [shown("pipeline", f"state_bytes_{q}", ",.0f") for q in ("p50", "p99", "max")]
    print("worker's learner states as stored (changelog), bytes p50/p99/max: " + "/".join(sizes))
    print(
        "ratios: "
        + ", ".join(f"{name} {'-' if r is None else f'{r:.3g}'}" for name, r in ratios(results))
    )
    fresh = results.get("freshness", {})
    if "p99_ms" in fresh:
        print(
            f"freshness at {fresh['load_events_per_s']:,.0f} events/s: p50 "
            f"{fresh['p50_ms']:.0f} ms, p99 {fresh['p99_ms']:.0f} ms ({fresh['probes']:.0f} probes)"
        )
    if "worker_lag_max" in fresh:
        # Growing to the end: the pipeline did not keep up (bench/lag.py).
        print(
            "freshness lag, records (max, at the end): "
            f"worker {fresh['worker_lag_max']:,.0f}, {fresh['worker_lag_end']:,.0f}; "
            f"sink {fresh['sink_lag_max']:,.0f}, {fresh['sink_lag_end']:,.0f}"
        )
        print(f"  worker lag over time (s:records): {fresh['worker_lag_timeline']}")
    if "worker_mean_batch" in fresh:
        print(
            f"freshness worker batches: mean {fresh['worker_mean_batch']:.1f} events, "
            f"{fresh['worker_state_writes_per_event']:.3f} state writes per event"
        )
    print()
    print(f"{'target':<28} {'measured':>10} {'wanted':>9}  met")
    for name, measured, wanted, met in targets(results):
        text = "-" if measured is None else f"{measured:,.2f}"
        verdict = "-" if met is None else ("met" if met else "NOT met")
        print(f"{name:<28} {text:>10} {wanted:>9}  {verdict}")
    for section, figures in results.items():
        if section in {
            "ceiling",
            "pipeline",
            "naive_peer",
            "quix_peer",
            "freshness",
            "two_workers",
        }:
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
        bootstrap, topics = env.settings.kafka_bootstrap, env.settings.topics
        primed: Offsets = {}
        if not args.only or {"pipeline", "freshness"} & set(args.only):
            # The courses before the activity, and the worker on them alone (bench/priming.py).
            primed = await prime(env, env.settings, workload.course_records, name="worker-priming")
        else:
            await produce(bootstrap, topics, workload.course_records)
        report["produce"] = await produce(bootstrap, topics, workload.activity)
        ctx = Context(
            env=env, workload=workload, args=args, results=report["results"], primed=primed
        )
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
        await cleanup(env, base, keep_work_dir=args.keep)
    report["targets"] = [
        {"target": t, "measured": m, "wanted": w, "met": ok}
        for t, m, w, ok in targets(report["results"])
    ]
    report["ratios"] = dict(ratios(report["results"]))
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
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small run: 2,000 learners, 20 courses, 20,000 events",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the worker")
    parser.add_argument("--only", nargs="*", help="run only these sections")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    parser.add_argument("--api-port", type=int, default=18180)
    parser.add_argument("--naive-seconds", type=float, default=30.0)
    parser.add_argument("--freshness-seconds", type=float, default=30.0)
    parser.add_argument(
        "--freshness-rate",
        type=float,
        default=1000.0,
        help="events/s of the freshness load (issue 12's target is at 1,000)",
    )
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
