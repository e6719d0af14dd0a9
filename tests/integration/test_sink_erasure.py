"""Right-to-erasure in the sink against the real stack: ``Erasure`` messages on a snapshot
topic of the test's own, rows in PostgreSQL, tombstones in Redis.

Snapshots and erasures are built here, as the worker would send them (an erasure keyed by
the user id, after the learner's earlier snapshots), so these tests need no worker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeAlias

import pytest
import redis.exceptions
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from adapters.cache import ERASED_VERSION, VERSION_FIELD, ProgressCache, user_key
from adapters.settings import Settings
from progress.snapshots import Erasure, Snapshot
from sinks import runner
from sinks.postgres import (
    LEARNER_MODELS,
    SinkMessage,
    Written,
    after_erasures,
    write_batch,
    write_snapshots,
)
from tests.integration.test_sink_api import PER_USER_TABLES, Outage, at, learner_snapshot
from tests.support.stack import (
    Http,
    SinkTask,
    committed,
    eventually,
    fetch_all,
    snapshot_key,
    wait_committed,
)

pytestmark = pytest.mark.integration

Rows: TypeAlias = dict[str, list[Any]]
# Sends snapshots and erasures and returns once the module's sink has committed them.
Sent: TypeAlias = Callable[..., Awaitable[None]]


def erasure(user_id: str) -> Erasure:
    return Erasure(user_id=user_id, erased_at=at(60))


def of(user_id: str, messages: Iterable[SinkMessage]) -> list[SinkMessage]:
    """The learner's messages among ``messages``, in order."""
    return [
        message
        for message in messages
        if isinstance(message, Snapshot | Erasure) and message.user_id == user_id
    ]


def comeback(user_id: str, version: int, lesson_percent: float) -> Snapshot:
    """The learner back after an erasure: versions restart at 1, and the python-basics
    competency has other evidence than before (so the evidence set must be the new one)."""
    return learner_snapshot(user_id, version, lesson_percent=lesson_percent, evidence=("a1",))


async def send(
    producer: AIOKafkaProducer, settings: Settings, messages: Iterable[SinkMessage]
) -> list[RecordMetadata]:
    """Each message on the settings' snapshot topic, with the key the worker gives it."""
    return [
        await producer.send_and_wait(
            settings.topics.snapshots,
            key=(
                message.user_id if isinstance(message, Erasure) else snapshot_key(message)
            ).encode(),
            value=message.model_dump_json().encode(),
        )
        for message in messages
    ]


@pytest.fixture
async def sent(sink: Settings, producer: AIOKafkaProducer, admin: AIOKafkaAdminClient) -> Sent:
    async def send_them(*messages: SinkMessage) -> None:
        await wait_committed(admin, sink.sink_group_id, await send(producer, sink, messages))

    return send_them


async def rows_of(pool: AsyncConnectionPool, user_id: str, *, synced_at: bool = False) -> Rows:
    """Every row of the learner, per table, ordered by id; without ``synced_at`` unless
    asked for (a row deleted and written again has a new one)."""
    drop = "" if synced_at else " - 'synced_at'"
    rows: Rows = {}
    for table in PER_USER_TABLES:
        found = await fetch_all(
            pool,
            f"select to_jsonb(t){drop} from {table} t where user_id = %s order by id",
            user_id,
        )
        rows[table] = [row for (row,) in found]
    return rows


def counts(rows: Rows) -> dict[str, int]:
    return {table: len(found) for table, found in rows.items()}


def versions(rows: Rows) -> set[int]:
    return {row["version"] for found in rows.values() for row in found}


def expected_counts(snapshot: Snapshot) -> dict[str, int]:
    per_table = Counter(row.table for row in snapshot.rows())
    return {table: per_table[table] for table in PER_USER_TABLES}


def lesson_percent(rows: Rows, lesson_id: str) -> float:
    [lesson] = [row for row in rows["lesson_progress"] if row["lesson_id"] == lesson_id]
    return float(lesson["percent_complete"])


