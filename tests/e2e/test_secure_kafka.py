"""The whole pipeline through a SASL_SSL listener: the second local broker that
``scripts/stack.sh up kafka-secure`` starts (its own CA, SCRAM-SHA-512 users), with the
worker, sink and API as subprocesses configured only through the ``KAFKA_*`` settings."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from psycopg_pool import AsyncConnectionPool

from adapters.kafka_clients import kafka_client_options
from adapters.settings import Settings
from tests.support.lms import Lms, api_course, course_when, eventually, when
from tests.support.processes import STACK, ServiceProcess, free_port, running_service
from tests.support.stack import delete_topics, make_settings, staff_headers

pytestmark = pytest.mark.integration


def _client_env() -> dict[str, str]:
    """Starts the secure broker (if it does not run) and reads the settings that reach it."""
    done = subprocess.run(
        [str(STACK), "up", "kafka-secure"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/stack.sh up kafka-secure failed:\n{done.stderr[-4000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("kafka-secure "))
    env_file = Path(line.split()[2])
    pairs = (line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    return {name.lower(): value for name, value in pairs}


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    env = _client_env()
    assert env["kafka_security_protocol"] == "SASL_SSL"
    return make_settings(
        **env, api_port=free_port(), worker_data_dir=tmp_path_factory.mktemp("secure-worker")
    )


@pytest.fixture(scope="module")
def secure_service(
    secure: Settings, pg_pool: AsyncConnectionPool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    with running_service(secure, tmp_path_factory.mktemp("secure-logs")) as processes:
        yield processes


@pytest.fixture
async def secure_lms(secure: Settings) -> AsyncIterator[Lms]:
    producer = AIOKafkaProducer(**kafka_client_options(secure), acks="all")
    await producer.start()
    yield Lms(producer, secure)
    await producer.stop()


async def test_events_over_sasl_ssl_reach_postgresql_and_the_api(
    secure_service: dict[str, ServiceProcess],
    secure: Settings,
    secure_lms: Lms,
    settings: Settings,
    pg_pool: AsyncConnectionPool,
) -> None:
    lms = secure_lms
    await lms.structure({"m1": ["l1", "l2"]})
    await lms.enroll(0)
    await course_when(pg_pool, lms, lambda r: r["total_lessons"] == 2)
    await lms.complete("l1", 1)
    await lms.complete("l2", 2)

    row = await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    assert (row["completed_lessons"], row["percent_complete"]) == (2, 100.0)
    base = f"http://{secure.api_host}:{secure.api_port}"
    async with aiohttp.ClientSession(base, headers=staff_headers()) as api:
        view = await eventually(
            lambda: when(api_course(api, lms), lambda v: v["status"] == "completed")
        )
    assert view["percent_complete"] == 100.0

    # It all went through the secure broker: the plain one never saw these topics.
    plain = AIOKafkaAdminClient(**kafka_client_options(settings))
    await plain.start()
    try:
        leaked = [t for t in await plain.list_topics() if t.startswith(secure.topic_prefix)]
    finally:
        await plain.close()
    assert leaked == []


@pytest.mark.parametrize("command", ["worker", "sink"])
async def test_a_wrong_password_ends_the_process_with_a_clear_error(
    secure: Settings, command: str, tmp_path: Path
) -> None:
    wrong = secure.model_copy(update={"kafka_sasl_password": "not-the-password"})
    process = ServiceProcess(command, wrong, tmp_path)
    try:
        # Bounded only so that a hang fails the test instead of blocking the run.
        status = await asyncio.to_thread(process.proc.wait, 120)
    finally:
        process.stop()
    log = process.log_text()
    assert status == 1, log
    assert "refused the credentials" in log, log
    assert "Traceback" not in log, log
    assert "not-the-password" not in log


async def test_sigterm_ends_every_process_with_status_0(
    secure_service: dict[str, ServiceProcess], secure: Settings
) -> None:
    # Last in the module: it stops the processes the tests above shared.
    statuses = {}
    for name in ("api", "sink", "worker"):
        process = secure_service[name]
        process.proc.send_signal(signal.SIGTERM)
        statuses[name] = await asyncio.to_thread(process.proc.wait, 90)
    logs = {name: process.log_text()[-3000:] for name, process in secure_service.items()}
    assert statuses == {"api": 0, "sink": 0, "worker": 0}, logs
    await delete_topics(secure)
