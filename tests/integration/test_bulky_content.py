"""Bulky content (submission text, answers, feedback) on the real stack: a row that a later
snapshot leaves unchanged (None) keeps it in PostgreSQL (issue 10, point 3). Through the
running worker: tests/e2e/test_bulky_content.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from progress.models import AssignmentSubmission, QuizQuestionResponse, UserProgress
from progress.schema import stable_id
from progress.snapshots import Snapshot
from sinks.postgres import ROW_UPSERTS, write_snapshots
from tests.support.lms import at
from tests.support.stack import fetch_one

pytestmark = pytest.mark.integration

TEXT = "x" * 176_000  # six of them: over the broker's 1 MiB limit on a record together


def snapshot(
    user: str, version: int, *, text: str | None, options: list[str] | None, answer: str | None
) -> Snapshot:
    """A learner with one submission and one answer, their content as given."""
    common: dict[str, Any] = {"user_id": user, "version": version, "updated_at": at(version)}
    return Snapshot(
        user_id=user,
        version=version,
        user_progress=UserProgress(
            id=stable_id("user_progress", user),
            total_courses=1,
            completed_courses=0,
            in_progress_courses=1,
            total_lessons=0,
            completed_lessons=0,
            total_quizzes=1,
            completed_quizzes=0,
            total_assignments=1,
            completed_assignments=0,
            total_points=0,
            last_activity_at=at(version),
            created_at=at(0),
            **common,
        ),
        assignment_submissions=(
            AssignmentSubmission(
                id=stable_id("assignment_submission", user, "s1"),
                course_id="c1",
                module_id="m1",
                lesson_id="",
                assignment_id="a1",
                status="submitted",
                submission_type="text",
                text_content=text,
                file_url=None if text is None else "",
                link_url=None if text is None else "",
                score=None,
                max_score=100.0,
                feedback=None if text is None else "",
                graded_by="",
                submitted_at=at(1),
                graded_at=None,
                created_at=at(1),
                **common,
            ),
        ),
        quiz_question_responses=(
            QuizQuestionResponse(
                id=stable_id("quiz_question_response", user, "t1", "q1"),
                quiz_attempt_id=stable_id("quiz_attempt", user, "t1"),
                question_id="q1",
                selected_options=options,
                text_response=answer,
                correct=True,
                score=1.0,
                time_spent=3,
                created_at=at(1),
                **common,
            ),
        ),
    )


async def stored(pool: AsyncConnectionPool, user: str) -> tuple[Any, ...]:
    submission = await fetch_one(
        pool,
        "select version, text_content, feedback from assignment_submissions where user_id = %s",
        user,
    )
    answer = await fetch_one(
        pool,
        "select version, selected_options, text_response from quiz_question_responses"
        " where user_id = %s",
        user,
    )
    return (*submission, *answer)


async def test_the_writer_keeps_stored_content_for_rows_that_leave_it_unchanged(
    pg_pool: AsyncConnectionPool, new_id: Callable[[str], str]
) -> None:
    user = new_id("u")
    kept = {"text": TEXT, "options": ["a", "b"], "answer": "why"}
    unchanged: dict[str, Any] = {"text": None, "options": None, "answer": None}
    async with pg_pool.connection() as conn:
        await write_snapshots(conn, [snapshot(user, 1, **kept)])
        await write_snapshots(conn, [snapshot(user, 2, **unchanged)])
    assert await stored(pg_pool, user) == (2, TEXT, "", 2, ["a", "b"], "why")

    # Within one batch: the newer row's None takes the older row's content.
    other = new_id("u")
    async with pg_pool.connection() as conn:
        await write_snapshots(conn, [snapshot(other, 1, **kept), snapshot(other, 2, **unchanged)])
    assert await stored(pg_pool, other) == (2, TEXT, "", 2, ["a", "b"], "why")

    # New content replaces it.
    async with pg_pool.connection() as conn:
        await write_snapshots(conn, [snapshot(user, 3, text="new", options=[], answer="")])
    assert await stored(pg_pool, user) == (3, "new", "", 3, [], "")

    # A row first offered unchanged (its content never arrived) is stored empty.
    lost = new_id("u")
    async with pg_pool.connection() as conn:
        await write_snapshots(conn, [snapshot(lost, 4, **unchanged)])
    assert await stored(pg_pool, lost) == (4, "", "", 4, [], "")


async def test_the_one_row_upsert_keeps_stored_content_too(
    pg_pool: AsyncConnectionPool, new_id: Callable[[str], str]
) -> None:
    user = new_id("u")
    kept = snapshot(user, 1, text=TEXT, options=["a"], answer="why")
    later = snapshot(user, 2, text=None, options=None, answer=None)
    async with pg_pool.connection() as conn:
        for message in (kept, later):
            for row in (*message.assignment_submissions, *message.quiz_question_responses):
                upsert = ROW_UPSERTS[type(row)]
                params = tuple(getattr(row, name) for name in upsert.params)
                await conn.execute(upsert.statement, params)
    assert await stored(pg_pool, user) == (2, TEXT, "", 2, ["a"], "why")