def evidence_references(rows: Rows) -> list[str]:
    return sorted(row["reference_id"] for row in rows["competency_evidence"])


async def write(pool: AsyncConnectionPool, messages: Sequence[SinkMessage]) -> dict[str, int]:
    async with pool.connection() as conn:
        return await write_snapshots(conn, messages)


async def hash_of(redis_client: Redis, user_id: str) -> dict[bytes, bytes]:
    return dict(await redis_client.hgetall(user_key(user_id)))


TOMBSTONE = {VERSION_FIELD.encode(): str(ERASED_VERSION).encode()}


# ------------------------------------------------------------------ the batch's order


def test_an_erasure_deletes_from_every_per_learner_table() -> None:
    assert tuple(model.table for model in LEARNER_MODELS) == PER_USER_TABLES  # all 11


def test_only_the_snapshots_after_a_learners_last_erasure_are_kept() -> None:
    v1, v2, other = (learner_snapshot(u, v, lesson_percent=0.0) for u, v in
                     (("u-a", 1), ("u-a", 2), ("u-b", 7)))  # fmt: skip
    back1, back2 = comeback("u-a", 1, 5.0), comeback("u-a", 2, 6.0)
    kept, erased = after_erasures(
        [v1, other, erasure("u-a"), back1, erasure("u-a"), back2, erasure("u-c")]
    )
    assert (kept, erased) == ([other, back2], ["u-a", "u-c"])
    assert after_erasures([v1, v2]) == ([v1, v2], [])


async def test_a_learner_back_in_the_erasures_batch_is_written_at_its_new_versions(
    pg_pool: AsyncConnectionPool, new_id: Callable[[str], str]
) -> None:
    user, other = new_id("u"), new_id("u")
    # Stored at version 5 by an earlier batch: higher than anything the learner comes back at.
    await write(pg_pool, [learner_snapshot(user, 5, lesson_percent=50.0)])
    back2 = comeback(user, 2, 20.0)
    batch: list[SinkMessage] = [
        learner_snapshot(user, 6, lesson_percent=60.0),
        learner_snapshot(other, 1, lesson_percent=10.0),
        erasure(user),
        comeback(user, 1, 10.0),
        learner_snapshot(other, 2, lesson_percent=15.0),
        back2,
    ]
    assert await write(pg_pool, batch) == {user: 2, other: 2}
    rows = await rows_of(pg_pool, user)
    assert versions(rows) == {2}
    assert counts(rows) == expected_counts(back2)
    assert lesson_percent(rows, "l2") == 20.0
    # git's evidence and python-basics' new evidence only: q1 and cert-1 went with the erasure.
    assert evidence_references(rows) == sorted(["a1", "course-v1:Acme+GIT100+2026"])
    other_rows = await rows_of(pg_pool, other, synced_at=True)
    assert versions(other_rows) == {2}

    # The same batch again (read again before its offsets were committed): the same rows.
    assert await write(pg_pool, batch) == {user: 2, other: 2}
    assert await rows_of(pg_pool, user) == rows
    assert await rows_of(pg_pool, other, synced_at=True) == other_rows  # not even synced_at

    # An erasure alone, twice: nothing of the learner left, nothing of the other one touched.
    assert await write(pg_pool, [erasure(user)]) == {}
    assert await write(pg_pool, [erasure(user)]) == {}
    assert counts(await rows_of(pg_pool, user)) == dict.fromkeys(PER_USER_TABLES, 0)
    assert await rows_of(pg_pool, other, synced_at=True) == other_rows


async def test_a_re_read_cut_before_the_erasure_converges_once_the_erasure_is_read(
    pg_pool: AsyncConnectionPool, new_id: Callable[[str], str]
) -> None:
    """A re-read need not cut the records where the first read did. The batch before the
    erasure writes the erased rows again for a moment (docs/reliability.md#erasure); the next
    one starts with the erasure, which deletes them again before the comeback is written."""
    user = new_id("u")
    old = [learner_snapshot(user, v, lesson_percent=v * 10.0) for v in (1, 2)]
    back = comeback(user, 1, 5.0)
    await write(pg_pool, [*old, erasure(user), back])
    erased_then_back = await rows_of(pg_pool, user)
    assert versions(erased_then_back) == {1}

    await write(pg_pool, old)  # the re-read, cut before the erasure
    await write(pg_pool, [erasure(user), back])
    assert await rows_of(pg_pool, user) == erased_then_back


