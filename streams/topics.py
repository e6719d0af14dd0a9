"""Creating the topics the pipeline uses, with the partitioning and retention it relies on."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from progress.decode import StreamKind
from service.config import Settings, Topics
from streams.records import (
    DEAD_LETTER_MAX_BYTES,
    SINK_DEAD_LETTER_MAX_BYTES,
    SNAPSHOT_MAX_BYTES,
)

log = logging.getLogger(__name__)


# Topics whose records may pass the broker's default limit (streams/records.py).
LARGE_RECORD_CONFIGS = {
    "dead_letter": {"max.message.bytes": str(DEAD_LETTER_MAX_BYTES)},
    "snapshots": {"max.message.bytes": str(SNAPSHOT_MAX_BYTES)},
    # The sink's dead letter of a snapshot carries it whole, in base64.
    "sink_dead_letter": {"max.message.bytes": str(SINK_DEAD_LETTER_MAX_BYTES)},
}

# The worker's tables (streams/app.py). Their changelog topics are created with the others:
# left to Faust, a fresh worker creates them while it starts and can read the metadata before
# they are in it; the table then looks like it has 0 partitions and its agent crashes until
# the next rebalance, minutes later.
TABLES = ("learners", "erasures", "courses", "catalog", "indexes")


def changelog_topic(settings: Settings, table: str) -> str:
    """The name Faust gives a table's changelog: ``<app id>-<table>-changelog``."""
    return f"{settings.topic_prefix}{settings.worker_app_id}-{table}-changelog"


def consumed_kinds(t: Topics) -> dict[str, StreamKind]:
    """What each consumed topic carries, for ``progress.decode.decode_event``: the one map
    the worker, the catalog fan-out and ``progress redrive`` all read."""
    return {
        t.enrollments: "enrollments",
        t.lesson_activity: "lesson-activity",
        t.quiz_activity: "quiz-activity",
        t.assignment_activity: "assignment-activity",
        t.competency_evidence: "competency-evidence",
        t.learner_profiles: "learner-profiles",
        t.erasure_requests: "erasure-requests",
        t.course_updates: "course-updates",
        t.learning_paths: "learning-paths",
        t.competencies: "competencies",
        t.achievements: "achievements",
        t.catalog_broadcast: "catalog-broadcast",
    }


def topic_specs(settings: Settings) -> list[NewTopic]:
    t = settings.topics
    n = settings.topic_partitions
    compacted = {"cleanup.policy": "compact"}
    # Every user-keyed topic has the same partition count: a learner's events, table
    # changelogs and catalog broadcasts must meet on the same partition number.
    keyed_by_user = [*t.learner_inputs, t.catalog_broadcast, *t.published]
    large = {getattr(t, field): config for field, config in LARGE_RECORD_CONFIGS.items()}
    return [
        *(NewTopic(name, n, 1) for name in keyed_by_user),
        *(NewTopic(name, n, 1, topic_configs=config) for name, config in large.items()),
        # The newest entry of every catalog stays readable forever.
        *(NewTopic(name, n, 1, topic_configs=compacted) for name in t.catalogs),
        *(
            NewTopic(changelog_topic(settings, table), n, 1, topic_configs=compacted)
            for table in TABLES
        ),
    ]


async def ensure_topics(settings: Settings) -> None:
    """Create the missing topics; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in topic_specs(settings) if spec.name not in existing]
        if missing:
            # Another process may have created them first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            log.info("created topics %s", ", ".join(s.name for s in missing))
        # Also for topics created before these settings existed.
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC, getattr(settings.topics, field), configs=config
                )
                for field, config in LARGE_RECORD_CONFIGS.items()
            ]
        )
    finally:
        await admin.close()
