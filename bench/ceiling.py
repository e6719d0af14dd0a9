"""The ceiling: a plain aiokafka consumer that only reads the input topics and decodes every
message with the project's ``decode_event`` (pydantic validation included), nothing else.

No Python consumer of this data can be faster on this machine, since every one of them must
at least fetch and decode. Timed from the seek to the beginning to the last record decoded
(connecting and fetching metadata excluded, as the pipeline's figure excludes its start).
"""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer

from bench.env import BenchEnv
from bench.loadgen import KINDS, topic_for
from bench.offsets import end_offsets
from progress.decode import InvalidEvent, decode_event
from progress.kinds import StreamKind


async def measure(env: BenchEnv) -> dict[str, float]:
    topics = env.settings.topics
    kinds: dict[str, StreamKind] = {topic_for(topics, kind): kind for kind in KINDS}
    ends = {tp: end for tp, end in (await end_offsets(env.settings.kafka_bootstrap, kinds)).items()}
    remaining = {tp for tp, end in ends.items() if end > 0}
    consumer = AIOKafkaConsumer(bootstrap_servers=env.settings.kafka_bootstrap)
    await consumer.start()
    decoded = invalid = 0
    try:
        consumer.assign(list(remaining))
        await consumer.seek_to_beginning(*remaining)
        first = time.perf_counter()
        cpu = time.process_time()  # this process's: the consumer's fetcher is in it too
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batch.items():
                kind = kinds[tp.topic]
                for record in records:
                    try:
                        decode_event(kind, record.key, record.value)
                        decoded += 1
                    except InvalidEvent:
                        invalid += 1
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        elapsed = time.perf_counter() - first
        cpu = time.process_time() - cpu
    finally:
        await consumer.stop()
    return {
        "events": float(decoded + invalid),
        "invalid": float(invalid),
        "seconds": elapsed,
        "events_per_s": (decoded + invalid) / elapsed if elapsed else 0.0,
        "cpu_us_per_event": cpu * 1e6 / max(decoded + invalid, 1),
    }
