"""Dead-letter records: a message that could not be processed, kept with why and where from."""

from __future__ import annotations

import base64
import collections
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from faust.types import Message

from progress.events import DeadLetter

log = logging.getLogger(__name__)

# A dead letter must always fit the dead-letter topic (3,000,000 bytes, adapters/topics.py):
# it carries at most this much of the original (4/3 of it in base64) and of the reason. A
# larger original (a compressed batch can hold a value of many MB that the broker accepted)
# is kept as its first bytes with its size and SHA-256, never dropped.
KEPT_VALUE_BYTES = 2_000_000
KEPT_REASON_CHARS = 10_000

Produce = Callable[[bytes | None, bytes], Awaitable[Awaitable[Any]]]


def dead_letter_for(message: Message, reason: str, error_type: str) -> DeadLetter:
    key = message.key
    value = message.value or b""
    kept = value[:KEPT_VALUE_BYTES]
    if len(reason) > KEPT_REASON_CHARS:
        reason = reason[:KEPT_REASON_CHARS] + " [...]"
    return DeadLetter(
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key.decode("utf-8", "replace")[:KEPT_REASON_CHARS] if isinstance(key, bytes) else None,
        value=base64.b64encode(kept).decode("ascii"),
        value_bytes=len(value),
        value_sha256=hashlib.sha256(value).hexdigest(),
        value_truncated=len(kept) < len(value),
        reason=reason,
        error_type=error_type,
        failed_at=datetime.now(UTC),
    )


class DeadLetters:
    """Sends dead-letter records and counts them (the worker logs the count).

    ``produce(key, value)`` hands a record to the producer and returns its delivery; ``send``
    returns that delivery, which the caller awaits before the message's offset may be
    committed: a dead letter that was not written would be a lost message.
    """

    def __init__(self, produce: Produce) -> None:
        self._produce = produce
        self.count = 0
        # By error_type, for the progress_worker_dead_letters_total metric.
        self.by_type: collections.Counter[str] = collections.Counter()

    async def send(self, message: Message, reason: str, error_type: str) -> Awaitable[Any]:
        record = dead_letter_for(message, reason, error_type)
        self.count += 1
        self.by_type[error_type] += 1
        log.warning(
            "dead-lettered %s[%d]@%d (%s): %s",
            record.source_topic,
            record.partition,
            record.offset,
            record.error_type,
            record.reason[:500],
            # For LOG_FORMAT=json (adapters/logs.py): where the event was, and why.
            extra={
                "topic": record.source_topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": record.key,
                "error_type": record.error_type,
                "value_sha256": record.value_sha256,
            },
        )
        key = message.key if isinstance(message.key, bytes) else None
        return await self._produce(key, record.model_dump_json().encode())
