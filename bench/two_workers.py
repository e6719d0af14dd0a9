"""Two workers against one: the real ``progress worker`` twice, in one consumer group, on the
same workload as the pipeline section's one worker.

The workload is produced again under a topic prefix of this section's own (``<run>.two.``,
deleted with the run's topics), so the two workers start from nothing but the courses, as
the pipeline's worker did (bench/priming.py: one worker handles the courses first), and
nothing another section reads or adds (freshness's load) is in their way. Both processes
start at once, as a deploy would start them, each with its own data dir, and share the
input's partitions. They are timed as the pipeline's worker is (bench/pipeline.py):
from the CreateTime of the first snapshot either wrote to the moment the group has committed
the end of every input partition and of the catalog broadcast; CPU time is both processes'
over that window. The second one's joining (a rebalance, and the replay of what the first had
handled but not committed) is inside the window, so their event counts can add up to more
than the input.

The ratio to one worker is taken against the pipeline section's figure of the same run
(``bench.run``): same workload, same settings, one process.
"""

from __future__ import annotations

import re
from typing import Any

from adapters.topics import ensure_topics, learner_input_topics
from bench.env import BenchEnv
from bench.loadgen import KINDS, Workload, produce, topic_for
from bench.offsets import end_offsets, first_record_time, total, wait_for_group
from bench.pipeline import CpuClock
from bench.priming import prime
from bench.services import Service

APP_ID = "two-workers"

_REPORT = re.compile(
    r"processed (\d+) learner events.*?(\d+) batches of ([\d.]+) events on average, "
    r"([\d.]+) learner-state writes per event"
)


async def measure(env: BenchEnv, workload: Workload, *, within: float = 900.0) -> dict[str, Any]:
    prefix = f"{env.settings.topic_prefix}two."
    settings = env.settings.model_copy(update={"topic_prefix": prefix, "worker_app_id": APP_ID})
    t = settings.topics
    bootstrap = settings.kafka_bootstrap
    await ensure_topics(settings)
    await end_offsets(bootstrap, learner_input_topics(t))  # every new partition has a leader
    per_worker = [
        settings.model_copy(update={"worker_data_dir": env.work_dir / f"two-workers-{n}"})
        for n in (1, 2)
    ]
    # The courses first, as for the pipeline's worker (bench/priming.py).
    primed = await prime(env, per_worker[0], workload.course_records, name="two-workers-priming")
    await produce(bootstrap, t, workload.activity)
    inputs = await end_offsets(bootstrap, [topic_for(t, kind) for kind in KINDS])
    workers = [
        Service.progress(env, "worker", worker_settings, name=f"two-workers-{n}")
        for n, worker_settings in enumerate(per_worker, start=1)
    ]
    clocks = [CpuClock.start(worker.pid) for worker in workers]
    group = f"{t.prefix}{APP_ID}"

    def alive() -> bool:
        return all(worker.alive() for worker in workers)

    try:
        await wait_for_group(bootstrap, group, inputs, within=within, alive=alive)
        broadcast = await end_offsets(bootstrap, [t.catalog_broadcast])
        done = await wait_for_group(bootstrap, group, broadcast, within=60, alive=alive)
    finally:
        for clock in clocks:
            clock.stop()
        for worker in workers:
            worker.stop()
    first = await first_record_time(bootstrap, t.snapshots, after=primed)
    if first is None:
        raise RuntimeError(f"the two workers wrote no snapshots; see {workers[0].log_path}")
    events = total(inputs) - len(workload.course_records)  # handled in the priming
    seconds = done - first
    figures: dict[str, Any] = {
        "events": float(events),
        "seconds": seconds,
        "events_per_s": events / seconds,
        "cpu_us_per_event": sum(c.between(first, done) for c in clocks) * 1e6 / events,
        "startup_seconds": first - min(worker.started for worker in workers),
    }
    # Each worker's share of the events, from its last report: the group split the load.
    for n, worker in enumerate(workers, start=1):
        found = _REPORT.findall(worker.log_text())
        if found:
            processed, _, mean, writes = found[-1]
            figures[f"worker{n}_events"] = float(processed)
            figures[f"worker{n}_mean_batch"] = float(mean)
            figures[f"worker{n}_state_writes_per_event"] = float(writes)
    return figures
