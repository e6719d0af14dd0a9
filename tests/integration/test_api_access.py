"""Who may ask the API what: bearer tokens on the real app, database and cache."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.settings import Settings
from api.app import MAX_LINE_BYTES, create_app, start_api
from api.auth import mint_token
from progress.snapshots import Snapshot
from tests.integration.test_sink_api import learner_snapshot
from tests.support.processes import free_port
from tests.support.stack import TEST_JWT_KEY, Http, make_settings
from tests.unit.test_auth import EC_PRIVATE, EC_PUBLIC, RSA_PRIVATE, RSA_PUBLIC

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


# ------------------------------------------------------------------ 401 challenges


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, "Bearer"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer"),
        ({"Authorization": "Bearer nonsense"}, 'Bearer error="invalid_token"'),
        (
            {"Authorization": f"Bearer {mint_token(TEST_JWT_KEY, 'u1', lifetime_seconds=-120)}"},
            'Bearer error="invalid_token"',
        ),
    ],
)
async def test_a_401_says_how_to_authenticate(
    anonymous: Http, headers: dict[str, str], challenge: str
) -> None:
    response = await anonymous.get("/catalog/competencies", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == challenge
    assert (await response.json())["error"] == "unauthorized"


# ------------------------------------------------------------------ readiness detail


@pytest.fixture
async def redis_down(pg_pool: object) -> AsyncIterator[Http]:
    """The API with tokens checked, its Redis an address where nothing listens."""
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    yield client
    await client.close()


async def test_readiness_detail_is_only_for_staff_and_service_tokens(redis_down: Http) -> None:
    names_only = {"status": "not-ready", "checks": {"postgres": "ok", "redis": "failing"}}
    for headers in ({}, bearer("u1"), {"Authorization": "Bearer nonsense"}):
        response = await redis_down.get("/readyz", headers=headers)
        assert response.status == 503
        assert await response.json() == names_only, headers

    for headers in (bearer("s1", "staff"), bearer("svc", "service", "catalog:write")):
        response = await redis_down.get("/readyz", headers=headers)
        assert response.status == 503
        checks = (await response.json())["checks"]
        assert checks["postgres"] == "ok"
        assert checks["redis"].startswith("ConnectionError"), checks  # what, not just whether


# ------------------------------------------------------------------ protocol errors


@pytest.fixture
async def served(settings: Settings, pg_pool: object) -> AsyncIterator[str]:
    """The API as ``progress api`` serves it (api.app.start_api, on a port of its own);
    yields its base URL."""
    own = make_settings(api_port=free_port())
    runner = await start_api(own)
    yield f"http://{own.api_host}:{own.api_port}"
    await runner.cleanup()


async def test_what_aiohttp_refuses_before_routing_is_answered_as_json(served: str) -> None:
    async with aiohttp.ClientSession(served) as session:
        long_url = "/catalog/competencies?course_id=" + "a" * (MAX_LINE_BYTES + 1)
        async with session.get(long_url) as response:
            assert response.status == 400
            assert response.content_type == "application/json"
            assert await response.json() == {
                "error": "bad_request",
                "detail": f"the request line or a header is longer than {MAX_LINE_BYTES} bytes",
            }
        async with session.get("/healthz", headers={"X-Long": "b" * (MAX_LINE_BYTES + 1)}) as big:
            assert (big.status, (await big.json())["error"]) == (400, "bad_request")
        # The same server answers a request of the right size as usual.
        async with session.get("/catalog/competencies?limit=1") as ok:
            assert (ok.status, ok.headers["WWW-Authenticate"]) == (401, "Bearer")

    host, port = served.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 400 ")
    assert json.loads(body) == {
        "error": "bad_request",
        "detail": "the request is not valid HTTP/1.1",
    }


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_asymmetric_tokens_are_accepted_and_an_hmac_made_with_the_public_key_is_401(
    settings: Settings, learner: str, algorithm: str
) -> None:
    private, public = (RSA_PRIVATE, RSA_PUBLIC) if algorithm == "RS256" else (EC_PRIVATE, EC_PUBLIC)
    own = settings.model_copy(update={"api_jwt_key": public, "api_jwt_algorithms": algorithm})
    client = TestClient(TestServer(create_app(own)))
    await client.start_server()
    try:
        signed = mint_token(private, learner, algorithm=algorithm)
        path = f"/users/{learner}/progress"
        good = await client.get(path, headers={"Authorization": f"Bearer {signed}"})
        assert good.status == 200
        assert (await good.json())["user_id"] == learner
        # Algorithm confusion: the public key's text as an HMAC secret.
        forged = _hmac_token(public, learner)
        refused = await client.get(path, headers={"Authorization": f"Bearer {forged}"})
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await refused.json())["error"] == "unauthorized"
    finally:
        await client.close()


def _hmac_token(secret: str, subject: str) -> str:
    """An HS256 token signed with ``secret`` by hand: PyJWT itself refuses a PEM key as an
    HMAC secret, which is not what an attacker would use."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": subject, "role": "learner", "exp": int(datetime.now(UTC).timestamp()) + 600}
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"
