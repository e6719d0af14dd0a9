"""Fixtures for the tests against the real Kafka, PostgreSQL and Redis (``scripts/stack.sh up``),
shared by both tiers that need them: tests/integration (in-process) and tests/e2e (the service
as subprocesses). The unit tests ask for none of them, so they run without the stack.

Nothing is skipped: a service that does not answer fails the test that needs it, with a
message saying which one and how to start it. Every run gets its own topic prefix and
consumer groups, and every test its own ids, so runs and tests share one broker and one
database without seeing each other's data.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.schema import apply_migrations
from adapters.settings import Settings
from tests.support.processes import free_port
from tests.support.stack import create_topics, delete_topics, make_settings, unique_id

_REACH_TIMEOUT_S = 10.0
_START_STACK = "start it with `scripts/stack.sh up`"


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The session's service logs JSON, which tests/e2e/test_observability.py reads back.
    return make_settings(
        api_port=free_port(),
        worker_http_port=free_port(),
        sink_http_port=free_port(),
        log_format="json",
        # Not there yet, nor its parent: the worker makes them (as the demo's
        # var/worker/<cluster id> on a fresh clone).
        worker_data_dir=tmp_path_factory.mktemp("worker-data") / "cluster" / "worker",
    )


@pytest.fixture
def new_id() -> Callable[[str], str]:
    return unique_id


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
