"""The API's app factory: configuration in, an aiohttp application out; clients live in
cleanup_ctx, so nothing connects before the app starts and everything closes when it stops.

The API reads PostgreSQL and Redis only; it never imports the worker (``streams``) or Faust.
Its admin endpoints publish catalog entries to Kafka through a ``CatalogPublisher`` whose
producer starts on the first admin call, so the API starts and serves reads without Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from http import HTTPStatus

import aiohttp
import psycopg
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import LineTooLong
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from adapters.cache import ProgressCache, redis_client
from adapters.logs import REQUEST_ID, request_id
from adapters.metrics import ApiMetrics, new_registry
from adapters.publishing import CatalogPublisher
from adapters.settings import InvalidSettings, Settings
from api import openapi
from api.auth import PUBLIC_PATHS, Authenticator, NoAuth, TokenVerifier, authorize
from api.cors import CorsPolicy, cors_middleware
from api.errors import ApiError
from api.keys import AUTH, CACHE, METRICS, OPENAPI, PG_POOL, PUBLISHER, REDIS, SETTINGS
from api.live import setup_live
from api.routes import setup_routes

log = logging.getLogger(__name__)

_PG_POOL_MAX = 10
_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed"}
# The longest request line (so URL) and header line the server reads: aiohttp's default,
# stated here because the API documents it. Longer is answered 400 by _JsonErrorHandler.
MAX_LINE_BYTES = 8190


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        # Observation first (request ids and latency of every answer); then CORS: a preflight
        # is answered before authentication, and the CORS headers go on every answer,
        # errors included.
        middlewares=[
            observe_middleware,
            cors_middleware(CorsPolicy.of(settings)),
            error_middleware,
            auth_middleware,
        ],
        handler_args={"max_line_size": MAX_LINE_BYTES, "max_field_size": MAX_LINE_BYTES},
    )
    app[SETTINGS] = settings
    app[OPENAPI] = json.dumps(openapi.document()).encode()
    app[AUTH] = _authenticator(settings)
    app[METRICS] = ApiMetrics(new_registry())
    app.cleanup_ctx.append(_postgres)
    app.cleanup_ctx.append(_redis)
    app.cleanup_ctx.append(_publisher)
    setup_live(app)
    setup_routes(app)
    return app


def run_api(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM (as ``web.run_app`` would, with ApiRunner)."""
    # GracefulExit is how AppRunner's signal handlers stop the loop: a normal end.
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> None:
    runner = await start_api(settings, handle_signals=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def start_api(settings: Settings, *, handle_signals: bool = False) -> web.AppRunner:
    """The API listening on ``API_HOST:API_PORT``; ``runner.cleanup()`` stops it."""
    runner_class = ApiRunner if json_protocol_errors() else web.AppRunner
    runner = runner_class(
        create_app(settings), handle_signals=handle_signals, access_log_class=AccessLogger
    )
    await runner.setup()
    await web.TCPSite(runner, settings.api_host, settings.api_port).start()
    log.info("API listening on http://%s:%d", settings.api_host, settings.api_port)
    return runner


# ------------------------------------------------------------------ protocol errors
#
# What aiohttp refuses while parsing a request (a request line or header over
# MAX_LINE_BYTES, a malformed request) never reaches a handler or middleware: its connection
# protocol answers plain text from RequestHandler.handle_error, and aiohttp has no public
# hook to change that (aio-libs/aiohttp#3287). So the API's server builds its connections
# from a RequestHandler whose handle_error answers in the API's JSON shape. aiohttp's test
# server and web.run_app use a plain AppRunner, so only what ApiRunner serves has it.


# ApiRunner overrides AppRunner._make_server and reads Server._kwargs and _loop, private parts
# of aiohttp, as they are in these releases (pyproject.toml bounds aiohttp to them too).
AIOHTTP_WRITTEN_FOR = ((3, 10), (3, 15))


def json_protocol_errors(version: str = aiohttp.__version__) -> bool:
    """Whether ApiRunner may be used with this aiohttp release. Outside the tested range the
    API still serves, with a plain AppRunner: protocol errors are then aiohttp's plain text,
    and a warning says so."""
    release = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    lowest, below = AIOHTTP_WRITTEN_FOR
    if lowest <= release < below:
        return True
    log.warning(
        "aiohttp %s is outside %s to %s, which api/app.py's ApiRunner was written for: "
        "protocol errors (an over-long URL, a malformed request) are answered as aiohttp's "
        "plain text, not JSON",
        version,
        ".".join(map(str, lowest)),
        ".".join(map(str, below)),
    )
    return False


class _JsonErrorHandler(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # aiohttp's own: logs the error, and raises if a response was already started.
        super().handle_error(request, status, exc, message)
        response = web.json_response(_protocol_error(status, exc), status=status)
        response.force_close()
        return response


def _protocol_error(status: int, exc: BaseException | None) -> dict[str, str]:
    """The body of an error answered before routing; the parser's message is not echoed,
    since it quotes the request."""
    if status >= 500:
        return {"error": "internal"} if status == 500 else {"error": "unavailable"}
    if isinstance(exc, LineTooLong):
        detail = f"the request line or a header is longer than {MAX_LINE_BYTES} bytes"
    else:
        detail = "the request is not valid HTTP/1.1"
    error = "bad_request" if status == 400 else HTTPStatus(status).phrase.lower().replace(" ", "_")
    return {"error": error, "detail": detail}


class _ApiServer(web.Server):
    def __call__(self) -> RequestHandler:
        # As web.Server builds each connection's protocol, with the JSON error answers.
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """An AppRunner whose connections answer protocol errors in the API's JSON shape."""

    async def _make_server(self) -> web.Server:
        # AppRunner's server (after the app's startup), rebuilt as an _ApiServer.
        server = await super()._make_server()
        return _ApiServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **server._kwargs,
        )


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request gets an id (the caller's ``X-Request-ID`` if usable, else a new one),
    echoed in the response and in every log line of the request; its latency is observed by
    method, route pattern (never the raw path: one series per route) and status, and an
    answer's ``X-Cache`` counted as a cache hit or miss."""
    rid = request_id(request.headers.get("X-Request-ID"))
    token = REQUEST_ID.set(rid)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = rid
        cache = response.headers.get("X-Cache")
        if cache in ("hit", "miss"):
            request.app[METRICS].cache.labels(cache).inc()
        return response
    except web.HTTPException as exc:
        # Redirects and the like, raised past error_middleware on purpose.
        status = exc.status
        exc.headers["X-Request-ID"] = rid
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        request.app[METRICS].requests.labels(request.method, route, str(status)).observe(
            time.perf_counter() - started
        )
        REQUEST_ID.reset(token)


class AccessLogger(AbstractAccessLogger):
    """One line per request, with its id, method, path, status and duration as fields for
    LOG_FORMAT=json (the query string is left out: it is no part of what was asked for)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d %.1f ms",
            request.method,
            request.path,
            response.status,
            time * 1000,
            extra={
                "request_id": response.headers.get("X-Request-ID"),
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_seconds": round(time, 6),
            },
        )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as ``{"error": code, "detail": ...}``; internals stay in the log."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(
            {"error": exc.code, "detail": exc.detail}, status=exc.status, headers=exc.headers
        )
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
        raise InvalidSettings(
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
    """Every route but the public ones (``PUBLIC_PATHS``) needs a token allowed to ask for it: else
    ``Unauthorized`` (401) or ``Forbidden`` (403), answered by ``error_middleware``."""
    if request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
        return await handler(request)
    principal = request.app[AUTH].principal(request.headers.get("Authorization"))
    authorize(principal, request.path, request.match_info.get("user_id"))
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
        # A request waits this long for a pooled connection before answering 503.
        timeout=app[SETTINGS].pg_connection_timeout_seconds,
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
