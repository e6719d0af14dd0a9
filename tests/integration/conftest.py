"""Fixtures of the integration tier: a sink and an API in-process, beside the stack fixtures
of tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from api.app import create_app
from progress.catalog import CatalogSnapshot
from progress.snapshots import Snapshot
from tests.support.stack import (
    Http,
    SinkTask,
    Sunk,
    create_topics,
    delete_topics,
    make_settings,
    produce,
    staff_headers,
    wait_committed,
)


@pytest.fixture
async def isolated_settings(kafka: Settings) -> AsyncIterator[Settings]:
    """Settings of their own (topic prefix, sink group), with their snapshot topic created:
    for a test that runs its own sink and must not share its input with anyone."""
    own = make_settings()
    await create_topics(own, own.topics.snapshots)
    yield own
    await delete_topics(own)


@pytest.fixture(scope="module")
async def producer(kafka: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture(scope="module")
async def admin(kafka: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.kafka_bootstrap)
    await admin.start()
    yield admin
    await admin.close()


@pytest.fixture(scope="module")
async def sink(kafka: Settings, pg_pool: AsyncConnectionPool) -> AsyncIterator[Settings]:
    """A sink of the test module's own, on its own snapshot topic and group, apart from the
    service processes of the pipeline tests. Yields its settings."""
    own = make_settings()
    await create_topics(own, own.topics.snapshots)
    task = SinkTask(own)
    yield own
    await task.close()
    await delete_topics(own)


@pytest.fixture(scope="module")
async def http(settings: Settings, pg_pool: AsyncConnectionPool) -> AsyncIterator[Http]:
    """The API in-process on the session's settings (its admin calls publish under the
    session's topic prefix)."""
    client = TestClient(TestServer(create_app(settings)), headers=staff_headers())
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
async def sunk(sink: Settings, producer: AIOKafkaProducer, admin: AIOKafkaAdminClient) -> Sunk:
    """Produce snapshots (learner or catalog) and return once the sink has committed them
    (so written them)."""

    async def sink_them(*messages: Snapshot | CatalogSnapshot) -> None:
        records = await produce(producer, sink, messages)
        await wait_committed(admin, sink.sink_group_id, records)

    return sink_them
