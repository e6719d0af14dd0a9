"""SIGTERM (``docker stop``) ends the sink process cleanly: exit status 0, and every record
below the offsets it committed is in PostgreSQL, so nothing is lost or left half-done."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from psycopg_pool import AsyncConnectionPool

from adapters.kafka_clients import kafka_client_options
from adapters.settings import Settings
from adapters.topics import ensure_topics
from progress.catalog import CompetencyUpdated
from tests.support.processes import ServiceProcess
from tests.support.stack import (
    catalog_snapshot,
    committed,
    delete_topics,
    eventually,
    fetch_all,
    make_settings,
    snapshot_key,
    unique_id,
)

pytestmark = pytest.mark.integration

SNAPSHOTS = 600


async def _written(pool: AsyncConnectionPool, ids: list[str]) -> set[str]:
    rows = await fetch_all(pool, "select id from competencies where id = any(%s)", ids)
    return {row[0] for row in rows}


async def test_sigterm_ends_the_sink_with_status_0_and_its_writes_committed(
    kafka: Settings, pg_pool: AsyncConnectionPool, tmp_path: Path
) -> None:
    # Small batches, so the signal is likely to land while batches are still coming.
    settings = make_settings(sink_batch_max_records=25)
    await ensure_topics(settings)
    now = datetime.now(UTC)
    entries = [
        CompetencyUpdated(id=unique_id("k-term"), name="Term", updated_at=now)
        for _ in range(SNAPSHOTS)
    ]
    producer = AIOKafkaProducer(**kafka_client_options(settings), acks="all", linger_ms=5)
    await producer.start()
    try:
        deliveries = []
        for entry in entries:
            message = catalog_snapshot(entry)
            deliveries.append(
                await producer.send(
                    settings.topics.snapshots,
                    key=snapshot_key(message).encode(),
                    value=message.model_dump_json().encode(),
                )
            )
        records = await asyncio.gather(*deliveries)
    finally:
        await producer.stop()
    ids = [entry.id for entry in entries]

    sink = ServiceProcess("sink", settings, tmp_path)
    try:
        await eventually(lambda: _written(pg_pool, ids), "the sink's first write")
        sink.proc.send_signal(signal.SIGTERM)
        status = await asyncio.to_thread(sink.proc.wait, 60)
    finally:
        sink.stop()
    log = sink.log_text()
    assert status == 0, log
    assert "sink stopped" in log

    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        offsets = await committed(admin, settings.sink_group_id)
    finally:
        await admin.close()
    assert offsets, f"nothing committed:\n{log}"
    below = {
        entry.id
        for entry, record in zip(entries, records, strict=True)
        if record.offset < offsets.get(TopicPartition(record.topic, record.partition), 0)
    }
    assert below, "no record below the committed offsets"
    # What it committed, it wrote.
    assert below <= await _written(pg_pool, ids)
    await delete_topics(settings)
