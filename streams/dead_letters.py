"""Dead-letter records: a message that could not be processed, kept with why and where from."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime

from faust.types import Message, TopicT

from progress.decode import InvalidEvent
from progress.events import DeadLetter

log = logging.getLogger(__name__)


def dead_letter_for(message: Message, error: InvalidEvent) -> DeadLetter:
    key = message.key
    return DeadLetter(
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key.decode("utf-8", "replace") if isinstance(key, bytes) else None,
        value=base64.b64encode(message.value or b"").decode("ascii"),
        reason=error.reason,
        error_type=error.error_type,
        failed_at=datetime.now(UTC),
    )


class DeadLetters:
    """Sends dead-letter records and counts them (the worker logs the count)."""

    def __init__(self, topic: TopicT) -> None:
        self.topic = topic
        self.count = 0

    async def send(self, message: Message, error: InvalidEvent) -> None:
        record = dead_letter_for(message, error)
        self.count += 1
        log.warning(
            "dead-lettered %s[%d]@%d (%s): %s",
            record.source_topic,
            record.partition,
            record.offset,
            record.error_type,
            record.reason,
        )
        await self.topic.send(key=message.key, value=record.model_dump_json().encode())
