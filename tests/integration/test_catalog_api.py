"""Catalogs after the worker: catalog snapshots into PostgreSQL, the catalog listings, and
publishing entries to the catalog topics through the admin API and ``progress catalog``.

Catalog tables are shared by every test and run, so each test uses ids of its own and reads
the listings whole.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from adapters.topics import catalog_topics
from api.app import create_app
from progress.catalog import (
    AchievementUpdated,
    CatalogSnapshot,
    CompetencyUpdated,
    Criterion,
    LearningPathUpdated,
)
from progress.events import CourseUpdated
from sinks.runner import decode_message
from tests.support.stack import (
    Http,
    Sunk,
    catalog_snapshot,
    consume_all,
    create_topics,
    delete_topics,
    fetch_one,
    make_settings,
    staff_headers,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
PROGRESS = Path(sys.executable).parent / "progress"

Entry = LearningPathUpdated | CompetencyUpdated | AchievementUpdated


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def entry(kind: str, entry_id: str, minute: float, name: str, *, deleted: bool = False) -> Entry:
    """A definition (or a deletion) of ``entry_id`` as of ``minute``, named ``name``."""
    common: dict[str, Any] = {"id": entry_id, "updated_at": at(minute), "deleted": deleted}
    if kind == "competencies":
        return CompetencyUpdated(name=name, category="programming", level="beginner", **common)
    if kind == "achievements":
        return AchievementUpdated(
            name=name, points=10, criteria=Criterion(kind="lessons", count=3), **common
        )
    return LearningPathUpdated(
        title=name, course_ids=("course-v1:Acme+PY101+2026", "course-v1:Acme+PY201+2026"), **common
    )


async def listing(http: Http, kind: str) -> dict[str, dict[str, Any]]:
    """Every entry ``GET /catalog/{kind}`` lists, by id, read page by page."""
    field = kind.replace("-", "_")
    entries: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        response = await http.get(f"/catalog/{kind}?limit=500&offset={offset}")
        assert response.status == 200, await response.text()
        page = (await response.json())[field]
        entries.update((item["id"], item) for item in page)
        if len(page) < 500:
            return entries
        offset += 500


# ------------------------------------------------------------------ the sink


def test_the_sink_decodes_both_kinds_of_message_and_refuses_a_rowless_catalog_one() -> None:
    path = catalog_snapshot(entry("learning-paths", "p1", 1, "Path"))
    assert decode_message(path.model_dump_json().encode()) == path
    with pytest.raises(ValueError, match="exactly one row"):
        decode_message(CatalogSnapshot().model_dump_json().encode())
    with pytest.raises(ValueError, match="unknown snapshot kind"):
        decode_message(b'{"kind": "mystery", "user_id": "u1"}')


@pytest.mark.parametrize("kind", ["competencies", "achievements", "learning-paths"])
async def test_catalog_rows_newest_wins_deleted_stays_deleted_until_redefined(
    kind: str, sunk: Sunk, http: Http, pg_pool: AsyncConnectionPool, new_id: Callable[[str], str]
) -> None:
    entry_id = new_id(kind[:4])
    table = kind.replace("-", "_")
    name = "title" if kind == "learning-paths" else "name"

    async def stored() -> tuple[str, datetime, bool]:
        return await fetch_one(
            pg_pool, f"select {name}, updated_at, deleted from {table} where id = %s", entry_id
        )

    async def listed() -> str | None:
        item = (await listing(http, kind)).get(entry_id)
        return None if item is None else item[name]

    def send(minute: float, title: str, *, deleted: bool = False) -> CatalogSnapshot:
        return catalog_snapshot(entry(kind, entry_id, minute, title, deleted=deleted))

    await sunk(send(2, "v2"), send(1, "v1"))  # the older one, after: ignored
    assert await stored() == ("v2", at(2), False)
    await sunk(send(3, "v3"))
    assert await stored() == ("v3", at(3), False)
    assert await listed() == "v3"
    if kind != "learning-paths":  # the earliest definition's, whatever the arrival order
        created = await fetch_one(
            pg_pool, f"select created_at from {table} where id = %s", entry_id
        )
        assert created == (at(1),)

    await sunk(send(4, "(deleted)", deleted=True))
    assert await stored() == ("v3", at(4), True)  # the last definition stays, hidden
    assert await listed() is None

    await sunk(send(3.5, "late"))  # defined before the deletion, arriving after it
    assert await stored() == ("v3", at(4), True)
    assert await listed() is None

    await sunk(send(5, "back"))  # defined again, after the deletion
    assert await stored() == ("back", at(5), False)
    assert await listed() == "back"

    # A definition and a deletion of the same time, in one batch: the deletion wins, and
    # then the other order changes nothing.
    await sunk(send(6, "v6"), send(6, "(deleted)", deleted=True))
    assert await stored() == ("v6", at(6), True)
    await sunk(send(6, "v6 again"))
    assert await stored() == ("v6", at(6), True)


async def test_catalog_listings_page_by_id_and_check_their_parameters(
    sunk: Sunk, http: Http, new_id: Callable[[str], str]
) -> None:
    prefix = new_id("k")
    await sunk(
        *(catalog_snapshot(entry("competencies", f"{prefix}-{n}", 1, "C")) for n in range(3))
    )
    everything = list(await listing(http, "competencies"))
    assert everything == sorted(everything)
    assert {f"{prefix}-{n}" for n in range(3)} <= set(everything)

    start = everything.index(f"{prefix}-0")
    response = await http.get(f"/catalog/competencies?limit=2&offset={start + 1}")
    body = await response.json()
    assert [item["id"] for item in body["competencies"]] == everything[start + 1 : start + 3]
    assert (body["limit"], body["offset"]) == (2, start + 1)

    for path in ("/catalog/achievements?limit=0", "/catalog/learning-paths?offset=-1"):
        response = await http.get(path)
        assert response.status == 400, path
        assert (await response.json())["error"] == "bad_request"


# ------------------------------------------------------------------ publishing


@pytest.fixture(scope="module")
async def publishing(kafka: Settings, pg_pool: AsyncConnectionPool) -> AsyncIterator[Settings]:
    """Settings of their own with the catalog topics created: what is published here never
    reaches the session's worker."""
    own = make_settings()
    await create_topics(own, *catalog_topics(own.topics))
    yield own
    await delete_topics(own)


