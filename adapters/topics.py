"""Creating the topics the pipeline uses, with the partitioning and retention it relies on."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from types import MappingProxyType

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from adapters.kafka_clients import kafka_client_options
from adapters.settings import Settings, Topics
from progress.events import PublishedEvent
from progress.kinds import INPUT_KINDS, PUBLISHED, InputKind, StreamKind

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
# A piece of bulky content (progress/content.py) comes from one input message, which is at most
# 1,000,000 bytes (docs/reliability.md#bounds): its record, with the row's ids, stays below
# the limit checked, and the topic takes a little more.
CONTENT_MAX_BYTES = 1_500_000
CONTENT_TOPIC_MAX_BYTES = 2_000_000
SINK_DEAD_LETTER_MAX_BYTES = SNAPSHOT_MAX_BYTES * 4 // 3 + 1_000_000
PRODUCER_MAX_REQUEST_BYTES = SNAPSHOT_MAX_BYTES + 100_000


def _max_bytes(size: int) -> dict[str, str]:
    return {"max.message.bytes": str(size)}


_COMPACTED = {"cleanup.policy": "compact"}


def _retention(hours: int) -> dict[str, str]:
    """Time-based retention, explicit rather than the broker's default (7 days)."""
    return {"retention.ms": str(-1 if hours < 0 else hours * 3_600_000)}


# The worker's tables (streams/app.py), each with what it holds (Faust's ``help``). Their
# changelog topics are created with the others: left to Faust, a fresh worker creates them
# while it starts and can read the metadata before they are in it; the table then looks like
# it has 0 partitions and its agent crashes until the next rebalance, minutes later.
LEARNERS_TABLE = "learners"
ERASURES_TABLE = "erasures"
COURSES_TABLE = "courses"
CATALOG_TABLE = "catalog"
INDEXES_TABLE = "indexes"
TABLES: Mapping[str, str] = MappingProxyType(
    {
        LEARNERS_TABLE: "LearnerState JSON by user_id",
        ERASURES_TABLE: "time of the learner's last erasure, by user_id",
        COURSES_TABLE: "KnownCourse by '<partition>/<course_id>'",
        CATALOG_TABLE: "catalog entries by id, by '<partition>/<kind>'",
        INDEXES_TABLE: "sorted user ids by '<partition>/members/<course_id>/<shard>' and "
        "'<partition>/learners/<shard>'",
    }
)


def changelog_topic(settings: Settings, table: str) -> str:
    """The name Faust gives a table's changelog: ``<app id>-<table>-changelog``."""
    return f"{settings.topic_prefix}{settings.worker_app_id}-{table}-changelog"


def input_topic(t: Topics, kind: InputKind) -> str:
    """The topic a kind of input is read from: ``lms.<kind>``, or ``progress.<kind>`` for the
    worker's own."""
    return t.produced(kind.name) if kind.internal else t.consumed(kind.name)


def consumed_kinds(t: Topics) -> dict[str, StreamKind]:
    """What each consumed topic carries, for ``progress.decode.decode_event``: the one map
    the worker, the catalog fan-out and ``progress redrive`` all read."""
    return {input_topic(t, kind): kind.name for kind in INPUT_KINDS}


def learner_input_topics(t: Topics) -> tuple[str, ...]:
    """The topics of learner activity, keyed by user_id, that producers write."""
    return tuple(
        input_topic(t, k) for k in INPUT_KINDS if k.keyed_by == "user_id" and not k.internal
    )


def catalog_topics(t: Topics) -> tuple[str, ...]:
    """The catalogs' topics, keyed by the entry's id and compacted."""
    return tuple(input_topic(t, k) for k in INPUT_KINDS if k.catalog)


def published_topics(t: Topics) -> dict[type[PublishedEvent], str]:
    """Each published event's topic, ``progress.<kind>``."""
    return {model: t.produced(name) for model, name in PUBLISHED.items()}


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic with settings of its own, and those settings in full: compaction where the
    newest record per key must stay readable forever (catalogs, table changelogs), a larger
    record limit where records may pass the broker's default (streams/records.py), and an
    explicit retention (``TOPIC_INPUT_RETENTION_HOURS``: learner input and dead letters;
    ``TOPIC_SNAPSHOT_RETENTION_HOURS``: snapshots). The content topic is compacted, with its
    own record limit."""
    t = settings.topics
    inputs = _retention(settings.topic_input_retention_hours)
    snapshots = _retention(settings.topic_snapshot_retention_hours)
    configs = {name: dict(inputs) for name in learner_input_topics(t)}
    configs |= {name: dict(_COMPACTED) for name in catalog_topics(t)}
    configs |= {changelog_topic(settings, table): dict(_COMPACTED) for table in TABLES}
    configs[changelog_topic(settings, LEARNERS_TABLE)] |= _max_bytes(LEARNERS_CHANGELOG_MAX_BYTES)
    configs[t.snapshots] = _max_bytes(SNAPSHOT_MAX_BYTES) | snapshots
    # Compacted, no time limit: the newest record of each piece is what a rebuild restores.
    configs[t.content] = _COMPACTED | _max_bytes(CONTENT_TOPIC_MAX_BYTES)
    configs[t.dead_letter] = _max_bytes(DEAD_LETTER_MAX_BYTES) | inputs
    # The sink's dead letter of a snapshot carries it whole, in base64.
    configs[t.sink_dead_letter] = _max_bytes(SINK_DEAD_LETTER_MAX_BYTES) | inputs
    return configs


def topic_specs(settings: Settings) -> list[NewTopic]:
    t = settings.topics
    n = settings.topic_partitions
    configs = topic_configs(settings)
    # Every user-keyed topic has the same partition count: a learner's events, table
    # changelogs and catalog broadcasts must meet on the same partition number.
    plain = [t.catalog_broadcast, *published_topics(t).values()]
    return [
        *(NewTopic(name, n, 1) for name in plain),
        *(NewTopic(name, n, 1, topic_configs=config) for name, config in configs.items()),
    ]


async def ensure_topics(settings: Settings) -> None:
    """Create the missing topics; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
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
