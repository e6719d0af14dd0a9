"""``GET /events``: server-sent events telling a page that a learner's or a course's data
changed, forwarded from the sink's live notices on Redis pub/sub (``adapters.live``).

One stream follows one learner (``?user_id=``) or one course (``?course_id=``), and needs the
token that reading it needs: a learner's own token or ``progress:read`` for a learner, what
``/courses/{course_id}/stats`` needs for a course (one policy, ``api.auth.authorize``). The
stream sends, as ``text/event-stream``:

- ``event: ready`` once subscribed: from then on no change is missed, so a page reads once
  here (whatever changed before it subscribed) and again on every ``change``;
- ``event: change`` with the notice's JSON, per change the sink committed;
- a comment line every ``HEARTBEAT_SECONDS``, which keeps proxies from closing an idle stream
  and tells the server when the page has gone (the write fails).

Every stream ends when the API shuts down (``close_streams``, an ``on_shutdown`` hook), so a
stop does not wait for the pages to go. Each stream holds one Redis connection, subscribed to
its one channel, for as long as it is open.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from adapters.live import course_channel, user_channel
from api.auth import authorize
from api.errors import ApiError
from api.keys import AUTH, REDIS
from progress.schema import Id

log = logging.getLogger(__name__)

# Under the 30 to 60 s after which common proxies close a silent connection.
HEARTBEAT_SECONDS = 15.0
# How long one wait for a notice lasts: the bound on noticing a shutdown.
_POLL_SECONDS = 1.0
_ID: TypeAdapter[str] = TypeAdapter(Id)


class LiveStreams:
    """The open streams' shared stop: set once, when the API shuts down."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()


LIVE = web.AppKey("live", LiveStreams)


def setup_live(app: web.Application) -> None:
    app[LIVE] = LiveStreams()
    app.on_shutdown.append(close_streams)


async def close_streams(app: web.Application) -> None:
    app[LIVE].closing.set()


def _channel(request: web.Request) -> str:
    """The one channel the query names, once its reader is allowed to follow it."""
    given = {
        name: request.query[name] for name in ("user_id", "course_id") if name in request.query
    }
    if len(given) != 1:
        raise ApiError.bad_request("exactly one of the query parameters user_id, course_id")
    ((name, raw),) = given.items()
    try:
        entity = _ID.validate_python(raw)
    except ValidationError:
        raise ApiError.bad_request(f"query parameter {name}={raw[:64]!r} is not an id") from None
    principal = request.app[AUTH].principal(request.headers.get("Authorization"))
    if name == "user_id":
        authorize(principal, f"/users/{entity}/progress", entity)
        return user_channel(entity)
    authorize(principal, f"/courses/{entity}/stats", None)
    return course_channel(entity)


def _event(name: str, data: str) -> bytes:
    # A notice is one line of JSON: no "data:" continuation lines needed.
    return f"event: {name}\ndata: {data}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    channel = _channel(request)
    redis: Redis = request.app[REDIS]
    closing = request.app[LIVE].closing
    pubsub = redis.pubsub()
    try:
        try:
            await pubsub.subscribe(channel)
        except RedisError as exc:
            log.warning("live stream not started, Redis unavailable: %r", exc)
            raise ApiError.unavailable("live updates are unavailable") from None
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                # nginx and its kin buffer responses unless told otherwise.
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        # retry: how long EventSource clients wait before reconnecting (ms).
        await response.write(b"retry: 1000\n" + _event("ready", "{}"))
        await _forward(pubsub, response, closing)
        return response
    finally:
        await pubsub.aclose()


async def _forward(pubsub: PubSub, response: web.StreamResponse, closing: asyncio.Event) -> None:
    """Write each notice as it comes, with heartbeats, until shutdown, until the page goes,
    or until Redis fails (the page reconnects and reads again)."""
    quiet_since = time.monotonic()
    try:
        while not closing.is_set():
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=_POLL_SECONDS
            )
            if message is not None and message["type"] == "message":
                data = message["data"]
                text = data.decode() if isinstance(data, bytes) else str(data)
                await response.write(_event("change", text))
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= HEARTBEAT_SECONDS:
                await response.write(b": heartbeat\n\n")
                quiet_since = time.monotonic()
    except ConnectionResetError:
        # The page went away: nothing to tell.
        return
    except RedisError as exc:
        log.warning("live stream ended, Redis unavailable: %r", exc)
