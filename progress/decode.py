"""Turning the bytes of a Kafka message into a typed event, or a reason a person can act on."""

from __future__ import annotations

from pydantic import ValidationError

from progress.errors import DomainError
from progress.events import ConsumedEvent
from progress.kinds import INPUTS, StreamKind

MAX_MESSAGE_BYTES = 1_000_000


class InvalidEvent(DomainError):
    """A message this service cannot process; ``reason`` says why, for the dead-letter record."""

    def __init__(self, reason: str, error_type: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(x) for x in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def decode_event(kind: StreamKind, key: bytes | None, value: bytes | None) -> ConsumedEvent:
    """The event in ``value``, checked against the key it was sent with.

    Keys matter: a learner's events must share a partition, so the key must be the user id
    (the entry's id on catalog topics: the kind's ``keyed_by``, ``progress.kinds``), or the
    learner's state would be split across workers.
    """
    if not value:
        raise InvalidEvent("empty message: a value with a JSON event is required", "empty")
    if len(value) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(
            f"message of {len(value)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}", "oversize"
        )
    input_kind = INPUTS[kind]
    try:
        event: ConsumedEvent = input_kind.parse(value)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]["type"] if err.errors() else ""
        error_type = {"json_invalid": "malformed-json", "unknown_event_type": "unknown-type"}.get(
            first, "invalid"
        )
        raise InvalidEvent(_describe(err), error_type) from err

    expected = getattr(event, input_kind.keyed_by)
    what = "entry id" if input_kind.keyed_by == "id" else "user_id"
    if key is None or key.decode("utf-8", "replace") != expected:
        shown = None if key is None else key.decode("utf-8", "replace")
        raise InvalidEvent(
            f"message key {shown!r} must be the event's {what} {expected!r}", "wrong-key"
        )
    return event
