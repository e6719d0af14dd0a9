"""Publishing catalog entries to their compacted topics: one implementation for the admin API
and ``progress catalog``.

An entry is validated with its kind's model before anything is sent, and sent keyed by its
id, which is what the worker checks (``progress.decode``). The producer waits for every
in-sync replica (``acks="all"``) and is started on first use, so a process holding a
publisher starts, and serves everything else, while Kafka is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeAlias, cast

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from adapters.errors import AdapterError
from adapters.kafka_clients import kafka_client_options
from adapters.settings import Settings
from adapters.topics import catalog_topics, input_topic
from progress.catalog import CatalogEntry, CatalogEntryT
from progress.events import CourseUpdated, LearnerErasureRequested
from progress.kinds import CATALOG_INPUTS

log = logging.getLogger(__name__)

# A catalog kind's name in the admin API and ``progress catalog`` (``progress.kinds``).
CatalogKind: TypeAlias = str
CATALOG_KINDS: tuple[CatalogKind, ...] = tuple(CATALOG_INPUTS)
# Courses are withdrawn by the Course Service, not here: they have no tombstone.
DELETABLE_KINDS: tuple[CatalogKind, ...] = tuple(
    name
    for name, kind in CATALOG_INPUTS.items()
    if kind.model is not None and issubclass(kind.model, CatalogEntry)
)

# A publish that cannot reach Kafka gives up after this long (aiokafka's default is 40 s).
_REQUEST_TIMEOUT_MS = 10_000


class PublishError(AdapterError):
    """The base of this module's errors: nothing was published."""


class InvalidCatalogEntry(PublishError):
    """The entry does not validate; the message names the fields and why."""


class KafkaUnavailable(PublishError):
    """Kafka cannot be reached, or the catalog topics do not exist: nothing was published.

    ``reason`` says which without internals (addresses, broker errors), for API clients.
    """

    def __init__(self, detail: str, reason: str = "Kafka is unavailable") -> None:
        super().__init__(detail)
        self.reason = reason


class CatalogUnavailable(KafkaUnavailable):
    """A catalog entry was not published: Kafka is unavailable."""


class ErasureUnavailable(KafkaUnavailable):
    """An erasure request was not published: Kafka is unavailable."""


def _model(kind: CatalogKind) -> type[CatalogEntryT]:
    return cast("type[CatalogEntryT]", CATALOG_INPUTS[kind].model)


def topic_for(settings: Settings, kind: CatalogKind) -> str:
    return input_topic(settings.topics, CATALOG_INPUTS[kind])


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "entry"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def entry_json(entry: CatalogEntryT) -> dict[str, Any]:
    """The entry as published: its fields in snake_case, a course's structure spelled as
    producers send it (``modules`` and ``competencies`` beside the title, docs/events.md)."""
    data = entry.model_dump(mode="json")
    if isinstance(entry, CourseUpdated):
        structure = data.pop("modules")
        if structure is not None:
            data["modules"] = structure["modules"]
            data["competencies"] = structure["competencies"]
    return data


def validate_entry(
    kind: CatalogKind, data: Mapping[str, Any], *, entry_id: str | None = None
) -> CatalogEntryT:
    """The entry as its kind's model; ``type`` is filled in when missing.

    With ``entry_id`` (the id an admin URL names), a missing id is filled in and a different
    one refused.
    """
    if not isinstance(data, Mapping):
        raise InvalidCatalogEntry(f"an entry is a JSON object, not {type(data).__name__}")
    model = _model(kind)
    values = dict(data)
    if not (values.get("type") or values.get("Type")):
        values["type"] = model.__name__
    if entry_id is not None and "id" not in values and "ID" not in values:
        values["id"] = entry_id
    try:
        entry = model.model_validate(values)
    except ValidationError as exc:
        raise InvalidCatalogEntry(_describe(exc)) from None
    if entry_id is not None and entry.id != entry_id:
        raise InvalidCatalogEntry(f"id {entry.id!r} in the entry is not {entry_id!r}, as named")
    return entry


