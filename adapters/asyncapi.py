"""The AsyncAPI 3 document of every topic the service creates (``adapters.topics``): its
name, partitions and settings, who sends and who receives it, its key, and its payload's
JSON schema from the pydantic models (``progress``). ``progress contract --write`` writes it
to docs/asyncapi.json.

Names are the defaults (no ``TOPIC_PREFIX``): a deployment with a prefix has the same topics
under it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from adapters.settings import Settings
from adapters.topics import (
    TABLES,
    changelog_topic,
    input_topic,
    published_topics,
    topic_configs,
    topic_specs,
)
from progress.catalog import CatalogSnapshot, catalog_entry_adapter
from progress.content import ContentRecord, ContentRestore
from progress.course_catalog import CourseSnapshot
from progress.events import (
    AssignmentEvent,
    DeadLetter,
    LessonEvent,
    QuizEvent,
    assignment_activity_adapter,
    lesson_activity_adapter,
    quiz_activity_adapter,
)
from progress.kinds import INPUT_KINDS, InputKind
from progress.snapshots import Erasure, Snapshot

REF = "#/components/schemas/{model}"
Action = Literal["send", "receive"]

# A kind whose model is a family's base is read as the family's union of types.
FAMILIES: dict[type[BaseModel], TypeAdapter[Any]] = {
    LessonEvent: lesson_activity_adapter,
    QuizEvent: quiz_activity_adapter,
    AssignmentEvent: assignment_activity_adapter,
}
_SINK_MESSAGE: TypeAdapter[Any] = TypeAdapter(
    Snapshot | CatalogSnapshot | CourseSnapshot | Erasure | ContentRestore
)
_CONTENT: TypeAdapter[Any] = TypeAdapter(ContentRecord | None)
_DEAD_LETTER: TypeAdapter[Any] = TypeAdapter(DeadLetter)
_ANY: TypeAdapter[Any] = TypeAdapter(Any)


def default_settings() -> Settings:
    """The settings the document describes: every default, whatever the environment says."""
    fields = Settings.model_fields
    return Settings(
        topic_prefix=fields["topic_prefix"].default,
        topic_partitions=fields["topic_partitions"].default,
        worker_app_id=fields["worker_app_id"].default,
    )


def _input_payload(kind: InputKind) -> TypeAdapter[Any]:
    if kind.model is None:
        return catalog_entry_adapter
    if kind.model in FAMILIES:
        return FAMILIES[kind.model]
    if kind.model.__subclasses__():
        raise LookupError(f"{kind.model.__name__} is a family: add its union to FAMILIES")
    return TypeAdapter(kind.model)


class _Channel:
    def __init__(
        self,
        topic: str,
        description: str,
        key: str,
        payload: TypeAdapter[Any],
        mode: JsonSchemaMode,
        actions: tuple[tuple[Action, str], ...],
    ) -> None:
        self.topic = topic
        self.description = description
        self.key = key
        self.payload = payload
        self.mode = mode
        self.actions = actions  # (action, by whom)


def _channels(settings: Settings) -> list[_Channel]:
    t = settings.topics
    channels = []
    for kind in INPUT_KINDS:
        key = "the entry's id" if kind.keyed_by == "id" else "user_id"
        if kind.internal:
            description = "Catalog entries copied by the worker to every partition"
            actions: tuple[tuple[Action, str], ...] = (("send", "worker"), ("receive", "worker"))
        elif kind.catalog:
            description = f"The {kind.catalog} catalog (compacted; the newest updated_at wins)"
            actions = (("receive", "worker"),)
        else:
            description = f"Learner input: {kind.name} (fields in snake_case or the seed's names)"
            actions = (("receive", "worker"),)
        channels.append(
            _Channel(
                input_topic(t, kind), description, key, _input_payload(kind), "validation", actions
            )
        )
    for model, topic in published_topics(t).items():
        channels.append(
            _Channel(
                topic,
                f"Published {model.__name__} events (deterministic event_id: drop repeats)",
                "user_id",
                TypeAdapter(model),
                "serialization",
                (("send", "worker"),),
            )
        )
    channels += [
        _Channel(
            t.snapshots,
            "Worker to sink: a learner's rows (Snapshot, keyed by user_id), an erasure "
            "(keyed by user_id), a catalog row (keyed catalog/<kind>/<id>) or a course's "
            "structure and title (CourseSnapshot, keyed course/<id>); from "
            "`progress resnapshot`, also a piece of bulky content to restore into its row "
            "(ContentRestore, keyed by user_id, behind the learner's rows)",
            "user_id, catalog/<kind>/<id> or course/<id>",
            _SINK_MESSAGE,
            "serialization",
            (("send", "worker"), ("receive", "sink")),
        ),
        _Channel(
            t.content,
            "Bulky content (quiz answers, submissions' content, feedback), one record per "
            "piece, written by the worker when an event brings new content, on the partition "
            "of the learner's state; compacted: the newest record of a key is the content "
            "of its digest; null (a tombstone) when the content became empty or the learner "
            "was erased. Read by `progress resnapshot`",
            "<row id>/<part>, part: answer, submission or feedback",
            _CONTENT,
            "serialization",
            (("send", "worker"), ("receive", "resnapshot")),
        ),
        _Channel(
            t.dead_letter,
            "Input the worker could not process, with its bytes and the reason",
            "the original key",
            _DEAD_LETTER,
            "serialization",
            (("send", "worker"),),
        ),
        _Channel(
            t.sink_dead_letter,
            "Snapshots the sink can never write, with their bytes and the reason",
            "the original key",
            _DEAD_LETTER,
            "serialization",
            (("send", "sink"),),
        ),
    ]
    for table, holds in TABLES.items():
        channels.append(
            _Channel(
                changelog_topic(settings, table),
                f"Changelog of the worker's {table} table (internal to Faust): {holds}",
                "the table's key",
                _ANY,
                "serialization",
                (("send", "worker"), ("receive", "worker")),
            )
        )
    return channels


def _channel_id(topic: str) -> str:
    return topic.replace(".", "_").replace("-", "_")


def document(settings: Settings | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic in ``topic_specs``."""
    settings = settings or default_settings()
    channels = _channels(settings)
    specs = {spec.name: spec for spec in topic_specs(settings)}
    described = {channel.topic for channel in channels}
    if described != set(specs):
        raise LookupError(f"topics without a description: {sorted(set(specs) - described)}")
    configs = topic_configs(settings)
    schemas, definitions = TypeAdapter.json_schemas(
        [(channel.topic, channel.mode, channel.payload) for channel in channels],
        ref_template=REF,
    )
    out_channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel in channels:
        cid = _channel_id(channel.topic)
        spec = specs[channel.topic]
        config = configs.get(channel.topic, {})
        topic_configuration: dict[str, Any] = {}
        if "cleanup.policy" in config:
            topic_configuration["cleanup.policy"] = config["cleanup.policy"].split(",")
        if "max.message.bytes" in config:
            topic_configuration["max.message.bytes"] = int(config["max.message.bytes"])
        messages[cid] = {
            "name": cid,
            "contentType": "application/json",
            "payload": schemas[channel.topic, channel.mode],
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": channel.key},
                    "bindingVersion": "0.5.0",
                }
            },
        }
        out_channels[cid] = {
            "address": channel.topic,
            "description": channel.description,
            "messages": {cid: {"$ref": f"#/components/messages/{cid}"}},
            "bindings": {
                "kafka": {
                    "topic": channel.topic,
                    "partitions": spec.num_partitions,
                    "replicas": spec.replication_factor,
                    **({"topicConfiguration": topic_configuration} if topic_configuration else {}),
                    "bindingVersion": "0.5.0",
                }
            },
        }
        for action, by in channel.actions:
            operations[f"{action}_{cid}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{cid}"},
                "summary": f"the {by} {'sends' if action == 'send' else 'receives'}",
                "messages": [{"$ref": f"#/channels/{cid}/messages/{cid}"}],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "LMS Progress topics",
            "version": "1",
            "description": "Every Kafka topic of the service (docs/events.md, "
            "docs/reliability.md). Names are shown without TOPIC_PREFIX.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": settings.kafka_bootstrap,
                "protocol": "kafka",
                "description": "scripts/stack.sh up",
            }
        },
        "channels": out_channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": dict(sorted(definitions.get("$defs", {}).items())),
        },
    }
