"""The course views' handlers: a course's roster and statistics, for course staff.

Read through the course cache (``adapters/course_cache.py``): the course's generation is
looked up with the cached answer, before PostgreSQL is read, and the answer read is offered
with it, so the sink's bump after a commit makes every older answer unreachable. Redis is an
optimisation only: when it fails, the answer comes from PostgreSQL. Who may ask: tokens with
``courses:read`` (api/auth.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, get_args

from aiohttp import web
from psycopg import AsyncConnection
from pydantic import BaseModel, BeforeValidator, Field, TypeAdapter
from redis.exceptions import RedisError

from adapters.course_cache import CourseFields
from api import course_queries
from api.course_queries import LearnerSort
from api.errors import ApiError
from api.etags import catalog_etag
from api.keys import CACHE, PG_POOL
from api.paging import page_of
from api.views import (
    DEFAULT_LIMIT,
    LIMIT,
    OFFSET,
    STATUS,
    digits_only,
    path_id,
    query_param,
    read_answer,
)

log = logging.getLogger(__name__)

# Days since the last activity: plain digits, at most about 100 years.
IDLE_DAYS: TypeAdapter[int] = TypeAdapter(
    Annotated[int, BeforeValidator(digits_only), Field(ge=0, le=36_500)]
)
SORT: TypeAdapter[LearnerSort] = TypeAdapter(LearnerSort)
SORTS: tuple[str, ...] = get_args(LearnerSort)
DEFAULT_STATS_IDLE_DAYS = 14


async def _read_through(
    request: web.Request,
    course_id: str,
    field: str,
    read: Callable[[AsyncConnection], Awaitable[BaseModel | None]],
    *,
    paged: bool = False,
) -> web.Response:
    cache = request.app[CACHE].course_cache
    generation: int | None = None
    try:
        cached = await cache.get(course_id, field)
    except RedisError as exc:
        log.warning("cache unavailable, answering from PostgreSQL: %r", exc)
    else:
        if cached.payload is not None:
            return _respond(request, cached.payload, cache="hit", paged=paged)
        generation = cached.generation
    async with request.app[PG_POOL].connection() as conn:
        answer = await read(conn)
    if answer is None:
        raise ApiError.not_found(f"no course {course_id!r}")
    body = answer.model_dump_json().encode()
    if generation is not None:
        try:
            await cache.fill(course_id, field, generation, body)
        except RedisError as exc:
            log.warning("cache fill failed, answer not cached: %r", exc)
    return _respond(request, body, cache="miss", paged=paged)


def _respond(request: web.Request, body: bytes, *, cache: str, paged: bool) -> web.Response:
    """The answer with its ``ETag`` (the body's digest: a course answer has no one version)
    and, for the roster, its ``Link``; 304 on a matching ``If-None-Match``."""
    page = page_of(body) if paged else None
    return read_answer(request, body, catalog_etag(body), page=page, cache=cache)


async def course_learners(request: web.Request) -> web.Response:
    """``GET /courses/{course_id}/learners``: the course's learners, filtered, sorted, paged."""
    course_id = path_id(request, "course_id")
    status = query_param(request, "status", STATUS, None)
    idle_days = query_param(request, "idle_days", IDLE_DAYS, None)
    sort: LearnerSort = query_param(request, "sort", SORT, "user_id")
    limit = query_param(request, "limit", LIMIT, DEFAULT_LIMIT)
    offset = query_param(request, "offset", OFFSET, 0)
    return await _read_through(
        request,
        course_id,
        CourseFields.learners(status, idle_days, sort, limit, offset),
        lambda conn: course_queries.course_learners(
            conn,
            course_id,
            status=status,
            idle_days=idle_days,
            sort=sort,
            limit=limit,
            offset=offset,
        ),
        paged=True,
    )


async def course_stats(request: web.Request) -> web.Response:
    """``GET /courses/{course_id}/stats``: the course's counts, funnel and quizzes."""
    course_id = path_id(request, "course_id")
    idle_days = query_param(request, "idle_days", IDLE_DAYS, DEFAULT_STATS_IDLE_DAYS)
    return await _read_through(
        request,
        course_id,
        CourseFields.stats(idle_days),
        lambda conn: course_queries.course_stats(conn, course_id, idle_days),
    )