def tombstone(
    kind: CatalogKind, entry_id: str, updated_at: datetime | None = None
) -> CatalogEntryT:
    """The entry that deletes ``entry_id`` as of ``updated_at`` (now if not given)."""
    if kind not in DELETABLE_KINDS:
        raise InvalidCatalogEntry(f"{kind} cannot be deleted here")
    when = updated_at or datetime.now(UTC)
    return validate_entry(
        kind,
        {
            **cast(type[CatalogEntry], _model(kind)).tombstone_fields,
            "id": entry_id,
            "deleted": True,
            "updated_at": when.isoformat(),
        },
    )


class CatalogPublisher:
    """Sends catalog entries to their topics with one producer, started on first use.

    Closing is the owner's job (``close``); a failed start is retried on the next publish.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    def topic(self, kind: CatalogKind) -> str:
        return topic_for(self._settings, kind)

    async def publish(
        self, kind: CatalogKind, entry: Mapping[str, Any] | CatalogEntryT
    ) -> CatalogEntryT:
        """Validate (unless already a model of ``kind``), send keyed by the entry's id, wait
        for the broker's acknowledgement; return the entry as published."""
        if isinstance(entry, Mapping):
            valid = validate_entry(kind, entry)
        elif isinstance(entry, _model(kind)):
            valid = entry
        else:
            raise InvalidCatalogEntry(f"a {type(entry).__name__} is not an entry of {kind}")
        producer = await self._started(CatalogUnavailable)
        try:
            await producer.send_and_wait(
                self.topic(kind),
                key=valid.id.encode(),
                value=json.dumps(entry_json(valid), separators=(",", ":")).encode(),
            )
        except KafkaError as exc:
            raise CatalogUnavailable(f"Kafka did not take the entry: {exc!r}") from exc
        log.info("published %s %s to %s", kind, valid.id, self.topic(kind))
        return valid

    async def request_erasure(
        self, user_id: str, request_id: str | None = None
    ) -> LearnerErasureRequested:
        """Ask the worker to erase a learner: published on the erasure topic, keyed by the
        user id so it is ordered after the learner's earlier events."""
        request = LearnerErasureRequested(
            user_id=user_id,
            request_id=request_id or str(uuid.uuid4()),
            requested_at=datetime.now(UTC),
        )
        producer = await self._started(ErasureUnavailable)
        topic = self._settings.topics.erasure_requests
        try:
            await producer.send_and_wait(
                topic, key=user_id.encode(), value=request.model_dump_json().encode()
            )
        except KafkaError as exc:
            raise ErasureUnavailable(f"Kafka did not take the request: {exc!r}") from exc
        log.info("requested erasure of learner %s (request %s)", user_id, request.request_id)
        return request

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def _started(self, unavailable: type[KafkaUnavailable]) -> AIOKafkaProducer:
        """The producer, started if it is not; ``unavailable`` is what a failed start
        raises, the caller's own error."""
        async with self._starting:
            if self._producer is None:
                self._producer = await self._start(unavailable)
            return self._producer

    async def _start(self, unavailable: type[KafkaUnavailable]) -> AIOKafkaProducer:
        bootstrap = self._settings.kafka_bootstrap
        await self._check_topics(unavailable)
        producer = AIOKafkaProducer(
            **kafka_client_options(self._settings),
            acks="all",
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
        )
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            raise unavailable(f"Kafka is not reachable at {bootstrap}: {exc!r}") from exc
        return producer

    async def _check_topics(self, unavailable: type[KafkaUnavailable]) -> None:
        """The catalog topics exist. The broker may create a missing topic on first send, but
        not compacted, and a catalog topic that is not compacted loses entries with age."""
        admin = AIOKafkaAdminClient(
            **kafka_client_options(self._settings),
            request_timeout_ms=_REQUEST_TIMEOUT_MS,
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
        except (KafkaError, OSError) as exc:
            raise unavailable(
                f"Kafka is not reachable at {self._settings.kafka_bootstrap}: {exc!r}"
            ) from exc
        finally:
            await admin.close()
        catalogs = catalog_topics(self._settings.topics)
        missing = [name for name in catalogs if name not in existing]
        if missing:
            raise unavailable(
                f"catalog topics {', '.join(missing)} do not exist: create them with "
                "`progress topics`",
                reason="the catalog topics do not exist",
            )
