"""Courses known before the learners' activity, as on a platform: a course is authored (its
CourseUpdated published and broadcast to every partition) long before learners work in it.

Produced all at once, the workload would not be read in that order. The worker's consumer
fetches the input backlog, learner topics and all, before its fan-out agent has copied the
courses to ``progress.catalog-broadcast``; those copies are then read after the backlog, so
every learner event would be derived without its course's structure, and every learner
derived again at the end, when the structures arrive (a run of ``bench.run --quick --only
pipeline`` logged the 160 course copies as the worker's last 160 events). That is not the
work ``bench.core`` measures, nor the work of a worker in service.

So a worker's sections produce the course records first and run the worker on them alone
(``prime``) until its group has committed them and their broadcast copies; then produce the
activity, and time the worker from its first snapshot after the priming's
(``bench.offsets.first_record_time``'s ``after``). The worker's tables keep the courses in
its data dir and changelog, as a worker in service holds them.
"""

from __future__ import annotations

import asyncio
import time

from adapters.settings import Settings
from bench.env import BenchEnv
from bench.loadgen import Record, produce, topic_for
from bench.offsets import Offsets, end_offsets, total, wait_for_group
from bench.services import Service


async def prime(
    env: BenchEnv,
    settings: Settings,
    course_records: list[Record],
    *,
    name: str,
    within: float = 120.0,
) -> Offsets:
    """Produce ``course_records`` (CourseUpdated) and run one ``progress worker`` with
    ``settings`` until its group has committed them and the copies it broadcasts; stop it.
    Returns the end offsets of the snapshot topic then: what the priming wrote (the courses'
    catalog rows) ends there."""
    t = settings.topics
    bootstrap = settings.kafka_bootstrap
    await produce(bootstrap, t, course_records)
    courses = await end_offsets(bootstrap, [topic_for(t, "course-updates")])
    worker = Service.progress(env, "worker", settings, name=name)
    try:
        group = f"{t.prefix}{settings.worker_app_id}"
        await wait_for_group(bootstrap, group, courses, within=within, alive=worker.alive)
        # Every course is copied to every partition of the broadcast topic.
        expected = len(course_records) * settings.topic_partitions
        deadline = time.monotonic() + within
        while total(broadcast := await end_offsets(bootstrap, [t.catalog_broadcast])) < expected:
            if not worker.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: {total(broadcast)} of {expected} course copies")
            await asyncio.sleep(0.2)
        await wait_for_group(bootstrap, group, broadcast, within=within, alive=worker.alive)
    finally:
        worker.stop()
    return await end_offsets(bootstrap, [t.snapshots])
