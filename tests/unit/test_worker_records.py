"""What the worker stores and sends stays inside Kafka's record limits (streams/records.py):
catalog entries one table key each, course structures bounded in bytes, large learner states
compressed, dead letters truncated but never dropped. Plain dicts stand in for the Faust
tables: only their get, set, delete and items are used here."""

from __future__ import annotations

import base64
import hashlib
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faust.types import Message

from adapters.settings import Settings
from adapters.topics import TABLE_VALUE_MAX_BYTES
from progress.catalog import CompetencyUpdated
from progress.state import KnownCourse, LearnerState, StructureVersion
from progress.structure import CourseStructure, LessonDef, ModuleDef
from streams.dead_letters import KEPT_VALUE_BYTES, dead_letter_for
from streams.learners import LearnerStream, TooLarge, _bounded_course
from streams.state_codec import (
    COMPRESS_FROM_BYTES,
    ZSTD_MAGIC,
    decode_state,
    encode_state,
    stored_json,
)

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def stream(catalog: dict[str, Any]) -> LearnerStream:
    tables: dict[str, Any] = {name: {} for name in ("learners", "erasures", "courses", "indexes")}
    return LearnerStream(
        Settings(),
        **tables,
        catalog=catalog,  # type: ignore[arg-type]
        published={},
        snapshots=None,  # type: ignore[arg-type]
        content=None,  # type: ignore[arg-type]
        dead_letters=None,  # type: ignore[arg-type]
        records=None,  # type: ignore[arg-type]
    )


def competency(cid: str, minutes: int, description: str = "") -> CompetencyUpdated:
    return CompetencyUpdated(
        id=cid,
        name=cid.upper(),
        description=description,
        updated_at=T0 + timedelta(minutes=minutes),
    )


async def test_catalog_entries_are_stored_one_key_each() -> None:
    catalog: dict[str, Any] = {}
    worker = stream(catalog)
    # Four entries of 280 KB: together they would pass a Kafka record, each one does not.
    for n in range(4):
        await worker._apply_catalog(1, competency(f"c{n}", n, "x" * 280_000))
    assert sorted(catalog) == [f"1/competency/c{n}" for n in range(4)]
    assert max(len(str(v)) for v in catalog.values()) < TABLE_VALUE_MAX_BYTES
    assert sorted(worker.catalogs.catalog(1).competencies) == ["c0", "c1", "c2", "c3"]
    assert worker.catalogs.catalog(2).competencies == {}


async def test_an_older_entry_does_not_replace_a_newer_one() -> None:
    catalog: dict[str, Any] = {}
    worker = stream(catalog)
    await worker._apply_catalog(1, competency("c0", 10, "new"))
    await worker._apply_catalog(1, competency("c0", 5, "old"))
    assert worker.catalogs.catalog(1).competencies["c0"].description == "new"


async def test_a_catalog_written_as_one_record_per_kind_is_read_and_split_on_the_next_write() -> (
    None
):
    old = {"c0": competency("c0", 0).model_dump(mode="json")}
    catalog: dict[str, Any] = {"1/competency": old}
    worker = stream(catalog)
    assert sorted(worker.catalogs.catalog(1).competencies) == ["c0"]
    await worker._apply_catalog(1, competency("c1", 1))
    assert sorted(catalog) == ["1/competency/c0", "1/competency/c1"]
    assert sorted(worker.catalogs.catalog(1).competencies) == ["c0", "c1"]


def structure(lessons: int, title: str) -> CourseStructure:
    defs = tuple(LessonDef(id=f"l{n}", title=title) for n in range(lessons))
    return CourseStructure(modules=(ModuleDef(id="m1", lessons=defs),))


def test_a_course_keeps_as_many_earlier_structures_as_fit_in_a_record() -> None:
    big = structure(200, "t" * 1_000)  # about 230 KB each
    earlier = tuple(
        StructureVersion(updated_at=T0 + timedelta(hours=n), event_id=f"e{n}", structure=big)
        for n in range(6)
    )
    known = KnownCourse(course_id="c1", structure=big, structure_event_id="e9", earlier=earlier)
    stored, kept = _bounded_course(known)
    assert len(kept.model_dump_json()) <= TABLE_VALUE_MAX_BYTES
    assert 0 < len(kept.earlier) < 6
    assert kept.earlier == earlier[-len(kept.earlier) :]  # the newest are kept
    assert stored == kept.model_dump(mode="json")


def test_a_course_too_large_on_its_own_is_refused() -> None:
    known = KnownCourse(course_id="c1", structure=structure(1_000, "t" * 1_000))
    with pytest.raises(TooLarge, match="over the limit"):
        _bounded_course(known)


def test_small_states_are_stored_as_json_large_ones_compressed_and_both_load() -> None:
    small = LearnerState(user_id="u1", created_at=T0, updated_at=T0)
    assert encode_state(small) == small.model_dump_json().encode()
    days = {f"2026-{n:05d}": T0 for n in range(5_000)}
    large = small.model_copy(update={"activity_days": days})
    stored = encode_state(large)
    assert len(large.model_dump_json()) >= COMPRESS_FROM_BYTES
    assert len(stored) < len(large.model_dump_json()) / 4
    assert decode_state(stored) == large
    assert decode_state(small.model_dump_json()) == small  # a str, as an old value may be
    assert decode_state(small.model_dump(mode="json")) == small  # a dict from a JSON store
    assert stored[:4] == ZSTD_MAGIC and stored_json(stored) == large.model_dump_json().encode()
    # A large state a worker before zstd stored (zlib) loads too.
    assert decode_state(zlib.compress(large.model_dump_json().encode(), 1)) == large


def test_a_dead_letter_of_a_huge_message_keeps_its_start_size_and_digest() -> None:
    value = b"{" + b"x" * 6_000_000
    message = Message(
        "lms.lesson-activity", 2, 17, 0.0, 0, None, key=b"u1", value=value, checksum=None
    )
    letter = dead_letter_for(message, "message of 6000001 bytes exceeds the limit", "oversize")
    assert letter.value_truncated
    assert letter.value_bytes == len(value)
    assert letter.value_sha256 == hashlib.sha256(value).hexdigest()
    assert base64.b64decode(letter.value) == value[:KEPT_VALUE_BYTES]
    assert len(letter.model_dump_json()) < 3_000_000


def test_a_dead_letter_of_a_small_message_keeps_it_whole() -> None:
    message = Message(
        "lms.lesson-activity", 0, 1, 0.0, 0, None, key=b"u1", value=b"{bad", checksum=None
    )
    letter = dead_letter_for(message, "not JSON", "malformed-json")
    assert not letter.value_truncated
    assert base64.b64decode(letter.value) == b"{bad"
    assert letter.value_bytes == 4
