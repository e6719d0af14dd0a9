"""Request handlers: validate at the edge, read through the cache, answer JSON.

Reads go to Redis first, then PostgreSQL; what PostgreSQL answered is offered to the cache
with the learner version it was read at (``adapters.cache.ProgressCache.fill``). Redis is an
optimisation only: when it fails, the answer comes from PostgreSQL. Catalog listings are not
cached. Admin calls publish catalog entries to Kafka (``adapters.publishing``) and answer 202:
the entry reaches PostgreSQL through the worker and the sink, like any other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from aiohttp import web
from psycopg import AsyncConnection
from pydantic import BaseModel, BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic_core import to_json
from redis.exceptions import RedisError

from adapters.cache import Fields
from adapters.metrics import CONTENT_TYPE_LATEST, exposition
from adapters.publishing import (
    CatalogKind,
    CatalogUnavailable,
    ErasureUnavailable,
    InvalidCatalogEntry,
    entry_json,
    tombstone,
    validate_entry,
)
from api import queries
from api.auth import Unauthorized
from api.errors import ApiError
from api.etags import catalog_etag, learner_etag, none_match
from api.keys import AUTH, CACHE, METRICS, PG_POOL, PUBLISHER, REDIS
from api.paging import PageInfo, link_header, page_of
from api.queries import Page
from progress.catalog import CatalogEntryT
from progress.models import ProgressStatus
from progress.schema import EventTime, Id

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")
D = TypeVar("D")

ID: TypeAdapter[str] = TypeAdapter(Id)
STATUS: TypeAdapter[ProgressStatus] = TypeAdapter(ProgressStatus)
_DIGITS = re.compile(r"[0-9]+")


def digits_only(value: object) -> object:
    # pydantic reads "1.0", " 5" and "5_0" as integers, and str.isdigit takes other scripts'
    # digits: a count in a URL is plain ASCII digits, nothing else.
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("must be plain digits 0-9")
    return value


# The bounds before the validator: so the JSON schema (api.openapi) states them.
LIMIT: TypeAdapter[int] = TypeAdapter(
    Annotated[int, Field(ge=1, le=500), BeforeValidator(digits_only)]
)
# Bounded so that PostgreSQL never sees an offset it cannot represent.
OFFSET: TypeAdapter[int] = TypeAdapter(
    Annotated[int, Field(ge=0, le=2**31 - 1), BeforeValidator(digits_only)]
)
_EVENT_TIME: TypeAdapter[datetime] = TypeAdapter(EventTime)
DEFAULT_LIMIT = 100

_READY_TIMEOUT_S = 2.0
# A little longer than a probe's own timeout, so the probe's error is the one reported.
_READY_DEADLINE_S = _READY_TIMEOUT_S + 0.5


# ------------------------------------------------------------------ parameters


def _reason(exc: ValidationError) -> str:
    return str(exc.errors()[0]["msg"])


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    try:
        return ID.validate_python(value)
    except ValidationError as exc:
        raise ApiError.bad_request(
            f"path parameter {name} {value[:64]!r} is not a valid id: {_reason(exc)}"
        ) from None


def query_param(request: web.Request, name: str, adapter: TypeAdapter[V], default: D) -> V | D:
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


def read_answer(
    request: web.Request,
    body: bytes,
    etag: str,
    *,
    page: PageInfo | None,
    cache: str | None = None,
) -> web.Response:
    """A read's answer: its body with ``ETag`` (and ``Link`` for a list), or 304 without a
    body when ``If-None-Match`` names the tag."""
    headers = {"ETag": etag, "Cache-Control": _CACHE_CONTROL}
    if cache is not None:
        headers["X-Cache"] = cache
    if none_match(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    if page is not None:
        headers["Link"] = link_header(request.rel_url, page)
    return web.Response(body=body, content_type="application/json", headers=headers)


# Answers may be stored by the client (a browser, a dashboard's fetch cache) but must be
# revalidated, with the ETag, before each use: they change with the next event.
_CACHE_CONTROL = "private, no-cache"


async def _read_through(
    request: web.Request,
    user_id: str,
    field: str | None,
    read: Callable[[AsyncConnection], Awaitable[queries.Read[M] | None]],
    not_found: str,
    *,
    listing: bool = False,
) -> web.Response:
    """The answer from the cache's ``field``, else from PostgreSQL, then cached (``None``:
    Redis is known to be down, go straight to PostgreSQL). ``listing``: the answer is a
    list envelope (``queries.Page``), answered with its ``Link`` header."""
    cache = request.app[CACHE]
    cached = None
    if field is not None:
        try:
            cached = await cache.get_versioned(user_id, field)
        except RedisError as exc:
            log.warning("cache unavailable, answering from PostgreSQL: %r", exc)
            field = None
    if cached is not None:
        version, body = cached
        page = page_of(body) if listing else None
        return read_answer(request, body, learner_etag(version, body), page=page, cache="hit")

    async with request.app[PG_POOL].connection() as conn:
        result = await read(conn)
    if result is None:
        raise ApiError.not_found(not_found)
    body = result.value.model_dump_json().encode()
    if field is not None:
        try:
            await cache.fill(user_id, field, result.version, body)
        except RedisError as exc:
            log.warning("cache fill failed, answer not cached: %r", exc)
    value = result.value
    page = PageInfo(value.total, value.limit, value.offset) if isinstance(value, Page) else None
    return read_answer(request, body, learner_etag(result.version, body), page=page, cache="miss")


def _page_params(request: web.Request) -> tuple[int, int]:
    """``limit`` and ``offset`` of a list request, validated."""
    limit = query_param(request, "limit", LIMIT, DEFAULT_LIMIT)
    offset = query_param(request, "offset", OFFSET, 0)
    return limit, offset


# ------------------------------------------------------------------ handlers


async def user_progress(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    return await _read_through(
        request,
        user_id,
        Fields.OVERVIEW,
        lambda conn: queries.user_progress(conn, user_id),
        f"no progress for user {user_id!r}",
    )


async def courses(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    status = query_param(request, "status", STATUS, None)
    limit, offset = _page_params(request)
    return await _read_through(
        request,
        user_id,
        Fields.courses(status, limit, offset),
        lambda conn: queries.courses(conn, user_id, status, limit, offset),
        f"no progress for user {user_id!r}",
        listing=True,
    )


async def course(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    course_id = path_id(request, "course_id")
    return await _read_through(
        request,
        user_id,
        Fields.course(course_id),
        lambda conn: queries.course(conn, user_id, course_id),
        f"no progress for user {user_id!r} in course {course_id!r}",
    )


async def module(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    course_id = path_id(request, "course_id")
    module_id = path_id(request, "module_id")
    return await _read_through(
        request,
        user_id,
        Fields.module(course_id, module_id),
        lambda conn: queries.module(conn, user_id, course_id, module_id),
        f"no progress for user {user_id!r} in module {module_id!r} of course {course_id!r}",
    )


async def lesson(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    course_id = path_id(request, "course_id")
    lesson_id = path_id(request, "lesson_id")
    return await _read_through(
        request,
        user_id,
        Fields.lesson(course_id, lesson_id),
        lambda conn: queries.lesson(conn, user_id, course_id, lesson_id),
        f"no progress for user {user_id!r} in lesson {lesson_id!r} of course {course_id!r}",
    )


def _no_progress(user_id: str) -> str:
    return f"no progress for user {user_id!r}"


async def quiz_attempts(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    course_id = query_param(request, "course_id", ID, None)
    quiz_id = query_param(request, "quiz_id", ID, None)
    limit, offset = _page_params(request)
    return await _read_through(
        request,
        user_id,
        Fields.quiz_attempts(course_id, quiz_id, limit, offset),
        lambda conn: queries.quiz_attempts(conn, user_id, course_id, quiz_id, limit, offset),
        _no_progress(user_id),
        listing=True,
    )


async def assignments(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    course_id = query_param(request, "course_id", ID, None)
    limit, offset = _page_params(request)
    return await _read_through(
        request,
        user_id,
        Fields.assignments(course_id, limit, offset),
        lambda conn: queries.assignments(conn, user_id, course_id, limit, offset),
        _no_progress(user_id),
        listing=True,
    )


async def learning_paths(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    limit, offset = _page_params(request)
    return await _read_through(
        request,
        user_id,
        Fields.learning_paths(limit, offset),
        lambda conn: queries.learning_paths(conn, user_id, limit, offset),
        _no_progress(user_id),
        listing=True,
    )


async def competencies(request: web.Request) -> web.Response:
    user_id = path_id(request, "user_id")
    limit, offset = _page_params(request)
    return await _read_through(
        request,
        user_id,
        Fields.competencies(limit, offset),
        lambda conn: queries.competencies(conn, user_id, limit, offset),
        _no_progress(user_id),
        listing=True,
    )


async def achievements(request: web.Request) -> web.Response:
    """Earned achievements with the catalog's name and points: cached under the catalog
    generation too, so a changed achievement is not answered from an older cached join."""
    user_id = path_id(request, "user_id")
    limit, offset = _page_params(request)
    field: str | None = None
    try:
        generation = await request.app[CACHE].catalog_generation()
        field = Fields.achievements(generation, limit, offset)
    except RedisError as exc:
        log.warning("cache unavailable, answering from PostgreSQL: %r", exc)
    return await _read_through(
        request,
        user_id,
        field,
        lambda conn: queries.achievements(conn, user_id, limit, offset),
        _no_progress(user_id),
        listing=True,
    )


# ------------------------------------------------------------------ catalog listings


async def _listing(
    request: web.Request, read: Callable[[AsyncConnection, int, int], Awaitable[Page]]
) -> web.Response:
    limit, offset = _page_params(request)
    async with request.app[PG_POOL].connection() as conn:
        listing = await read(conn, limit, offset)
    body = listing.model_dump_json().encode()
    page = PageInfo(listing.total, listing.limit, listing.offset)
    return read_answer(request, body, catalog_etag(body), page=page)


async def competency_catalog(request: web.Request) -> web.Response:
    return await _listing(request, queries.competency_catalog)


async def achievement_catalog(request: web.Request) -> web.Response:
    return await _listing(request, queries.achievement_catalog)


async def learning_path_catalog(request: web.Request) -> web.Response:
    return await _listing(request, queries.learning_path_catalog)


# ------------------------------------------------------------------ admin


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _json_body(request: web.Request, *, required: bool) -> dict[str, Any]:
    """The body as a JSON object; ``{}`` when it is empty and not ``required``.

    A body, and every body that is ``required``, must be sent as ``application/json``
    (415 otherwise): JSON is the only representation the admin routes take.
    """
    raw = await request.read()
    if (required or raw.strip()) and request.content_type != "application/json":
        raise ApiError.unsupported_media_type(
            f"the body must be sent as application/json, not {request.content_type[:64]}"
        )
    if not raw.strip():
        if required:
            raise ApiError.bad_request("the body must be a JSON object (the catalog entry)")
        return {}
    try:
        # NaN and Infinity are Python's extensions, not JSON: no entry field may hold them.
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ApiError.bad_request(f"the body is not JSON: {exc}") from None
    except RecursionError:
        # The decoder recurses per nesting level; no catalog entry is nested this deep.
        raise ApiError.bad_request(
            "the body is not JSON this API takes: nested too deeply"
        ) from None
    if not isinstance(body, dict):
        raise ApiError.bad_request(f"the body must be a JSON object, not {type(body).__name__}")
    return body


async def _publish(request: web.Request, kind: CatalogKind, entry: CatalogEntryT) -> web.Response:
    publisher = request.app[PUBLISHER]
    try:
        published = await publisher.publish(kind, entry)
    except CatalogUnavailable as exc:
        log.warning("catalog entry not published: %s", exc)
        raise ApiError.unavailable(f"the entry was not published: {exc.reason}") from None
    return web.json_response(
        {"published": entry_json(published), "topic": publisher.topic(kind)},
        status=202,
    )


async def put_catalog_entry(request: web.Request) -> web.Response:
    """Publish the body as the entry ``entry_id`` of ``kind``; 202 once Kafka has it."""
    kind: CatalogKind = request.match_info["kind"]
    entry_id = path_id(request, "entry_id")
    body = await _json_body(request, required=True)
    try:
        entry = validate_entry(kind, body, entry_id=entry_id)
    except InvalidCatalogEntry as exc:
        raise ApiError.bad_request(f"invalid {kind} entry: {exc}") from None
    return await _publish(request, kind, entry)


async def delete_catalog_entry(request: web.Request) -> web.Response:
    """Publish a tombstone for ``entry_id``, as of the body's ``updated_at`` or now."""
    kind: CatalogKind = request.match_info["kind"]
    entry_id = path_id(request, "entry_id")
    body = await _json_body(request, required=False)
    updated_at = None
    if body.get("updated_at") is not None:
        try:
            updated_at = _EVENT_TIME.validate_python(body["updated_at"])
        except ValidationError as exc:
            raise ApiError.bad_request(f"updated_at is invalid: {_reason(exc)}") from None
    return await _publish(request, kind, tombstone(kind, entry_id, updated_at))


