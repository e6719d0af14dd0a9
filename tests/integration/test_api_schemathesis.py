"""Schemathesis against the live API: the server ``progress api`` runs (``start_api``, with
its own runner) on a port of its own, over the real PostgreSQL, Redis and Kafka, reading its
own /openapi.json. Every operation gets generated requests, valid and invalid, half of them
on a learner that has rows (real ids), all with a staff token holding every scope. No answer
may be a 5xx, and every answer must conform to the document: status, content type, headers,
body schema.

Hypothesis runs derandomized (the same cases every run) with a bounded number of examples,
so the whole run takes well under a minute on the project's machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from psycopg_pool import AsyncConnectionPool
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.settings import Settings
from adapters.topics import catalog_topics
from api.app import start_api
from api.openapi import path_of as openapi_path
from api.routes import ROUTES
from tests.integration.test_sink_api import COURSE, learner_snapshot
from tests.support.processes import free_port
from tests.support.stack import (
    Sunk,
    create_topics,
    delete_topics,
    make_settings,
    staff_headers,
    unique_id,
)

pytestmark = [
    pytest.mark.integration,
    # Schemathesis' strategies draw from the random module (seeded by Hypothesis), which
    # Hypothesis warns about; the warnings-are-errors setting would fail every case with it.
    pytest.mark.filterwarnings("ignore:Do not use the `random` module"),
]

EXAMPLES_PER_OPERATION = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True)
class LiveApi:
    url: str
    real_ids: dict[str, str]


@pytest.fixture(scope="module")
async def live_api(
    kafka: Settings, pg_pool: AsyncConnectionPool, sink: Settings
) -> AsyncIterator[Settings]:
    """The API as ``progress api`` serves it, with the topics its admin calls publish to
    (under a prefix of its own: nothing consumes what the fuzzing publishes)."""
    own = make_settings(api_port=free_port())
    t = own.topics
    await create_topics(own, *catalog_topics(t), t.erasure_requests)
    runner = await start_api(own)
    yield own
    await runner.cleanup()
    await delete_topics(own)


@pytest.fixture
async def api_with_rows(live_api: Settings, sunk: Sunk) -> LiveApi:
    user = unique_id("u")
    await sunk(learner_snapshot(user, 1, lesson_percent=30.0, evidence=("q1", "cert-1", "a1")))
    real_ids = {
        "user_id": user,
        "course_id": COURSE,
        "module_id": "m1",
        "lesson_id": "l2",
        "entry_id": unique_id("entry"),
    }
    return LiveApi(f"http://{live_api.api_host}:{live_api.api_port}", real_ids)


def _cases(operation: Any, real_ids: dict[str, str]) -> st.SearchStrategy[Any]:
    """Valid and invalid requests; half with the path's ids those of a learner with rows."""
    names = {p.name for p in operation.path_parameters}
    known = {name: value for name, value in real_ids.items() if name in names}
    strategies = [
        operation.as_strategy(mode)
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    ]
    if known:
        strategies.append(operation.as_strategy(path_parameters=known))
    return st.one_of(strategies)


@dataclass
class Run:
    failures: list[str]
    statuses: dict[str, list[int]]  # by operation


# A server-sent event stream answers until the client leaves: no call of it ever ends.
# tests/integration/test_live_updates.py tests it.
STREAMS = frozenset({"GET /events"})


def _fuzz(api: LiveApi) -> Run:
    """Runs in a thread (schemathesis calls are blocking) while the API serves on the loop."""
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    headers = staff_headers()
    out = Run([], {})
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in STREAMS:
            continue

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=_cases(operation, api.real_ids))
        def run(case: Any) -> None:
            response = case.call_and_validate(base_url=api.url, headers=headers, checks=CHECKS)
            out.statuses.setdefault(case.operation.label, []).append(response.status_code)

        try:
            run()
        except Exception as exc:
            # Hypothesis wraps what failed (a group when it is flaky): report the inner ones.
            inner = getattr(exc, "exceptions", None) or [exc]
            out.failures.append(f"{operation.label}: " + "\n".join(map(str, inner)))
    return out


async def test_the_live_api_conforms_to_its_openapi_document(api_with_rows: LiveApi) -> None:
    run = await asyncio.to_thread(_fuzz, api_with_rows)
    assert run.failures == [], "\n\n".join(run.failures)
    # Every operation was called (schemathesis leaves out the document's own URL, which the
    # run fetched), and each but the PUT (whose generated bodies are almost never a valid
    # entry for the path's kind and id) answered a success at least once: the real ids
    # reached rows.
    described = {f"{r.method} {openapi_path(r)}" for r in ROUTES}
    assert set(run.statuses) == described - {"GET /openapi.json"} - STREAMS
    for label, statuses in run.statuses.items():
        if not label.startswith("PUT "):
            assert any(200 <= status < 300 for status in statuses), (label, statuses)
    print({label: sorted(set(statuses)) for label, statuses in run.statuses.items()})
    print(sum(map(len, run.statuses.values())), "calls")
