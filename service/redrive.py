"""Re-driving dead letters: send back to their source topic the messages that are valid now.

A message is dead-lettered because it was not valid when it arrived. Once the cause is fixed
(the service learnt a new event type, a producer's bug was understood and the service made
more tolerant, a clock was corrected...), ``progress redrive`` reads the dead-letter topic
from the start, checks each original message again with today's rules, and re-sends the
ones that now pass, with their original key, to their original topic. Processing is
idempotent, so re-sending a message twice (or re-driving twice) changes nothing.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from adapters.kafka_clients import kafka_client_options
from adapters.settings import Settings
from adapters.topics import input_topic
from progress.decode import InvalidEvent, decode_event
from progress.events import DeadLetter
from progress.kinds import INPUT_KINDS, StreamKind


@dataclass
class RedriveReport:
    resent: int = 0
    still_invalid: dict[str, int] = field(default_factory=dict)  # reason -> count
    skipped: int = 0  # filtered out, or from a topic this service does not consume

    def lines(self) -> list[str]:
        out = [f"re-sent {self.resent}, skipped {self.skipped}"]
        out += [
            f"still invalid ({n}): {reason}" for reason, n in sorted(self.still_invalid.items())
        ]
        return out


async def redrive(
    settings: Settings, *, error_type: str | None = None, dry_run: bool = False
) -> RedriveReport:
    """Re-send every dead letter (of ``error_type``, if given) that is valid now."""
    # The broadcast is the worker's own: nothing there came from a producer.
    kinds = {
        input_topic(settings.topics, kind): kind.name for kind in INPUT_KINDS if not kind.internal
    }
    report = RedriveReport()
    # No group: every partition, from the start, and nothing committed.
    consumer = AIOKafkaConsumer(
        settings.topics.dead_letter,
        **kafka_client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(**kafka_client_options(settings), acks="all")
    await consumer.start()
    await producer.start()
    try:
        records = await consumer.getmany(timeout_ms=1000)
        partitions = list(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + 120
        while True:
            for batch in records.values():
                for record in batch:
                    await _consider(record.value, kinds, error_type, dry_run, producer, report)
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the dead-letter topic was not read to its end in 120 s")
            records = await consumer.getmany(timeout_ms=500)
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return report


async def _consider(
    raw: bytes | None,
    kinds: dict[str, StreamKind],
    error_type: str | None,
    dry_run: bool,
    producer: AIOKafkaProducer,
    report: RedriveReport,
) -> None:
    try:
        letter = DeadLetter.model_validate_json(raw or b"")
    except ValidationError:
        report.skipped += 1
        return
    kind = kinds.get(letter.source_topic)
    if kind is None or (error_type is not None and letter.error_type != error_type):
        report.skipped += 1
        return
    key = letter.key.encode() if letter.key is not None else None
    value = base64.b64decode(letter.value)
    try:
        decode_event(kind, key, value)
    except InvalidEvent as still:
        report.still_invalid[still.reason] = report.still_invalid.get(still.reason, 0) + 1
        return
    if not dry_run:
        await producer.send(letter.source_topic, key=key, value=value)
    report.resent += 1
