"""Writing bulky content to its compacted topic (``progress.content``, see
``progress.content``), with the learner's other effects.

Each record goes to the partition of the learner's event (the partition of the learner's
state in the ``learners`` changelog), keyed ``<row id>/<part>``, so ``progress resnapshot``
reads a partition's content beside the same partition's states, and a piece's records, its
tombstone included, stay in order on one partition.

Records are sent while the event is handled and their delivery is awaited with the batch's
published events, before the state is written (``streams.effects``, step 1): a crash before
the state write replays the event, whose digest then changes again and whose content is
written again, the same. A repeated event changes no digest and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import TopicT

from adapters.topics import CONTENT_MAX_BYTES
from progress.content import ContentRecord, content_slots, new_content
from progress.outcomes import Outcome
from progress.state import LearnerState
from streams.effects import Effects
from streams.errors import WorkerError
from streams.records import delivered

Encoded = tuple[bytes, bytes | None]


class ContentTooLarge(WorkerError):
    """A piece of content would pass the content topic's record limit: the event is refused.
    (An input message within its own limit cannot bring one.)"""


class ContentWriter:
    def __init__(self, topic: TopicT, effects: Effects) -> None:
        self.topic = topic
        self.effects = effects
        # Records written since the start, tombstones included (for tests and reports).
        self.written = 0

    def made(self, before: LearnerState | None, outcome: Outcome) -> list[Encoded]:
        """The records an outcome writes, encoded; ``ContentTooLarge`` if one would pass
        the limit (checked before any effect of the event is carried out)."""
        if not outcome.changed:
            return []
        encoded = [
            (key.encode(), _encoded(record))
            for key, record in new_content(before, outcome.state, outcome.snapshot)
        ]
        for key, value in encoded:
            if value is not None and len(value) > CONTENT_MAX_BYTES:
                raise ContentTooLarge(
                    f"the content of {key.decode()} takes {len(value)} bytes, over the"
                    f" content topic's limit of {CONTENT_MAX_BYTES}"
                )
        return encoded

    async def send(self, partition: int, records: Sequence[Encoded]) -> None:
        """Send the records to ``partition``; delivered with the batch's published events."""
        for key, value in records:
            sent = await self.effects.records.send(self.topic, key, value, partition=partition)
            self.effects.awaiting(sent)
            self.written += 1

    async def erase(self, partition: int, state: LearnerState) -> None:
        """Tombstone every piece of the learner's content, and wait until Kafka has them:
        the caller deletes the state next, and a replay without the state could not find
        the keys again."""
        sent = [
            await self.effects.records.send(self.topic, key.encode(), None, partition=partition)
            for key in content_slots(state)
        ]
        self.written += len(sent)
        await delivered(sent)


def _encoded(record: ContentRecord | None) -> bytes | None:
    return record.model_dump_json().encode() if record is not None else None
