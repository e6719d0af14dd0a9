"""Who may ask the API what: bearer tokens on the real app, database and cache."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.auth import mint_token
from progress.snapshots import Snapshot
from service.config import Settings
from tests.integration.support import TEST_JWT_KEY, Http, make_settings
from tests.integration.test_sink_api import learner_snapshot

pytestmark = pytest.mark.integration


def bearer(subject: str, role: str = "learner", *scopes: str) -> dict[str, str]:
    token = mint_token(TEST_JWT_KEY, subject, role=role, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def anonymous(settings: Settings, pg_pool: object) -> AsyncIterator[Http]:
    """The API with token checks on, and a client that sends no token by itself."""
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
async def learner(sunk: Callable[..., Awaitable[None]], new_id: Callable[[str], str]) -> str:
    user = new_id("u")
    snapshot: Snapshot = learner_snapshot(user, 1, lesson_percent=30.0)
    await sunk(snapshot)
    return user


async def test_a_learner_reads_their_own_progress_and_no_one_elses(
    anonymous: Http, learner: str
) -> None:
    own = await anonymous.get(f"/users/{learner}/progress", headers=bearer(learner))
    assert own.status == 200
    other = await anonymous.get(f"/users/{learner}/progress", headers=bearer("someone-else"))
    assert (other.status, (await other.json())["error"]) == (403, "forbidden")
    catalog = await anonymous.get("/catalog/achievements", headers=bearer("someone-else"))
    assert catalog.status == 200


async def test_staff_see_what_they_are_scoped_to(anonymous: Http, learner: str) -> None:
    reader = bearer("s1", "staff", "progress:read")
    assert (await anonymous.get(f"/users/{learner}/courses", headers=reader)).status == 200
    denied = await anonymous.put(
        "/admin/catalog/competencies/x",
        headers=reader,
        json={"name": "X", "updated_at": datetime.now(UTC).isoformat()},
    )
    assert denied.status == 403
    no_scope = bearer("s2", "staff")
    assert (await anonymous.get(f"/users/{learner}/progress", headers=no_scope)).status == 403
    eraser = bearer("svc", "service", "learners:erase")
    assert (await anonymous.get(f"/users/{learner}/progress", headers=eraser)).status == 403


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": f"Bearer {mint_token('wrong-key-wrong-key-wrong-key-wrong-key', 'u1')}"},
        {"Authorization": f"Bearer {mint_token(TEST_JWT_KEY, 'u1', lifetime_seconds=-120)}"},
    ],
)
async def test_no_valid_token_is_refused_without_saying_more(
    anonymous: Http, learner: str, headers: dict[str, str]
) -> None:
    response = await anonymous.get(f"/users/{learner}/progress", headers=headers)
    body = await response.json()
    assert (response.status, body["error"]) == (401, "unauthorized")
    assert TEST_JWT_KEY not in body["detail"]


async def test_health_and_readiness_need_no_token(anonymous: Http) -> None:
    assert (await anonymous.get("/healthz")).status == 200
    assert (await anonymous.get("/readyz")).status == 200


async def test_auth_off_is_an_explicit_switch(pg_pool: object) -> None:
    with pytest.raises(ValueError, match="API_JWT_KEY"):
        create_app(make_settings(api_jwt_key=""))
    open_app = create_app(make_settings(api_auth="off"))
    async with TestClient(TestServer(open_app)) as client:
        response = await client.get("/users/nobody-at-all/progress")
        assert response.status == 404  # no token needed, and nothing to show
