"""The pipeline: the real ``progress worker``, then the real ``progress sink``, on the
pre-produced input, each a subprocess with the run's settings.

Worker, events/s to committed table updates and published events. The worker runs alone
(no sink competing for the 2 cores, as the ceiling ran alone). Its consumer group commits an
input offset only after Faust flushed everything the events before it produced: the
published events, the table changelog writes and the snapshots (``processing_guarantee=
at_least_once``; streams/effects.py). So the moment the group's committed offsets reach
the end of every input partition (and of the catalog broadcast, whose records the worker
writes itself) is the moment every table update and published event of the input is
durable in Kafka. It is timed from the CreateTime of the first snapshot the worker wrote
(its process start, group join and table recovery excluded) to that moment, polled every
0.2 s, so the figure also pays for up to one Faust commit interval (2.8 s) at the end.

Sink, events/s to committed PostgreSQL snapshots. The sink then starts on the finished
snapshot topic and is timed from its "sink consuming" log line to the moment its group
has committed the end of every partition of ``progress.snapshots`` (it commits only after
the PostgreSQL transaction and the Redis update of the batch). The end-to-end figure,
input events over worker time plus sink time, is a serial lower bound: deployed, the two
run at once and overlap.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

from adapters.topics import published_topics
from bench.env import BenchEnv
from bench.loadgen import KINDS, topic_for
from bench.offsets import end_offsets, first_record_time, total, wait_for_group
from bench.services import Service

PY_SPY = Path(sys.executable).parent / "py-spy"


async def measure(
    env: BenchEnv, *, within: float = 900.0, profile: Path | None = None
) -> dict[str, float]:
    settings = env.settings
    t = settings.topics
    bootstrap = settings.kafka_bootstrap
    inputs = await end_offsets(bootstrap, [topic_for(t, kind) for kind in KINDS])
    events = total(inputs)

    worker = Service.progress(env, "worker")
    profiler = _profile(worker.pid, profile) if profile else None
    try:
        group = f"{t.prefix}{settings.worker_app_id}"
        await wait_for_group(bootstrap, group, inputs, within=within, alive=worker.alive)
        # The broadcast copies of the courses are written by the worker itself, early on.
        broadcast = await end_offsets(bootstrap, [t.catalog_broadcast])
        done = await wait_for_group(bootstrap, group, broadcast, within=60, alive=worker.alive)
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            await asyncio.to_thread(profiler.wait)
        worker.stop()
    first = await first_record_time(bootstrap, t.snapshots)
    if first is None:
        raise RuntimeError(f"the worker wrote no snapshots; see {worker.log_path}")
    worker_s = done - first
    snapshots = total(await end_offsets(bootstrap, [t.snapshots]))
    published = total(await end_offsets(bootstrap, published_topics(t).values()))

    sink = Service.progress(env, "sink")
    try:
        started = await sink.wait_for_log("sink consuming", within=60)
        target = await end_offsets(bootstrap, [t.snapshots])
        sunk = await wait_for_group(
            bootstrap, settings.sink_group_id, target, within=within, alive=sink.alive
        )
    finally:
        sink.stop()
    sink_s = sunk - started
    return {
        "events": float(events),
        "worker_seconds": worker_s,
        "worker_events_per_s": events / worker_s,
        "worker_startup_seconds": first - worker.started,
        "published_events": float(published),
        "snapshots": float(snapshots),
        "sink_seconds": sink_s,
        "sink_snapshots_per_s": snapshots / sink_s,
        "to_postgres_events_per_s": events / (worker_s + sink_s),
    }


def _profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the worker from outside (100 Hz, without pausing it), as collapsed
    stacks that ``bench.profile`` summarizes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
