"""Fixtures for tests against the real Kafka, PostgreSQL and Redis (``scripts/stack.sh up``).

Nothing is skipped: a service that does not answer fails the test that needs it, with a
message saying which one and how to start it. Every run gets its own topic prefix and
consumer groups, and every test its own ids, so runs and tests share one broker and one
database without seeing each other's data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from uuid import uuid4

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.config import Settings
from sinks.migrate import apply_migrations
from tests.integration.processes import ServiceProcess, free_port, running_service

_REACH_TIMEOUT_S = 10.0
_START_STACK = "start it with `scripts/stack.sh up`"

# Fewer partitions than production: enough to exercise several, quick to create.
TEST_PARTITIONS = 3


def unique_id(prefix: str) -> str:
    """An id no other test or run uses, valid under ``progress.schema.Id``."""
    return f"{prefix}-{uuid4().hex[:10]}"


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
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


async def create_topics(settings: Settings, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, settings.topic_partitions, replication_factor=1) for name in names]
        )
    finally:
        await admin.close()


async def delete_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [
            name for name in await admin.list_topics() if name.startswith(settings.topic_prefix)
        ]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


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
    pool = AsyncConnectionPool(settings.database_url, open=False, min_size=1, max_size=4)
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
