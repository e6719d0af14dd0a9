"""The course views under wrk: ``GET /courses/{id}/stats`` and ``/learners``, cached and
uncached, on 10,000 learners over 50 courses.

    .venv/bin/python -m bench.course_views [--learners N] [--courses M] [--duration S] [--quick]

Set-up as ``bench.api_load``: the learners' snapshots derived by the domain core, and each
course's CourseSnapshot, written through the sink's own path (``sinks.postgres.write_batch``)
into a database of its own (``progress_benchb_courses``), Redis db 2, the API as a
subprocess with ``API_AUTH=off``. Learners pick courses Zipf-like (``bench.seeding``), so the
first course holds far more of them than the last: the spread a real catalog has.

- cached: every path read once (the misses fill the cache), then wrk over the same paths.
- uncached: paths never asked before (each with its own ``idle_days``, or roster ``offset``,
  over more paths than a run can reach), so every request is a miss answered by PostgreSQL,
  with the Redis lookup and fill a real miss makes; the X-Cache counts show it.

Before the runs, ``EXPLAIN (ANALYZE, BUFFERS)`` of each query on the largest course is
printed to stderr (docs/analytics.md#indexes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from redis.asyncio import Redis

from api import course_queries
from bench.api_load import REDIS_URL, free_port, read_all, running_api, shuffled, wrk, wrk_binary
from bench.figures import print_figures
from bench.seeding import (
    clear_cache,
    course_shape,
    course_update,
    interleaved,
    isolated_database,
    learner_snapshots,
    seed_database,
)
from progress.course_catalog import CourseSnapshot
from progress.events import CourseUpdated
from progress.facts import merge_course_update
from sinks.postgres import write_batch

DATABASE = "progress_benchb_courses"
SORTS = ("user_id", "-last_activity_at", "-percent_complete")
# Enough distinct uncached paths that a run never asks one twice.
UNCACHED_PATHS = 200_000


def cached_paths(courses: list[str]) -> dict[str, list[str]]:
    stats = [f"/courses/{c}/stats" for c in courses]
    learners = [
        f"/courses/{c}/learners?sort={sort}&limit=100&offset={offset}"
        for c in courses
        for sort in SORTS
        for offset in (0, 100)
    ]
    return {"stats": stats, "learners": learners}


def uncached_paths(courses: list[str], count: int) -> dict[str, list[str]]:
    """Paths no run asked before: stats with their own idle_days, rosters their own offset."""
    # idle_days stays within its bound (36,500): each course's paths count it up from 0.
    stats = [
        f"/courses/{courses[i % len(courses)]}/stats?idle_days={i // len(courses)}"
        for i in range(count)
    ]
    learners = [
        f"/courses/{courses[i % len(courses)]}/learners?sort={SORTS[i % len(SORTS)]}"
        f"&limit=100&offset={i // len(courses)}"
        for i in range(count)
    ]
    return {"stats": shuffled(stats), "learners": shuffled(learners)}


async def explain(url: str, course_id: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each course-view query on ``course_id``, to stderr."""
    params = {"course_id": course_id, "idle": 14, "status": None, "limit": 100, "offset": 0}
    queries = {
        "known": course_queries._KNOWN,
        "roster count": course_queries._ROSTER_COUNT,
        "roster page (-last_activity_at)": course_queries._ROSTER_PAGE
        + " order by last_activity_at desc nulls last, user_id limit %(limit)s offset %(offset)s",
        "counts": course_queries._COUNTS,
        "modules": course_queries._MODULES,
        "items": course_queries._ITEMS,
        "quizzes": course_queries._QUIZZES,
    }
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("vacuum analyze")
        for name, query in queries.items():
            cursor = await conn.execute(
                "explain (analyze, buffers, costs off) " + query,
                params,
            )
            plan = "\n".join(row[0] for row in await cursor.fetchall())
            print(f"-- {name}\n{plan}\n", file=sys.stderr, flush=True)


async def measure(
    learners: int = 10_000, courses: int = 50, seconds: float = 10.0, seed: int = 5
) -> dict[str, Any]:
    """Figures per endpoint, cached and uncached (names carry units: _per_s, _ms)."""
    wrk_binary()
    per_learner = learner_snapshots(learners, courses=courses, seed=seed)
    snapshots = interleaved(per_learner)
    enrolments = {(row.user_id, row.course_id) for s in snapshots for row in s.course_progress}
    enrolled = Counter(course for _, course in enrolments)
    course_ids = [course_shape(index).course_id for index in range(courses)]
    catalog = [
        CourseSnapshot.of(
            merge_course_update(None, CourseUpdated.model_validate(course_update(course_shape(i))))
        )
        for i in range(courses)
    ]
    largest, largest_size = enrolled.most_common(1)[0]
    figures: dict[str, Any] = {
        "learners": learners,
        "courses": courses,
        "largest_course_learners": largest_size,
        "load_avg_1m_before": os.getloadavg()[0],
    }
    redis = Redis.from_url(REDIS_URL)
    work = Path(tempfile.mkdtemp(prefix="benchb-courses-"))
    try:
        await clear_cache(redis)
        async with isolated_database(DATABASE) as url:
            async with await AsyncConnection.connect(url) as conn:
                await write_batch(conn, catalog)
            await seed_database(url, None, snapshots)
            await explain(url, largest)
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            cached = cached_paths(course_ids)
            uncached = uncached_paths(course_ids, UNCACHED_PATHS)
            async with running_api(url, port, work / "api.log"):
                for name in ("stats", "learners"):
                    warm = await read_all(base, cached[name])
                    figures[f"{name}_warm_up_misses"] = warm["miss"]
                    for label, paths in (("cached", cached[name]), ("uncached", uncached[name])):
                        run = await wrk(base, shuffled(paths), seconds, 16, 2)
                        for key in ("requests_per_s", "p50_ms", "p99_ms", "hits", "misses"):
                            figures[f"{name}_{label}_{key}"] = run[key]
                        figures[f"{name}_{label}_errors"] = run["errors"]
                        print(f"{name} {label}: {run}", file=sys.stderr, flush=True)
    finally:
        for key in [k async for k in redis.scan_iter(match="progress:course:*", count=5000)]:
            with contextlib.suppress(Exception):
                await redis.delete(key)
        await clear_cache(redis)
        await redis.aclose()
        shutil.rmtree(work, ignore_errors=True)
    figures["load_avg_1m_after"] = os.getloadavg()[0]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=10_000)
    parser.add_argument("--courses", type=int, default=50)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--quick", action="store_true", help="1,000 learners, 5 s runs")
    args = parser.parse_args()
    if args.quick:
        args.learners, args.duration = 1000, 5.0
    figures = asyncio.run(measure(args.learners, args.courses, args.duration))
    print_figures("course_views", vars(args), figures)


if __name__ == "__main__":
    main()
