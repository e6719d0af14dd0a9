"""State and recovery: the worker's memory (RSS) and time to ready after a restart, with a
million learner keys in its tables, for ``WORKER_STORE=rocksdb://`` and ``memory://``.

    .venv/bin/python -m bench.state_recovery [--keys N] [--built N] [--store S] [--quick]

How the tables get their keys. Letting the worker derive a million learners from a million
enrolments takes longer than this benchmark's budget on two cores (``built_events_per_s`` below
says how long it would take), so the state is built in two steps:

1. the real worker (``progress worker``) processes ``--built`` enrolments of distinct learners
   into 50 courses; its changelog records are the templates, byte for byte;
2. the remaining learners are written straight into the worker's changelog topics as copies of
   those records with the learner id (and course id) replaced, same width, same size, on the
   partition the producer's partitioner gives the learner's key (checked against where the
   worker put the real ones); the ``indexes`` table (course members, learner shards) gets its
   final lists, as they would stand after the worker had indexed every learner.

Then, per store, in a fresh ``WORKER_DATA_DIR``:

- ``load``: the worker starts with an empty local store and restores every key from the
  changelog (for rocksdb, the first start on a new machine; for memory, every start);
- ``restart``: the worker is stopped (SIGTERM) and started again: rocksdb keeps its local store
  and reads only the changelog past its stored offsets; memory rebuilds from the changelog.

Ready: from process start to the worker's "Worker ready" log line (Faust, after recovery), and
to the moment a fresh probe enrolment, produced before the start, has been processed (its
snapshot is on ``progress.snapshots``): the worker is restored and doing new work. RSS: the
worker's VmRSS once the probe is processed, and its peak (VmHWM), from /proc. CPU: the
worker's CPU seconds (user + system, /proc) when it logged that the changelog was read, and
once the probe is processed. On a shared machine the wall-clock times also hold the time the
worker waited for a core; its CPU seconds do not, so they tell a slower worker from a busier
machine. Recovery CPU: the CPU seconds from the "Restoring state" log line to "Done reading",
and per changelog record (every table's changelog, counted once the state is built): a figure
that compares commits even when the state's size or shape changed between them. The bytes of
the learner and index records written are reported beside their counts.

Everything is under a topic prefix and app id of its own (``benchb-<run>.``), deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from adapters.settings import Settings
from adapters.topics import TABLES, ensure_topics, topic_specs
from bench.figures import print_figures
from bench.pipeline import cpu_seconds
from bench.seeding import START, course_shape, course_update
from streams.indexes import LEARNER_INDEX_SHARDS

COURSES = 50
APP_ID = "state"
ID_WIDTH = 7
START_TIMEOUT_S = 900.0


def learner_id(index: int) -> str:
    return f"learner-{index:0{ID_WIDTH}d}"


def course_of(index: int) -> str:
    return course_shape(index % COURSES).course_id


def enrolment(index: int, user_id: str | None = None) -> tuple[bytes, bytes]:
    user = user_id or learner_id(index)
    course = course_of(index)
    message = {
        "type": "UserEnrolled",
        "id": f"enr-{user}-{course}",
        "course_id": course,
        "user_id": user,
        "enrolled_at": START.isoformat(),
    }
    return user.encode(), json.dumps(message).encode()


# ---------------------------------------------------------------- the worker process


@dataclass
class WorkerRun:
    """One ``progress worker`` process, with the times its log lines appeared."""

    process: asyncio.subprocess.Process
    started: float
    log_path: Path
    seen: dict[str, float] = field(default_factory=dict)
    cpu_at: dict[str, float] = field(default_factory=dict)
    _reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid


# The log lines worth a timestamp: Faust's recovery milestones.
_MILESTONES = {
    "recovery_started": re.compile(r"Restoring state from changelog"),
    "changelog_read": re.compile(r"Done reading from changelog topics"),
    "worker_ready": re.compile(r"Worker ready"),
}


async def start_worker(env: dict[str, str], log_path: Path) -> WorkerRun:
    progress = Path(sys.executable).with_name("progress")
    process = await asyncio.create_subprocess_exec(
        str(progress),
        "worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    run = WorkerRun(process=process, started=time.monotonic(), log_path=log_path)
    run._reader = asyncio.create_task(_follow_log(run))
    return run


async def _follow_log(run: WorkerRun) -> None:
    assert run.process.stderr is not None
    with run.log_path.open("ab") as log:
        async for line in run.process.stderr:
            log.write(line)
            log.flush()
            text = line.decode(errors="replace")
            for name, pattern in _MILESTONES.items():
                if name not in run.seen and pattern.search(text):
                    run.seen[name] = time.monotonic() - run.started
                    with contextlib.suppress(OSError):
                        run.cpu_at[name] = cpu_seconds(run.pid)


async def stop_worker(run: WorkerRun) -> float:
    """SIGTERM, and the seconds the worker took to exit (killed after 60 s)."""
    started = time.monotonic()
    if run.process.returncode is None:
        run.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(run.process.wait(), timeout=60)
        except TimeoutError:
            run.process.kill()
            await run.process.wait()
    if run._reader is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(run._reader, timeout=5)
    return time.monotonic() - started


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB."""
    figures: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[name] = round(int(value.split()[0]) / 1024, 1)
    return figures


