"""The API's app factory: configuration in, an aiohttp application out; clients live in
cleanup_ctx, so nothing connects before the app starts and everything closes when it stops.

The API reads PostgreSQL and Redis only; it never imports the worker (``streams``) or Faust.
Its admin endpoints publish catalog entries to Kafka through a ``CatalogPublisher`` whose
producer starts on the first admin call, so the API starts and serves reads without Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import psycopg
from aiohttp import web
from aiohttp.typedefs import Handler
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api.auth import (
    PUBLIC_PATHS,
    Authenticator,
    Forbidden,
    NoAuth,
    TokenVerifier,
    Unauthorized,
    authorize,
)
from api.keys import AUTH, CACHE, PG_POOL, PUBLISHER, REDIS, SETTINGS
from api.routes import setup_routes
from api.views import ApiError
from service.config import Settings
from service.publish import CatalogPublisher
from sinks.cache import ProgressCache, redis_client

log = logging.getLogger(__name__)

# A request waits this long for a pooled connection before answering 503.
_PG_CONNECTION_TIMEOUT_S = 5.0
_PG_POOL_MAX = 10
_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware])
    app[SETTINGS] = settings
    app[AUTH] = _authenticator(settings)
    app.cleanup_ctx.append(_postgres)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_publisher)
    setup_routes(app)
    return app


def run_api(settings: Settings) -> None:
    web.run_app(create_app(settings), host=settings.api_host, port=settings.api_port)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as ``{"error": code, "detail": ...}``; internals stay in the log."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response({"error": exc.error, "detail": exc.detail}, status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own answers: no route (404), wrong method (405).
        error = _HTTP_ERRORS.get(exc.status, exc.reason.lower().replace(" ", "_"))
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response(
            {"error": error, "detail": f"{exc.reason}: {request.method} {request.path}"},
            status=exc.status,
            headers=headers,
        )
    except psycopg.OperationalError as exc:
        # PostgreSQL down or the pool exhausted: the request may succeed later.
        log.warning("database unavailable for %s %s: %r", request.method, request.path, exc)
        return web.json_response(
            {"error": "unavailable", "detail": "the database is unavailable"}, status=503
        )
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response({"error": "internal"}, status=500)


def _authenticator(settings: Settings) -> Authenticator:
    if settings.api_auth == "off":
        log.warning("API_AUTH=off: the API answers anyone, as staff (local development only)")
        return NoAuth()
    if not settings.api_jwt_key:
        raise ValueError(
            "API_AUTH=jwt needs API_JWT_KEY (the token signing key); "
            "API_AUTH=off turns authentication off for local development"
        )
    return TokenVerifier(
        key=settings.api_jwt_key,
        algorithms=tuple(a.strip() for a in settings.api_jwt_algorithms.split(",") if a.strip()),
        issuer=settings.api_jwt_issuer,
        audience=settings.api_jwt_audience,
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route but health and readiness needs a token allowed to ask for it."""
    if request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
        return await handler(request)
    try:
        principal = request.app[AUTH].principal(request.headers.get("Authorization"))
        authorize(principal, request.path, request.match_info.get("user_id"))
    except Unauthorized as exc:
        raise ApiError.unauthorized(str(exc)) from None
    except Forbidden as exc:
        raise ApiError.forbidden(str(exc)) from None
    return await handler(request)


async def _configure_connection(conn: AsyncConnection) -> None:
    # UTC so timestamps serialize the same whatever the server's time zone; a bound on
    # statements so a slow query cannot hold a pooled connection indefinitely.
    await conn.execute("set time zone 'UTC'")
    await conn.execute("set statement_timeout = '5s'")
    await conn.commit()


async def _postgres(app: web.Application) -> AsyncIterator[None]:
    pool = AsyncConnectionPool(
        app[SETTINGS].database_url,
        open=False,
        min_size=1,
        max_size=_PG_POOL_MAX,
        timeout=_PG_CONNECTION_TIMEOUT_S,
        # A connection that died with a PostgreSQL restart is replaced, not handed out.
        check=AsyncConnectionPool.check_connection,
        configure=_configure_connection,
        name="api",
    )
    # Not waiting: the API starts, and /readyz says so, while PostgreSQL is down.
    await pool.open(wait=False)
    app[PG_POOL] = pool
    yield
    await pool.close()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = redis_client(settings.redis_url)
    app[REDIS] = client
    app[CACHE] = ProgressCache(client, settings.cache_ttl_seconds)
    yield
    await client.aclose()


async def _publisher(app: web.Application) -> AsyncIterator[None]:
    # Nothing connects here: the producer starts on the first admin call.
    publisher = CatalogPublisher(app[SETTINGS])
    app[PUBLISHER] = publisher
    yield
    await publisher.close()
