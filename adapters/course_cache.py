"""The Redis cache of the course views (``GET /courses/{course_id}/...``).

One hash per course, ``progress:course:{course_id}``: its ``_generation`` field is a counter,
its other fields cached JSON answers of that generation (names from ``CourseFields``).

- ``bump``: after each PostgreSQL commit, the sink moves every course the batch touched to
  its next generation and drops the cached answers, in one round trip per batch (not one
  per row: a course's thousands of learners share one bump per batch).
- ``fill``: the API reads the generation before it reads PostgreSQL and offers its answer
  with it; refused if the course has moved on meanwhile. A reader that read PostgreSQL
  before a commit read the generation before its bump too, so it can never cache an answer
  older than what PostgreSQL holds.

A missing hash is generation 0. A hash expires with the cache TTL, and its generation then
starts again from 0: a reader that stalled between its reads for longer than the TTL could
cache an older answer, the bound the learner cache has too (``adapters/cache.py``).

The answers that count idle learners depend on the clock as well as the rows: they may be
up to the TTL old in that respect (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from redis.asyncio import Redis

COURSE_KEY_PREFIX = "progress:course:"
GENERATION_FIELD = "_generation"

# KEYS: courses' hashes; ARGV[1]: the ttl. Returns how many were bumped.
_BUMP = """
for _, key in ipairs(KEYS) do
  local generation = redis.call('HINCRBY', key, '_generation', 1)
  redis.call('DEL', key)
  redis.call('HSET', key, '_generation', generation)
  redis.call('EXPIRE', key, ARGV[1])
end
return #KEYS
"""

# KEYS[1]: the course's hash; ARGV: generation, field, payload, ttl. Returns 1 if stored.
_FILL = """
local generation = tonumber(redis.call('HGET', KEYS[1], '_generation') or '0')
if generation ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], '_generation', ARGV[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


def course_key(course_id: str) -> str:
    return f"{COURSE_KEY_PREFIX}{course_id}"


class CourseFields:
    """Names of the cached answers in a course's hash: each query parameter, "*" when not
    given (never a value: statuses, sorts and numbers have no "*")."""

    @staticmethod
    def learners(
        status: str | None, idle_days: int | None, sort: str, limit: int, offset: int
    ) -> str:
        idle = "*" if idle_days is None else idle_days
        return f"learners/{status or '*'}/{idle}/{sort}/{limit}/{offset}"

    @staticmethod
    def stats(idle_days: int) -> str:
        return f"stats/{idle_days}"


@dataclass(frozen=True, slots=True)
class Cached:
    """A course's cached answer (None: not cached) and the generation it was looked up at."""

    generation: int
    payload: bytes | None


class CourseCache:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._bump = redis.register_script(_BUMP)
        self._fill = redis.register_script(_FILL)

    async def bump(self, course_ids: Collection[str]) -> int:
        """After rows of these courses were committed: their cached answers are stale."""
        if not course_ids:
            return 0
        keys = [course_key(course_id) for course_id in course_ids]
        return int(await self._bump(keys=keys, args=[self._ttl]))

    async def get(self, course_id: str, field: str) -> Cached:
        """The cached answer and the course's generation, in one round trip."""
        generation, payload = await self._redis.hmget(
            course_key(course_id), [GENERATION_FIELD, field]
        )
        return Cached(
            generation=int(generation) if generation is not None else 0,
            payload=payload.encode() if isinstance(payload, str) else payload,
        )

    async def fill(self, course_id: str, field: str, generation: int, payload: bytes) -> bool:
        """Cache an answer read from PostgreSQL after ``generation`` was looked up; False if
        the course has moved on since."""
        if field.startswith("_"):
            raise ValueError(f"field names starting with '_' are reserved: {field!r}")
        stored = await self._fill(
            keys=[course_key(course_id)], args=[generation, field, payload, self._ttl]
        )
        return bool(stored)
