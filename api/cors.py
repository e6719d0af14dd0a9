"""Cross-origin requests (CORS): which other origins' pages may call the API.

``API_CORS_ORIGINS`` lists them (exact ``scheme://host[:port]``, comma-separated, or ``*``).
For an allowed origin, a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) on a
route is answered 204 with the methods of that path, the request headers the API reads and
``API_CORS_MAX_AGE_SECONDS``, before authentication (browsers send no token on a
preflight); every other answer, errors included, carries ``Access-Control-Allow-Origin``
and the headers a page may read. Another origin gets no CORS header at all, so the browser
withholds the answer from its page; its preflight is handled like any request (405).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from adapters.settings import Settings

# What a page may send (beside the CORS-safelisted ones) and read (beside the safelisted
# response headers).
ALLOW_HEADERS = "Authorization, Content-Type, If-None-Match"
EXPOSE_HEADERS = "ETag, Link, X-Cache, WWW-Authenticate"


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    origins: frozenset[str]
    any_origin: bool
    max_age_seconds: int

    @classmethod
    def of(cls, settings: Settings) -> CorsPolicy:
        origins = frozenset(
            origin.strip().rstrip("/")
            for origin in settings.api_cors_origins.split(",")
            if origin.strip()
        )
        return cls(origins - {"*"}, "*" in origins, settings.api_cors_max_age_seconds)

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self.any_origin or origin in self.origins)


def cors_middleware(policy: CorsPolicy) -> Middleware:
    """The middleware that applies ``policy``; it must come before authentication."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not policy.allows(origin):
            return await handler(request)
        assert origin is not None  # allows() says so
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            methods = _methods(request)
            if methods:
                return web.Response(
                    status=204,
                    headers={
                        "Access-Control-Allow-Origin": origin,
                        "Access-Control-Allow-Methods": ", ".join(methods),
                        "Access-Control-Allow-Headers": ALLOW_HEADERS,
                        "Access-Control-Max-Age": str(policy.max_age_seconds),
                        "Vary": "Origin",
                    },
                )
        response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response.headers.add("Vary", "Origin")
        return response

    return cors


def _methods(request: web.Request) -> list[str]:
    """The methods the request's path is served with (none: no such route). No route takes
    OPTIONS, so the router's match for it is a 405 that lists them."""
    exception = request.match_info.http_exception
    if isinstance(exception, web.HTTPMethodNotAllowed):
        return sorted(exception.allowed_methods)
    return []
