"""The API's HTTP conventions against the real stack: ETag and 304 (from PostgreSQL and from
Redis), total and Link on every list, pagination, CORS, and the self-description
(/openapi.json, /docs)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from adapters.settings import Settings
from api.app import create_app
from api.routes import ROUTES
from tests.integration.test_sink_api import COURSE, learner_snapshot
from tests.support.stack import Http, Sunk, make_settings, staff_headers

pytestmark = pytest.mark.integration

ORIGIN = "https://dashboard.example.com"


@pytest.fixture(scope="module")
async def cors_http(settings: Settings, pg_pool: AsyncConnectionPool) -> AsyncIterator[Http]:
    """The API with one allowed origin (and a max age of its own)."""
    own = make_settings(
        topic_prefix=settings.topic_prefix,
        api_cors_origins=f"{ORIGIN}, https://other.example.com",
        api_cors_max_age_seconds=120,
    )
    client = TestClient(TestServer(create_app(own)))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
async def learner(sunk: Sunk, new_id: Callable[[str], str]) -> str:
    user = new_id("u")
    await sunk(learner_snapshot(user, 1, lesson_percent=30.0, evidence=("q1", "cert-1", "a1")))
    return user


def links(header: str) -> dict[str, str]:
    """A Link header as {rel: target}."""
    return {rel: target for target, rel in re.findall(r'<([^>]*)>; rel="([a-z]+)"', header)}


# ------------------------------------------------------------------ ETag and 304


async def test_a_learner_read_has_an_etag_and_a_matching_if_none_match_answers_304(
    http: Http, learner: str
) -> None:
    url = f"/users/{learner}/courses/{COURSE}"
    miss = await http.get(url)
    assert (miss.status, miss.headers["X-Cache"]) == (200, "miss")
    etag = miss.headers["ETag"]
    # The learner version the rows were read at, then a digest of the body.
    assert re.fullmatch(r'"1-[0-9a-f]{16}"', etag), etag
    body = await miss.read()

    hit = await http.get(url)
    assert (hit.status, hit.headers["X-Cache"], hit.headers["ETag"]) == (200, "hit", etag)
    assert await hit.read() == body

    for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = await http.get(url, headers={"If-None-Match": if_none_match})
        assert cached.status == 304, if_none_match
        assert cached.headers["ETag"] == etag
        assert cached.headers["X-Cache"] == "hit"
        assert await cached.read() == b""

    stale = await http.get(url, headers={"If-None-Match": '"0-0000000000000000"'})
    assert (stale.status, await stale.read()) == (200, body)


async def test_304_from_postgresql_too_and_a_new_version_changes_the_etag(
    http: Http, sunk: Sunk, learner: str, redis_client: Redis
) -> None:
    url = f"/users/{learner}/progress"
    first = await http.get(url)
    etag = first.headers["ETag"]
    # The cache is dropped: the answer comes from PostgreSQL with the same tag.
    await redis_client.delete(f"progress:user:{learner}")
    again = await http.get(url, headers={"If-None-Match": etag})
    assert (again.status, again.headers["X-Cache"], again.headers["ETag"]) == (304, "miss", etag)

    await sunk(learner_snapshot(learner, 2, lesson_percent=60.0))
    changed = await http.get(url, headers={"If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"].startswith('"2-')
    assert (await changed.json())["version"] == 2


async def test_catalog_listings_have_an_etag_too(http: Http) -> None:
    first = await http.get("/catalog/competencies?limit=5")
    etag = first.headers["ETag"]
    again = await http.get("/catalog/competencies?limit=5", headers={"If-None-Match": etag})
    assert again.status == 304


# ------------------------------------------------------------------ lists


@pytest.mark.parametrize(
    ("path", "rows", "total"),
    [
        ("courses", "courses", 2),
        ("quiz-attempts", "quiz_attempts", 2),
        ("assignments", "assignments", 2),
        ("competencies", "competencies", 2),
        ("achievements", "achievements", 2),
        ("learning-paths", "learning_paths", 1),
    ],
)
async def test_every_learner_list_is_paged_with_total_and_link(
    http: Http, learner: str, path: str, rows: str, total: int
) -> None:
    url = f"/users/{learner}/{path}"
    whole = await (await http.get(url)).json()
    assert (whole["total"], whole["limit"], whole["offset"]) == (total, 100, 0)
    assert len(whole[rows]) == total

    pages = []
    for cache in ("miss", "hit"):
        for offset in range(total):
            response = await http.get(f"{url}?limit=1&offset={offset}")
            assert (response.status, response.headers["X-Cache"]) == (200, cache)
            body = await response.json()
            assert (body["total"], body["limit"], body["offset"]) == (total, 1, offset)
            pages.append(body[rows])
            rel = links(response.headers["Link"])
            assert rel["first"] == f"{url}?limit=1&offset=0"
            assert rel["last"] == f"{url}?limit=1&offset={total - 1}"
            assert ("prev" in rel) == (offset > 0)
            assert ("next" in rel) == (offset < total - 1)
            if offset < total - 1:
                assert rel["next"] == f"{url}?limit=1&offset={offset + 1}"
    # Page by page, the same rows in the same order as the whole list, from either source.
    assert [row for page in pages[:total] for row in page] == whole[rows]
    assert pages[total:] == pages[:total]


async def test_link_keeps_the_other_query_parameters_and_past_the_end_points_back(
    http: Http, learner: str
) -> None:
    url = f"/users/{learner}/courses"
    response = await http.get(f"{url}?status=completed&limit=1&offset=7")
    body = await response.json()
    assert (body["total"], body["courses"]) == (1, [])
    rel = links(response.headers["Link"])
    assert rel == {
        "first": f"{url}?status=completed&limit=1&offset=0",
        "prev": f"{url}?status=completed&limit=1&offset=0",
        "last": f"{url}?status=completed&limit=1&offset=0",
    }


async def test_an_empty_list_has_total_zero_and_one_page(http: Http) -> None:
    response = await http.get("/catalog/learning-paths?limit=500&offset=100000")
    body = await response.json()
    assert body["learning_paths"] == []
    assert body["offset"] == 100000
    rel = links(response.headers["Link"])
    assert "next" not in rel
    assert rel["prev"] == rel["last"]


@pytest.mark.parametrize("path", ["quiz-attempts", "assignments", "competencies"])
async def test_a_bad_page_is_a_400_on_every_list(http: Http, learner: str, path: str) -> None:
    response = await http.get(f"/users/{learner}/{path}?limit=0")
    assert response.status == 400
    assert "limit" in (await response.json())["detail"]


# ------------------------------------------------------------------ CORS


async def test_a_preflight_from_an_allowed_origin_is_answered_204_without_a_token(
    cors_http: Http, learner: str
) -> None:
    response = await cors_http.options(
        f"/users/{learner}/progress",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, if-none-match",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "GET, HEAD"  # aiohttp adds HEAD
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert {"authorization", "if-none-match", "content-type"} <= set(allowed.split(", "))
    assert response.headers["Access-Control-Max-Age"] == "120"
    assert "Origin" in response.headers["Vary"]

    admin = await cors_http.options(
        "/admin/catalog/competencies/python",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"},
    )
    assert admin.status == 204
    assert admin.headers["Access-Control-Allow-Methods"] == "DELETE, PUT"


async def test_another_origin_gets_no_cors_headers(cors_http: Http, learner: str) -> None:
    preflight = await cors_http.options(
        f"/users/{learner}/progress",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status == 405
    assert not any(name.startswith("Access-Control-") for name in preflight.headers)
    read = await cors_http.get(
        f"/users/{learner}/progress",
        headers={"Origin": "https://evil.example.com", **staff_headers()},
    )
    assert read.status == 200
    assert "Access-Control-Allow-Origin" not in read.headers


async def test_answers_to_an_allowed_origin_expose_the_headers_errors_included(
    cors_http: Http, learner: str
) -> None:
    read = await cors_http.get(
        f"/users/{learner}/courses", headers={"Origin": ORIGIN, **staff_headers()}
    )
    assert read.status == 200
    assert read.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = set(read.headers["Access-Control-Expose-Headers"].split(", "))
    assert {"ETag", "Link", "X-Cache"} <= exposed
    refused = await cors_http.get(f"/users/{learner}/courses", headers={"Origin": ORIGIN})
    assert refused.status == 401
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_without_configured_origins_there_is_no_cors(http: Http, learner: str) -> None:
    preflight = await http.options(
        f"/users/{learner}/progress",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status == 405
    assert "Access-Control-Allow-Origin" not in preflight.headers


# ------------------------------------------------------------------ the API describes itself


async def test_openapi_json_and_docs_are_served_without_a_token(cors_http: Http) -> None:
    spec = await cors_http.get("/openapi.json")
    assert spec.status == 200
    document = await spec.json()
    assert document["openapi"] == "3.1.0"
    assert len([op for path in document["paths"].values() for op in path]) == len(ROUTES)

    page = await cors_http.get("/docs")
    assert (page.status, page.content_type) == (200, "text/html")
    html = await page.text()
    assert "/openapi.json" in html
    # Nothing from elsewhere: no external URL in the page, and the policy forbids it.
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", policy)
