"""``progress redrive`` reads the whole dead-letter topic, however long, to the end it had
when it started; the shared reader fails clearly instead of hanging; topics are created with
the configured retention. On the real Kafka, each test with topics of its own."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from adapters.settings import Settings
from adapters.topics import ensure_topics
from progress.events import DeadLetter
from service import kafka_read
from service.errors import TopicMissing, Unreachable
from service.kafka_read import TopicReader
from service.redrive import redrive
from tests.support.stack import consume_all, delete_topics, eventually, make_settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def own(kafka: Settings) -> AsyncIterator[Settings]:
    """Settings with every topic of their own, created as ``progress topics`` does."""
    settings = make_settings(topic_input_retention_hours=48, topic_snapshot_retention_hours=-1)
    await ensure_topics(settings)
    yield settings
    await delete_topics(settings)


def _letter(settings: Settings, n: int, value: bytes) -> bytes:
    return (
        DeadLetter(
            source_topic=settings.topics.lesson_activity,
            partition=0,
            offset=n,
            key=f"u-{n}",
            value=base64.b64encode(value).decode(),
            reason="was invalid",
            error_type="invalid-event",
            failed_at=datetime.now(UTC),
        )
        .model_dump_json()
        .encode()
    )


def _lesson(n: int) -> bytes:
    event = {
        "UserID": f"u-{n}",
        "CourseID": "c-1",
        "ModuleID": "m1",
        "LessonID": f"l{n}",
        "CompletedAt": "2026-05-04T08:00:00Z",
    }
    return json.dumps(event).encode()


async def test_redrive_reads_a_long_topic_to_its_end(own: Settings) -> None:
    valid, invalid = 3000, 500
    producer = AIOKafkaProducer(bootstrap_servers=own.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(valid + invalid):
            value = _lesson(n) if n < valid else b"not json"
            await producer.send(
                own.topics.dead_letter, _letter(own, n, value), key=f"u-{n}".encode()
            )
        await producer.flush()
    finally:
        await producer.stop()

    report = await redrive(own)
    assert report.resent == valid
    assert sum(report.still_invalid.values()) == invalid
    assert report.skipped == 0
    resent = await consume_all(own, own.topics.lesson_activity, valid)
    assert sorted(r.key.decode() for r in resent) == sorted(f"u-{n}" for n in range(valid))


async def test_redrive_of_an_empty_topic_ends_at_once_with_nothing(own: Settings) -> None:
    report = await redrive(own)
    assert (report.resent, report.skipped, report.still_invalid) == (0, 0, {})


async def test_a_missing_topic_is_named() -> None:
    nowhere = make_settings()
    with pytest.raises(TopicMissing, match=nowhere.topics.dead_letter):
        await redrive(nowhere)


async def test_a_read_that_cannot_reach_its_end_fails_instead_of_hanging(
    own: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_read, "STALL_SECONDS", 0.5)
    reader = TopicReader(own)
    await reader.start()
    try:
        tp = TopicPartition(own.topics.dead_letter, 0)
        # An end the partition never reaches: what a broker gone mid-read looks like.
        with pytest.raises(Unreachable, match="no record of"):
            async for _ in reader.read(tp, end=5, start=0):
                pass
    finally:
        await reader.stop()


async def test_topics_are_created_with_the_configured_retention(own: Settings) -> None:
    t = own.topics
    names = [t.lesson_activity, t.erasure_requests, t.dead_letter, t.snapshots, t.competencies]
    admin = AIOKafkaAdminClient(bootstrap_servers=own.kafka_bootstrap)
    await admin.start()

    async def described() -> dict[str, tuple[str, str]] | None:
        # A topic just created may be described without its settings for a moment.
        found = {}
        for response in await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        ):
            for resource in response.resources:
                _, _, _, name, configs = resource[:5]
                values = {entry[0]: entry[1] for entry in configs}
                if "retention.ms" not in values:
                    return None
                found[name] = (values["retention.ms"], values["cleanup.policy"])
        return found

    try:
        retention = await eventually(described, "the topics' settings")
    finally:
        await admin.close()
    two_days = str(48 * 3_600_000)
    assert retention[t.lesson_activity] == (two_days, "delete")
    assert retention[t.erasure_requests] == (two_days, "delete")
    assert retention[t.dead_letter] == (two_days, "delete")
    assert retention[t.snapshots] == ("-1", "delete")
    assert retention[t.competencies][1] == "compact"