@pytest.fixture(scope="module")
async def admin_http(publishing: Settings) -> AsyncIterator[Http]:
    client = TestClient(TestServer(create_app(publishing)), headers=staff_headers())
    await client.start_server()
    yield client
    await client.close()


async def end_offsets(settings: Settings, *topics: str) -> dict[str, int]:
    """How many messages each topic holds (the sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in range(settings.topic_partitions)
        ]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return {topic: sum(n for tp, n in ends.items() if tp.topic == topic) for topic in topics}


async def topic_size(settings: Settings, topic: str) -> int:
    return (await end_offsets(settings, topic))[topic]


async def on_topic(settings: Settings, topic: str) -> dict[str, Any]:
    """Every message on ``topic``, by key (the last one of a key)."""
    records = await consume_all(settings, topic, await topic_size(settings, topic))
    return {record.key.decode(): json.loads(record.value) for record in records}


async def catalog_sizes(settings: Settings) -> dict[str, int]:
    return await end_offsets(settings, *catalog_topics(settings.topics))


async def test_admin_put_publishes_each_kind_validated_and_keyed_by_its_id(
    publishing: Settings, admin_http: Http, new_id: Callable[[str], str]
) -> None:
    course, path, skill, badge = (new_id(prefix) for prefix in ("c", "p", "k", "a"))
    bodies: dict[str, tuple[str, dict[str, Any]]] = {
        "courses": (
            course,
            {
                "id": course,
                "title": "Python 101",
                "updated_at": "2026-05-01T12:00:00Z",
                "competencies": [{"competency_id": skill, "level": 40}],
                "modules": [{"id": "basics", "lessons": [{"id": "variables"}, {"id": "loops"}]}],
            },
        ),
        # No id: the path's is taken. Seed spelling is accepted, as from any producer.
        "learning-paths": (
            path,
            {"Title": "Python track", "course_ids": [course], "UpdatedAt": "2026-05-01T12:00:00Z"},
        ),
        "competencies": (
            skill,
            {
                "id": skill,
                "name": "Python",
                "level": "beginner",
                "updated_at": "2026-05-01T12:00:00Z",
            },
        ),
        "achievements": (
            badge,
            {
                "id": badge,
                "type": "AchievementUpdated",
                "name": "Three days in a row",
                "points": 15,
                "criteria": {"kind": "streak", "count": 3},
                "updated_at": "2026-05-01T12:00:00Z",
            },
        ),
    }
    topics = {
        "courses": publishing.topics.course_updates,
        "learning-paths": publishing.topics.learning_paths,
        "competencies": publishing.topics.competencies,
        "achievements": publishing.topics.achievements,
    }
    models: dict[str, Any] = {
        "courses": CourseUpdated,
        "learning-paths": LearningPathUpdated,
        "competencies": CompetencyUpdated,
        "achievements": AchievementUpdated,
    }
    answers = {}
    for kind, (entry_id, body) in bodies.items():
        response = await admin_http.put(f"/admin/catalog/{kind}/{entry_id}", json=body)
        assert response.status == 202, (kind, await response.text())
        answer = await response.json()
        assert answer["topic"] == topics[kind]
        assert answer["published"]["id"] == entry_id
        assert answer["published"]["type"] == models[kind].__name__
        answers[kind] = answer["published"]
    assert answers["courses"]["modules"][0]["lessons"][1]["id"] == "loops"  # as producers send
    assert answers["learning-paths"]["course_ids"] == [course]

    for kind, (entry_id, _) in bodies.items():
        message = (await on_topic(publishing, topics[kind]))[entry_id]
        assert message == answers[kind], kind
        # What the worker reads back is what was validated.
        model = models[kind]
        assert model.model_validate(message) == model.model_validate(answers[kind])


async def test_admin_delete_publishes_a_tombstone_now_or_as_of_the_given_time(
    publishing: Settings, admin_http: Http, new_id: Callable[[str], str]
) -> None:
    badge, path = new_id("a"), new_id("p")
    before = datetime.now(UTC)
    response = await admin_http.delete(
        f"/admin/catalog/achievements/{badge}", json={"updated_at": "2026-06-01T00:00:00Z"}
    )
    assert response.status == 202, await response.text()
    tombstone = (await response.json())["published"]
    assert (tombstone["id"], tombstone["deleted"]) == (badge, True)
    assert tombstone["updated_at"] == "2026-06-01T00:00:00Z"

    response = await admin_http.delete(f"/admin/catalog/learning-paths/{path}")  # no body
    assert response.status == 202, await response.text()
    answer = await response.json()
    assert answer["published"]["deleted"] is True
    assert datetime.fromisoformat(answer["published"]["updated_at"]) >= before.replace(
        microsecond=0
    )

    message = (await on_topic(publishing, publishing.topics.achievements))[badge]
    assert message == tombstone
    assert AchievementUpdated.model_validate(message).deleted
    message = (await on_topic(publishing, publishing.topics.learning_paths))[path]
    assert message == answer["published"]


WHEN = {"updated_at": "2026-05-01T00:00:00Z"}


REFUSED: list[tuple[str, str, Any, int, str]] = [
    (
        "PUT",
        "/admin/catalog/competencies/k-1",
        {"id": "k-1", **WHEN},
        400,
        "name: Field required",
    ),
    (
        "PUT",
        "/admin/catalog/competencies/k-1",
        {"id": "k-2", "name": "X", **WHEN},
        400,
        "'k-2'",
    ),
    (
        "PUT",
        "/admin/catalog/competencies/k-1",
        {"name": "X", "level": "guru", **WHEN},
        400,
        "level",
    ),
    (
        "PUT",
        "/admin/catalog/competencies/k-1",
        {"type": "AchievementUpdated", "name": "X", **WHEN},
        400,
        "type",
    ),
    (
        "PUT",
        "/admin/catalog/achievements/a-1",
        {"name": "X", "criteria": {"kind": "x"}, **WHEN},
        400,
        "criteria.kind",
    ),
    (
        "PUT",
        "/admin/catalog/learning-paths/p-1",
        {"course_ids": ["c1", "c1"], **WHEN},
        400,
        "twice",
    ),
    ("PUT", "/admin/catalog/courses/c-1", {"title": "X"}, 400, "updated_at"),
    ("PUT", "/admin/catalog/courses/c-1", ["not", "an", "object"], 400, "object"),
    ("PUT", "/admin/catalog/courses/c-1", "{not json", 400, "not JSON"),
    ("PUT", "/admin/catalog/courses/bad%20id", {"title": "X"}, 400, "entry_id"),
    ("DELETE", "/admin/catalog/achievements/a-1", {"updated_at": "soon"}, 400, "updated_at"),
    ("PUT", "/admin/catalog/badges/b-1", {}, 404, "PUT /admin/catalog/badges/b-1"),
    ("DELETE", "/admin/catalog/courses/c-1", None, 405, "DELETE"),
]


async def test_admin_refuses_what_it_cannot_publish_and_publishes_nothing(
    publishing: Settings, admin_http: Http
) -> None:
    before = await catalog_sizes(publishing)
    for method, path, body, status, detail in REFUSED:
        if isinstance(body, str):
            response = await admin_http.request(
                method, path, data=body, headers={"Content-Type": "application/json"}
            )
        else:
            response = await admin_http.request(method, path, json=body)
        assert response.status == status, (method, path, await response.text())
        answer = await response.json()
        assert detail in answer["detail"], (method, path, answer)
    assert await catalog_sizes(publishing) == before


def nested(depth: int) -> str:
    """A JSON object whose ``name`` holds lists ``depth`` deep."""
    return '{"name": ' + "[" * depth + "]" * depth + ', "updated_at": "2026-05-01T00:00:00Z"}'


# (method, path, body sent as application/json, the field or reason the 400 must name)
REFUSED_AS_BAD_REQUEST: list[tuple[str, str, str, str]] = [
    ("PUT", "/admin/catalog/competencies/k-1", nested(100_000), "nested too deeply"),
    ("PUT", "/admin/catalog/competencies/k-1", nested(100), "name"),  # parses, then invalid
    (
        "PUT",
        "/admin/catalog/competencies/k-1",
        '{"name": "X", "updated_at": 1777593600}',  # 2026-05-01 as seconds since 1970
        "updated_at: Value error, a time must be an ISO 8601 string",
    ),
    (
        "PUT",
        "/admin/catalog/competencies/k-1",
        '{"name": "X", "updated_at": "1777593600"}',
        "updated_at: Value error, a time must be an ISO 8601 string",
    ),
    (
        "DELETE",
        "/admin/catalog/competencies/k-1",
        '{"updated_at": 1777593600}',
        "updated_at is invalid: Value error, a time must be an ISO 8601 string",
    ),
    (
        "PUT",
        "/admin/catalog/achievements/a-1",
        '{"name": "X", "points": 10000000000000000000, "updated_at": "2026-05-01T00:00:00Z"}',
        "points: Input should be less than or equal to",
    ),
    (
        "PUT",
        "/admin/catalog/achievements/a-1",
        '{"name": "X", "points": Infinity, "updated_at": "2026-05-01T00:00:00Z"}',
        "Infinity is not JSON",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "named"), REFUSED_AS_BAD_REQUEST)
async def test_hostile_admin_bodies_are_a_400_naming_what_is_wrong(
    publishing: Settings, admin_http: Http, method: str, path: str, body: str, named: str
) -> None:
    before = await catalog_sizes(publishing)
    response = await admin_http.request(
        method, path, data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400, await response.text()
    answer = await response.json()
    assert answer["error"] == "bad_request"
    assert named in answer["detail"], answer
    assert await catalog_sizes(publishing) == before


@pytest.mark.parametrize(
    ("method", "content_type", "body"),
    [
        ("PUT", "text/plain", '{"name": "X", "updated_at": "2026-05-01T00:00:00Z"}'),
        ("PUT", "application/x-www-form-urlencoded", "name=X&updated_at=2026-05-01"),
        ("PUT", None, '{"name": "X", "updated_at": "2026-05-01T00:00:00Z"}'),
        ("PUT", None, ""),
        ("DELETE", "text/plain", '{"updated_at": "2026-05-01T00:00:00Z"}'),
    ],
)
async def test_an_admin_body_not_sent_as_json_is_a_415(
    publishing: Settings, admin_http: Http, method: str, content_type: str | None, body: str
) -> None:
    before = await catalog_sizes(publishing)
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await admin_http.request(
        method, "/admin/catalog/competencies/k-1", data=body.encode(), headers=headers
    )
    assert response.status == 415, await response.text()
    answer = await response.json()
    assert answer["error"] == "unsupported_media_type"
    assert "application/json" in answer["detail"]
    assert await catalog_sizes(publishing) == before


@pytest.mark.parametrize("limit", ["1.0", "%205", "5%20", "5_0", "+5", "%D9%A5", "1e2", "0x5"])
async def test_a_count_in_a_query_is_plain_digits(http: Http, limit: str) -> None:
    response = await http.get(f"/catalog/competencies?limit={limit}")
    assert response.status == 400, limit
    answer = await response.json()
    assert answer["error"] == "bad_request"
    assert answer["detail"].startswith("query parameter limit=")
    assert "plain digits" in answer["detail"]
    response = await http.get(f"/catalog/achievements?offset={limit}")
    assert response.status == 400, limit
    assert (await response.json())["detail"].startswith("query parameter offset=")


async def test_the_api_serves_reads_without_kafka_and_answers_503_to_admin_calls(
    pg_pool: AsyncConnectionPool,
) -> None:
    no_kafka = make_settings(kafka_bootstrap="127.0.0.1:1")  # nothing listens
    async with TestClient(TestServer(create_app(no_kafka)), headers=staff_headers()) as client:
        response = await client.get("/catalog/competencies?limit=1")
        assert response.status == 200
        body = {"name": "X", "updated_at": "2026-05-01T00:00:00Z"}
        response = await client.put("/admin/catalog/competencies/k-1", json=body)
        assert response.status == 503
        assert await response.json() == {
            "error": "unavailable",
            "detail": "the entry was not published: Kafka is unavailable",
        }
        response = await client.delete("/admin/catalog/competencies/k-1")
        assert response.status == 503


# ------------------------------------------------------------------ the command line


async def run_cli(settings: Settings, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "TOPIC_PREFIX": settings.topic_prefix,
        "TOPIC_PARTITIONS": str(settings.topic_partitions),
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        str(PROGRESS),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def cli_settings(kafka: Settings) -> AsyncIterator[Settings]:
    own = make_settings()
    yield own
    await delete_topics(own)


async def test_cli_publishes_every_entry_of_a_file_or_none(
    cli_settings: Settings, tmp_path: Path, new_id: Callable[[str], str]
) -> None:
    first, second = new_id("p"), new_id("p")
    entries = [
        {
            "id": first,
            "title": "Python track",
            "course_ids": ["c1", "c2"],
            "updated_at": "2026-05-01T00:00:00Z",
        },
        {"id": second, "title": "Git track", "updated_at": "2026-05-01T00:00:00Z"},
    ]
    good = tmp_path / "paths.json"
    good.write_text(json.dumps(entries))

    code, out, err = await run_cli(cli_settings, "catalog", "learning-paths", str(good))
    assert code == 0, err
    topic = cli_settings.topics.learning_paths
    assert out.splitlines() == [
        f"published learning-paths {first} 2026-05-01T00:00:00+00:00 to {topic}",
        f"published learning-paths {second} 2026-05-01T00:00:00+00:00 to {topic}",
    ]
    assert await topic_size(cli_settings, topic) == 2
    messages = await on_topic(cli_settings, topic)
    assert messages[first]["course_ids"] == ["c1", "c2"]
    assert messages[second]["type"] == "LearningPathUpdated"

    # One bad entry: the file is refused whole, and the message says where and why.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([entries[0], {"id": "p-x", "title": "No time"}]))
    code, out, err = await run_cli(cli_settings, "catalog", "learning-paths", str(bad))
    assert (code, out) == (1, "")
    assert "entry 2 of 2 (id 'p-x')" in err
    assert "updated_at: Field required" in err
    assert "nothing was published" in err
    assert await topic_size(cli_settings, topic) == 2

    # A single entry (not a list) is one entry; an unknown kind is argparse's error.
    single = tmp_path / "badge.json"
    single.write_text(
        json.dumps(
            {
                "id": new_id("a"),
                "name": "Finisher",
                "criteria": {"kind": "courses", "count": 1},
                "updated_at": "2026-05-01T00:00:00Z",
            }
        )
    )
    code, out, err = await run_cli(cli_settings, "catalog", "achievements", str(single))
    assert code == 0, err
    assert len(out.splitlines()) == 1
    code, _, err = await run_cli(cli_settings, "catalog", "badges", str(single))
    assert code == 2
    assert "invalid choice: 'badges'" in err
