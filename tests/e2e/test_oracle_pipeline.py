"""The real pipeline against the reference oracle (``tests/oracle.py``), on generated logs.

A few generated worlds (``tests/generators.py``), each under ids of its own, are produced to
the input topics with some events twice and in a shuffled order; once PostgreSQL shows the
oracle's rows, the published once-events are read back. Rows are compared as in
``tests/unit/test_oracle_core.py`` under shuffled arrival (``compare(history=False)``), and
every once-event must be there exactly once.

The worlds share the service with other tests, so their achievements are only for their own
course or path (an achievement applies to every learner), achievements of other tests that
their learners meet are left out, and no learner attempts a quiz twice (the sink cannot store
a renumbering: see the test at the end).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from adapters.settings import Settings
from progress.catalog import AchievementUpdated, CompetencyUpdated, LearningPathUpdated
from progress.events import (
    AssignmentEvent,
    CourseUpdated,
    ExternalEvidenceRecorded,
    LearnerProfileUpdated,
    LessonEvent,
    QuizEvent,
    UserEnrolled,
)
from progress.schema import stable_id
from sinks.postgres import write_snapshots
from tests.generators import Scenario, actual_tables, compare, once_key, scenarios
from tests.oracle import KEYS, Event, Expected, Once, expected
from tests.support.processes import ServiceProcess
from tests.unit.test_oracle_core import course, enroll, quiz, run_core

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("service")]

CONVERGE_S = 60.0
ONCE_TOPICS = {
    "CourseCompleted": "course_completed",
    "QuizCompleted": "quiz_completed",
    "AssignmentSubmitted": "assignment_submitted",
    "AchievementEarned": "achievement_earned",
    "CompetencyAcquired": "competency_acquired",
}


def destination(event: Event, settings: Settings) -> tuple[str, str]:
    """The topic an event goes to, and its key."""
    t = settings.topics
    if isinstance(event, CourseUpdated):
        return t.course_updates, event.id
    if isinstance(event, LearningPathUpdated):
        return t.learning_paths, event.id
    if isinstance(event, CompetencyUpdated):
        return t.competencies, event.id
    if isinstance(event, AchievementUpdated):
        return t.achievements, event.id
    if isinstance(event, UserEnrolled):
        topic = t.enrollments
    elif isinstance(event, LessonEvent):
        topic = t.lesson_activity
    elif isinstance(event, QuizEvent):
        topic = t.quiz_activity
    elif isinstance(event, AssignmentEvent):
        topic = t.assignment_activity
    elif isinstance(event, ExternalEvidenceRecorded):
        topic = t.competency_evidence
    else:
        assert isinstance(event, LearnerProfileUpdated)
        topic = t.learner_profiles
    return topic, event.user_id


def payload(event: Event) -> bytes:
    """The event as a producer sends it (a course's modules and grants side by side)."""
    data = event.model_dump(mode="json", exclude_none=True)
    if isinstance(event, CourseUpdated) and "modules" in data:
        structure = data.pop("modules")
        data |= {"modules": structure["modules"], "competencies": structure["competencies"]}
    return json.dumps(data).encode()


async def produce(producer: AIOKafkaProducer, settings: Settings, scenario: Scenario) -> None:
    sent = []
    for event in scenario.arrivals:  # sent in this order; each topic is read on its own pace
        topic, key = destination(event, settings)
        sent.append(await producer.send(topic, key=key.encode(), value=payload(event)))
    await asyncio.gather(*sent)


async def table_rows(pool: AsyncConnectionPool, scenario: Scenario) -> dict[str, list[dict]]:
    """The scenario's learners' rows. Achievements of other tests, which the learners may
    meet too (an achievement applies to every learner), are left out, and so are their points
    from TotalPoints."""
    rows: dict[str, list[dict[str, Any]]] = {}
    async with pool.connection() as conn:
        for table in KEYS:
            query = sql.SQL("select * from {} where user_id = any(%s)").format(
                sql.Identifier(table)
            )
            cur = await conn.execute(query, (list(scenario.users),))
            names = [d.name for d in cur.description or []]
            rows[table] = [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]
        foreign = [r for r in rows["user_achievements"] if not _ours(scenario, r)]
        cur = await conn.execute(
            "select id, points from achievements where id = any(%s)",
            ([r["achievement_id"] for r in foreign],),
        )
        points = dict(await cur.fetchall())
    rows["user_achievements"] = [r for r in rows["user_achievements"] if _ours(scenario, r)]
    for row in rows["user_progress"]:
        row["total_points"] -= sum(
            points.get(r["achievement_id"], 0) for r in foreign if r["user_id"] == row["user_id"]
        )
    return rows


def _ours(scenario: Scenario, row: dict[str, Any]) -> bool:
    return str(row["achievement_id"]).startswith(scenario.prefix)


async def published_once(
    settings: Settings, scenario: Scenario, *, repeats: bool = False
) -> Counter[Once]:
    """Every once-event published for the scenario's learners so far, counted by subject.

    ``repeats``: a record published again with the same event id (after a crash, at least
    once) counts once, so only a second id for the same subject shows as a double."""
    topics = {getattr(settings.topics, name): kind for kind, name in ONCE_TOPICS.items()}
    users = {u.encode() for u in scenario.users}
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()  # without a group: every partition of the topics that exist
    found: Counter[Once] = Counter()
    seen: set[str] = set()
    try:
        partitions = consumer.assignment()
        ends = await consumer.end_offsets(list(partitions)) if partitions else {}
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for record in records:
                    event = json.loads(record.value)
                    if repeats and event["event_id"] in seen:
                        continue
                    seen.add(event["event_id"])
                    if record.key in users and event.get(
                        "achievement_id", scenario.prefix
                    ).startswith(scenario.prefix):
                        found[once_key(topics[tp.topic], event, scenario.log)] += 1
    finally:
        await consumer.stop()
    return found


async def converged(
    pool: AsyncConnectionPool,
    settings: Settings,
    scenario: Scenario,
    oracle: Expected,
    *,
    within: float = CONVERGE_S,
    repeats: bool = False,
) -> list[str]:
    """What still differs from the oracle once PostgreSQL matches it, or when time is up
    (``repeats``: see ``published_once``)."""
    deadline = asyncio.get_running_loop().time() + within
    problems: list[str] = []
    while asyncio.get_running_loop().time() < deadline:
        tables, problems = actual_tables(await table_rows(pool, scenario), scenario.log)
        rows = [
            p
            for p in compare(oracle, tables, Counter(), history=False)
            if not p.startswith("published")
        ]
        if not problems and not rows:
            once = await published_once(settings, scenario, repeats=repeats)
            problems = compare(oracle, tables, once, history=False)
            if not problems:
                return []
        else:
            problems += rows
        await asyncio.sleep(0.5)
    return problems


@settings(
    max_examples=5,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # shrinking through the real pipeline takes ages
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_the_pipeline_converges_on_the_oracle(
    data: st.DataObject,
    event_producer: AIOKafkaProducer,
    pg_pool: AsyncConnectionPool,
    settings: Settings,
    service: dict[str, ServiceProcess],
) -> None:
    prefix = f"o{uuid4().hex[:8]}-"
    drawn = scenarios(prefix, scoped_awards=True, one_attempt_per_quiz=True)
    scenario = data.draw(drawn, label="scenario")
    oracle = expected(list(scenario.log))
    await produce(event_producer, settings, scenario)
    problems = await converged(pg_pool, settings, scenario, oracle)
    # A process that stopped (the stack is shared: a signal or an outage from elsewhere)
    # explains rows that never came.
    problems += [
        f"the {name} exited ({process.proc.returncode}); its log: {process.log_path}"
        for name, process in service.items()
        if problems and process.proc.poll() is not None
    ]
    assert not problems, "\n".join(problems)


async def test_the_sink_stores_attempts_renumbered_by_an_earlier_attempt_arriving_late(
    pg_pool: AsyncConnectionPool,
) -> None:
    """Through the sink's own write (not the shared sink process, which this once stopped)."""
    user, cid = f"o{uuid4().hex[:8]}-u1", f"o{uuid4().hex[:8]}-c1"
    # "late" starts later but arrives first; "early", started before it, then takes number 1.
    # The sink writes rows in id order: "early" is named so that its row comes first.
    names = sorted((f"t{i}" for i in range(20)), key=lambda n: stable_id("quiz_attempt", user, n))
    early, late = names[0], names[-1]
    events = [
        course(-60, [{"id": "m1", "quizzes": [{"id": "q1"}]}], cid=cid),
        _owned(enroll(0), user, cid),
        _owned(quiz("QuizAttemptStarted", 20, attempt=late, total_questions=1), user, cid),
        _owned(quiz("QuizAttemptStarted", 10, attempt=early, total_questions=1), user, cid),
    ]
    oracle = expected(events).tables["quiz_attempts"]
    assert [oracle[(user, a)]["attempt_number"] for a in (early, late)] == [1, 2]
    core = run_core(events)
    for snapshot in core.snapshots:  # one batch each, as the sink writes them
        async with pg_pool.connection() as conn:
            await write_snapshots(conn, [snapshot])
    async with pg_pool.connection() as conn:
        cur = await conn.execute(
            "select id, attempt_number from quiz_attempts where user_id = %s", (user,)
        )
        stored = dict(await cur.fetchall())
    assert len(stored) == 2 and sorted(stored.values()) == [1, 2]


def _owned(event: Event, user: str, cid: str) -> Event:
    """The same learner event, for this learner and course."""
    data = event.model_dump(exclude={"event_id"})
    return type(event).model_validate({**data, "user_id": user, "course_id": cid})
