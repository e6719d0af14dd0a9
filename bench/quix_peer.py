"""Peer 2: Quix Streams computing the course roll-up with its own RocksDB state store.

The application (``run_app``, run as a subprocess with ``python -m bench.quix_peer``)
consumes the same four activity topics, concatenated into one dataframe keyed by learner,
with Quix's own JSON deserializer (no pydantic validation: what a team picking Quix would
write). Per learner it keeps, in its state store, each course's completed lesson ids, and
on every event that changes them it emits the course roll-up (completed lessons / lessons
in the course's structure) to an output topic. The structure is given as a static table of
lesson counts, a head start over the pipeline, which reads and re-derives it from
``lms.course-updates``. At-least-once, committing every second.

Timed like the worker (bench/pipeline.py): from the CreateTime of its first output record
(stamped with the time it is made: Quix would carry the input's over) to the moment its
consumer group has committed the end of every input partition.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.env import BenchEnv, create_topics
from bench.loadgen import ACTIVITY_KINDS, Course, topic_for
from bench.offsets import end_offsets, first_record_time, total, wait_for_group
from bench.pipeline import CpuClock
from bench.services import Service


async def measure(
    env: BenchEnv, courses: list[Course], *, within: float = 900.0
) -> dict[str, float]:
    settings = env.settings
    bootstrap = settings.kafka_bootstrap
    inputs = [topic_for(settings.topics, kind) for kind in ACTIVITY_KINDS]
    output = f"{settings.topic_prefix}quix.course-progress"
    await create_topics(env, [output])
    totals = env.work_dir / "quix-lessons.json"
    totals.write_text(json.dumps({course.id: course.lessons for course in courses}))
    target = await end_offsets(bootstrap, inputs)
    group = env.group("quix")
    app = Service(
        [
            sys.executable,
            "-m",
            "bench.quix_peer",
            "--bootstrap",
            bootstrap,
            "--group",
            group,
            "--output",
            output,
            "--lessons",
            str(totals),
            "--state-dir",
            str(env.work_dir / "quix-state"),
            *inputs,
        ],
        env.process_env(),
        env.work_dir / "logs" / "quix.log",
    )
    clock = CpuClock.start(app.pid)
    try:
        done = await wait_for_group(bootstrap, group, target, within=within, alive=app.alive)
    finally:
        clock.stop()
        app.stop()
    first = await first_record_time(bootstrap, output)
    if first is None:
        raise RuntimeError(f"Quix wrote no roll-ups; see {app.log_path}")
    seconds = done - first
    events = total(target)
    return {
        "events": float(events),
        "seconds": seconds,
        "events_per_s": events / seconds,
        # As the worker's (bench/pipeline.py): the process's CPU time over the same window.
        "cpu_us_per_event": clock.between(first, done) * 1e6 / events,
        "rollups": float(total(await end_offsets(bootstrap, [output]))),
    }


def run_app(
    bootstrap: str,
    group: str,
    inputs: list[str],
    output: str,
    lessons: dict[str, int],
    state_dir: str,
) -> None:
    from quixstreams import Application, State

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    topics = [app.topic(name, key_deserializer="str") for name in inputs]
    frames = [app.dataframe(topic) for topic in topics]
    sdf = frames[0]
    for other in frames[1:]:
        sdf = sdf.concat(other)

    def roll_up(event: dict[str, Any], state: State) -> dict[str, Any] | None:
        course_id = event.get("course_id") or event.get("CourseID")
        if not course_id:
            return None
        done: list[str] = state.get(course_id, [])
        if event.get("type", "LessonCompleted") != "LessonCompleted" or "lesson_id" not in event:
            if event.get("type") == "UserEnrolled" and not done:
                state.set(course_id, done)
            return None
        lesson = event["lesson_id"]
        if lesson in done:
            return None
        done.append(lesson)
        state.set(course_id, done)
        of = lessons.get(course_id, 0)
        return {
            "user_id": event["user_id"],
            "course_id": course_id,
            "completed_lessons": len(done),
            "total_lessons": of,
            "percent_complete": 100.0 * len(done) / of if of else 0.0,
        }

    out = app.topic(output, value_serializer="json", key_serializer="str")
    sdf = sdf.apply(roll_up, stateful=True).filter(lambda value: value is not None)
    # Quix gives an output record the input record's timestamp; the timing reads the output's
    # first CreateTime as the moment processing began, so stamp it with the time it is made.
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: time.time_ns() // 1_000_000)
    sdf.to_topic(out)
    app.run()


def main() -> None:
    parser = argparse.ArgumentParser(description="the Quix Streams roll-up peer")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--lessons", type=Path, required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("inputs", nargs="+")
    args = parser.parse_args()
    lessons = json.loads(args.lessons.read_text())
    run_app(args.bootstrap, args.group, args.inputs, args.output, lessons, args.state_dir)


if __name__ == "__main__":
    main()
