"""The pipeline: the real ``progress worker``, then the real ``progress sink``, on the
pre-produced input, each a subprocess with the run's settings. The worker's courses were
handled before the activity was produced (``bench.priming``), so the events counted and
timed here are the learners'.

Worker, events/s to committed table updates and published events. The worker runs alone
(no sink competing for the 2 cores, as the ceiling ran alone). Its consumer group commits an
input offset only after Faust flushed everything the events before it produced: the
published events, the table changelog writes and the snapshots (``processing_guarantee=
at_least_once``; streams/effects.py). So the moment the group's committed offsets reach
the end of every input partition (and of the catalog broadcast, whose records the worker
writes itself) is the moment every table update and published event of the input is
durable in Kafka. It is timed from the CreateTime of the first snapshot the worker wrote
(its process start, group join and table recovery excluded) to that moment, polled every
0.2 s, so the figure also pays for up to one Faust commit interval (2.8 s) at the end. Its
CPU time per event is read off the same window (``CpuClock``). Then the size of each
learner's newest state in the ``learners`` changelog, as stored (p50, p99, max).

Sink, events/s to committed PostgreSQL snapshots. The sink then starts on the finished
snapshot topic and is timed from its "sink consuming" log line to the moment its group
has committed the end of every partition of ``progress.snapshots`` (it commits only after
the PostgreSQL transaction and the Redis update of the batch). The end-to-end figure,
input events over worker time plus sink time, is a serial lower bound: deployed, the two
run at once and overlap.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from adapters.topics import published_topics
from bench.env import BenchEnv
from bench.loadgen import KINDS, topic_for
from bench.offsets import Offsets, end_offsets, first_record_time, total, wait_for_group
from bench.services import Service
from bench.stored_states import percentiles, stored_state_sizes

PY_SPY = Path(sys.executable).parent / "py-spy"


async def measure(
    env: BenchEnv, primed: Offsets, *, within: float = 900.0, profile: Path | None = None
) -> dict[str, float]:
    """``primed``: the snapshot topic's end offsets after ``bench.priming.prime`` ran the
    worker on the courses alone; what it wrote there is not this section's."""
    settings = env.settings
    t = settings.topics
    bootstrap = settings.kafka_bootstrap
    inputs = await end_offsets(bootstrap, [topic_for(t, kind) for kind in KINDS])
    courses = await end_offsets(bootstrap, [topic_for(t, "course-updates")])
    events = total(inputs) - total(courses)  # the courses were handled in the priming

    worker = Service.progress(env, "worker")
    clock = CpuClock.start(worker.pid)
    profiler = _profile(worker.pid, profile) if profile else None
    try:
        group = f"{t.prefix}{settings.worker_app_id}"
        await wait_for_group(bootstrap, group, inputs, within=within, alive=worker.alive)
        # The broadcast copies of the courses are written by the worker itself, early on.
        broadcast = await end_offsets(bootstrap, [t.catalog_broadcast])
        done = await wait_for_group(bootstrap, group, broadcast, within=60, alive=worker.alive)
    finally:
        clock.stop()  # its last sample is taken now, after ``done``
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            await asyncio.to_thread(profiler.wait)
        worker.stop()
    first = await first_record_time(bootstrap, t.snapshots, after=primed)
    if first is None:
        raise RuntimeError(f"the worker wrote no snapshots; see {worker.log_path}")
    worker_s = done - first
    batching = worker_batching(worker.log_text())
    states = percentiles(await stored_state_sizes(settings), "state_bytes")
    snapshots = total(await end_offsets(bootstrap, [t.snapshots])) - total(primed)
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
        "worker_cpu_us_per_event": clock.between(first, done) * 1e6 / events,
        "worker_startup_seconds": first - worker.started,
        "published_events": float(published),
        "snapshots": float(snapshots),
        "sink_seconds": sink_s,
        "sink_snapshots_per_s": snapshots / sink_s,
        "to_postgres_events_per_s": events / (worker_s + sink_s),
        **batching,
        **states,
    }


# The worker's report line (streams/app.py), logged every 30 s and on shutdown: its last one
# covers the whole run.
_REPORT = re.compile(
    r"(\d+) batches of ([\d.]+) events on average, ([\d.]+) learner-state writes per event"
)


def worker_batching(log_text: str) -> dict[str, float]:
    """The worker's mean batch and learner-state writes per event, from its last report;
    nothing when it logged none."""
    found = _REPORT.findall(log_text)
    if not found:
        return {}
    batches, mean, writes = found[-1]
    return {
        "worker_batches": float(batches),
        "worker_mean_batch": float(mean),
        "worker_state_writes_per_event": float(writes),
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


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far, all its threads (Linux,
    ``/proc/<pid>/stat``, in clock ticks of 10 ms); ``OSError`` once it has exited."""
    # Fields after the command name (which may hold spaces): utime and stime are the 14th
    # and 15th fields of the line, the 12th and 13th after it.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuClock:
    """The CPU time (user and system, all its threads) a process has used, sampled from
    outside every ``every`` seconds from ``start`` to ``stop``: a window known only
    afterwards (from a record's CreateTime, say) can then be read off with ``between``.

    Linux only (``/proc/<pid>/stat``), in clock ticks (10 ms): over a window of seconds and
    thousands of events the error per event is small.
    """

    def __init__(self, pid: int, every: float) -> None:
        self.pid = pid
        self.every = every
        self._times: list[float] = []
        self._cpu: list[float] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start(cls, pid: int, every: float = 0.1) -> CpuClock:
        clock = cls(pid, every)
        clock._task = asyncio.create_task(clock._run())
        return clock

    def stop(self) -> None:
        """Take a last sample and stop sampling; safe to call twice."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self._sample()

    def between(self, t0: float, t1: float) -> float:
        """CPU seconds used from ``time.time()`` t0 to t1, interpolated between samples."""
        return self._at(t1) - self._at(t0)

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.every)

    def _sample(self) -> None:
        try:
            cpu = cpu_seconds(self.pid)
        except OSError:  # the process has exited
            return
        self._times.append(time.time())
        self._cpu.append(cpu)

    def _at(self, t: float) -> float:
        if not self._times:
            raise RuntimeError(f"no CPU samples of process {self.pid}")
        i = bisect.bisect_left(self._times, t)
        if i == 0:
            return self._cpu[0]
        if i == len(self._times):
            return self._cpu[-1]
        t0, t1 = self._times[i - 1], self._times[i]
        c0, c1 = self._cpu[i - 1], self._cpu[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1
