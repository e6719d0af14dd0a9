"""Quizzes, assignments, learning paths, competencies and achievements, end to end on the
real stack: events and catalog entries into Kafka, rows out of PostgreSQL, events published.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from tests.support.lms import (
    Lms,
    at,
    course_when,
    eventually,
    published_for,
    published_json,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service")]

QUIZ_AND_ASSIGNMENT = [
    {
        "id": "m1",
        "lessons": [{"id": "l1"}],
        "quizzes": [
            {"id": "q1", "pass_mark": 60, "competencies": [{"competency_id": "py", "level": 50}]}
        ],
        "assignments": [{"id": "a1", "competencies": [{"competency_id": "py", "level": 40}]}],
    }
]


async def rows(pool: AsyncConnectionPool, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.execute(sql, params)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def rows_when(
    pool: AsyncConnectionPool, sql: str, *params: Any, count: int = 1, where: Any = None
) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        found = await rows(pool, sql, *params)
        ok = len(found) >= count and (where is None or where(found))
        return found if ok else None

    return await eventually(probe)


async def take_quiz(lms: Lms, attempt: str, start: float, answers: list[bool]) -> None:
    await lms.quiz("QuizAttemptStarted", start, attempt, total_questions=len(answers))
    for i, correct in enumerate(answers):
        await lms.quiz(
            "QuizQuestionAnswered", start + 1 + i, attempt, question_id=f"x{i}", correct=correct
        )
    await lms.quiz("QuizAttemptSubmitted", start + 1 + len(answers), attempt, time_spent=90)


async def test_quiz_and_assignment_complete_the_course_once(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    await lms.course_structure(QUIZ_AND_ASSIGNMENT)
    await lms.enroll(0)
    await course_when(pg_pool, lms, lambda r: r["total_lessons"] == 1)
    await lms.complete("l1", 1)
    await take_quiz(lms, "t1", 2, [True, False, False])  # 33%: not passed
    await take_quiz(lms, "t2", 10, [True, True, False])  # 67%: passed
    await lms.assignment(
        "AssignmentDraftSaved", 20, "s1", submission_type="text", text_content="draft"
    )
    await lms.assignment(
        "AssignmentSubmitted", 21, "s1", submission_type="text", text_content="done"
    )
    # Duplicates of a submission and of a whole attempt change nothing.
    await lms.assignment(
        "AssignmentSubmitted", 21, "s1", submission_type="text", text_content="done"
    )
    await take_quiz(lms, "t2", 10, [True, True, False])

    row = await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    assert row["percent_complete"] == 100.0
    attempts = await rows(
        pg_pool,
        "select attempt_number, status, score, passed, correct_answers, incorrect_answers"
        " from quiz_attempts where user_id = %s order by attempt_number",
        lms.user,
    )
    assert [(a["attempt_number"], a["passed"], a["score"]) for a in attempts] == [
        (1, False, 33.33),
        (2, True, 66.67),
    ]
    responses = await rows(
        pg_pool,
        "select count(*) as n from quiz_question_responses where user_id = %s",
        lms.user,
    )
    assert responses[0]["n"] == 6
    [submission] = await rows(
        pg_pool,
        "select status, text_content from assignment_submissions where user_id = %s",
        lms.user,
    )
    assert (submission["status"], submission["text_content"]) == ("submitted", "done")

    quizzes = await published_json(settings, settings.topics.quiz_completed, lms.user)
    assert sorted((q["score"], q["passed"]) for q in quizzes) == [(33.33, False), (66.67, True)]
    submitted = await published_json(settings, settings.topics.assignment_submitted, lms.user)
    assert len(submitted) == 1
    completed = await published_json(settings, settings.topics.course_completed, lms.user)
    assert len(completed) == 1

    # Grading after the fact updates the submission; a regrade replaces the grade.
    await lms.assignment("AssignmentGraded", 30, "s1", score=70, feedback="good", graded_by="t1")
    await lms.assignment("AssignmentGraded", 40, "s1", score=90, feedback="great", graded_by="t1")
    [graded] = await rows_when(
        pg_pool,
        "select status, score, feedback from assignment_submissions where user_id = %s",
        lms.user,
        where=lambda found: found[0]["score"] == 90,
    )
    assert (graded["status"], graded["feedback"]) == ("graded", "great")


async def test_learning_path_completes_and_reopens_when_it_grows(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    path = {
        "id": f"p-{lms.course}",
        "title": "Path",
        "course_ids": [lms.course],
        "updated_at": at(0),
    }
    await lms.catalog(settings.topics.learning_paths, path)
    await lms.structure({"m1": ["l1"]})
    await lms.enroll(0)
    sql = (
        "select status, percent_complete, current_course_id, total_courses"
        " from learning_path_progress where user_id = %s"
    )
    await rows_when(pg_pool, sql, lms.user)
    await lms.complete("l1", 1)
    [done] = await rows_when(pg_pool, sql, lms.user, where=lambda f: f[0]["status"] == "completed")
    assert (done["percent_complete"], done["current_course_id"]) == (100.0, "")

    grown = {**path, "course_ids": [lms.course, "next-course"], "updated_at": at(60)}
    await lms.catalog(settings.topics.learning_paths, grown)
    [reopened] = await rows_when(pg_pool, sql, lms.user, where=lambda f: f[0]["total_courses"] == 2)
    assert (reopened["status"], reopened["percent_complete"], reopened["current_course_id"]) == (
        "in-progress",
        50.0,
        "next-course",
    )


async def test_competency_is_mastered_once_from_course_items_and_external_evidence(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    competency = f"py-{lms.course}"
    modules = json.loads(json.dumps(QUIZ_AND_ASSIGNMENT).replace('"py"', json.dumps(competency)))
    await lms.catalog(
        settings.topics.competencies, {"id": competency, "name": "Python", "updated_at": at(0)}
    )
    await lms.course_structure(modules)
    await lms.enroll(0)
    await course_when(pg_pool, lms, lambda r: r["total_lessons"] == 1)
    await take_quiz(lms, "t1", 2, [True, True])  # quiz: 50
    await lms.send(
        settings.topics.competency_evidence,
        lms.user,
        {
            "user_id": lms.user,
            "competency_id": competency,
            "evidence_id": "cert-1",
            "level": 35,
            "url": "https://certs.example.org/1",
            "recorded_at": at(20),
        },
    )
    sql = "select id, level, status from user_competencies where user_id = %s"
    [mastered] = await rows_when(pg_pool, sql, lms.user, where=lambda f: f[0]["level"] == 85)
    assert mastered["status"] == "mastered"
    evidence = await rows(
        pg_pool,
        "select type, reference_id from competency_evidence where user_competency_id = %s"
        " order by type",
        mastered["id"],
    )
    assert [(e["type"], e["reference_id"]) for e in evidence] == [
        ("external", "cert-1"),
        ("quiz", "q1"),
    ]

    await lms.assignment(
        "AssignmentSubmitted", 30, "s1", submission_type="link", link_url="https://x.org"
    )
    await rows_when(pg_pool, sql, lms.user, where=lambda f: f[0]["level"] == 100)
    acquired = await published_json(settings, settings.topics.competency_acquired, lms.user)
    assert [(a["competency_name"], a["level"]) for a in acquired] == [("Python", 85)]


async def test_new_achievement_goes_to_a_learner_who_already_meets_it_once(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    await lms.structure({"m1": ["l1"]})
    await lms.enroll(0)
    await lms.complete("l1", 5)
    await course_when(pg_pool, lms, lambda r: r["status"] == "completed")

    achievement = {
        "id": f"finished-{lms.course}",
        "name": "Finisher",
        "points": 25,
        "criteria": {"kind": "course-completed", "course_id": lms.course},
        "updated_at": at(100),
    }
    await lms.catalog(settings.topics.achievements, achievement)
    [earned] = await rows_when(
        pg_pool,
        "select achievement_id, earned_at from user_achievements where user_id = %s",
        lms.user,
    )
    assert earned["achievement_id"] == achievement["id"]
    [progress] = await rows_when(
        pg_pool,
        "select total_points from user_progress where user_id = %s",
        lms.user,
        where=lambda f: f[0]["total_points"] == 10 + 25,
    )
    # The same definition again, and a renamed one: still awarded once.
    await lms.catalog(settings.topics.achievements, achievement)
    await lms.catalog(
        settings.topics.achievements, {**achievement, "name": "Done", "updated_at": at(200)}
    )
    await lms.complete("l1", 5)
    awards = await published_json(settings, settings.topics.achievement_earned, lms.user)
    assert [(a["achievement_name"], a["earned_at"]) for a in awards] == [
        ("Finisher", "2026-05-04T08:05:00Z")
    ]
    assert progress["total_points"] == 35


async def test_quiz_events_out_of_order_count_as_in_order(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    await lms.course_structure(QUIZ_AND_ASSIGNMENT)
    await lms.enroll(0)
    # Submission first, answers next, the start last; one answer sent twice.
    await lms.quiz("QuizAttemptSubmitted", 10, "t1", time_spent=120)
    await lms.quiz("QuizQuestionAnswered", 4, "t1", question_id="b", correct=True)
    await lms.quiz("QuizQuestionAnswered", 3, "t1", question_id="a", correct=True)
    await lms.quiz("QuizQuestionAnswered", 4, "t1", question_id="b", correct=True)
    await lms.quiz("QuizAttemptStarted", 1, "t1", total_questions=2)
    sql = (
        "select status, score, passed, total_questions, unanswered_questions, started_at"
        " from quiz_attempts where user_id = %s"
    )
    [attempt] = await rows_when(
        pg_pool,
        sql,
        lms.user,
        # The structure gives the attempt its two questions before the start arrives: wait for
        # the start, which arrives last and moves started_at back to its own time.
        where=lambda f: (
            f[0]["total_questions"] == 2
            and f[0]["score"] == 100
            and f[0]["started_at"].isoformat() == "2026-05-04T08:01:00+00:00"
        ),
    )
    assert (attempt["status"], attempt["passed"], attempt["unanswered_questions"]) == (
        "completed",
        True,
        0,
    )
    assert attempt["started_at"].isoformat() == "2026-05-04T08:01:00+00:00"
    completions = await published_json(settings, settings.topics.quiz_completed, lms.user)
    assert len(completions) == 1


async def test_a_late_earlier_completion_moves_completion_awards_back(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    """Course c (l1, l2), path p = [c], one achievement of each completion kind; l2 done at
    12:00, then a late l2 at 10:00: course, path and all three awards say 10:00, and each
    once-event was published once, at 12:00."""
    path = f"p-{lms.course}"
    await lms.catalog(
        settings.topics.learning_paths,
        {"id": path, "title": "P", "course_ids": [lms.course], "updated_at": at(0)},
    )
    criteria = {
        "course": {"kind": "course-completed", "course_id": lms.course},
        "courses": {"kind": "courses", "count": 1},
        "path": {"kind": "learning-path-completed", "learning_path_id": path},
    }
    awards = {f"{name}-{lms.course}": c for name, c in criteria.items()}
    for award, c in awards.items():
        entry = {"id": award, "name": award, "criteria": c, "updated_at": at(0)}
        await lms.catalog(settings.topics.achievements, entry)
    await lms.structure({"m1": ["l1", "l2"]})
    await lms.enroll(0)  # 08:00
    await lms.complete("l1", 60)  # 09:00
    await lms.complete("l2", 240)  # 12:00
    sql = "select achievement_id, earned_at from user_achievements where user_id = %s"
    await rows_when(pg_pool, sql, lms.user, count=3)
    await lms.complete("l2", 120)  # 10:00, late

    ten = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
    earned = await rows_when(
        pg_pool, sql, lms.user, count=3, where=lambda f: all(r["earned_at"] == ten for r in f)
    )
    assert {r["achievement_id"] for r in earned} == set(awards)
    course = await course_when(pg_pool, lms, lambda r: r["status"] == "completed")
    [done] = await rows(
        pg_pool, "select completed_at from course_progress where user_id = %s", lms.user
    )
    assert done["completed_at"] == ten and course["percent_complete"] == 100.0
    [walked] = await rows(
        pg_pool, "select completed_at from learning_path_progress where user_id = %s", lms.user
    )
    assert walked["completed_at"] == ten
    published = await published_json(settings, settings.topics.achievement_earned, lms.user)
    assert sorted((a["achievement_id"], a["earned_at"]) for a in published) == sorted(
        (award, "2026-05-04T12:00:00Z") for award in awards
    )


async def test_an_attempt_or_submission_named_for_another_item_is_dead_lettered(
    lms: Lms, pg_pool: AsyncConnectionPool, settings: Settings
) -> None:
    """An attempt belongs to one quiz and a submission to one assignment: an event naming
    either for another item is refused with the reason, and the learner goes on."""
    second = {"id": "m2", "quizzes": [{"id": "q2"}], "assignments": [{"id": "a2"}]}
    await lms.course_structure([*QUIZ_AND_ASSIGNMENT, second])
    await lms.enroll(0)
    await lms.quiz("QuizAttemptStarted", 1, "t1", total_questions=1)
    await lms.quiz("QuizAttemptSubmitted", 2, "t1", quiz_id="q2", module_id="m2")
    await lms.assignment(
        "AssignmentSubmitted", 3, "s1", submission_type="text", text_content="mine"
    )
    await lms.assignment(
        "AssignmentGraded", 4, "s1", assignment_id="a2", module_id="m2", score=1, graded_by="t"
    )
    await lms.quiz("QuizAttemptSubmitted", 5, "t1", time_spent=30)
    await lms.complete("l1", 6)

    [course] = await rows_when(
        pg_pool,
        "select completed_lessons from course_progress where user_id = %s",
        lms.user,
        where=lambda found: found[0]["completed_lessons"] == 1,
    )
    assert course["completed_lessons"] == 1
    attempts = await rows(
        pg_pool, "select quiz_id, status from quiz_attempts where user_id = %s", lms.user
    )
    assert attempts == [{"quiz_id": "q1", "status": "completed"}]
    submissions = await rows(
        pg_pool,
        "select assignment_id, status from assignment_submissions where user_id = %s",
        lms.user,
    )
    assert submissions == [{"assignment_id": "a1", "status": "submitted"}]
    letters = [
        json.loads(record.value)
        for record in await published_for(settings, settings.topics.dead_letter, {lms.user}, 2.0)
    ]
    assert sorted(
        (d["error_type"], json.loads(base64.b64decode(d["value"]))["type"]) for d in letters
    ) == [
        ("conflicting-ids", "AssignmentGraded"),
        ("conflicting-ids", "QuizAttemptSubmitted"),
    ]
    assert any("belongs to quiz 'q1', not 'q2'" in d["reason"] for d in letters)
    assert any("belongs to assignment 'a1', not 'a2'" in d["reason"] for d in letters)
