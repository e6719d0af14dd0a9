"""The sink's dead letters against the real stack: a snapshot PostgreSQL can never take goes
to ``progress.sink-dead-letter`` with its reason, the snapshots around it are written, and
the offsets are committed past it, so neither this sink nor the next one stops on it.

The unwritable snapshots are hand-made JSON, bypassing the event ranges (progress/ranges.py),
as a snapshot from a worker older than those ranges could be.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata, TopicPartition
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from progress.catalog import AchievementUpdated, Criterion
from progress.events import DeadLetter
from tests.integration.test_sink_api import learner_snapshot, lesson_row
from tests.integration.test_sink_erasure import (
    comeback,
    erasure,
    lesson_percent,
    rows_of,
    send,
    versions,
)
from tests.support.stack import (
    SinkTask,
    catalog_snapshot,
    committed,
    consume_all,
    create_topics,
    fetch_one,
    produce,
    snapshot_key,
    wait_committed,
)

pytestmark = pytest.mark.integration


def unwritable_snapshot(user_id: str, where: str, value: int) -> bytes:
    """A learner snapshot as JSON, with ``value`` in the ``where`` column (``table.column``)
    of its first row of that table."""
    data: dict[str, Any] = learner_snapshot(user_id, 1, lesson_percent=10.0).model_dump(mode="json")
    table, column = where.split(".")
    rows = data[table]
    (rows[0] if isinstance(rows, list) else rows)[column] = value
    return json.dumps(data).encode()


async def send_raw(
    producer: AIOKafkaProducer, settings: Settings, key: str, value: bytes
) -> RecordMetadata:
    return await producer.send_and_wait(settings.topics.snapshots, key=key.encode(), value=value)


async def end_offsets(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    """The end offset of each partition of ``topic``: how many records it ever had."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        return await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        await consumer.stop()


async def test_a_snapshot_postgres_can_never_take_is_dead_lettered_and_the_sink_goes_on(
    isolated_settings: Settings,
    producer: AIOKafkaProducer,
    admin: AIOKafkaAdminClient,
    pg_pool: AsyncConnectionPool,
    new_id: Callable[[str], str],
) -> None:
    settings = isolated_settings
    # As `progress topics` creates it.
    await create_topics(settings, settings.topics.sink_dead_letter)
    good1, good2, later = new_id("u"), new_id("u"), new_id("u")
    past_bigint, past_integer, not_json = new_id("u"), new_id("u"), new_id("u")
    achievement = AchievementUpdated(
        id=new_id("ach"),
        name="Too generous",
        updated_at=datetime(2026, 5, 4, tzinfo=UTC),
        criteria=Criterion(kind="first-lesson"),
    )
    too_many_points = catalog_snapshot(achievement).model_dump(mode="json")
    too_many_points["achievement"]["points"] = 10**10  # achievements.points is an integer

    # All produced before the sink starts, so that they meet in its first batches.
    bad_values = {
        past_bigint: unwritable_snapshot(past_bigint, "lesson_progress.time_spent", 10**20),
        # Binary COPY would have stored this wrapped, as -1294967296.
        past_integer: unwritable_snapshot(past_integer, "user_progress.total_lessons", 3 * 10**9),
        not_json: b"{not json",
    }
    records = await produce(producer, settings, [learner_snapshot(good1, 1, lesson_percent=10.0)])
    bad = {key: await send_raw(producer, settings, key, value) for key, value in bad_values.items()}
    catalog_key = snapshot_key(catalog_snapshot(achievement))
    bad[catalog_key] = await send_raw(
        producer, settings, catalog_key, json.dumps(too_many_points).encode()
    )
    records += await produce(producer, settings, [learner_snapshot(good2, 2, lesson_percent=20.0)])

    sink = SinkTask(settings)
    try:
        await wait_committed(admin, settings.sink_group_id, [*records, *bad.values()])
        # Still running, and writing what comes after.
        records = await produce(
            producer, settings, [learner_snapshot(later, 1, lesson_percent=30.0)]
        )
        await wait_committed(admin, settings.sink_group_id, records)
    finally:
        await sink.close()

    assert (await lesson_row(pg_pool, good1, "l2"))[:2] == (1, 10.0)
    assert (await lesson_row(pg_pool, good2, "l2"))[:2] == (2, 20.0)
    assert (await lesson_row(pg_pool, later, "l2"))[:2] == (1, 30.0)
    for user_id in (past_bigint, past_integer):
        found = await fetch_one(
            pg_pool, "select count(*) from user_progress where user_id = %s", user_id
        )
        assert found == (0,), user_id
    assert await fetch_one(
        pg_pool, "select count(*) from achievements where id = %s", achievement.id
    ) == (0,)

    letters = {
        letter.key: letter
        for letter in (
            DeadLetter.model_validate_json(record.value)
            for record in await consume_all(settings, settings.topics.sink_dead_letter, len(bad))
        )
    }
    assert sorted(letters) == sorted(bad)
    for key, letter in letters.items():
        sent = bad[key]
        assert (letter.source_topic, letter.partition, letter.offset) == (
            settings.topics.snapshots,
            sent.partition,
            sent.offset,
        )
    assert base64.b64decode(letters[past_bigint].value) == bad_values[past_bigint]
    assert (letters[past_bigint].error_type, letters[past_bigint].reason) == (
        "unwritable",
        "OverflowError: int too big to convert",
    )
    assert letters[past_integer].error_type == "unwritable"
    assert letters[past_integer].reason.startswith("NumericValueOutOfRange: integer out of range")
    assert letters[catalog_key].error_type == "unwritable"
    assert letters[catalog_key].reason.startswith("NumericValueOutOfRange: integer out of range")
    assert letters[not_json].error_type == "undecodable"
    assert "Invalid JSON" in letters[not_json].reason

    # Committed past every dead letter: a sink started again reads nothing of them.
    offsets = await committed(admin, settings.sink_group_id)
    for sent in bad.values():
        assert offsets[TopicPartition(sent.topic, sent.partition)] > sent.offset


