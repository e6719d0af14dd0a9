"""Creating the topics the pipeline uses, with the partitioning and retention it relies on."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from adapters.settings import Settings, Topics
from progress.decode import StreamKind

log = logging.getLogger(__name__)

# Record limits: what each record the worker writes may take (docs/reliability.md#bounds).
# The broker's default limit on a record batch is 1,048,588 bytes (message.max.bytes); a table
# value, with its key and the batch's overhead, stays well inside it: course structures,
# catalog entries, index lists.
TABLE_VALUE_MAX_BYTES = 900_000
# Topics the project creates with a larger max.message.bytes (``topic_configs``): a learner's
# state (the learners table's changelog) holds every item of the learner, dead letters carry
# the original message, snapshots every row an event touched.
LEARNER_STATE_MAX_BYTES = 2_000_000
LEARNERS_CHANGELOG_MAX_BYTES = 2_500_000
DEAD_LETTER_MAX_BYTES = 3_000_000
SNAPSHOT_MAX_BYTES = 8_000_000
SINK_DEAD_LETTER_MAX_BYTES = SNAPSHOT_MAX_BYTES * 4 // 3 + 1_000_000
PRODUCER_MAX_REQUEST_BYTES = SNAPSHOT_MAX_BYTES + 100_000


def _max_bytes(size: int) -> dict[str, str]:
    return {"max.message.bytes": str(size)}


_COMPACTED = {"cleanup.policy": "compact"}

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


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic with settings of its own, and those settings in full: compaction where the
    newest record per key must stay readable forever (catalogs, table changelogs), and a
    larger record limit where records may pass the broker's default (streams/records.py)."""
    t = settings.topics
    configs = {name: dict(_COMPACTED) for name in t.catalogs}
    configs |= {changelog_topic(settings, table): dict(_COMPACTED) for table in TABLES}
    configs[changelog_topic(settings, "learners")] |= _max_bytes(LEARNERS_CHANGELOG_MAX_BYTES)
    configs[t.snapshots] = _max_bytes(SNAPSHOT_MAX_BYTES)
    configs[t.dead_letter] = _max_bytes(DEAD_LETTER_MAX_BYTES)
    # The sink's dead letter of a snapshot carries it whole, in base64.
    configs[t.sink_dead_letter] = _max_bytes(SINK_DEAD_LETTER_MAX_BYTES)
    return configs


def topic_specs(settings: Settings) -> list[NewTopic]:
    t = settings.topics
    n = settings.topic_partitions
    configs = topic_configs(settings)
    # Every user-keyed topic has the same partition count: a learner's events, table
    # changelogs and catalog broadcasts must meet on the same partition number.
    plain = [*t.learner_inputs, t.catalog_broadcast, *t.published]
    return [
        *(NewTopic(name, n, 1) for name in plain),
        *(NewTopic(name, n, 1, topic_configs=config) for name, config in configs.items()),
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
        # Also for topics created before these settings existed. AlterConfigs replaces a
        # topic's settings as a whole: each is given in full.
        await admin.alter_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name, configs=config)
                for name, config in topic_configs(settings).items()
            ]
        )
    finally:
        await admin.close()
