"""Hostile input on the real pipeline, with the worker killed mid-stream and restarted from an
empty data dir (its tables recovered from the changelogs): every good event counts, every
bad one is dead-lettered with its reason, and the sink keeps writing.

The good events are the fault tests' cohort (tests/e2e/test_faults.py), compared with
the oracle; its competency's description is 280 KB, beside three more such competencies, so
that the catalog only survives recovery if entries are stored one per record. The poison:
numbers that validate as JSON but are out of range (1e400, Infinity, 10**20, 10**19), a
gzip-compressed message of 5 MB, submissions whose texts together pass a Kafka record, a
learner whose stored state this version cannot read, and two erasures that reuse a
request id.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import random
import signal
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from adapters.topics import SNAPSHOT_MAX_BYTES, changelog_topic
from progress.catalog import CompetencyUpdated
from streams.records import HALT_EXIT_CODE
from tests.e2e.test_faults import Cohort, Service
from tests.oracle import Event
from tests.support.lms import at, course_row, eventually, published_for, when
from tests.support.processes import free_port
from tests.support.stack import committed, make_settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

BIG_DESCRIPTION = 280_000
SUBMISSION_TEXT = 176_000


@dataclass
class Poison:
    topic: str
    key: str
    value: bytes
    error_type: str  # what the dead letter must say
    names: str = ""  # a word its reason must contain (the field)
    partition: int = -1
    offset: int = -1


class BigCatalogCohort(Cohort):
    """The cohort, with a competency whose description alone is 280 KB."""

    def _log(self) -> list[Event]:
        log = super()._log()
        return [
            e.model_copy(update={"description": "d" * BIG_DESCRIPTION})
            if isinstance(e, CompetencyUpdated)
            else e
            for e in log
        ]


@pytest.fixture
def service_under_poison(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data = tmp_path_factory.mktemp("poison-worker")
    settings = make_settings(api_port=free_port(), worker_data_dir=data / "worker-1")
    service = Service(settings, tmp_path_factory.mktemp("poison-logs"))
    try:
        for name in ("worker", "sink"):
            service.start(name)
        yield service
    finally:
        service.stop_all()


def text(rng: random.Random, size: int) -> str:
    """Text that does not compress much, like real submissions."""
    return "".join(rng.choices(string.ascii_letters + " ", k=size))


def poison_for(settings: Settings, prefix: str, rng: random.Random) -> dict[str, list[Poison]]:
    t = settings.topics
    graded = f"{prefix}graded"
    course = f"{prefix}pc"

    def grade(score: str) -> bytes:
        # Written out: json.dumps writes no 1e400, and the score must reach the worker so.
        event = {
            "type": "AssignmentGraded",
            "user_id": graded,
            "course_id": course,
            "module_id": "m1",
            "assignment_id": "a1",
            "submission_id": "s1",
            "score": "SCORE",
            "graded_by": "t",
            "graded_at": at(30),
        }
        return json.dumps(event).replace('"SCORE"', score).encode()

    progressed = {
        "type": "LessonProgressed",
        "user_id": graded,
        "course_id": course,
        "module_id": "m1",
        "lesson_id": "l1",
        "time_spent": 10**20,
        "occurred_at": at(20),
    }
    structure = {
        "id": course,
        "updated_at": at(0),
        "modules": [{"id": "m1", "lessons": [{"id": "l1", "points": 10**19}]}],
    }
    padded = {**progressed, "time_spent": 5, "pad": "x" * 5_000_000}
    return {
        "numbers": [
            Poison(t.assignment_activity, graded, grade("1e400"), "invalid", "score"),
            Poison(t.assignment_activity, graded, grade("Infinity"), "invalid", "score"),
            Poison(
                t.lesson_activity, graded, json.dumps(progressed).encode(), "invalid", "time_spent"
            ),
            Poison(t.course_updates, course, json.dumps(structure).encode(), "invalid", "points"),
        ],
        # Compressed, it passes the broker's limit; its dead letter cannot carry it whole.
        "huge": [Poison(t.lesson_activity, graded, json.dumps(padded).encode(), "oversize")],
    }


class Kafka:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, poison: list[Poison], compression: str | None = None) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            acks="all",
            compression_type=compression,
            max_request_size=8_000_000,
        )
        await producer.start()
        try:
            for p in poison:
                sent = await producer.send_and_wait(p.topic, key=p.key.encode(), value=p.value)
                p.partition, p.offset = sent.partition, sent.offset
        finally:
            await producer.stop()

    async def send_json(self, topic: str, key: str, values: list[dict[str, Any]]) -> None:
        await self.send([Poison(topic, key, json.dumps(v).encode(), "") for v in values])

    async def records(self, topic: str) -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_bytes=64_000_000,
            max_partition_fetch_bytes=16_000_000,
        )
        await consumer.start()
        try:
            ends = await consumer.end_offsets(list(consumer.assignment()))
            found: list[Any] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += records
            return found
        finally:
            await consumer.stop()


async def catalog_rows(pool: AsyncConnectionPool, table: str, ids: list[str]) -> None:
    """Until the sink wrote every one of ``ids`` to the catalog ``table``."""

    async def all_there() -> bool:
        async with pool.connection() as conn:
            query = sql.SQL("select count(*) from {} where id = any(%s)").format(
                sql.Identifier(table)
            )
            row = await (await conn.execute(query, (ids,))).fetchone()
        return row is not None and row[0] == len(ids)

    await eventually(all_there)


async def dead_letters_of(kafka: Kafka, within: float = 120.0, **wanted: Poison) -> dict:
    """The dead letter of each poison message, by name, once all have arrived."""
    deadline = asyncio.get_running_loop().time() + within
    found: dict[str, dict[str, Any]] = {}
    while True:
        records = await kafka.records(kafka.settings.topics.dead_letter)
        letters = [json.loads(r.value) for r in records]
        where = {(d["source_topic"], d["partition"], d["offset"]): d for d in letters}
        found = {
            name: where[(p.topic, p.partition, p.offset)]
            for name, p in wanted.items()
            if (p.topic, p.partition, p.offset) in where
        }
        if len(found) == len(wanted) or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(1.0)


async def test_poison_among_good_events_with_a_kill_and_an_empty_restart_loses_nothing(
    service_under_poison: Service, pg_pool: AsyncConnectionPool
) -> None:
    service = service_under_poison
    settings = service.settings
    kafka = Kafka(settings)
    rng = random.Random(20261201)
    prefix = f"p{uuid4().hex[:8]}-"
    cohort = BigCatalogCohort(settings)
    poison = poison_for(settings, prefix, rng)
    t = settings.topics

    # Three more 280 KB competencies: with the cohort's, past a Kafka record together.
    others = [
        {
            "type": "CompetencyUpdated",
            "id": f"{prefix}k{n}",
            "name": f"Big {n}",
            "description": "d" * BIG_DESCRIPTION,
            "updated_at": at(0),
        }
        for n in range(3)
    ]
    for entry in others:
        await kafka.send_json(t.competencies, entry["id"], [entry])

    # A learner with six submissions of 176 KB text each, in a course of six assignments.
    writer, course = f"{prefix}writer", f"{prefix}wc"
    assignments = [f"a{n}" for n in range(6)]
    await kafka.send_json(
        t.course_updates,
        course,
        [
            {
                "id": course,
                "updated_at": at(0),
                "modules": [{"id": "m1", "assignments": [{"id": a} for a in assignments]}],
            }
        ],
    )
    texts = {a: text(rng, SUBMISSION_TEXT) for a in assignments}
    submissions = [
        {
            "type": "AssignmentSubmitted",
            "user_id": writer,
            "course_id": course,
            "module_id": "m1",
            "assignment_id": a,
            "submission_id": f"s-{a}",
            "submission_type": "text",
            "text_content": texts[a],
            "submitted_at": at(10 + n),
        }
        for n, a in enumerate(assignments)
    ]
    enrollment = {"id": f"e-{writer}", "user_id": writer, "course_id": course, "enrolled_at": at(1)}
    await kafka.send_json(t.enrollments, writer, [enrollment])
    await kafka.send_json(t.assignment_activity, writer, submissions)

    # A learner whose state will be unreadable after the restart.
    broken = f"{prefix}broken"
    await kafka.send_json(
        t.enrollments,
        broken,
        [
            {
                "id": f"e-{broken}",
                "user_id": broken,
                "course_id": cohort.course,
                "enrolled_at": at(1),
            }
        ],
    )

    # A large course that changes often: six structures of some 230 KB each, kept for
    # completion by the structure of its time, together past a Kafka record.
    big = f"{prefix}big"
    for n in range(6):
        lessons = [{"id": f"l{i}", "title": "t" * 1_000} for i in range(200 + n)]
        await kafka.send_json(
            t.course_updates,
            big,
            [{"id": big, "updated_at": at(n), "modules": [{"id": "m1", "lessons": lessons}]}],
        )

    # The catalogs first, as an LMS publishes them before the activity they describe: a
    # competency acquired before its entry arrived would be named by its id.
    events = cohort.arrivals
    await cohort.send(events[:3])
    competencies = [f"{cohort.prefix}k1", *(e["id"] for e in others)]
    await catalog_rows(pg_pool, "competencies", competencies)

    half = len(events) // 2
    await cohort.send(events[:half])
    await kafka.send(poison["numbers"])
    await kafka.send(poison["huge"], compression="gzip")
    await asyncio.sleep(2.0)  # the worker is busy with it all
    service.stop("worker", signal.SIGKILL)

    # Its stored state as this version cannot read it: the worker's recovery reads this.
    changelog = changelog_topic(settings, "learners")
    stored = [r for r in await kafka.records(changelog) if r.key and broken.encode() in r.key]
    assert stored, "the broken learner's state was never written"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            changelog, key=stored[-1].key, value=b'{"user_id": 1}', partition=stored[-1].partition
        )
    finally:
        await producer.stop()

    # Restart from an empty data dir: every table is recovered from its changelog.
    empty = settings.model_copy(update={"worker_data_dir": settings.worker_data_dir.parent / "w2"})
    await asyncio.to_thread(service.start, "worker", empty)

    lesson = {
        "type": "LessonCompleted",
        "user_id": broken,
        "course_id": cohort.course,
        "module_id": "m1",
        "lesson_id": "l1",
        "completed_at": at(3),
    }
    unreadable = Poison(
        t.lesson_activity, broken, json.dumps(lesson).encode(), "internal-error", "LearnerState"
    )
    await kafka.send([unreadable])
    erased = f"{prefix}erased"
    await kafka.send_json(
        t.enrollments,
        erased,
        [
            {
                "id": f"e-{erased}",
                "user_id": erased,
                "course_id": cohort.course,
                "enrolled_at": at(1),
            }
        ],
    )
    await kafka.send_json(
        t.erasure_requests,
        erased,
        [
            {
                "type": "LearnerErasureRequested",
                "user_id": erased,
                "request_id": "r1",
                "requested_at": at(m),
            }
            for m in (100, 200)
        ],
    )
    await cohort.send(events[half:])
    learner = f"{prefix}learner"
    await kafka.send_json(
        t.enrollments,
        learner,
        [{"id": f"e-{learner}", "user_id": learner, "course_id": big, "enrolled_at": at(10)}],
    )
    await kafka.send_json(
        t.lesson_activity,
        learner,
        [
            {
                "type": "LessonCompleted",
                "user_id": learner,
                "course_id": big,
                "module_id": "m1",
                "lesson_id": "l0",
                "completed_at": at(11),
            }
        ],
    )

    # Every good event counted: PostgreSQL holds the oracle's rows, once-events published.
    await cohort.converged(pg_pool)
    acquired = await published_for(settings, t.competency_acquired, set(cohort.users))
    names = {json.loads(r.value)["competency_name"] for r in acquired}
    assert names == {"Recovering"}, "the recovered catalog lost the competency's name"

    # Every bad one dead-lettered, with the reason naming what was wrong.
    wanted = {f"{group}{n}": p for group, ps in poison.items() for n, p in enumerate(ps)}
    wanted["unreadable"] = unreadable
    letters = await dead_letters_of(kafka, **wanted)
    assert sorted(letters) == sorted(wanted), f"no dead letter for {set(wanted) - set(letters)}"
    for name, p in wanted.items():
        letter = letters[name]
        assert letter["error_type"] == p.error_type, (name, letter["reason"])
        assert p.names in letter["reason"], (name, letter["reason"])
    huge = letters["huge0"]
    original = poison["huge"][0].value
    assert huge["value_truncated"] and huge["value_bytes"] == len(original)
    assert huge["value_sha256"] == hashlib.sha256(original).hexdigest()
    assert original.startswith(base64.b64decode(huge["value"]))

    # The bulky submissions all reached PostgreSQL whole.
    async with pg_pool.connection() as conn:
        cur = await conn.execute(
            "select assignment_id, text_content from assignment_submissions where user_id = %s",
            (writer,),
        )
        kept = dict(await cur.fetchall())
    assert kept == texts

    # The course as its newest structure has it, recovered from the changelog.
    row = await course_row(pg_pool, learner, big)
    assert row is not None
    assert (row["total_lessons"], row["completed_lessons"]) == (205, 1)

    # Two erasures, two ids.
    erasures = await published_for(settings, t.learner_erased, {erased})
    ids = {json.loads(r.value)["erased_at"]: json.loads(r.value)["event_id"] for r in erasures}
    assert len(ids) == 2 and len(set(ids.values())) == 2, ids

    # gzip is not what made the big message pass: the same bytes uncompressed are refused.
    assert len(gzip.compress(original)) < 1_000_000 < len(original)


async def test_a_record_the_broker_refuses_stops_the_worker_before_its_offset_is_committed(
    service_under_poison: Service, pg_pool: AsyncConnectionPool
) -> None:
    service = service_under_poison
    settings = service.settings
    t = settings.topics
    kafka = Kafka(settings)
    user, course = f"r{uuid4().hex[:8]}", f"r{uuid4().hex[:8]}-c"
    await kafka.send_json(
        t.course_updates,
        course,
        [
            {
                "id": course,
                "updated_at": at(0),
                "modules": [{"id": "m1", "lessons": [{"id": "l1"}, {"id": "l2"}]}],
            }
        ],
    )
    await kafka.send_json(
        t.enrollments,
        user,
        [{"id": f"e-{user}", "user_id": user, "course_id": course, "enrolled_at": at(1)}],
    )
    await eventually(lambda: course_row(pg_pool, user, course))

    # The broker now refuses every snapshot, as it refuses a record past its limit.
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await set_max_message_bytes(admin, t.snapshots, 100)
        lesson = {
            "type": "LessonCompleted",
            "user_id": user,
            "course_id": course,
            "module_id": "m1",
            "lesson_id": "l1",
            "completed_at": at(2),
        }
        sent = Poison(t.lesson_activity, user, json.dumps(lesson).encode(), "")
        await kafka.send([sent])
        worker = service.processes["worker"]
        code = await asyncio.to_thread(worker.proc.wait, 120)
        assert code == HALT_EXIT_CODE
        assert "stopping the worker: an effect could not be written" in worker.log_text()
        offsets = await committed(admin, f"{settings.topic_prefix}{settings.worker_app_id}")
        assert offsets.get(TopicPartition(sent.topic, sent.partition), 0) <= sent.offset
        service.stop("worker")

        await set_max_message_bytes(admin, t.snapshots, SNAPSHOT_MAX_BYTES)
    finally:
        await admin.close()
    # A restart handles the event whose effects were not written.
    await asyncio.to_thread(service.start, "worker")
    row = await eventually(
        lambda: when(course_row(pg_pool, user, course), lambda r: r["completed_lessons"] == 1)
    )
    assert row["percent_complete"] == 50


async def set_max_message_bytes(admin: AIOKafkaAdminClient, topic: str, size: int) -> None:
    config = {"max.message.bytes": str(size)}
    await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=config)])


async def test_a_state_past_a_kafka_record_is_kept_recovered_and_bounded(
    service_under_poison: Service, pg_pool: AsyncConnectionPool
) -> None:
    """A learner with 300 pieces of external evidence of 4 KB each: a state of some 1.8 MB
    stored, past the broker's default record limit; recovered whole by a worker started from
    an empty data dir; and further evidence refused past the state's limit, dead-lettered."""
    service = service_under_poison
    settings = service.settings
    t = settings.topics
    kafka = Kafka(settings)
    rng = random.Random(7)
    user = f"s{uuid4().hex[:8]}"

    def evidence(n: int) -> dict[str, Any]:
        return {
            "type": "ExternalEvidenceRecorded",
            "user_id": user,
            "competency_id": f"k{n % 5}",
            "evidence_id": f"ev{n}",
            "level": 10,
            "description": text(rng, 2_000),
            "url": "https://lms.example/" + text(rng, 1_900).replace(" ", "-"),
            "recorded_at": at(n),
        }

    await kafka.send_json(t.competency_evidence, user, [evidence(n) for n in range(300)])
    await eventually_count(pg_pool, user, 300)
    stored = [
        r
        for r in await kafka.records(changelog_topic(settings, "learners"))
        if r.key and user.encode() in r.key
    ]
    assert len(stored[-1].value) > 1_048_588, "the state should pass the default record limit"

    service.stop("worker", signal.SIGKILL)
    empty = settings.model_copy(update={"worker_data_dir": settings.worker_data_dir.parent / "w2"})
    await asyncio.to_thread(service.start, "worker", empty)
    # Had the state not been recovered whole, this learner's next snapshot would list one
    # piece of evidence, and the sink would retract the other 300.
    await kafka.send_json(t.competency_evidence, user, [evidence(300)])
    await eventually_count(pg_pool, user, 301)

    more = [
        Poison(t.competency_evidence, user, json.dumps(evidence(n)).encode(), "too-large")
        for n in range(301, 400)
    ]
    await kafka.send(more)
    refused = await dead_letters_of(kafka, **{f"e{n}": p for n, p in enumerate(more)}, within=60.0)
    assert refused, "the state's limit refused nothing"
    assert all(letter["error_type"] == "too-large" for letter in refused.values())
    # The events before the state reached its limit were taken. Past it, each event is
    # judged against the state without the ones refused before it: a later one whose text
    # compresses better may still fit. Every event is taken or dead-lettered, none lost.
    first = min(int(name[1:]) for name in refused)
    assert first > 0, "the state was refused before it reached its limit"
    taken = [n for n in range(len(more)) if f"e{n}" not in refused]
    await eventually_count(pg_pool, user, 301 + len(taken))
    async with pg_pool.connection() as conn:
        cur = await conn.execute(
            "select reference_id from competency_evidence where user_id = %s", (user,)
        )
        stored_ids = {row[0] for row in await cur.fetchall()}
    assert stored_ids == {f"ev{n}" for n in [*range(301), *(301 + i for i in taken)]}


async def eventually_count(pool: AsyncConnectionPool, user: str, count: int) -> None:
    async def counted() -> bool:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "select count(*) from competency_evidence where user_id = %s", (user,)
            )
            row = await cur.fetchone()
        return row is not None and row[0] == count

    deadline = asyncio.get_running_loop().time() + 120
    while not await counted():
        assert asyncio.get_running_loop().time() < deadline, f"{user}: not {count} rows"
        await asyncio.sleep(0.5)
