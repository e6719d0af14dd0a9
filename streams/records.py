"""What the worker writes to Kafka, and what happens when a write fails.

Every record the worker writes has a size limit it checks before writing (below): a record
the broker refuses would otherwise be lost while the input offset moves on. A write that
fails for any other reason stops the worker (``halt``): its input offsets are not committed,
so a restart replays the batch, and replaying changes nothing that was already written.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable
from typing import Any, NoReturn

from faust.types import AppT, ProducerT, TopicT

from streams.errors import WorkerError

log = logging.getLogger(__name__)

HALT_EXIT_CODE = 70


class EffectsFailed(WorkerError):
    """An effect of a handled event (a published record, a table write) could not be
    written. Not the event's fault: the worker must stop before its offset is committed."""


def halt(error: BaseException) -> NoReturn:
    """Stop the process at once, without committing anything.

    The learner agent acknowledges a batch only after it was handled (streams/app.py), but
    Faust acknowledges the event an agent with automatic acks (the catalog fan-out) was on
    when it stops, and on the way out commits whatever was acknowledged, of every agent:
    exiting at once is the one way to be sure the offsets of events whose effects were not
    written stay uncommitted.
    """
    log.critical(
        "stopping the worker: an effect could not be written (%s: %s); nothing after the "
        "last commit is lost, and a restart replays it",
        type(error.__cause__ or error).__name__,
        error.__cause__ or error,
    )
    logging.shutdown()
    sys.stderr.flush()
    os._exit(HALT_EXIT_CODE)


class Records:
    """Hands records straight to the app's producer; each ``send`` returns its delivery.

    The same producer, partitioner (by key) and order as ``topic.send``, without Faust's
    bookkeeping of each message (a FutureMessage, sensors, a callback on delivery), which
    cost about as much as the send itself. Faust flushes this producer before it commits
    offsets. In a transaction (exactly-once), ``topic.send`` is what joins it.
    """

    def __init__(self, app: AppT) -> None:
        self.app = app
        self._names: dict[int, str] = {}
        self._producer: ProducerT | None = None

    async def send(
        self, topic: TopicT, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> Awaitable[Any]:
        """Raises ``EffectsFailed`` when the producer refuses the record; the delivery it
        returns raises ``EffectsFailed`` when the broker does. A None value is a tombstone."""
        try:
            if self.app.in_transaction:
                return _checked(await topic.send(key=key, value=value, partition=partition))
            name = self._names.get(id(topic))
            if name is None:
                name = self._names[id(topic)] = topic.get_topic_name()
            if self._producer is None:
                # Once: ``maybe_start_producer`` yields to the event loop on every call.
                self._producer = await self.app.maybe_start_producer()
            sent = await self._producer.send(
                name, key, value, partition=partition, timestamp=None, headers=None
            )
        except Exception as error:
            raise EffectsFailed(
                f"producing {len(value or b'')} bytes to {topic}: {error!r}"
            ) from error
        return _checked(sent)


async def _checked(delivery: Awaitable[Any]) -> Any:
    try:
        return await delivery
    except Exception as error:
        raise EffectsFailed(f"a record was not delivered: {error!r}") from error


async def delivered(deliveries: list[Awaitable[Any]]) -> None:
    """Await every delivery; the first failure raises ``EffectsFailed``."""
    for delivery in deliveries:
        await delivery
