"""The Redis cache contract, shared by the sink (which advances it) and the API (which fills it).

One hash per learner, ``progress:user:{user_id}``. Its ``_version`` field is the learner
version its other fields were read at; the other fields are cached JSON responses (names
from ``Fields``). Two scripts keep the cache neither newer nor older than PostgreSQL:

- ``advance``: after each PostgreSQL commit, the sink moves every touched learner's hash to
  the committed version, dropping the fields of the older version, even if the hash was
  missing, so that the version mark is there to refuse late fills.
- ``fill``: after a cache miss, the API stores what it read from PostgreSQL together with the
  version it read in the same transaction. Refused if the hash is already at a newer
  version: an API reader that read before the sink's commit can never cache its answer over
  the sink's advance.

Versions travel as Lua numbers (doubles): exact up to 2**53.

Erasure: after committing the deletion of a learner's rows, the sink replaces the learner's
hash with a tombstone, ``erase``: nothing but ``_version`` = ``ERASED_VERSION`` (2**53 - 1,
higher than any real version and still exact as a double), with the cache TTL. An API reader
that read PostgreSQL before the deletion holds a real version, so ``fill`` refuses its answer
(``cached > version``) and the erased data cannot come back into the cache. For the same
reason ``advance`` refuses every version while the tombstone lives (``cached < version`` never
holds), including those of the learner coming back with new activity (versions restart at 1
after an erasure); the sink does not even offer them. Until the tombstone expires the
learner's answers are not cached and the API reads PostgreSQL for every request, which holds
the right rows; afterwards the hash is missing and the next ``advance`` or ``fill`` starts it
again as usual. A reader that stalled between its PostgreSQL read (before the erasure) and its
fill for longer than the TTL could still cache an old answer: the same bound as any fill.

A learner's answers that include catalog data (an earned achievement's name and points) also
depend on the catalog, which has no learner version. Their field names carry the catalog
generation, ``progress:catalog:generation``: a token the sink replaces with a new one after
each batch with catalog rows is committed to PostgreSQL. A reader that reads the new token
reads PostgreSQL after that commit; one that read the old token fills a field nobody asks
for any more, dropped with the learner's next advance or expiry.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from uuid import uuid4

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from adapters.course_cache import CourseCache

KEY_PREFIX = "progress:user:"
VERSION_FIELD = "_version"
# An erased learner's tombstone version: above every real version, exact as a Lua number.
ERASED_VERSION = 2**53 - 1
CATALOG_GENERATION_KEY = "progress:catalog:generation"

# KEYS: learners' hashes; ARGV: one version per key, then the ttl. Returns how many advanced.
_ADVANCE = """
local ttl = ARGV[#ARGV]
local advanced = 0
for i, key in ipairs(KEYS) do
  local cached = tonumber(redis.call('HGET', key, '_version'))
  local version = tonumber(ARGV[i])
  if not cached or cached < version then
    redis.call('DEL', key)
    redis.call('HSET', key, '_version', ARGV[i])
    redis.call('EXPIRE', key, ttl)
    advanced = advanced + 1
  end
end
return advanced
"""

# KEYS[1]: the learner's hash; ARGV: version, field, payload, ttl. Returns 1 if stored.
_FILL = """
local cached = tonumber(redis.call('HGET', KEYS[1], '_version'))
local version = tonumber(ARGV[1])
if cached and cached > version then
  return 0
end
if not cached or cached < version then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], '_version', ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


# KEYS: erased learners' hashes; ARGV: the tombstone version, the ttl. Unconditional: the
# rows are gone from PostgreSQL, so whatever the hash held is gone too. Returns the key count.
_ERASE = """
for _, key in ipairs(KEYS) do
  redis.call('DEL', key)
  redis.call('HSET', key, '_version', ARGV[1])
  redis.call('EXPIRE', key, ARGV[2])
end
return #KEYS
"""


def user_key(user_id: str) -> str:
    return f"{KEY_PREFIX}{user_id}"


class Fields:
    """Names of the cached responses inside a learner's hash.

    Ids may contain ":" (Open edX course keys) but never "/" (see ``progress.schema.Id``),
    so "/" separates the parts and two different requests cannot share a field.
    """

    OVERVIEW = "overview"

    @staticmethod
    def courses(status: str | None, limit: int, offset: int) -> str:
        return f"courses/{status or '*'}/{limit}/{offset}"

    @staticmethod
    def course(course_id: str) -> str:
        return f"course/{course_id}"

    @staticmethod
    def module(course_id: str, module_id: str) -> str:
        return f"module/{course_id}/{module_id}"

    @staticmethod
    def lesson(course_id: str, lesson_id: str) -> str:
        return f"lesson/{course_id}/{lesson_id}"

    # "*" is never an id (ids start with a letter or digit): it stands for "any". Every
    # list's field ends with its page, "<limit>/<offset>".
    @staticmethod
    def quiz_attempts(course_id: str | None, quiz_id: str | None, limit: int, offset: int) -> str:
        return f"quiz-attempts/{course_id or '*'}/{quiz_id or '*'}/{limit}/{offset}"

    @staticmethod
    def assignments(course_id: str | None, limit: int, offset: int) -> str:
        return f"assignments/{course_id or '*'}/{limit}/{offset}"

    @staticmethod
    def learning_paths(limit: int, offset: int) -> str:
        return f"learning-paths/{limit}/{offset}"

    @staticmethod
    def competencies(limit: int, offset: int) -> str:
        return f"competencies/{limit}/{offset}"

    @staticmethod
    def achievements(catalog_generation: str, limit: int, offset: int) -> str:
        return f"achievements/{catalog_generation}/{limit}/{offset}"


