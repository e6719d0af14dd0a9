"""Live change notices: what the sink tells the API's server-sent event streams.

After the sink has committed a batch to PostgreSQL and advanced the Redis cache, it publishes
one small JSON message per learner and per course the batch changed, on Redis pub/sub:

- ``progress:live:user:{user_id}``: ``{"user_id": ..., "version": n}``, the learner's
  committed version;
- ``progress:live:course:{course_id}``: ``{"course_id": ...}``, a learner's progress in the
  course, or the course's structure, changed.

A notice only says "read again": whoever receives it reads the API, which by then answers
the committed data (PostgreSQL is committed and the cache advanced before the publish). Pub/sub
keeps nothing: a reader that was not subscribed misses the notice, so a reader reads once
whenever it (re)subscribes. Ids never contain "/" but may contain ":" (``progress.schema.Id``);
the prefix ends the channel's fixed part, so two ids cannot share a channel.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

USER_CHANNEL_PREFIX = "progress:live:user:"
COURSE_CHANNEL_PREFIX = "progress:live:course:"


class LearnerChanged(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    user_id: str
    version: int


class CourseChanged(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    course_id: str


def user_channel(user_id: str) -> str:
    return f"{USER_CHANNEL_PREFIX}{user_id}"


def course_channel(course_id: str) -> str:
    return f"{COURSE_CHANNEL_PREFIX}{course_id}"


async def publish_changes(
    redis: Redis, user_versions: Mapping[str, int], course_ids: Collection[str]
) -> int:
    """Publish one notice per changed learner and course, in one round trip (a pipeline,
    not a transaction: each notice stands alone). Returns how many notices were published;
    publishing again is harmless (a reader reads once more)."""
    if not user_versions and not course_ids:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for user_id, version in user_versions.items():
            notice = LearnerChanged(user_id=user_id, version=version)
            pipe.publish(user_channel(user_id), notice.model_dump_json())
        for course_id in sorted(course_ids):
            pipe.publish(
                course_channel(course_id), CourseChanged(course_id=course_id).model_dump_json()
            )
        await pipe.execute()
    return len(user_versions) + len(course_ids)