async def test_a_refused_batch_written_one_at_a_time_ends_in_the_rows_the_batch_would(
    isolated_settings: Settings,
    producer: AIOKafkaProducer,
    admin: AIOKafkaAdminClient,
    pg_pool: AsyncConnectionPool,
    new_id: Callable[[str], str],
) -> None:
    """An erasure in a refused batch: the learner's snapshots before it are not written
    (nor dead-lettered, though one is unwritable: the batch would have dropped it), those
    after it are, at their new versions."""
    settings = isolated_settings
    await create_topics(settings, settings.topics.sink_dead_letter)
    user, other = new_id("u"), new_id("u")
    sent = await send(producer, settings, [learner_snapshot(user, 5, lesson_percent=50.0)])
    sent.append(
        await send_raw(
            producer,
            settings,
            user,
            unwritable_snapshot(user, "lesson_progress.time_spent", 10**20),
        )
    )
    sent += await send(producer, settings, [erasure(user), comeback(user, 1, 10.0)])
    # What makes PostgreSQL refuse the batch.
    unwritable = unwritable_snapshot(other, "lesson_progress.last_position", 2**64)
    refused = await send_raw(producer, settings, other, unwritable)
    sent += await send(producer, settings, [comeback(user, 2, 20.0)])

    sink = SinkTask(settings)
    try:
        await wait_committed(admin, settings.sink_group_id, [*sent, refused])
    finally:
        await sink.close()

    rows = await rows_of(pg_pool, user)
    assert versions(rows) == {2}
    assert lesson_percent(rows, "l2") == 20.0
    assert await fetch_one(
        pg_pool, "select count(*) from user_progress where user_id = %s", other
    ) == (0,)
    [letter] = [
        DeadLetter.model_validate_json(record.value)
        for record in await consume_all(settings, settings.topics.sink_dead_letter, 1)
    ]
    assert (letter.key, letter.offset, letter.error_type) == (other, refused.offset, "unwritable")
    ends = await end_offsets(settings, settings.topics.sink_dead_letter)
    assert sum(ends.values()) == 1  # the unwritable snapshot before the erasure is not there
