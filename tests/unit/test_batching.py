"""The learner agent's batching loop (streams/batching.py), on a queue standing in for the
channel Faust's consumer fills: a batch is what is waiting, up to the bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import pytest

from streams.batching import batches

# Never reached when the batching is right: a guard against hanging, not a speed check.
GUARD_S = 10.0
END = object()
# Far longer than a few turns of the loop, which is all the fake channel needs.
IDLE_S = 0.05


class Channel:
    """What Faust's consumer has fetched and the stream has not read yet."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.closed = False

    def put(self, *items: object) -> None:
        for item in items:
            self.queue.put_nowait(item)

    async def read(self) -> AsyncGenerator[object, None]:
        try:
            while True:
                # As Faust's stream: a yield to the loop on every record, then the record
                # taken from the queue and handed over without another.
                await asyncio.sleep(0)
                item = await self.queue.get()
                if item is END:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.closed = True

    def batches(
        self, max_items: int = 100, max_wait_s: float = 3600.0
    ) -> AsyncGenerator[list[object], None]:
        return batches(self.read(), max_items=max_items, max_wait_s=max_wait_s, idle_s=IDLE_S)


async def next_batch(gathered: AsyncIterator[list[object]]) -> list[object]:
    return await asyncio.wait_for(anext(gathered), GUARD_S)


async def test_a_batch_is_everything_waiting() -> None:
    channel = Channel()
    channel.put(*range(30))
    async with aclosing(channel.batches()) as gathered:
        assert await next_batch(gathered) == list(range(30))


async def test_a_batch_holds_at_most_max_items_in_order() -> None:
    channel = Channel()
    channel.put(*range(25), END)
    async with aclosing(channel.batches(max_items=10)) as gathered:
        assert [b async for b in gathered] == [
            list(range(10)),
            list(range(10, 20)),
            list(range(20, 25)),
        ]


async def test_a_lone_event_is_handed_over_without_waiting_for_more() -> None:
    # max_wait_s is an hour: only "nothing more came" can hand this batch over.
    channel = Channel()
    channel.put("a")
    async with aclosing(channel.batches()) as gathered:
        assert await next_batch(gathered) == ["a"]
        channel.put("b")
        assert await next_batch(gathered) == ["b"]


async def test_what_came_while_a_batch_was_handled_makes_the_next_batch() -> None:
    channel = Channel()
    channel.put(1, 2)
    async with aclosing(channel.batches()) as gathered:
        assert await next_batch(gathered) == [1, 2]
        # "Handling" the batch: events arrive, and the reader gets the loop meanwhile.
        for item in range(3, 10):
            channel.put(item)
            await asyncio.sleep(0)
        assert await next_batch(gathered) == list(range(3, 10))


async def test_the_wait_for_more_is_bounded() -> None:
    # A source that never pauses: the batch is handed over after max_wait_s, not held.
    async def endless() -> AsyncGenerator[object, None]:
        n = 0
        while True:
            await asyncio.sleep(0)
            n += 1
            yield n

    gathered = batches(endless(), max_items=10**9, max_wait_s=0.01, idle_s=GUARD_S)
    async with aclosing(gathered):
        batch = await next_batch(gathered)
        assert batch == list(range(1, len(batch) + 1))
        assert (await next_batch(gathered))[0] == len(batch) + 1


async def test_an_error_of_the_source_comes_after_the_items_before_it() -> None:
    channel = Channel()
    channel.put(1, 2, RuntimeError("broken"))
    async with aclosing(channel.batches()) as gathered:
        seen: list[object] = []
        with pytest.raises(RuntimeError, match="broken"):
            while True:
                seen.extend(await next_batch(gathered))
        assert seen == [1, 2]


async def test_closing_stops_reading_and_closes_the_source() -> None:
    channel = Channel()
    channel.put(*range(5))
    gathered = channel.batches(max_items=2)
    assert await next_batch(gathered) == [0, 1]
    await gathered.aclose()
    assert channel.closed


async def test_a_batch_holds_at_least_one_item() -> None:
    gathered = batches(Channel().read(), max_items=0, max_wait_s=0.0, idle_s=0.0)
    with pytest.raises(ValueError):
        await anext(gathered)
