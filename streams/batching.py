"""Batches as large as what is waiting: the learner agent's batching loop.

Faust's ``Stream.take_events(max, within)`` waits ``within`` seconds from each take, and
reads the stream only while it waits: whatever arrives while a batch is being handled stays
in Faust's queue, so a batch holds what Faust's per-record iteration reads in ``within``
(50 to 100 events in 10 ms, measured), however much is waiting. Here a task reads the stream into a
buffer all along, the previous batch's handling included, and a batch is handed over as soon
as nothing more comes (nothing is waiting to be read), or the buffer holds ``max_items``, or
``max_wait_s`` passed. At low rates a batch is the one event that came, handed over a moment
(``idle_s``) later; under load it is everything that came while the batch before was
handled, and what was still waiting, up to the bound.

Nothing here acknowledges anything: the caller acks a batch's events once it was handled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

from adapters.settings import Settings

T = TypeVar("T")


async def batches(
    source: AsyncIterator[T],
    *,
    max_items: int,
    max_wait_s: float,
    idle_s: float,
) -> AsyncGenerator[list[T], None]:
    """Yield the items of ``source`` in order, in batches of 1 to ``max_items``.

    A batch is handed over when the buffer holds ``max_items``, or when no item came for
    ``idle_s`` (nothing more was waiting: the source reads what is waiting at its own rate,
    one item every few hundred microseconds for a Faust stream), or ``max_wait_s`` after
    the caller asked for it (a bound on what filling a batch adds to an event's latency).
    The wait for a batch's first item is unbounded: nothing is held meanwhile. Items that
    came while the caller handled the batch before are in the next one.

    ``source`` is read by a task of its own, at most ``max_items`` ahead of the caller. An
    error of ``source`` is raised to the caller once the items read before it were handed
    over; when ``source`` ends, so do the batches. Closing this generator (``aclose``, or
    ``contextlib.aclosing``) cancels the reading task and closes ``source``: items read but
    not yet handed over are dropped, never yielded.
    """
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    buffer: list[T] = []
    arrived = asyncio.Event()  # the buffer holds an item, or reading ended
    full = asyncio.Event()  # the buffer holds max_items, or reading ended
    room = asyncio.Event()  # the buffer holds fewer than max_items
    room.set()
    ended: list[BaseException | None] = []  # [error or None] once reading ended

    async def read() -> None:
        try:
            async for item in source:
                while len(buffer) >= max_items:
                    room.clear()
                    await room.wait()
                buffer.append(item)
                arrived.set()
                if len(buffer) >= max_items:
                    full.set()
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # handed to the caller, who decides
            ended.append(error)
        else:
            ended.append(None)
        finally:
            arrived.set()
            full.set()

    loop = asyncio.get_running_loop()
    reader = asyncio.create_task(read())
    try:
        while True:
            await arrived.wait()
            deadline = loop.time() + max_wait_s
            # The reader shares the loop with the handling of batches: what came meanwhile
            # may still be waiting to be read. Wait while it keeps coming.
            while not full.is_set():
                before = len(buffer)
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(full.wait(), min(idle_s, remaining))
                if len(buffer) == before:
                    break
            if not buffer:
                error = ended[0] if ended else None
                if error is not None:
                    raise error
                return
            batch = buffer.copy()
            buffer.clear()
            room.set()
            if not ended:
                arrived.clear()
                full.clear()
            yield batch
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def stream_batches(stream: Any, settings: Settings) -> AsyncGenerator[list[Any], None]:
    """``batches`` of a Faust stream's events, bounded as the settings say
    (``WORKER_BATCH_MAX_EVENTS``, ``WORKER_BATCH_MAX_WAIT_MS``, ``WORKER_BATCH_IDLE_MS``): the
    worker's learner agent and the benchmark's Faust floor batch alike."""
    return batches(
        aiter(stream.events()),
        max_items=settings.worker_batch_max_events,
        max_wait_s=settings.worker_batch_max_wait_ms / 1000,
        idle_s=settings.worker_batch_idle_ms / 1000,
    )