# ------------------------------------------------------------------ the sink


async def test_an_erasure_deletes_every_row_of_the_learner_and_nothing_of_another(
    sent: Sent,
    sink: Settings,
    pg_pool: AsyncConnectionPool,
    redis_client: Redis,
    http: Http,
    new_id: Callable[[str], str],
) -> None:
    user, other = new_id("u"), new_id("u")
    v2 = learner_snapshot(user, 2, lesson_percent=40.0)
    await sent(
        learner_snapshot(user, 1, lesson_percent=20.0),
        v2,
        learner_snapshot(other, 3, lesson_percent=30.0),
    )
    assert counts(await rows_of(pg_pool, user)) == expected_counts(v2)
    assert all(counts(await rows_of(pg_pool, user)).values())  # all 11 tables
    other_rows = await rows_of(pg_pool, other, synced_at=True)
    cache = ProgressCache(redis_client, sink.cache_ttl_seconds)
    # What API readers cached before the erasure.
    assert await cache.fill(user, "overview", 2, b'{"v":2}')
    assert await cache.fill(other, "overview", 3, b'{"v":3}')
    assert (await http.get(f"/users/{user}/progress")).status == 200

    await sent(erasure(user))
    assert counts(await rows_of(pg_pool, user)) == dict.fromkeys(PER_USER_TABLES, 0)
    assert await rows_of(pg_pool, other, synced_at=True) == other_rows
    assert await hash_of(redis_client, user) == TOMBSTONE
    assert 0 < await redis_client.ttl(user_key(user)) <= sink.cache_ttl_seconds
    assert await cache.get(other, "overview") == b'{"v":3}'

    # A reader that read version 2 from PostgreSQL before the erasure fills too late: refused.
    assert not await cache.fill(user, "overview", 2, b'{"v":2}')
    assert await hash_of(redis_client, user) == TOMBSTONE
    assert (await http.get(f"/users/{user}/progress")).status == 404
    assert await hash_of(redis_client, user) == TOMBSTONE


async def test_a_learner_back_after_an_erasure_is_served_from_postgres_meanwhile(
    sent: Sent,
    pg_pool: AsyncConnectionPool,
    redis_client: Redis,
    http: Http,
    new_id: Callable[[str], str],
) -> None:
    user = new_id("u")
    await sent(learner_snapshot(user, 4, lesson_percent=40.0))
    back = comeback(user, 1, 10.0)
    await sent(learner_snapshot(user, 5, lesson_percent=50.0), erasure(user), back)
    rows = await rows_of(pg_pool, user)
    assert (versions(rows), counts(rows)) == ({1}, expected_counts(back))
    # The tombstone refuses the comeback's version too: the API reads PostgreSQL meanwhile.
    assert await hash_of(redis_client, user) == TOMBSTONE
    for _ in range(2):
        response = await http.get(f"/users/{user}/progress")
        assert (response.status, response.headers["X-Cache"]) == (200, "miss")
        assert (await response.json())["version"] == 1
    assert await hash_of(redis_client, user) == TOMBSTONE


