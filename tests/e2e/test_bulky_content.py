"""Bulky content (submission text, answers, feedback) on the running pipeline: it passes
through the worker's snapshots to PostgreSQL without being kept in the learner's state, and
stays when later snapshots leave it unchanged (issue 10, point 3). The sink's side alone:
tests/integration/test_bulky_content.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from tests.integration.test_bulky_content import TEXT
from tests.support.lms import Lms, at, eventually
from tests.support.stack import fetch_all

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("service")
async def test_six_large_submissions_all_reach_postgres_and_stay(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    """Six 176 KB submissions of one learner: today's loss was 5 of the 6 rows."""
    assignments = [f"a{i}" for i in range(1, 7)]
    modules = [{"id": "m1", "assignments": [{"id": a} for a in assignments]}]
    await lms.course_structure(modules, title="Essays")
    await lms.enroll(0)
    # In one compressed record batch, so that the worker reads them in one batch: merged,
    # their snapshots would be one record over the broker's limit.
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        compression_type="gzip",
        linger_ms=500,
        max_batch_size=2_000_000,
        max_request_size=3_000_000,
    )
    await producer.start()
    try:
        sent = [
            await producer.send(
                settings.topics.assignment_activity,
                key=lms.user.encode(),
                value=json.dumps(
                    {
                        "type": "AssignmentSubmitted",
                        "user_id": lms.user,
                        "course_id": lms.course,
                        "module_id": "m1",
                        "assignment_id": assignment,
                        "submission_id": f"s{i}",
                        "submitted_at": at(i),
                        "submission_type": "text",
                        "text_content": f"{assignment} " + TEXT,
                    }
                ).encode(),
            )
            for i, assignment in enumerate(assignments, 1)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    async def texts(version_above: int = 0) -> dict[str, Any] | None:
        rows = await fetch_all(
            pg_pool,
            "select assignment_id, text_content, version, score from assignment_submissions"
            " where user_id = %s",
            lms.user,
        )
        if len(rows) < 6 or min(r[2] for r in rows) <= version_above:
            return None
        return {r[0]: r for r in rows}

    first = await eventually(texts)
    assert {a: row[1] for a, row in first.items()} == {a: f"{a} " + TEXT for a in assignments}

    # A course update re-derives every row, and a grade touches one: the texts stay.
    before = max(row[2] for row in first.values())
    modules[0]["lessons"] = [{"id": "l1"}]
    await lms.course_structure(modules, minute=10, title="Essays")
    await lms.assignment("AssignmentGraded", 11, "s3", assignment_id="a3", score=7, graded_by="t")

    async def graded() -> dict[str, Any] | None:
        rows = await texts(version_above=before)
        return rows if rows and rows["a3"][3] == 7 else None

    after = await eventually(graded)
    assert {a: row[1] for a, row in after.items()} == {a: f"{a} " + TEXT for a in assignments}
