"""``progress resnapshot`` on changelogs written here the way the worker writes them (keys as
JSON strings, learner states as ``encode_state`` bytes, deletions as tombstones), on the real
Kafka: what it sends, and what it does about a worker writing while it reads. The whole
procedure with the real worker and sink is tests/e2e/test_rebuild.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from adapters.settings import Settings
from adapters.topics import (
    CATALOG_TABLE,
    COURSES_TABLE,
    LEARNERS_TABLE,
    changelog_topic,
    ensure_topics,
)
from progress.catalog import CompetencyUpdated
from progress.events import CourseUpdated, UserEnrolled
from progress.facts import merge_course_update
from progress.learner_rules import Catalog
from progress.outcomes import on_enrollment
from progress.snapshots import Snapshot
from progress.state import LearnerState
from service import resnapshot as resnapshot_module
from service.errors import TopicMissing
from service.resnapshot import resnapshot
from streams.state_codec import encode_state
from tests.support.stack import consume_all, delete_topics, make_settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
COURSE = CourseUpdated.model_validate(
    {"id": "c1", "updated_at": T0, "modules": [{"id": "m1", "lessons": [{"id": "l1"}]}]}
)
KNOWN = merge_course_update(None, COURSE)


def _state(user: str, minute: int = 0) -> LearnerState:
    enrolled = UserEnrolled(
        id=f"e-{user}-{minute}",
        course_id="c1",
        user_id=user,
        enrolled_at=T0 + timedelta(minutes=minute),
    )
    return on_enrollment(None, enrolled, KNOWN, Catalog()).state


@pytest.fixture
async def own(kafka: Settings) -> AsyncIterator[Settings]:
    """Topics of their own, one partition each: a learner's records meet in order."""
    settings = make_settings(topic_partitions=1)
    await ensure_topics(settings)
    yield settings
    await delete_topics(settings)


@pytest.fixture
async def producer(own: Settings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=own.kafka_bootstrap, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


async def _table_write(
    producer: AIOKafkaProducer, settings: Settings, table: str, key: str, value: bytes | None
) -> None:
    topic = changelog_topic(settings, table)
    await producer.send_and_wait(topic, key=json.dumps(key).encode(), value=value, partition=0)


def _decoded(value: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(value)
    return data


async def test_it_sends_each_learners_newest_state_and_the_catalog(
    own: Settings, producer: AIOKafkaProducer
) -> None:
    await _table_write(producer, own, COURSES_TABLE, "0/c1", KNOWN.model_dump_json().encode())
    entry = CompetencyUpdated(id="py", name="Python", updated_at=T0)
    await _table_write(
        producer, own, CATALOG_TABLE, "0/competency/py", entry.model_dump_json().encode()
    )
    older, newer = _state("u1"), _state("u1", 5)
    await _table_write(producer, own, LEARNERS_TABLE, "u1", encode_state(older))
    await _table_write(producer, own, LEARNERS_TABLE, "u1", encode_state(newer))
    await _table_write(producer, own, LEARNERS_TABLE, "u2", encode_state(_state("u2")))
    await _table_write(producer, own, LEARNERS_TABLE, "gone", encode_state(_state("gone")))
    await _table_write(producer, own, LEARNERS_TABLE, "gone", None)  # erased: a tombstone

    report = await resnapshot(own)
    assert (report.learners, report.messages, report.catalog_rows) == (2, 2, 1)
    assert report.failed == []

    sent = await consume_all(own, own.topics.snapshots, 3)
    catalog_key = b"catalog/competency/py"
    [catalog] = [_decoded(r.value) for r in sent if r.key == catalog_key]
    assert catalog["competency"]["name"] == "Python"
    assert {r.key.decode() for r in sent} == {"catalog/competency/py", "u1", "u2"}
    by_user = {
        r.key.decode(): Snapshot.model_validate_json(r.value) for r in sent if r.key != catalog_key
    }
    u1 = by_user["u1"]
    assert u1.version == newer.version
    [course] = u1.course_progress
    # The structure was known: the row counts its lessons.
    assert (course.course_id, course.total_lessons) == ("c1", 1)
    assert [lesson.lesson_id for lesson in u1.lesson_progress] == []


async def test_a_learner_erased_or_changed_while_it_reads_is_sent_again(
    own: Settings, producer: AIOKafkaProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _table_write(producer, own, LEARNERS_TABLE, "u1", encode_state(_state("u1")))
    await _table_write(producer, own, LEARNERS_TABLE, "u2", encode_state(_state("u2")))
    changed = _state("u1", 9).model_copy(update={"version": 7})

    # The worker writes while the first pass sends: u1 changes, u2 is erased.
    sending = resnapshot_module._Resnapshot._learner
    wrote = False

    async def worker_writes_meanwhile(self: Any, user_id: str, raw: bytes, courses: Any) -> None:
        nonlocal wrote
        if not wrote:
            wrote = True
            await _table_write(producer, own, LEARNERS_TABLE, "u1", encode_state(changed))
            await _table_write(producer, own, LEARNERS_TABLE, "u2", None)
        await sending(self, user_id, raw, courses)

    monkeypatch.setattr(resnapshot_module._Resnapshot, "_learner", worker_writes_meanwhile)
    report = await resnapshot(own)
    assert report.erased_meanwhile == 1

    sent = await consume_all(own, own.topics.snapshots, 4)
    order = [
        (r.key.decode(), _decoded(r.value).get("kind"), _decoded(r.value).get("version"))
        for r in sent
    ]
    # u2's rows, then its erasure behind them; u1 at its first version, then its new one.
    assert [o for o in order if o[0] == "u2"] == [("u2", None, 1), ("u2", "erasure", None)]
    assert [o for o in order if o[0] == "u1"] == [("u1", None, 1), ("u1", None, 7)]


async def test_without_a_worker_ever_run_the_changelogs_are_missing(kafka: Settings) -> None:
    nowhere = make_settings()
    with pytest.raises(TopicMissing, match="changelog"):
        await resnapshot(nowhere)
