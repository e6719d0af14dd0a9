"""Sink: snapshot rows per second into PostgreSQL, the sink's batched path against one upsert
per row, on the same rows, in the same run.

    .venv/bin/python -m bench.sink_rows [--learners N] [--batch N] [--quick]

Data: learner snapshots derived by the domain core from a seeded event stream (one snapshot
per event, about 6 rows each), interleaved across learners as a partition delivers them and
cut into batches of ``SINK_BATCH_MAX_RECORDS`` (2,000) snapshots, as ``sinks.runner`` reads
them. Each variant starts from empty tables in a database of its own (``progress_benchb_sink``,
or ``--database``):

- ``batched``: ``sinks.postgres.write_snapshots`` per batch, one connection, as the sink does
  (coalescing, one transaction, ``executemany`` per table in pipeline mode);
- ``batched_with_cache``: the same plus ``ProgressCache.advance`` after each commit (Redis db 2),
  the sink's whole per-batch write path;
- ``per_row``: the same coalesced rows, in the same order, each as one autocommit execute of
  the same upsert statement (a naive sink), on the first ``--per-row-rows`` rows.

Rows counted are rows sent to PostgreSQL (after the batch's coalescing: a learner's newer
snapshot in the same batch replaces the rows of its older ones), so both variants count the
same statements; the target is judged on that figure. ``batched_offered_rows_per_s`` counts
every row of every snapshot absorbed, as the sink's own log line does. The decode figure is
the sink's own ``decode_message`` on the worker's JSON: CPU the sink spends before writing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, sql
from redis.asyncio import Redis
from redis.exceptions import RedisError

from adapters.cache import ProgressCache
from bench.figures import print_figures
from bench.seeding import (
    batches,
    clear_cache,
    interleaved,
    isolated_database,
    learner_snapshots,
)
from progress.models import ALL_ROW_MODELS, Row
from progress.snapshots import Snapshot
from sinks.postgres import ROW_UPSERTS, after_erasures, coalesce, write_snapshots
from sinks.runner import decode_message

DATABASE = "progress_benchb_sink"
REDIS_URL = "redis://127.0.0.1:6379/2"
TARGET_ROWS_PER_S = 70_000  # issue #12 (issue #5 asked 50,000)


def coalesced_rows(batch: Sequence[Snapshot]) -> list[Row]:
    """The rows ``write_snapshots`` sends for this batch, in the order it sends them."""
    learners, _ = after_erasures(batch)
    grouped = coalesce(learners)
    out: list[Row] = []
    for model in ALL_ROW_MODELS:
        out.extend(sorted(grouped.get(model, []), key=lambda row: row.id))
    return out


# Written by every batch beside the row tables (``sinks.history``): emptied with them, so
# that each repeat writes the history as the first did rather than finding it written.
HISTORY_TABLE = "course_progress_daily"


async def emptied(conn: AsyncConnection) -> None:
    names = [*(model.table for model in ALL_ROW_MODELS), HISTORY_TABLE]
    tables = sql.SQL(", ").join(sql.Identifier(name) for name in names)
    await conn.execute(sql.SQL("truncate {}").format(tables))
    await conn.commit()


async def stored_rows(conn: AsyncConnection) -> int:
    total = 0
    for model in ALL_ROW_MODELS:
        query = sql.SQL("select count(*) from {}").format(sql.Identifier(model.table))
        cursor = await conn.execute(query)
        row = await cursor.fetchone()
        total += int(row[0]) if row else 0
    await conn.commit()
    return total


async def batched_seconds(
    url: str, chunks: Sequence[Sequence[Snapshot]], redis: Redis | None
) -> float:
    """Seconds to write every batch from empty tables (and an empty cache, given Redis)."""
    cache = None
    if redis is not None:
        await clear_cache(redis)
        cache = ProgressCache(redis, 3600)
    async with await AsyncConnection.connect(url) as conn:
        await emptied(conn)
        started = time.perf_counter()
        for chunk in chunks:
            versions = await write_snapshots(conn, chunk)
            if cache is not None:
                await cache.advance(versions)
        return time.perf_counter() - started


async def per_row_seconds(url: str, rows: Sequence[Row]) -> float:
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await emptied(conn)
        started = time.perf_counter()
        for row in rows:
            upsert = ROW_UPSERTS[type(row)]
            await conn.execute(
                upsert.statement, tuple(getattr(row, name) for name in upsert.params)
            )
        return time.perf_counter() - started


def decode_seconds(encoded: Sequence[bytes]) -> float:
    started = time.perf_counter()
    for value in encoded:
        decode_message(value)
    return time.perf_counter() - started


async def measure(
    learners: int = 2000,
    batch: int = 2000,
    per_row_rows: int = 10_000,
    repeats: int = 3,
    seed: int = 5,
    database: str = DATABASE,
) -> dict[str, Any]:
    """Rows per second of each variant; figure names carry their units. The batched variants
    run ``repeats`` times each and report the median: the machine is shared and noisy."""
    # Other work shares these two cores: the load average says how much, beside the figures.
    load_before = os.getloadavg()[0]
    derive_started = time.perf_counter()
    snapshots = interleaved(learner_snapshots(learners, seed=seed))
    derive_s = time.perf_counter() - derive_started
    chunks = list(batches(snapshots, batch))
    rows_per_chunk = [coalesced_rows(chunk) for chunk in chunks]
    rows = [row for chunk_rows in rows_per_chunk for row in chunk_rows]
    offered = sum(len(s.rows()) for s in snapshots)
    encoded = [s.model_dump_json().encode() for s in snapshots]

    redis = Redis.from_url(REDIS_URL)
    try:
        async with isolated_database(database) as url:
            batched_runs = [await batched_seconds(url, chunks, None) for _ in range(repeats)]
            async with await AsyncConnection.connect(url) as conn:
                distinct_stored = await stored_rows(conn)
            cached_runs = [await batched_seconds(url, chunks, redis) for _ in range(repeats)]
            naive = rows[:per_row_rows]
            naive_s = await per_row_seconds(url, naive)
    finally:
        # The cached variant left learner hashes in db 2.
        with contextlib.suppress(RedisError):
            await clear_cache(redis)
        await redis.aclose()
    decode_s = decode_seconds(encoded)

    batched_s, cached_s = statistics.median(batched_runs), statistics.median(cached_runs)
    batched_rate = len(rows) / batched_s
    naive_rate = len(naive) / naive_s
    return {
        "snapshots": len(snapshots),
        "batches": len(chunks),
        "rows_offered": offered,
        "rows_sent_after_coalescing": len(rows),
        "rows_stored_distinct": distinct_stored,
        "batched_rows_per_s": round(batched_rate),
        "batched_rows_per_s_best": round(len(rows) / min(batched_runs)),
        "batched_rows_per_s_worst": round(len(rows) / max(batched_runs)),
        # What the sink absorbs from the topic, rows a newer one in the batch replaced
        # included: the figure the sink's own log line reports as rows/s.
        "batched_offered_rows_per_s": round(offered / batched_s),
        "batched_snapshots_per_s": round(len(snapshots) / batched_s),
        "batched_ms_per_batch": round(1000 * batched_s / len(chunks), 2),
        "batched_with_cache_rows_per_s": round(len(rows) / cached_s),
        "per_row_rows": len(naive),
        "per_row_rows_per_s": round(naive_rate),
        "batched_over_per_row_x": round(batched_rate / naive_rate, 1),
        "decode_rows_per_s": round(offered / decode_s),
        "decode_snapshots_per_s": round(len(snapshots) / decode_s),
        "derive_snapshots_s": round(derive_s, 1),
        "load_avg_1m_before": load_before,
        "load_avg_1m_after": os.getloadavg()[0],
        "target_batched_rows_per_s": TARGET_ROWS_PER_S,
        "target_met": batched_rate >= TARGET_ROWS_PER_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2000, help="snapshots per batch")
    parser.add_argument("--per-row-rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each batched variant")
    parser.add_argument("--quick", action="store_true", help="400 learners, 3,000 per-row rows")
    parser.add_argument(
        "--database",
        default=DATABASE,
        help="the database created and dropped for the run: another name for two runs at once",
    )
    args = parser.parse_args()
    if args.quick:
        args.learners, args.per_row_rows = 400, 3000
    params = {
        "learners": args.learners,
        "batch": args.batch,
        "per_row_rows": args.per_row_rows,
        "repeats": args.repeats,
    }
    figures = asyncio.run(measure(**params, database=args.database))
    print_figures("sink_rows", params, figures)


if __name__ == "__main__":
    main()