async def test_a_batch_read_again_after_a_stop_ends_in_the_same_state(
    isolated_settings: Settings,
    producer: AIOKafkaProducer,
    admin: AIOKafkaAdminClient,
    pg_pool: AsyncConnectionPool,
    redis_client: Redis,
    monkeypatch: pytest.MonkeyPatch,
    new_id: Callable[[str], str],
) -> None:
    """PostgreSQL committed the erasure and the comeback, then the sink stopped before
    Redis and the offsets: the restarted sink reads the same records, erasure included."""
    settings = isolated_settings
    group = settings.sink_group_id
    user, other = new_id("u"), new_id("u")
    back = comeback(user, 1, 10.0)
    messages: list[SinkMessage] = [
        learner_snapshot(user, 1, lesson_percent=20.0),
        learner_snapshot(user, 2, lesson_percent=40.0),
        learner_snapshot(other, 1, lesson_percent=30.0),
        erasure(user),
        back,
    ]
    users_messages = of(user, messages)
    batches: list[list[SinkMessage]] = []
    redis_ = Outage()
    real_write, real_erase = write_batch, ProgressCache.erase

    async def recorded_write(conn: AsyncConnection, batch: list[SinkMessage]) -> Written:
        batches.append(list(batch))
        return await real_write(conn, batch)

    async def flaky_erase(self: ProgressCache, user_ids: list[str]) -> int:
        if redis_.down:
            redis_.fail(redis.exceptions.ConnectionError("injected: Redis is unavailable"))
        return await real_erase(self, user_ids)

    monkeypatch.setattr(runner, "write_batch", recorded_write)
    monkeypatch.setattr(ProgressCache, "erase", flaky_erase)

    records = await send(producer, settings, messages)  # all there before the sink reads
    first = SinkTask(settings)
    await redis_.failed_twice()
    await first.close()  # stopped while retrying Redis: nothing committed
    assert await committed(admin, group) == {}
    # The learner's messages are on one partition and were read in one batch, in order.
    [erasing] = [batch for batch in batches if any(isinstance(m, Erasure) for m in batch)]
    assert of(user, erasing) == users_messages
    rows = await rows_of(pg_pool, user)
    assert (versions(rows), counts(rows)) == ({1}, expected_counts(back))
    assert lesson_percent(rows, "l2") == 10.0
    other_rows = await rows_of(pg_pool, other, synced_at=True)
    assert await hash_of(redis_client, user) == {}  # neither advanced nor erased

    redis_.down = False
    batches.clear()
    second = SinkTask(settings)
    try:
        await wait_committed(admin, group, records)
        assert of(user, [m for batch in batches for m in batch]) == users_messages  # again
        assert await rows_of(pg_pool, user) == rows
        assert await rows_of(pg_pool, other, synced_at=True) == other_rows
        assert await hash_of(redis_client, user) == TOMBSTONE
        assert await redis_client.hget(user_key(other), VERSION_FIELD) == b"1"

        # The same records once more (a producer retrying, a replay): the same state again.
        records = await send(producer, settings, messages)
        await wait_committed(admin, group, records)
        assert await rows_of(pg_pool, user) == rows
        assert await rows_of(pg_pool, other, synced_at=True) == other_rows
        assert await hash_of(redis_client, user) == TOMBSTONE
    finally:
        await second.close()


# ------------------------------------------------------------------ the cache


async def test_a_tombstone_refuses_fills_and_advances_until_it_expires(
    redis_client: Redis, new_id: Callable[[str], str]
) -> None:
    cache = ProgressCache(redis_client, ttl_seconds=1)
    user = new_id("u")
    assert await cache.fill(user, "overview", 7, b'{"v":7}')
    assert await cache.erase([user]) == 1
    assert await cache.erase([user]) == 1  # idempotent
    assert await hash_of(redis_client, user) == TOMBSTONE
    assert not await cache.fill(user, "overview", 7, b'{"v":7}')  # read before the erasure
    assert not await cache.fill(user, "overview", 1, b'{"v":1}')  # the learner came back
    assert await cache.advance({user: 8}) == 0
    assert await cache.advance({user: 1}) == 0
    assert await hash_of(redis_client, user) == TOMBSTONE
    assert await cache.erase([]) == 0

    async def expired() -> bool:
        return not await redis_client.exists(user_key(user))

    await eventually(expired, "the tombstone to expire")
    assert await cache.advance({user: 1}) == 1  # cached again as usual
    assert await cache.fill(user, "overview", 1, b'{"v":1}')
    assert await cache.get(user, "overview") == b'{"v":1}'
