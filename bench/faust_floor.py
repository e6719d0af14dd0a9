"""Peer 3, the Faust floor: a Faust agent with the worker's input and output, and no domain work.

What the worker would cost if deriving progress were free: the rest is Faust's own per-event
cost with this worker's I/O shape, the floor the worker is compared with (issue 12). The
application (``run_app``, a subprocess run as ``python -m bench.faust_floor``) is built with
the worker's settings (``streams.app.create_app``): raw bytes topics, the same producer
(acks, linger, batch size, max request size), ``processing_guarantee="at_least_once"``, the
same store, the worker's fixes to Faust's consumer (``streams.faust_fixes``) and its direct
producer path (``streams.records.Records``). One agent reads every input topic of the
workload in the worker's batches (``streams.batching.stream_batches``, acknowledged once handled)
and, reading
nothing of an event but its key, does what the worker's effects do (``streams.effects``):

1. per event, one ~240-byte record to an output topic; their deliveries awaited together;
2. per key and batch, one ~4 KB write to a changelog-backed Table (``value_type=bytes``, like
   the worker's ``learners``), made in the partition of the key's last event of the batch;
3. per key and batch, one ~4 KB snapshot record; their deliveries awaited.

Timed like the worker (bench/pipeline.py): from the CreateTime of its first snapshot record to
the moment its consumer group has committed the end of every input partition. Its CPU time
(user and system, every thread) is read off the same window (``bench.pipeline.CpuClock``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from contextlib import aclosing
from pathlib import Path
from typing import Any

from bench.env import BenchEnv, create_topics
from bench.loadgen import KINDS, topic_for
from bench.offsets import end_offsets, first_record_time, total, wait_for_group
from bench.pipeline import CpuClock
from bench.services import Service

APP_NAME = "faust-floor"
# The sizes of the worker's records on the benchmark's workload: a published event (a
# ProgressUpdated is about 240 bytes) and a learner's state and snapshot (a few KB).
PUBLISHED_BYTES = 240
STATE_BYTES = 4096
SNAPSHOT_BYTES = 4096
# Logged by the app on a timer and at its end; the last one gives the mean batch.
_COUNTS = re.compile(r"faust floor: (\d+) events in (\d+) batches, (\d+) table writes")

log = logging.getLogger(__name__)


# ``worker``: as the worker runs (its settings' Monitor); the others are bench/faust_overhead.py's:
# ``full`` with Faust's stock Monitor, ``quiet`` with streams.monitor.QuietMonitor,
# ``no_table`` quiet without the table writes, ``drain`` quiet and only acking each batch.
VARIANTS = ("worker", "full", "quiet", "no_table", "drain")


def names(prefix: str, variant: str = "worker") -> tuple[str, str, str]:
    """The app id (also its consumer group), its published-events topic, its snapshot topic."""
    app_id = f"{prefix}{APP_NAME}" + ("" if variant == "worker" else f"-{variant}")
    return app_id, f"{app_id}.published", f"{app_id}.snapshots"


async def measure(
    env: BenchEnv, *, within: float = 900.0, variant: str = "worker"
) -> dict[str, float]:
    settings = env.settings
    bootstrap = settings.kafka_bootstrap
    inputs = [topic_for(settings.topics, kind) for kind in KINDS]
    group, published, snapshots = names(settings.topic_prefix, variant)
    await create_topics(env, [published, snapshots])
    target = await end_offsets(bootstrap, inputs)
    app = Service(
        [
            sys.executable,
            "-m",
            "bench.faust_floor",
            "--variant",
            variant,
            "--data-dir",
            str(env.work_dir / f"faust-floor-{variant}-state"),
            *inputs,
        ],
        env.process_env(),
        env.work_dir / "logs" / f"faust-floor-{variant}.log",
    )
    clock = CpuClock.start(app.pid)
    try:
        done = await wait_for_group(bootstrap, group, target, within=within, alive=app.alive)
    finally:
        clock.stop()  # its last sample is taken now, after ``done``
        app.stop()
    first = await first_record_time(bootstrap, snapshots)
    if first is None:
        raise RuntimeError(f"the Faust floor wrote no snapshots; see {app.log_path}")
    seconds = done - first
    events = total(target)
    figures = {
        "events": float(events),
        "seconds": seconds,
        "events_per_s": events / seconds,
        "cpu_us_per_event": clock.between(first, done) * 1e6 / events,
        "startup_seconds": first - app.started,
        "published_events": float(total(await end_offsets(bootstrap, [published]))),
        "snapshots": float(total(await end_offsets(bootstrap, [snapshots]))),
    }
    counts = _COUNTS.findall(app.log_text())
    if counts:
        handled, batches, writes = (int(n) for n in counts[-1])
        figures["mean_batch"] = handled / batches if batches else 0.0
        figures["writes_per_event"] = writes / handled if handled else 0.0
    return figures


def run_app(inputs: list[str], data_dir: str, variant: str = "worker") -> None:
    import faust
    from faust.sensors import Monitor
    from faust.types import EventT

    from adapters.collector import tune_collector
    from adapters.settings import Settings
    from streams import faust_fixes
    from streams.app import app_options
    from streams.batching import stream_batches
    from streams.monitor import QuietMonitor
    from streams.records import Records, delivered, halt
    from streams.tables import partition_of, write

    settings = Settings()
    app_id, published_name, snapshots_name = names(settings.topic_prefix, variant)
    faust_fixes.apply()
    tune_collector(settings.worker_gc_threshold)  # as the worker's process (service/cli.py)
    # As streams.app.create_app, but for the app id and the data dir (and the variant's Monitor).
    options = app_options(settings)
    if variant == "full":
        options["Monitor"] = Monitor
    elif variant != "worker":
        options["Monitor"] = QuietMonitor
    app = faust.App(app_id, datadir=data_dir, **options)

    def topic(*topic_names: str) -> faust.TopicT:
        return app.topic(*topic_names, key_type=bytes, value_type=bytes)

    source = topic(*inputs)
    published = topic(published_name)
    snapshots = topic(snapshots_name)
    learners = app.Table(
        "learners",
        default=None,
        key_type=str,
        value_type=bytes,
        partitions=settings.topic_partitions,
    )
    records = Records(app)
    event_value = b"p" * PUBLISHED_BYTES
    state_value = b"s" * STATE_BYTES
    snapshot_value = b"n" * SNAPSHOT_BYTES
    counts = {"events": 0, "batches": 0, "writes": 0}

    async def handle(events: list[EventT]) -> None:
        if variant == "drain":
            if not counts["batches"]:  # one record, the start the run is timed from
                await delivered([await records.send(snapshots, b"start", snapshot_value)])
            counts["events"] += len(events)
            counts["batches"] += 1
            return
        deliveries = []
        last: dict[bytes, EventT] = {}  # in the order of each key's first event
        for event in events:
            key = event.message.key or b""
            deliveries.append(await records.send(published, key, event_value))
            last[key] = event
        await delivered(deliveries)
        for key, event in last.items():
            if variant == "no_table":
                break
            with partition_of(event):
                write(learners, key.decode(errors="replace"), state_value)
        sent = [await records.send(snapshots, key, snapshot_value) for key in last]
        await delivered(sent)
        counts["events"] += len(events)
        counts["batches"] += 1
        counts["writes"] += 0 if variant == "no_table" else len(last)

    @app.agent(source, name="floor_events")
    async def floor_events(stream: faust.StreamT[bytes]) -> None:
        # As the worker's learner agent (streams/app.py).
        stream.enable_acks = False
        gathered = stream_batches(stream, settings)
        async with aclosing(gathered):
            async for events in gathered:
                try:
                    await handle(events)
                except Exception as error:
                    halt(error)
                for event in events:
                    await stream.ack(event)

    def report() -> None:
        print(
            f"faust floor: {counts['events']} events in {counts['batches']} batches, "
            f"{counts['writes']} table writes",
            flush=True,
        )

    @app.timer(interval=1.0)
    async def report_counts() -> None:
        report()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    def report_at_end(sender: Any, **kwargs: Any) -> None:
        report()

    worker = faust.Worker(app, loglevel="warning", loop=asyncio.new_event_loop())
    worker.execute_from_commandline()


def main() -> None:
    parser = argparse.ArgumentParser(description="the Faust floor peer")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--variant", choices=VARIANTS, default="worker")
    parser.add_argument("inputs", nargs="+")
    args = parser.parse_args()
    run_app(args.inputs, str(args.data_dir), args.variant)


if __name__ == "__main__":
    main()
