"""Fixtures for tests against the real Kafka, PostgreSQL and Redis (``scripts/stack.sh up``).

Nothing is skipped: a service that does not answer fails the test that needs it, with a
message saying which one and how to start it. Every run gets its own topic prefix and
consumer groups, and every test its own ids, so runs and tests share one broker and one
database without seeing each other's data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.schema import apply_migrations
from adapters.settings import Settings
from api.app import create_app
from progress.catalog import CatalogSnapshot
from progress.snapshots import Snapshot
from tests.integration.lms import Lms
from tests.integration.processes import ServiceProcess, free_port, running_service
from tests.integration.support import (
    Http,
    SinkTask,
    Sunk,
    create_topics,
    delete_topics,
    make_settings,
    produce,
    staff_headers,
    unique_id,
    wait_committed,
)

_REACH_TIMEOUT_S = 10.0
_START_STACK = "start it with `scripts/stack.sh up`"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        api_port=free_port(), worker_data_dir=tmp_path_factory.mktemp("worker-data")
    )


@pytest.fixture(scope="session")
def service(
    kafka: Settings, pg_pool: AsyncConnectionPool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    """The worker, sink and API as real subprocesses, shared by the session's tests.

    Their logs stay in the session's temporary directory; a failing test prints where.
    """
    log_dir = tmp_path_factory.mktemp("service-logs")
    with running_service(kafka, log_dir) as processes:
        yield processes


@pytest.fixture
def new_id() -> Callable[[str], str]:
    return unique_id


@pytest.fixture
async def isolated_settings(kafka: Settings) -> AsyncIterator[Settings]:
    """Settings of their own (topic prefix, sink group), with their snapshot topic created:
    for a test that runs its own sink and must not share its input with anyone."""
    own = make_settings()
    await create_topics(own, own.topics.snapshots)
    yield own
    await delete_topics(own)


@pytest.fixture(scope="session")
async def kafka(settings: Settings) -> AsyncIterator[Settings]:
    """Kafka answers; the run's snapshot topic exists. Yields the settings naming it."""
    try:
        async with asyncio.timeout(_REACH_TIMEOUT_S):
            await create_topics(settings, settings.topics.snapshots)
    except (KafkaError, OSError, TimeoutError) as exc:
        pytest.fail(
            f"Kafka is not reachable at {settings.kafka_bootstrap} ({exc!r}); {_START_STACK}"
        )
    yield settings
    await delete_topics(settings)


@pytest.fixture(scope="session")
async def pg_pool(settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on the migrated database."""
    pool = AsyncConnectionPool(
        settings.database_url,
        open=False,
        min_size=1,
        max_size=4,
        # The outage tests restart PostgreSQL under this pool.
        check=AsyncConnectionPool.check_connection,
    )
    try:
        await pool.open(wait=True, timeout=_REACH_TIMEOUT_S)
    except Exception as exc:
        await pool.close()
        pytest.fail(
            f"PostgreSQL is not reachable at {settings.database_url} ({exc!r}); {_START_STACK}"
        )
    await apply_migrations(pool)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url, socket_connect_timeout=_REACH_TIMEOUT_S)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.fail(f"Redis is not reachable at {settings.redis_url} ({exc!r}); {_START_STACK}")
    yield client
    await client.aclose()


@pytest.fixture
async def event_producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def lms(event_producer: AIOKafkaProducer, settings: Settings) -> Lms:
    """A new learner and course, and a way to send their events."""
    return Lms(event_producer, settings)


@pytest.fixture
async def api(
    settings: Settings, service: dict[str, ServiceProcess]
) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the running service's API."""
    base = f"http://{settings.api_host}:{settings.api_port}"
    async with aiohttp.ClientSession(base, headers=staff_headers()) as session:
        yield session


# ------------------------------------------------------------------ a sink and an API in-process


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
