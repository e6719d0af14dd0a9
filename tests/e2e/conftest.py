"""Fixtures of the end-to-end tier: the worker, sink and API as real subprocesses, and an LMS
sending them events, beside the stack fixtures of tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from tests.support.lms import Lms
from tests.support.processes import ServiceProcess, running_service
from tests.support.stack import staff_headers


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
