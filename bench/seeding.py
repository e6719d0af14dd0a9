"""Realistic learner data for the sink, API and state benchmarks, and an isolated place to put it.

Snapshots are derived by the domain core itself (``progress.outcomes``) from a seeded stream
of learner events, exactly as the worker would derive them, so the rows have the shapes,
versions and ids of production rows. Nothing here goes through Kafka.

Isolation: each benchmark gets its own PostgreSQL database (created through the ``postgres``
superuser, owned by ``progress``, migrated with ``adapters.schema``) and dropped afterwards;
Redis keys are cleared by prefix in the benchmark's own database number only.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from redis.asyncio import Redis

from adapters.cache import KEY_PREFIX, ProgressCache
from adapters.schema import apply_migrations
from progress.events import (
    ConsumedEvent,
    CourseUpdated,
    UserEnrolled,
    assignment_activity_adapter,
    lesson_activity_adapter,
    quiz_activity_adapter,
)
from progress.facts import merge_course_update
from progress.kinds import InCourse, handling_of
from progress.learner_rules import Catalog
from progress.outcomes import Outcome
from progress.snapshots import Snapshot
from progress.state import KnownCourse, LearnerState
from sinks.postgres import write_snapshots

PG_HOST = "127.0.0.1:5432"
PG_USER = "progress"
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# Per module: lessons, one quiz of QUESTIONS questions, one assignment.
MODULES = 3
LESSONS = 4
QUESTIONS = 3


@dataclass(frozen=True, slots=True)
class CourseShape:
    course_id: str
    modules: tuple[tuple[str, tuple[str, ...]], ...]  # (module_id, lesson ids)


def course_shape(index: int) -> CourseShape:
    course_id = f"course-{index:03d}"
    modules = tuple(
        (f"m{m}", tuple(f"m{m}-lesson-{n}" for n in range(LESSONS))) for m in range(MODULES)
    )
    return CourseShape(course_id=course_id, modules=modules)


def course_update(shape: CourseShape) -> dict[str, Any]:
    """The CourseUpdated message that publishes the course's structure."""
    return {
        "type": "CourseUpdated",
        "id": shape.course_id,
        "title": f"Course {shape.course_id}",
        "updated_at": START.isoformat(),
        "modules": [
            {
                "id": module_id,
                "lessons": [{"id": lesson} for lesson in lessons],
                "quizzes": [{"id": f"{module_id}-quiz"}],
                "assignments": [{"id": f"{module_id}-assignment"}],
            }
            for module_id, lessons in shape.modules
        ],
    }


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def learner_messages(
    user_id: str, shape: CourseShape, rng: random.Random
) -> list[tuple[str, dict[str, Any]]]:
    """(stream kind, message) for one learner's way through a course: enrolment, then lessons,
    quizzes and assignments module by module, stopping at a random point (most learners do
    not finish)."""
    at = START + timedelta(minutes=rng.randrange(0, 60 * 24 * 30))
    course = shape.course_id
    out: list[tuple[str, dict[str, Any]]] = [
        (
            "enrollments",
            {
                "type": "UserEnrolled",
                "id": f"enr-{user_id}-{course}",
                "course_id": course,
                "user_id": user_id,
                "enrolled_at": _iso(at),
            },
        )
    ]
    # Zipf-like drop-off: many learners stop early, a few finish.
    stop_after = min(int(rng.paretovariate(1.2) * 3), MODULES * (LESSONS + 2))
    steps = 0
    for module_id, lessons in shape.modules:
        base = {"user_id": user_id, "course_id": course, "module_id": module_id}
        for lesson in lessons:
            if steps >= stop_after:
                return out
            steps += 1
            at += timedelta(minutes=rng.randrange(3, 40))
            started = {**base, "lesson_id": lesson, "type": "LessonStarted"}
            out.append(("lesson-activity", {**started, "started_at": _iso(at)}))
            at += timedelta(minutes=rng.randrange(3, 20))
            done = {**base, "lesson_id": lesson, "type": "LessonCompleted"}
            out.append(("lesson-activity", {**done, "completed_at": _iso(at)}))
        if steps >= stop_after:
            return out
        steps += 1
        quiz = {**base, "quiz_id": f"{module_id}-quiz", "attempt_id": f"att-{user_id}-{module_id}"}
        at += timedelta(minutes=5)
        out.append(
            (
                "quiz-activity",
                {
                    **quiz,
                    "type": "QuizAttemptStarted",
                    "started_at": _iso(at),
                    "total_questions": QUESTIONS,
                },
            )
        )
        for q in range(QUESTIONS):
            at += timedelta(seconds=rng.randrange(20, 120))
            answer: dict[str, object] = {"type": "QuizQuestionAnswered", "answered_at": _iso(at)}
            answer |= {"question_id": f"q{q}", "selected_options": [rng.choice("abcd")]}
            out.append(("quiz-activity", {**quiz, **answer, "correct": rng.random() < 0.8}))
        at += timedelta(minutes=1)
        submit = {"type": "QuizAttemptSubmitted", "submitted_at": _iso(at), "time_spent": 300}
        out.append(("quiz-activity", {**quiz, **submit}))
        if steps >= stop_after:
            return out
        steps += 1
        work = {
            **base,
            "assignment_id": f"{module_id}-assignment",
            "submission_id": f"sub-{user_id}-{module_id}",
        }
        at += timedelta(hours=rng.randrange(1, 48))
        submitted = {"type": "AssignmentSubmitted", "submitted_at": _iso(at)}
        submitted |= {"submission_type": "text", "text_content": "my answer " * 20}
        out.append(("assignment-activity", {**work, **submitted}))
        at += timedelta(hours=rng.randrange(1, 72))
        grade = {"type": "AssignmentGraded", "graded_at": _iso(at), "graded_by": "tutor-1"}
        out.append(("assignment-activity", {**work, **grade, "score": rng.randrange(40, 101)}))
    return out


