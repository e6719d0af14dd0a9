"""The dashboard page: static HTML, CSS and JavaScript from ``api/static/``, no build step.

The page and its two assets need no token (they hold no data: ``PATHS`` are public in
``api.auth``); the page itself asks for one and sends it, as ``Authorization: Bearer``, with
every read it makes. Each file is a route of its own, so no request path can reach another
file.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
PAGE_PATH = "/dashboard"
SCRIPT_PATH = "/dashboard/dashboard.js"
STYLE_PATH = "/dashboard/dashboard.css"
PATHS = frozenset({PAGE_PATH, SCRIPT_PATH, STYLE_PATH})
# The page is read again on every visit, so a new release is picked up at once.
_HEADERS = {"Cache-Control": "no-cache"}


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "dashboard.html", headers=_HEADERS)


async def script(request: web.Request) -> web.FileResponse:
    # The type RFC 9239 names, which the OpenAPI document states, not the platform's guess.
    headers = {**_HEADERS, "Content-Type": "text/javascript; charset=utf-8"}
    return web.FileResponse(STATIC_DIR / "dashboard.js", headers=headers)


async def style(request: web.Request) -> web.FileResponse:
    headers = {**_HEADERS, "Content-Type": "text/css; charset=utf-8"}
    return web.FileResponse(STATIC_DIR / "dashboard.css", headers=headers)
