"""``/openapi.json`` and ``/docs``: the API describes itself, with nothing from the internet.

The docs page is one HTML file of this package (``docs.html``: its own small script renders
the document it fetches from ``/openapi.json``), served with a Content-Security-Policy that
allows only that script and style (by their hashes) and requests to this origin.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources

from aiohttp import web

from api.keys import OPENAPI


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    html, policy = _page()
    return web.Response(
        text=html,
        content_type="text/html",
        headers={"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"},
    )


@functools.cache
def _page() -> tuple[str, str]:
    html = resources.files("api").joinpath("docs.html").read_text(encoding="utf-8")
    script = _hashes(html, "script")
    style = _hashes(html, "style")
    policy = (
        f"default-src 'none'; script-src {script}; style-src {style}; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'"
    )
    return html, policy


def _hashes(html: str, tag: str) -> str:
    """CSP source expressions for every inline ``<tag>`` of the page (CSP Level 2 hashes)."""
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in bodies
    )