_PARSE: dict[str, Any] = {
    "enrollments": UserEnrolled.model_validate,
    "lesson-activity": lesson_activity_adapter.validate_python,
    "quiz-activity": quiz_activity_adapter.validate_python,
    "assignment-activity": assignment_activity_adapter.validate_python,
}


def _outcome(
    state: LearnerState | None, event: ConsumedEvent, known: KnownCourse, catalog: Catalog
) -> Outcome:
    """The event's outcome by its kind's rule (``progress.kinds``), as the worker derives it."""
    handling = handling_of(event)
    assert isinstance(handling, InCourse), "the seeded events are all of a course"
    return handling.derive(state, event, known, catalog)


def user_ids(count: int, prefix: str = "learner") -> list[str]:
    # Fixed width, so every learner's rows and state have the same size.
    return [f"{prefix}-{index:07d}" for index in range(count)]


def learner_snapshots(learners: int, courses: int = 5, seed: int = 5) -> list[list[Snapshot]]:
    """Each learner's snapshots in event order, derived by the domain core as the worker
    derives them (one snapshot per event)."""
    rng = random.Random(seed)
    shapes = [course_shape(index) for index in range(courses)]
    known = {
        shape.course_id: merge_course_update(
            None, CourseUpdated.model_validate(course_update(shape))
        )
        for shape in shapes
    }
    catalog = Catalog()
    out: list[list[Snapshot]] = []
    for user_id in user_ids(learners):
        shape = shapes[min(int(rng.paretovariate(1.0)) - 1, courses - 1)]
        state: LearnerState | None = None
        snapshots: list[Snapshot] = []
        for kind, message in learner_messages(user_id, shape, rng):
            outcome = _outcome(state, _PARSE[kind](message), known[shape.course_id], catalog)
            state = outcome.state
            snapshots.append(outcome.snapshot)
        out.append(snapshots)
    return out


def interleaved(per_learner: Sequence[Sequence[Snapshot]]) -> list[Snapshot]:
    """Round-robin across learners, keeping each learner's order: as a partition delivers a
    stream where many learners are active at once."""
    out: list[Snapshot] = []
    depth = max((len(s) for s in per_learner), default=0)
    for step in range(depth):
        out.extend(s[step] for s in per_learner if step < len(s))
    return out


def batches(items: Sequence[Snapshot], size: int) -> Iterator[Sequence[Snapshot]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------- isolation


def _psql(statement: str) -> None:
    # The bench runs as root next to a Debian PostgreSQL: its superuser is reached by peer auth.
    subprocess.run(
        ["su", "postgres", "-c", f'psql -v ON_ERROR_STOP=1 -qc "{statement}"'],
        check=True,
        capture_output=True,
        cwd="/",
    )


def database_url(name: str) -> str:
    return f"postgresql://{PG_USER}:{PG_USER}@{PG_HOST}/{name}"


@asynccontextmanager
async def isolated_database(name: str) -> AsyncIterator[str]:
    """A fresh, migrated database owned by ``progress``, dropped on exit; yields its URL."""
    await asyncio.to_thread(_psql, f"drop database if exists {name} with (force)")
    await asyncio.to_thread(_psql, f"create database {name} owner {PG_USER}")
    url = database_url(name)
    try:
        async with await AsyncConnection.connect(url) as conn:
            await apply_migrations(conn)
        yield url
    finally:
        await _drop_database(name)


async def _drop_database(name: str, attempts: int = 20) -> None:
    """Drop it, waiting out a PostgreSQL restart: the server is shared, and other people's
    fault tests restart it now and then."""
    for attempt in range(attempts):
        try:
            await asyncio.to_thread(_psql, f"drop database if exists {name} with (force)")
            return
        except subprocess.CalledProcessError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(3)


async def clear_cache(redis: Redis) -> int:
    """Delete every learner hash in this Redis database; return how many."""
    deleted = 0
    async for key in redis.scan_iter(match=f"{KEY_PREFIX}*", count=5000):
        deleted += int(await redis.delete(key))
    return deleted


async def seed_database(
    url: str, cache: ProgressCache | None, snapshots: Sequence[Snapshot], batch: int = 2000
) -> int:
    """Write the snapshots through the sink's own path (PostgreSQL, then the cache's
    advance); return how many learners were written."""
    learners: set[str] = set()
    async with await AsyncConnection.connect(url) as conn:
        for chunk in batches(snapshots, batch):
            versions = await write_snapshots(conn, chunk)
            learners.update(versions)
            if cache is not None:
                await cache.advance(versions)
    return len(learners)