def redis_client(url: str) -> Redis:
    """A client that fails fast: a cache that is down must not stall its caller.

    One immediate retry covers a pooled connection that Redis closed; longer outages are the
    caller's to handle (the sink backs off, the API answers from PostgreSQL).
    """
    return Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        retry=Retry(NoBackoff(), retries=1),
    )


class ProgressCache:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds
        self._advance = redis.register_script(_ADVANCE)
        self._fill = redis.register_script(_FILL)
        self._erase = redis.register_script(_ERASE)
        # The course views' answers, one generation per course (adapters/course_cache.py).
        self.course_cache = CourseCache(redis, ttl_seconds)

    async def advance(self, user_versions: Mapping[str, int]) -> int:
        """Move each learner's hash to its committed version, in one atomic round trip.

        Returns how many hashes were advanced (the others already held that version or newer).
        """
        if not user_versions:
            return 0
        keys = [user_key(user_id) for user_id in user_versions]
        args = [*user_versions.values(), self._ttl]
        return int(await self._advance(keys=keys, args=args))

    async def content_restored(self, user_versions: Mapping[str, int]) -> int:
        """After bulky content was restored into rows at each learner's stored ``version``
        (``progress resnapshot``), which the version does not show: move the hash to
        ``version + 0.5``. That drops what was cached at ``version`` and refuses fills at
        it, which may have read PostgreSQL before the restore, until the learner's next
        version (a whole number above it) or the TTL: the API reads PostgreSQL meanwhile."""
        if not user_versions:
            return 0
        keys = [user_key(user_id) for user_id in user_versions]
        args = [*(version + 0.5 for version in user_versions.values()), self._ttl]
        return int(await self._advance(keys=keys, args=args))

    async def erase(self, user_ids: Collection[str]) -> int:
        """After the learners' rows were deleted from PostgreSQL: replace each one's hash
        with a tombstone that refuses every fill and advance until it expires (see the
        module's docstring), in one atomic round trip. Idempotent; returns how many."""
        if not user_ids:
            return 0
        keys = [user_key(user_id) for user_id in user_ids]
        return int(await self._erase(keys=keys, args=[ERASED_VERSION, self._ttl]))

    async def fill(self, user_id: str, field: str, version: int, payload: bytes) -> bool:
        """Cache a response read from PostgreSQL at ``version``; False if a newer one won."""
        if field.startswith("_"):
            raise ValueError(f"field names starting with '_' are reserved: {field!r}")
        stored = await self._fill(
            keys=[user_key(user_id)], args=[version, field, payload, self._ttl]
        )
        return bool(stored)

    async def new_catalog_generation(self) -> None:
        """After catalog rows were committed: answers cached with catalog data are stale."""
        await self._redis.set(CATALOG_GENERATION_KEY, uuid4().hex)

    async def catalog_generation(self) -> str:
        """The current catalog generation. A Redis without one (new, flushed) gets a new
        token: an old token is never reused, so no field filled under it is served again."""
        value: object = await self._redis.get(CATALOG_GENERATION_KEY)
        if value is None:
            token = uuid4().hex
            # NX with GET (Redis 7): the token another caller set first, else ours.
            value = await self._redis.set(CATALOG_GENERATION_KEY, token, nx=True, get=True)
            value = token if value is None else value
        return value.decode() if isinstance(value, bytes) else str(value)

    async def get(self, user_id: str, field: str) -> bytes | None:
        value = await self._redis.hget(user_key(user_id), field)
        # The client does not decode responses: a value is bytes, ready to send as a body.
        return value.encode() if isinstance(value, str) else value

    async def get_versioned(self, user_id: str, field: str) -> tuple[int, bytes] | None:
        """A cached response with the learner version it was read at (one round trip, so
        the two belong together), or None when the field is not cached."""
        version, value = await self._redis.hmget(user_key(user_id), [VERSION_FIELD, field])
        if value is None or version is None:
            return None
        body = value.encode() if isinstance(value, str) else value
        return int(float(version)), body
