"""Helpers shared by the tests on the real stack: settings of their own, topics, unique ids, and
snapshots produced to a sink and waited for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias, TypeVar
from uuid import uuid4

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CoordinatorLoadInProgressError, GroupCoordinatorNotAvailableError
from aiokafka.structs import ConsumerRecord, RecordMetadata
from psycopg_pool import AsyncConnectionPool

from adapters.kafka_clients import kafka_client_options
from adapters.settings import Settings
from api.auth import ALL_SCOPES, mint_token
from progress.catalog import (
    AchievementUpdated,
    CatalogSnapshot,
    CompetencyUpdated,
    LearningPathRow,
    LearningPathUpdated,
)
from progress.snapshots import Snapshot
from sinks.postgres import catalog_row
from sinks.runner import run_sink

T = TypeVar("T")
WAIT_S = 20.0

Http: TypeAlias = TestClient[web.Request, web.Application]
# Produces snapshots (learner or catalog) and returns once the sink has committed them.
Sunk: TypeAlias = Callable[..., Awaitable[None]]

# Fewer partitions than production: enough to exercise several, quick to create.
TEST_PARTITIONS = 3


def unique_id(prefix: str) -> str:
    """An id no other test or run uses, valid under ``progress.schema.Id``."""
    return f"{prefix}-{uuid4().hex[:10]}"


# The tests' token signing key; every test API checks bearer tokens signed with it.
TEST_JWT_KEY = "integration-tests-signing-key-0123456789"


def staff_headers() -> dict[str, str]:
    """An Authorization header of a staff token with every scope."""
    token = mint_token(TEST_JWT_KEY, "test-staff", role="staff", scopes=tuple(sorted(ALL_SCOPES)))
    return {"Authorization": f"Bearer {token}"}


def make_settings(**overrides: object) -> Settings:
    """Settings with a fresh topic prefix and sink group, so each caller has its own topics.

    Settings are frozen; build a new one rather than copying another.
    """
    run = uuid4().hex[:8]
    values: dict[str, object] = {
        "topic_prefix": f"t{run}.",
        "topic_partitions": TEST_PARTITIONS,
        "sink_group_id": f"sink-{run}",
        "sink_batch_timeout_ms": 50,
        "sink_retry_max_seconds": 0.5,
        "api_auth": "jwt",
        "api_jwt_key": TEST_JWT_KEY,
        # Any free port: runs and processes on one machine never fight over the probe ports.
        "worker_http_port": 0,
        "sink_http_port": 0,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


async def create_topics(settings: Settings, *names: str) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, settings.topic_partitions, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


async def delete_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        names = [
            name for name in await admin.list_topics() if name.startswith(settings.topic_prefix)
        ]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


# ------------------------------------------------------------------ polling and PostgreSQL


async def eventually(probe: Callable[[], Awaitable[T]], what: str) -> T:
    """The first truthy result of ``probe``, polled for up to WAIT_S seconds."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                result = await probe()
                if result:
                    return result
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out after {WAIT_S}s waiting for {what}")


async def fetch_one(pool: AsyncConnectionPool, query: str, *params: object) -> Any:
    async with pool.connection() as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchone()


async def fetch_all(pool: AsyncConnectionPool, query: str, *params: object) -> list[Any]:
    async with pool.connection() as conn:
        cursor = await conn.execute(query, params)
        return await cursor.fetchall()


# ------------------------------------------------------------------ the snapshot topic

_CATALOG_KEY_KINDS = {"competencies": "competency", "achievements": "achievement",
                      "learning_paths": "learning-path"}  # fmt: skip


def catalog_snapshot(
    entry: LearningPathUpdated | CompetencyUpdated | AchievementUpdated,
) -> CatalogSnapshot:
    """The catalog snapshot the worker sends for an entry: its row, stamped with the entry's
    time, and whether the entry is deleted."""
    if isinstance(entry, CompetencyUpdated):
        return CatalogSnapshot(competency=entry.row(entry.updated_at), deleted=entry.deleted)
    if isinstance(entry, AchievementUpdated):
        return CatalogSnapshot(achievement=entry.row(entry.updated_at), deleted=entry.deleted)
    path = LearningPathRow(
        id=entry.id,
        title=entry.title,
        description=entry.description,
        course_ids=list(entry.course_ids),
        updated_at=entry.updated_at,
    )
    return CatalogSnapshot(learning_path=path, deleted=entry.deleted)


def snapshot_key(message: Snapshot | CatalogSnapshot) -> str:
    """The key the worker sends a message with: the user id, or ``catalog/<kind>/<id>``."""
    if isinstance(message, Snapshot):
        return message.user_id
    row = catalog_row(message)
    return CatalogSnapshot.key_for(_CATALOG_KEY_KINDS[row.table], row.id)


async def produce(
    producer: AIOKafkaProducer, settings: Settings, messages: Iterable[Snapshot | CatalogSnapshot]
) -> list[RecordMetadata]:
    return [
        await producer.send_and_wait(
            settings.topics.snapshots,
            key=snapshot_key(message).encode(),
            value=message.model_dump_json().encode(),
        )
        for message in messages
    ]


async def committed(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError):
        # A fresh broker creates its offsets topic on the first group's request: nothing is
        # committed yet, and the caller asks again.
        return {}
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def wait_committed(
    admin: AIOKafkaAdminClient, group: str, records: Iterable[RecordMetadata]
) -> None:
    """Until the group has committed past every one of ``records``."""
    wanted: dict[TopicPartition, int] = {}
    for record in records:
        tp = TopicPartition(record.topic, record.partition)
        wanted[tp] = max(wanted.get(tp, 0), record.offset + 1)

    async def done() -> bool:
        have = await committed(admin, group)
        return all(have.get(tp, -1) >= offset for tp, offset in wanted.items())

    await eventually(done, f"group {group} to commit {wanted}")


async def consume_all(settings: Settings, topic: str, count: int) -> list[ConsumerRecord[Any, Any]]:
    """The first ``count`` records of ``topic``, from the beginning, in partition order."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:

        async def enough() -> bool:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
            return len(records) >= count

        await eventually(enough, f"{count} records on {topic}")
    finally:
        await consumer.stop()
    return records


class SinkTask:
    """``run_sink`` as a task, stopped the way the process stops it."""

    def __init__(self, settings: Settings) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(run_sink(settings, stop=self.stop))

    async def close(self) -> None:
        self.stop.set()
        async with asyncio.timeout(WAIT_S):
            await self.task  # re-raises whatever ended the sink
