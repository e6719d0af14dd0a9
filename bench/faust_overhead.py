"""Faust's own costs per event: its Monitor sensor, the per-record drain path, the Table write.

    .venv/bin/python -m bench.faust_overhead [--events N]

1. In process, no Kafka (``monitor_figures``): the sensor hooks Faust calls per event of the
   worker's shape (message in, stream event in and out, message out, one table get and one
   set), through Faust's ``SensorDelegate`` as a stream calls them, with the stock ``Monitor``,
   with ``streams.monitor.QuietMonitor`` and with no sensor: µs per event, the best of 5.
2. In the run (``measure``, a section of bench/run.py): the Faust floor peer
   (bench/faust_floor.py) on the run's input in four variants, each a fresh consumer group,
   CPU µs per event as the floor measures it:
   ``full`` (the worker's I/O shape, stock Monitor), ``quiet`` (the same with QuietMonitor),
   ``no_table`` (quiet, without the table writes) and ``drain`` (quiet, each batch acked and
   nothing else: Faust's per-record path from the fetched record to the agent, and the
   commit). Then: the Monitor's cost per event (full - quiet), the table write path per write
   ((quiet - no_table) / writes per event), the drain path per event (drain).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.env import BenchEnv
from bench.figures import print_figures

VARIANTS = ("full", "quiet", "no_table", "drain")


class _Owner:
    """A stream's task owner, as the Monitor keys it (weakly referenced)."""


class _Stream:
    """What a sensor reads of a stream: hashable, with a task owner."""

    def __init__(self) -> None:
        self.task_owner = _Owner()

    def __str__(self) -> str:
        return "stream"


def _sensor_round(sensors: Any, tp: Any, message: Any, stream: Any, table: Any) -> None:
    # As faust.streams.Stream._c_aiter and the table's __getitem__/__setitem__ call them.
    sensors.on_message_in(tp, 1, message)
    state = sensors.on_stream_event_in(tp, 1, stream, None)
    sensors.on_table_get(table, "k")
    sensors.on_table_set(table, "k", b"v")
    sensors.on_stream_event_out(tp, 1, stream, None, state)
    sensors.on_message_out(tp, 1, message)


def monitor_figures(rounds: int = 50_000) -> dict[str, float]:
    """µs per event of the sensor hooks with each Monitor (module docstring, 1)."""
    import faust
    from faust.sensors import Monitor
    from faust.sensors.base import SensorDelegate
    from faust.types import TP, Message

    from streams.monitor import QuietMonitor

    app = faust.App("bench-faust-overhead", broker="kafka://127.0.0.1:9092")
    table = app.Table("bench-overhead", default=None)
    tp = TP("topic", 0)
    message = Message("topic", 0, 1, 0.0, 0, None, key=b"k", value=b"v", checksum=None)
    stream = _Stream()
    figures: dict[str, float] = {}
    for name, monitor in (
        ("stock", Monitor()),
        ("quiet", QuietMonitor()),
        ("none", None),
    ):
        sensors = SensorDelegate(app)
        if monitor is not None:
            sensors.add(monitor)
        best = float("inf")
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(rounds):
                _sensor_round(sensors, tp, message, stream, table)
            best = min(best, time.process_time() - t0)
        figures[f"sensors_{name}_us_per_event"] = round(best / rounds * 1e6, 2)
    return figures


async def measure(env: BenchEnv) -> dict[str, Any]:
    """The in-process Monitor figures, then the floor's variants on the run's input."""
    from bench import faust_floor

    figures: dict[str, Any] = dict(monitor_figures())
    floors: dict[str, dict[str, float]] = {}
    for variant in VARIANTS:
        floors[variant] = await faust_floor.measure(env, variant=variant)
        for name in ("events_per_s", "cpu_us_per_event", "writes_per_event"):
            if name in floors[variant]:
                figures[f"{variant}_{name}"] = floors[variant][name]

    def cpu(variant: str) -> float:
        return floors[variant]["cpu_us_per_event"]

    figures["monitor_us_per_event"] = cpu("full") - cpu("quiet")
    writes = floors["quiet"].get("writes_per_event") or 0.0
    if writes:
        figures["table_write_us_per_write"] = (cpu("quiet") - cpu("no_table")) / writes
    figures["drain_us_per_event"] = cpu("drain")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50_000)
    args = parser.parse_args()
    print_figures("faust_overhead (sensors, in process)", vars(args), monitor_figures(args.rounds))


if __name__ == "__main__":
    main()