# ---------------------------------------------------------------- Kafka helpers


async def high_watermarks(settings: Settings, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def until_count(settings: Settings, topic: str, count: int, within_s: float) -> float:
    """Wait until ``topic`` holds at least ``count`` records; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if sum((await high_watermarks(settings, topic)).values()) >= count:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{topic} did not reach {count} records in {within_s:.0f} s")


async def read_all(settings: Settings, topic: str) -> list[tuple[int, bytes, bytes]]:
    """Every (partition, key, value) of a topic, up to its current end."""
    ends = await high_watermarks(settings, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    out: list[tuple[int, bytes, bytes]] = []
    try:
        partitions = [TopicPartition(topic, p) for p, end in ends.items() if end > 0]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, records in batch.items():
                out.extend((tp.partition, r.key or b"", r.value or b"") for r in records)
                if records and records[-1].offset + 1 >= ends[tp.partition]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return out


class SnapshotWatch:
    """Notices the snapshot of one learner key appearing on ``progress.snapshots``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
        )

    async def __aenter__(self) -> SnapshotWatch:
        await self._consumer.start()
        topic = self._settings.topics.snapshots
        partitions = [TopicPartition(topic, p) for p in range(self._settings.topic_partitions)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        # seek_to_end is lazy: fetch the positions now, before the probe is produced.
        for tp in partitions:
            await self._consumer.position(tp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def until_key(self, key: bytes, since: float, within_s: float) -> float:
        """Seconds from ``since`` (monotonic) until a snapshot keyed ``key`` is read."""
        while time.monotonic() - since < within_s:
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                if any(record.key == key for record in records):
                    return time.monotonic() - since
        raise TimeoutError(f"no snapshot for {key!r} within {within_s:.0f} s")


# ---------------------------------------------------------------- building the state


def partition_of(key: bytes, partitions: int) -> int:
    every = list(range(partitions))
    return int(DefaultPartitioner()(key, every, every))


@dataclass(frozen=True, slots=True)
class Templates:
    """A real learner record of the changelog, and how the table encodes keys and lists."""

    user_id: str
    course_id: str
    key: bytes
    value: bytes


def learner_template(records: Sequence[tuple[int, bytes, bytes]], partitions: int) -> Templates:
    """The worker's record of the first learner. RuntimeError if the worker put any learner
    on another partition than the producer's partitioner gives the learner's key: copies
    placed by that partitioner would then sit where the worker never looks for them."""
    latest = {key: (p, value) for p, key, value in records}
    for key, (p, _) in latest.items():
        user = str(json.loads(key)) if key.startswith(b'"') else key.decode()
        if p != partition_of(user.encode(), partitions):
            raise RuntimeError(f"{user} is on partition {p}, not the producer's default")
    user, course = learner_id(0), course_of(0)
    for key, (_, value) in latest.items():
        if user.encode() in key:
            return Templates(user_id=user, course_id=course, key=key, value=value)
    raise RuntimeError(f"no changelog record for {user}")


def encode_like(template_key: bytes, text: str) -> bytes:
    """A table key, encoded the way the worker encoded the template's."""
    return json.dumps(text).encode() if template_key.startswith(b'"') else text.encode()


async def build_keys(
    settings: Settings, changelog: dict[str, str], built: int, keys: int
) -> dict[str, Any]:
    """Copy the worker's learner record to reach ``keys`` learners; write the final index
    lists. Returns figures about it."""
    records = await read_all(settings, changelog["learners"])
    template = learner_template(records, settings.topic_partitions)
    partitions = settings.topic_partitions
    # Members of each course and each learner shard, per partition: every learner's entry.
    index: dict[str, list[str]] = defaultdict(list)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks=1,
    )
    await producer.start()
    started = time.monotonic()
    written = 0
    # Learner records as the worker wrote them, then their copies; index lists.
    learner_bytes = sum(len(key) + len(value) for _, key, value in records)
    index_bytes = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for i in range(keys):
            user, course = learner_id(i), course_of(i)
            p = partition_of(user.encode(), partitions)
            shard = zlib.crc32(user.encode()) % LEARNER_INDEX_SHARDS
            index[f"{p}/members/{course}/{shard}"].append(user)
            index[f"{p}/learners/{shard}"].append(user)
            if i < built:
                continue
            value = template.value.replace(template.user_id.encode(), user.encode())
            value = value.replace(template.course_id.encode(), course.encode())
            key = template.key.replace(template.user_id.encode(), user.encode())
            pending.append(
                await producer.send(changelog["learners"], value=value, key=key, partition=p)
            )
            written += 1
            learner_bytes += len(key) + len(value)
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        for name, members in index.items():
            p = int(name.split("/", 1)[0])
            value = json.dumps(sorted(members)).encode()
            key = encode_like(template.key, name)
            index_bytes += len(key) + len(value)
            pending.append(
                await producer.send(changelog["indexes"], value=value, key=key, partition=p)
            )
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    seconds = time.monotonic() - started
    return {
        "learner_record_bytes": len(template.value),
        "copied_learner_records": written,
        "learner_changelog_bytes": learner_bytes,
        "index_records": len(index),
        "index_bytes": index_bytes,
        "copy_records_per_s": round((written + len(index)) / seconds),
    }


async def build_with_worker(
    settings: Settings, env: dict[str, str], work: Path, built: int
) -> dict[str, Any]:
    """The real worker derives ``built`` learners; figures about its speed."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=10)
    await producer.start()
    run = await start_worker({**env, "WORKER_STORE": "memory://"}, work / "build.log")
    try:
        await _until_milestone(run, "worker_ready", START_TIMEOUT_S)
        for index in range(COURSES):
            update = course_update(course_shape(index))
            await producer.send(
                settings.topics.course_updates,
                key=update["id"].encode(),
                value=json.dumps(update).encode(),
            )
        await producer.flush()
        courses_changelog = f"{settings.topic_prefix}{APP_ID}-courses-changelog"
        await until_count(settings, courses_changelog, COURSES * settings.topic_partitions, 300)
        started = time.monotonic()
        for index in range(built):
            key, value = enrolment(index)
            await producer.send(settings.topics.enrollments, key=key, value=value)
        await producer.flush()
        await until_count(settings, settings.topics.snapshots, built, START_TIMEOUT_S)
        seconds = time.monotonic() - started
    finally:
        await stop_worker(run)
        await producer.stop()
    return {"built_learners": built, "built_events_per_s": round(built / seconds)}


async def _until_milestone(run: WorkerRun, name: str, within_s: float) -> float:
    """Seconds from the worker's start to the log line ``name``, waiting up to ``within_s``
    from now for it."""
    deadline = time.monotonic() + within_s
    while name not in run.seen:
        if run.process.returncode is not None:
            raise RuntimeError(f"worker exited with {run.process.returncode}: see {run.log_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker: no {name} within {within_s:.0f} s")
        await asyncio.sleep(0.1)
    return run.seen[name]


# ---------------------------------------------------------------- measuring a start


async def timed_start(
    settings: Settings, env: dict[str, str], log_path: Path, probe_user: str
) -> dict[str, float]:
    """Start the worker with a probe enrolment waiting; time to ready and memory once the
    probe is processed. The worker is stopped again at the end."""
    async with SnapshotWatch(settings) as watch:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            key, value = enrolment(0, probe_user)
            await producer.send_and_wait(settings.topics.enrollments, key=key, value=value)
        finally:
            await producer.stop()
        run = await start_worker(env, log_path)
        try:
            probe_s = await watch.until_key(key, run.started, START_TIMEOUT_S)
            # Faust may start the agents a moment before it logs "Worker ready".
            ready_s = await _until_milestone(run, "worker_ready", 30)
            memory = memory_mib(run.pid)
            cpu_s = cpu_seconds(run.pid)
        finally:
            stop_s = await stop_worker(run)
    figures = {
        "ready_log_s": round(ready_s, 1),
        "probe_processed_s": round(probe_s, 1),
        "rss_mib": memory.get("VmRSS", 0.0),
        "peak_rss_mib": memory.get("VmHWM", 0.0),
        "stop_s": round(stop_s, 1),
        "cpu_s": round(cpu_s, 1),
    }
    if "changelog_read" in run.seen:
        figures["changelog_read_s"] = round(run.seen["changelog_read"], 1)
    if "changelog_read" in run.cpu_at:
        figures["changelog_read_cpu_s"] = round(run.cpu_at["changelog_read"], 1)
        if "recovery_started" in run.cpu_at:
            recovery_cpu_s = run.cpu_at["changelog_read"] - run.cpu_at["recovery_started"]
            figures["recovery_cpu_s"] = round(recovery_cpu_s, 1)
    return figures


async def changelog_records(settings: Settings) -> int:
    """Records in every table's changelog: what a first start reads."""
    total = 0
    for table in TABLES:
        topic = f"{settings.topic_prefix}{APP_ID}-{table}-changelog"
        total += sum((await high_watermarks(settings, topic)).values())
    return total


def rocksdb_keys(data_dir: Path, table: str) -> int:
    """Keys in a table's RocksDB partitions under the worker's data dir (the worker stopped):
    proof that the copied changelog records were restored, not just read."""
    from rocksdict import AccessType, Options, Rdict

    total = 0
    for path in sorted(data_dir.rglob(f"{table}-*.db")):
        # Raw mode, as Faust opens them: keys and values are bytes.
        db = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            cursor = db.iter()
            cursor.seek_to_first()
            while cursor.valid():
                # Faust keeps each partition's changelog offset under a key of its own.
                total += not bytes(cursor.key()).startswith(b"__faust")
                cursor.next()
            del cursor
        finally:
            db.close()
    return total


async def until_topics_led(settings: Settings, within_s: float = 60.0) -> None:
    """Wait until every topic of the run has a leader for every partition: on a broker busy
    creating and deleting other people's topics, a new topic can take a while."""
    names = [spec.name for spec in topic_specs(settings)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        started = time.monotonic()
        while time.monotonic() - started < within_s:
            described = await admin.describe_topics(names)
            if all(
                topic["error_code"] == 0
                and len(topic["partitions"]) == settings.topic_partitions
                and all(p["leader"] >= 0 and p["error_code"] == 0 for p in topic["partitions"])
                for topic in described
            ):
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"the run's topics have no leaders after {within_s:.0f} s")
    finally:
        await admin.close()


async def delete_topics(settings: Settings) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        prefix = settings.topic_prefix
        ours = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
        return len(ours)
    finally:
        await admin.close()


async def measure(
    keys: int = 1_000_000, built: int = 2000, stores: Sequence[str] = ("rocksdb", "memory")
) -> dict[str, Any]:
    """Figures per store (``<store>_<load|restart>_<figure>``; seconds, MiB)."""
    run_id = secrets.token_hex(3)
    prefix = f"benchb-{run_id}."
    work = Path(tempfile.mkdtemp(prefix=f"benchb-state-{run_id}-"))
    settings = Settings(topic_prefix=prefix, worker_app_id=APP_ID)
    env = {
        **os.environ,
        "TOPIC_PREFIX": prefix,
        "WORKER_APP_ID": APP_ID,
        "LOG_LEVEL": "INFO",
        "WORKER_DATA_DIR": str(work / "build"),
    }
    changelog = {table: f"{prefix}{APP_ID}-{table}-changelog" for table in ("learners", "indexes")}
    figures: dict[str, Any] = {"keys": keys}
    # Other work shares these two cores: the load average says how much, beside the figures.
    figures["load_avg_1m_before"] = os.getloadavg()[0]
    failed = True
    try:
        await ensure_topics(settings)
        await until_topics_led(settings)
        figures.update(await build_with_worker(settings, env, work, built))
        figures["worker_build_1m_keys_extrapolated_s"] = round(
            1_000_000 / figures["built_events_per_s"]
        )
        figures.update(await build_keys(settings, changelog, built, keys))
        figures["changelog_records"] = records = await changelog_records(settings)
        for store in stores:
            store_env = {
                **env,
                "WORKER_STORE": f"{store}://",
                "WORKER_DATA_DIR": str(work / store),
            }
            for phase in ("load", "restart"):
                probe = f"probe-{store}-{phase}"
                log = work / f"{store}-{phase}.log"
                result = await timed_start(settings, store_env, log, probe)
                if "recovery_cpu_s" in result and phase == "load":
                    # Every record is read on a first start (a restart reads only what is new
                    # to a rocksdb store, every record again for memory: per record, the same).
                    us_per_record = result["recovery_cpu_s"] * 1e6 / records
                    result["recovery_cpu_us_per_record"] = round(us_per_record, 1)
                figures.update({f"{store}_{phase}_{k}": v for k, v in result.items()})
                if store == "rocksdb" and phase == "load":
                    # Learners plus the probe: every copied record made it into the store.
                    data_dir = Path(store_env["WORKER_DATA_DIR"])
                    figures["rocksdb_learner_keys_restored"] = rocksdb_keys(data_dir, "learners")
                print(f"{store} {phase}: {result}", file=sys.stderr, flush=True)
        failed = False
    finally:
        figures["load_avg_1m_after"] = os.getloadavg()[0]
        figures["topics_deleted"] = await delete_topics(settings)
        if failed:
            print(f"worker logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="learner keys in the table")
    parser.add_argument("--built", type=int, default=2000, help="learners the worker derives")
    parser.add_argument("--store", choices=("rocksdb", "memory"), action="append")
    parser.add_argument("--quick", action="store_true", help="100,000 keys, 1,000 built")
    args = parser.parse_args()
    if args.quick:
        args.keys, args.built = 100_000, 1000
    params = {"keys": args.keys, "built": args.built, "stores": args.store or ["rocksdb", "memory"]}
    figures = asyncio.run(measure(**params))
    print_figures("state_recovery", params, figures)


if __name__ == "__main__":
    main()
