"""Request handlers: validate at the edge, read through the cache, answer JSON.

Reads go to Redis first, then PostgreSQL; what PostgreSQL answered is offered to the cache
with the learner version it was read at (``sinks.cache.ProgressCache.fill``). Redis is an
optimisation only: when it fails, the answer comes from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from aiohttp import web
from psycopg import AsyncConnection
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from redis.exceptions import RedisError

from api import queries
from api.keys import CACHE, PG_POOL, REDIS
from progress.models import ProgressStatus
from progress.schema import Id
from sinks.cache import Fields

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")
D = TypeVar("D")

_ID: TypeAdapter[str] = TypeAdapter(Id)
_STATUS: TypeAdapter[ProgressStatus] = TypeAdapter(ProgressStatus)
_LIMIT: TypeAdapter[int] = TypeAdapter(Annotated[int, Field(ge=1, le=500)])
# Bounded so that PostgreSQL never sees an offset it cannot represent.
_OFFSET: TypeAdapter[int] = TypeAdapter(Annotated[int, Field(ge=0, le=2**31 - 1)])
DEFAULT_LIMIT = 100

_READY_TIMEOUT_S = 2.0
# A little longer than a probe's own timeout, so the probe's error is the one reported.
_READY_DEADLINE_S = _READY_TIMEOUT_S + 0.5


class ApiError(Exception):
    """An answer for the client: its HTTP status, an error code and a readable detail."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail

    @classmethod
    def bad_request(cls, detail: str) -> ApiError:
        return cls(400, "bad_request", detail)

    @classmethod
    def not_found(cls, detail: str) -> ApiError:
        return cls(404, "not_found", detail)


# ------------------------------------------------------------------ parameters


def _reason(exc: ValidationError) -> str:
    return str(exc.errors()[0]["msg"])


def _path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    try:
        return _ID.validate_python(value)
    except ValidationError as exc:
        raise ApiError.bad_request(
            f"path parameter {name} {value[:64]!r} is not a valid id: {_reason(exc)}"
        ) from None


def _query_param(request: web.Request, name: str, adapter: TypeAdapter[V], default: D) -> V | D:
    raw = request.query.get(name, "")
    # An empty value (as forms send it) means "not given".
    if raw == "":
        return default
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        raise ApiError.bad_request(
            f"query parameter {name}={raw[:64]!r} is invalid: {_reason(exc)}"
        ) from None


# ------------------------------------------------------------------ read path


def _json(body: bytes, *, cache: str) -> web.Response:
    return web.Response(body=body, content_type="application/json", headers={"X-Cache": cache})


async def _read_through(
    request: web.Request,
    user_id: str,
    field: str,
    read: Callable[[AsyncConnection], Awaitable[queries.Read[M] | None]],
    not_found: str,
) -> web.Response:
    cache = request.app[CACHE]
    cache_up = True
    try:
        cached = await cache.get(user_id, field)
    except RedisError as exc:
        log.warning("cache unavailable, answering from PostgreSQL: %r", exc)
        cached, cache_up = None, False
    if cached is not None:
        return _json(cached, cache="hit")

    async with request.app[PG_POOL].connection() as conn:
        result = await read(conn)
    if result is None:
        raise ApiError.not_found(not_found)
    body = result.value.model_dump_json().encode()
    if cache_up:
        try:
            await cache.fill(user_id, field, result.version, body)
        except RedisError as exc:
            log.warning("cache fill failed, answer not cached: %r", exc)
    return _json(body, cache="miss")


# ------------------------------------------------------------------ handlers


async def user_progress(request: web.Request) -> web.Response:
    user_id = _path_id(request, "user_id")
    return await _read_through(
        request,
        user_id,
        Fields.OVERVIEW,
        lambda conn: queries.user_progress(conn, user_id),
        f"no progress for user {user_id!r}",
    )


async def courses(request: web.Request) -> web.Response:
    user_id = _path_id(request, "user_id")
    status = _query_param(request, "status", _STATUS, None)
    limit = _query_param(request, "limit", _LIMIT, DEFAULT_LIMIT)
    offset = _query_param(request, "offset", _OFFSET, 0)
    return await _read_through(
        request,
        user_id,
        Fields.courses(status, limit, offset),
        lambda conn: queries.courses(conn, user_id, status, limit, offset),
        f"no progress for user {user_id!r}",
    )


async def course(request: web.Request) -> web.Response:
    user_id = _path_id(request, "user_id")
    course_id = _path_id(request, "course_id")
    return await _read_through(
        request,
        user_id,
        Fields.course(course_id),
        lambda conn: queries.course(conn, user_id, course_id),
        f"no progress for user {user_id!r} in course {course_id!r}",
    )


async def module(request: web.Request) -> web.Response:
    user_id = _path_id(request, "user_id")
    course_id = _path_id(request, "course_id")
    module_id = _path_id(request, "module_id")
    return await _read_through(
        request,
        user_id,
        Fields.module(course_id, module_id),
        lambda conn: queries.module(conn, user_id, course_id, module_id),
        f"no progress for user {user_id!r} in module {module_id!r} of course {course_id!r}",
    )


async def lesson(request: web.Request) -> web.Response:
    user_id = _path_id(request, "user_id")
    course_id = _path_id(request, "course_id")
    lesson_id = _path_id(request, "lesson_id")
    return await _read_through(
        request,
        user_id,
        Fields.lesson(course_id, lesson_id),
        lambda conn: queries.lesson(conn, user_id, course_id, lesson_id),
        f"no progress for user {user_id!r} in lesson {lesson_id!r} of course {course_id!r}",
    )


async def healthz(request: web.Request) -> web.Response:
    """The process is alive; says nothing about its dependencies."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when PostgreSQL and Redis both answer (Kafka is not the API's dependency)."""

    async def postgres() -> None:
        async with request.app[PG_POOL].connection(timeout=_READY_TIMEOUT_S) as conn:
            await queries.ping(conn)

    async def redis() -> None:
        await request.app[REDIS].ping()

    names = ("postgres", "redis")
    outcomes = await asyncio.gather(*(_check(probe()) for probe in (postgres, redis)))
    checks = dict(zip(names, outcomes, strict=True))
    ready = all(outcome == "ok" for outcome in outcomes)
    return web.json_response(
        {"status": "ready" if ready else "not-ready", "checks": checks},
        status=200 if ready else 503,
    )


async def _check(probe: Awaitable[None]) -> str:
    try:
        async with asyncio.timeout(_READY_DEADLINE_S):
            await probe
    except Exception as exc:
        first_line = next(iter(str(exc).strip().splitlines()), "")
        return f"{type(exc).__name__}: {first_line}"[:120].rstrip(": ")
    return "ok"
