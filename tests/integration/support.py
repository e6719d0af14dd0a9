"""Helpers shared by the integration tests: settings of their own, topics, unique ids."""

from __future__ import annotations

from uuid import uuid4

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.config import Settings

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
