"""Who may ask what: bearer tokens (JWT) checked at the edge of the API.

A token is a JWT signed with the key in ``API_JWT_KEY`` (HS256 by default; RS256/ES256 with
a PEM public key, the tokens then signed with its private key). Its claims decide what its
bearer sees:

- ``role: learner`` (the default), ``sub`` = a user id: that learner's own progress, and the
  catalogs;
- ``role: staff`` or ``role: service``, with ``scope`` (space-separated, as OAuth2 writes it):
  ``progress:read`` any learner's progress, ``catalog:write`` publishing catalogs,
  ``learners:erase`` erasure requests, ``learners:export`` a learner's whole data (access
  requests), ``courses:read`` the course views (a course's roster and statistics).
  Catalog listings need only a valid token.

``API_AUTH=off`` turns all of this off for local development (docs/api.md): every request is
then treated as a staff token with every scope.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import jwt

from api import dashboard
from api.errors import ApiError

Scope = Literal[
    "progress:read", "catalog:write", "learners:erase", "learners:export", "courses:read"
]
ALL_SCOPES: frozenset[str] = frozenset(
    {"progress:read", "catalog:write", "learners:erase", "learners:export", "courses:read"}
)
LEEWAY_SECONDS = 30


class Unauthorized(ApiError):
    """No usable token: answered 401, with the ``WWW-Authenticate`` challenge (RFC 6750).

    ``error`` is the RFC 6750 error code for the challenge: ``invalid_token`` when a bearer
    token was given but is not valid, ``invalid_request`` when the Authorization header is
    not ``Bearer <token>``, ``None`` when there was none.
    """

    def __init__(self, detail: str, error: str | None = None) -> None:
        self.error = error
        super().__init__(401, "unauthorized", detail, {"WWW-Authenticate": self.challenge})

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of the 401 answer."""
        return "Bearer" if self.error is None else f'Bearer error="{self.error}"'


class Forbidden(ApiError):
    """A valid token without the right: answered 403."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, "forbidden", detail)


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Literal["learner", "staff", "service"]
    scopes: frozenset[str]

    def may_read_learner(self, user_id: str) -> bool:
        if self.role == "learner":
            return self.subject == user_id
        return "progress:read" in self.scopes

    def require_learner(self, user_id: str) -> None:
        if not self.may_read_learner(user_id):
            raise Forbidden("this token may not read that learner's progress")

    def require(self, scope: Scope) -> None:
        if self.role == "learner" or scope not in self.scopes:
            raise Forbidden(f"this token lacks the scope {scope}")


UNRESTRICTED = Principal(subject="local-development", role="staff", scopes=ALL_SCOPES)
# Probes, Prometheus and the API contract need no token (docs/operations.md#metrics).
# The dashboard's page and assets hold no data: the page asks for a token itself.
PUBLIC_PATHS = (
    frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"}) | dashboard.PATHS
)


def authorize(principal: Principal, path: str, user_id: str | None) -> None:
    """What a route needs, by its path: one policy for the whole API."""
    if path.startswith("/admin/catalog/"):
        principal.require("catalog:write")
    elif path.startswith("/admin/learners/") and path.endswith("/export"):
        # Reading everything of a learner is not erasing it: a scope of its own.
        principal.require("learners:export")
    elif path.startswith("/admin/learners/"):
        principal.require("learners:erase")
    elif path.startswith("/admin/"):
        raise Forbidden("no token may use this admin route")
    elif path.startswith("/courses/"):
        principal.require("courses:read")
    elif user_id is not None:
        principal.require_learner(user_id)
    # Everything else (the catalog listings) needs only a valid token.


@dataclass(frozen=True)
class TokenVerifier:
    key: str
    algorithms: tuple[str, ...] = ("HS256",)
    issuer: str | None = None
    audience: str | None = None

    def principal(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer <jwt>`` header."""
        if not authorization:
            raise Unauthorized("an Authorization: Bearer token is required")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            # Another scheme is no bearer token at all: the bare challenge (RFC 6750, 3.1).
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        if not token.strip():
            raise Unauthorized(
                "the Authorization header must be 'Bearer <token>'", "invalid_request"
            )
        try:
            claims = jwt.decode(
                token.strip(),
                self.key,
                algorithms=list(self.algorithms),
                issuer=self.issuer,
                audience=self.audience,
                leeway=LEEWAY_SECONDS,
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise Unauthorized("the token has expired", "invalid_token") from err
        except jwt.PyJWTError as err:
            # Every error of the library, not only InvalidTokenError: an HS256 token checked
            # against a PEM public key (algorithm confusion) raises InvalidKeyError, which is
            # the client's fault too. The message says which check failed without echoing
            # the token.
            raise Unauthorized(f"the token is not valid: {err}", "invalid_token") from err
        role = claims.get("role", "learner")
        if role not in ("learner", "staff", "service"):
            raise Unauthorized(f"unknown role {role!r}", "invalid_token")
        scope = claims.get("scope", "")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return Principal(subject=str(claims["sub"]), role=role, scopes=scopes & ALL_SCOPES)


class NoAuth:
    """``API_AUTH=off``: everyone is unrestricted. For local development only."""

    def principal(self, authorization: str | None) -> Principal:
        return UNRESTRICTED


Authenticator = TokenVerifier | NoAuth


def mint_token(
    key: str,
    subject: str,
    *,
    role: str = "learner",
    scopes: tuple[str, ...] = (),
    lifetime_seconds: int = 3600,
    algorithm: str = "HS256",
    now: int | None = None,
) -> str:
    """A signed token, for tests, the demo and ``progress token``.

    ``key`` is the HS256 secret, or for RS256/ES256 the PEM private key.
    """
    issued = int(time.time()) if now is None else now
    claims = {
        "sub": subject,
        "role": role,
        "scope": " ".join(scopes),
        "iat": issued,
        "exp": issued + lifetime_seconds,
    }
    return jwt.encode(claims, key, algorithm=algorithm)
