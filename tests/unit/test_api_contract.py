"""The machine-readable contract, without services: the OpenAPI document describes exactly
the routes aiohttp serves, with the access api.auth enforces, and is valid OpenAPI 3.1; the
AsyncAPI document has every topic; the committed files in docs/ are current."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from adapters import asyncapi
from adapters.settings import Settings
from adapters.topics import topic_specs
from api import openapi
from api.app import create_app
from api.auth import ALL_SCOPES, PUBLIC_PATHS, Forbidden, Principal, authorize
from api.routes import ROUTES, Route
from service import contract

DOCS = Path(__file__).parents[2] / "docs"


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_every_route_served_is_in_the_openapi_document_and_nothing_else() -> None:
    app = create_app(Settings(api_auth="off"))
    served = {
        (route.method, re.sub(r"\{(\w+):[^{}]+\}", r"{\1}", route.resource.canonical))
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None  # aiohttp adds HEAD to GET
    }
    described = _operations(openapi.document())
    assert served == described
    assert len(described) == len(ROUTES)


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    document = openapi.document()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document).validate()  # raises on an invalid document


def test_every_ref_in_both_documents_resolves() -> None:
    for document in (openapi.document(), asyncapi.document()):
        text = json.dumps(document)
        for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
            node: Any = document
            for part in ref.split("/"):
                assert part in node, ref
                node = node[part]


def _concrete(route: Route) -> str:
    """The route's path with a value for each variable (a kind: the first it takes)."""
    return re.sub(
        r"\{(\w+)(?::([^{}]+))?\}",
        lambda m: (
            m.group(2).split("|")[0] if m.group(2) else ("u1" if m.group(1) == "user_id" else "x1")
        ),
        route.path,
    )


def _allowed(principal: Principal, route: Route) -> bool:
    path = _concrete(route)
    try:
        authorize(principal, path, "u1" if "{user_id}" in route.path else None)
    except Forbidden:
        return False
    return True


def _staff(*scopes: str) -> Principal:
    return Principal("staff-1", "staff", frozenset(scopes))


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_each_routes_declared_access_is_what_auth_enforces(route: Route) -> None:
    own_learner = Principal("u1", "learner", frozenset())
    other_learner = Principal("u2", "learner", frozenset())
    assert (_concrete(route) in PUBLIC_PATHS) == (route.access == "public")
    if route.access in ("public", "token"):
        assert _allowed(other_learner, route)
    elif route.access == "learner":
        assert _allowed(own_learner, route)
        assert not _allowed(other_learner, route)
        assert _allowed(_staff("progress:read"), route)
        assert not _allowed(_staff(*(ALL_SCOPES - {"progress:read"})), route)
    else:
        assert _allowed(_staff(route.access), route)
        assert not _allowed(_staff(*(ALL_SCOPES - {route.access})), route)
        assert not _allowed(own_learner, route)


def test_every_topic_has_a_channel_with_its_partitions() -> None:
    settings = asyncapi.default_settings()
    document = asyncapi.document(settings)
    assert document["asyncapi"] == "3.0.0"
    channels = {c["address"]: c for c in document["channels"].values()}
    specs = topic_specs(settings)
    assert set(channels) == {spec.name for spec in specs}
    for spec in specs:
        assert channels[spec.name]["bindings"]["kafka"]["partitions"] == spec.num_partitions
    # Every channel is sent or received by someone.
    used = {op["channel"]["$ref"].split("/")[-1] for op in document["operations"].values()}
    assert used == set(document["channels"])


def test_the_asyncapi_document_does_not_depend_on_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = asyncapi.document()
    monkeypatch.setenv("TOPIC_PREFIX", "elsewhere.")
    monkeypatch.setenv("TOPIC_PARTITIONS", "3")
    assert asyncapi.document() == before


def test_a_learner_input_channel_carries_its_models_schema() -> None:
    document = asyncapi.document()
    payload = document["components"]["messages"]["lms_lesson_activity"]["payload"]
    assert {ref["$ref"].split("/")[-1] for ref in payload["oneOf"]} == {
        "LessonStarted",
        "LessonProgressed",
        "LessonCompleted",
    }
    completed = document["components"]["schemas"]["LessonCompleted"]
    assert {"user_id", "course_id", "lesson_id"} <= set(completed["required"])


def test_the_committed_documents_are_current() -> None:
    # What `progress contract --check` (scripts/test.sh) checks too.
    assert contract.stale(DOCS) == [], "run: progress contract --write"