async def export_learner(request: web.Request) -> web.Response:
    """Every row PostgreSQL holds of a learner, grouped by table, for an access request
    (scope ``learners:export``); 404 for a learner no table holds. Never cached: an export
    answers for what is stored now."""
    user_id = path_id(request, "user_id")
    async with request.app[PG_POOL].connection() as conn:
        export = await queries.learner_export(conn, user_id)
    if export is None:
        raise ApiError.not_found(f"no data of learner {user_id}")
    return web.Response(
        body=to_json(export),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


# ------------------------------------------------------------------ health


async def erase_learner(request: web.Request) -> web.Response:
    """Request the erasure of every record of a learner (202 once Kafka has the request)."""
    user_id = path_id(request, "user_id")
    body = await _json_body(request, required=False)
    request_id = body.get("request_id")
    if request_id is not None and (
        not isinstance(request_id, str) or not 0 < len(request_id) <= 128
    ):
        raise ApiError.bad_request("request_id must be a string of 1 to 128 characters")
    try:
        erasure = await request.app[PUBLISHER].request_erasure(user_id, request_id)
    except ErasureUnavailable as exc:
        log.warning("erasure not requested: %s", exc)
        raise ApiError.unavailable(f"the erasure was not requested: {exc.reason}") from None
    return web.json_response(
        {"requested": erasure.model_dump(mode="json", exclude={"event_id"})}, status=202
    )


async def healthz(request: web.Request) -> web.Response:
    """The process is alive; says nothing about its dependencies."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when PostgreSQL and Redis both answer (Kafka is not the API's dependency).

    Anyone may ask, so a failing check says only ``failing``: what failed (hosts, ports,
    exception classes) goes to the log, and to callers with a valid staff or service token.
    """

    async def postgres() -> None:
        async with request.app[PG_POOL].connection(timeout=_READY_TIMEOUT_S) as conn:
            await queries.ping(conn)

    async def redis() -> None:
        await request.app[REDIS].ping()

    names = ("postgres", "redis")
    outcomes = await asyncio.gather(*(_check(probe()) for probe in (postgres, redis)))
    checks = dict(zip(names, outcomes, strict=True))
    ready = all(outcome == "ok" for outcome in outcomes)
    if not ready:
        log.warning("not ready: %s", checks)
        if not _sees_internals(request):
            checks = {
                name: "ok" if outcome == "ok" else "failing" for name, outcome in checks.items()
            }
    return web.json_response(
        {"status": "ready" if ready else "not-ready", "checks": checks},
        status=200 if ready else 503,
    )


def _sees_internals(request: web.Request) -> bool:
    """Whether the caller's token is a valid staff or service one (any scope). A missing or
    bad token is no error here: probes call /readyz without one."""
    try:
        principal = request.app[AUTH].principal(request.headers.get("Authorization"))
    except Unauthorized:
        return False
    return principal.role in ("staff", "service")


async def _check(probe: Awaitable[None]) -> str:
    try:
        async with asyncio.timeout(_READY_DEADLINE_S):
            await probe
    except Exception as exc:
        first_line = next(iter(str(exc).strip().splitlines()), "")
        return f"{type(exc).__name__}: {first_line}"[:120].rstrip(": ")
    return "ok"


async def metrics(request: web.Request) -> web.Response:
    """The API's Prometheus metrics, as text."""
    body = exposition(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
