"""The OpenAPI 3.1 document of the API, generated from ``api.routes.ROUTES`` and the pydantic
models the routes name: paths, parameters, bodies, answers (with their headers) and the
bearer scheme. ``GET /openapi.json`` serves it; ``progress contract --write`` writes it to
docs/openapi.json.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from api.bodies import ErrorBody
from api.queries import Page
from api.routes import ROUTES, Route
from progress.schema import Id

TITLE = "LMS Progress API"
VERSION = "1"
REF = "#/components/schemas/{model}"
_VARIABLE = re.compile(r"\{(\w+)(?::([^{}]+))?\}")
_LITERALS = re.compile(r"[A-Za-z0-9_-]+(\|[A-Za-z0-9_-]+)*")

_ERRORS = {
    304: "Not modified: If-None-Match names the current ETag (no body)",
    400: "An id, a query parameter or the body is not valid (the detail names it)",
    401: "No token, or one that is not valid (WWW-Authenticate says which)",
    403: "A valid token without the right",
    404: "Unknown learner, course, module, lesson or catalog kind",
    413: "A body over 1 MiB",
    415: "A body not sent as application/json",
    503: "PostgreSQL (reads) or Kafka (admin calls) cannot be reached",
}
_HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": 'Strong tag: "<learner version>-<digest>" (catalogs: "<digest>")',
        "schema": {"type": "string"},
        "required": True,
    },
    "X-Cache": {
        "description": "hit: answered from Redis; miss: from PostgreSQL",
        "schema": {"type": "string", "enum": ["hit", "miss"]},
        "required": True,
    },
    "Link": {
        "description": "RFC 8288: first, prev, next, last pages (limit/offset)",
        "schema": {"type": "string"},
        "required": True,
    },
    "Cache-Control": {"schema": {"type": "string"}, "required": True},
}


def path_of(route: Route) -> str:
    """The route's path as OpenAPI writes it: ``{name}`` without aiohttp's regex."""
    return _VARIABLE.sub(lambda m: "{" + m.group(1) + "}", route.path)


def operation_id(route: Route) -> str:
    return route.handler.__name__


def _path_parameters(route: Route) -> list[dict[str, Any]]:
    """Each path variable: an id, or one of the words its regex lists (a catalog kind)."""
    out = []
    for name, regex in _VARIABLE.findall(route.path):
        if regex and _LITERALS.fullmatch(regex):
            schema: dict[str, Any] = {"type": "string", "enum": regex.split("|")}
        else:
            schema = TypeAdapter(Id).json_schema()
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def _error_statuses(route: Route) -> list[int]:
    statuses = []
    if route.shape in ("learner", "course", "listing"):
        statuses.append(304)
    if route.query or route.body is not None or "{" in route.path:
        statuses.append(400)
    if route.access != "public":
        statuses.append(401)
    if route.access not in ("public", "token"):
        statuses.append(403)
    if "{" in route.path or route.shape == "learner":
        statuses.append(404)
    if route.body is not None:
        statuses += [413, 415]
    if route.shape != "document" and route.path != "/healthz":
        statuses.append(503)
    return statuses


def document(
    routes: Iterable[Route] = ROUTES, examples: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The OpenAPI document of ``routes``. ``examples``: a value for path parameters by name
    (tests give real ids, so property-based tests reach rows)."""
    routes = tuple(routes)
    inputs: list[tuple[str, JsonSchemaMode, TypeAdapter[Any]]] = [
        ("error", "serialization", TypeAdapter(ErrorBody))
    ]
    for route in routes:
        if route.shape != "document":
            inputs.append(
                (f"answer:{route.method} {route.path}", "serialization", _adapter(route.answer))
            )
        if route.body is not None:
            inputs.append((f"body:{route.method} {route.path}", "validation", _adapter(route.body)))
        for param in route.query:
            inputs.append((f"query:{param.name}", "validation", param.schema))
    # Keys are unique per (key, mode); query parameters shared by routes appear once.
    unique = list({(key, mode): (key, mode, adapter) for key, mode, adapter in inputs}.values())
    schemas, definitions = TypeAdapter.json_schemas(unique, ref_template=REF)
    by_key = {key: schema for (key, _mode), schema in schemas.items()}

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(path_of(route), {})[route.method.lower()] = _operation(
            route, by_key, examples or {}
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Learner progress from Kafka events: reads of PostgreSQL and Redis, "
            "catalog publishing and erasure requests (docs/api.md).",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(definitions.get("$defs", {}).items())),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "role learner (sub = user id), or staff/service with "
                    "space-separated scopes: progress:read, catalog:write, learners:erase",
                }
            },
        },
    }


def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


def _operation(route: Route, by_key: dict[str, Any], examples: Mapping[str, str]) -> dict[str, Any]:
    parameters = _path_parameters(route)
    for parameter in parameters:
        if parameter["name"] in examples and "enum" not in parameter["schema"]:
            parameter["example"] = examples[parameter["name"]]
    parameters += [
        {
            "name": param.name,
            "in": "query",
            "required": False,
            "description": param.description,
            "schema": by_key[f"query:{param.name}"],
        }
        for param in route.query
    ]
    if route.shape in ("learner", "course", "listing"):
        parameters.append(
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "ETags of a copy held: 304 when one is current",
                "schema": {"type": "string"},
            }
        )
    operation: dict[str, Any] = {
        "operationId": operation_id(route),
        "summary": route.summary,
        "parameters": parameters,
        "responses": _responses(route, by_key),
        "security": [] if route.access == "public" else [{"bearer": []}],
        "x-access": route.access,
    }
    if route.body is not None:
        operation["requestBody"] = {
            "required": route.body_required,
            "content": {
                "application/json": {"schema": by_key[f"body:{route.method} {route.path}"]}
            },
        }
    return operation


def _responses(route: Route, by_key: dict[str, Any]) -> dict[str, Any]:
    if route.shape == "document":
        content = {
            route.answer: {
                "schema": {} if route.answer != "application/json" else {"type": "object"}
            }
        }
        success: dict[str, Any] = {"description": route.summary, "content": content}
    else:
        success = {
            "description": route.summary,
            "content": {
                "application/json": {"schema": by_key[f"answer:{route.method} {route.path}"]}
            },
        }
    headers = _success_headers(route)
    if headers:
        success["headers"] = headers
    responses: dict[str, Any] = {str(route.status): success}
    for status in _error_statuses(route):
        if status == 304:
            responses["304"] = {
                "description": _ERRORS[304],
                "headers": {name: _HEADERS[name] for name in _conditional_headers(route)},
            }
            continue
        responses[str(status)] = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": by_key["error"]}},
        }
    if route.path == "/readyz":
        responses["503"] = {
            "description": "Not ready: a check failed",
            "content": success["content"],
        }
    return dict(sorted(responses.items()))


def _conditional_headers(route: Route) -> list[str]:
    names = ["ETag", "Cache-Control"]
    if route.shape in ("learner", "course"):
        names.append("X-Cache")
    return names


def _success_headers(route: Route) -> dict[str, Any]:
    if route.shape not in ("learner", "course", "listing"):
        return {}
    names = _conditional_headers(route)
    if route.shape == "listing" or _is_list(route):
        names.append("Link")
    return {name: _HEADERS[name] for name in names}


def _is_list(route: Route) -> bool:
    return isinstance(route.answer, type) and issubclass(route.answer, Page)
