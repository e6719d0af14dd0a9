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
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from adapters.kafka_clients import kafka_client_options
from adapters.settings import Settings
from adapters.topics import input_topic
from progress.decode import InvalidEvent, decode_event
from progress.events import DeadLetter
from progress.kinds import INPUT_KINDS, StreamKind
from service.errors import Unreachable
from service.kafka_read import TopicReader, start_producer
from service.progress_bar import ProgressBar


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
    """Re-send every dead letter (of ``error_type``, if given) that is valid now, read up to
    the topic's end as it was when the read began. ``Unreachable`` if Kafka does not
    answer, ``TopicMissing`` if the dead-letter topic does not exist."""
    # The broadcast is the worker's own: nothing there came from a producer.
    kinds = {
        input_topic(settings.topics, kind): kind.name for kind in INPUT_KINDS if not kind.internal
    }
    report = RedriveReport()
    reader = TopicReader(settings)
    await reader.start()
    producer = AIOKafkaProducer(**kafka_client_options(settings), acks="all")
    try:
        await start_producer(producer, settings)
        # Up to the end offsets as they are now: letters dead-lettered while this runs wait
        # for the next redrive. (A fixed deadline used to end a long topic's read with a
        # TimeoutError after 120 s, however fast it went.)
        partitions = await reader.partitions(settings.topics.dead_letter)
        ends = await reader.ends(partitions)
        beginnings = await reader.beginnings(partitions)
        bar = ProgressBar("redrive", sum(ends[tp] - beginnings[tp] for tp in partitions))
        try:
            for tp in partitions:
                async for record in reader.read(tp, ends[tp]):
                    await _consider(record.value, kinds, error_type, dry_run, producer, report)
                    bar.advance()
        finally:
            bar.close()
        try:
            await producer.flush()
        except (KafkaError, OSError) as exc:
            raise Unreachable(f"Kafka did not take the re-sent messages: {exc}") from None
    finally:
        await producer.stop()
        await reader.stop()
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
