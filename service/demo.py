"""A built-in demo stream: one learner takes one course from 0% to 100%, watched via the API.

The course has lessons, a quiz and an assignment; catalogs define a learning path over it,
a competency it teaches and three achievements. Needs the worker, sink and API running
(``scripts/demo.sh`` starts them). Each run uses a new learner id, so it can be run again and
again against the same stack.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from adapters.kafka_clients import kafka_client_options
from adapters.settings import Settings, Topics

COURSE_ID = "demo-python-101"
PATH_ID = "demo-python-track"
COMPETENCY_ID = "demo-python-basics"

STRUCTURE: dict[str, Any] = {
    "id": COURSE_ID,
    "title": "Python 101",
    "competencies": [{"competency_id": COMPETENCY_ID, "level": 20}],
    "modules": [
        {
            "id": "basics",
            "title": "Basics",
            "lessons": [{"id": "variables"}, {"id": "loops"}],
            "quizzes": [
                {
                    "id": "basics-quiz",
                    "pass_mark": 60,
                    "competencies": [{"competency_id": COMPETENCY_ID, "level": 50}],
                }
            ],
        },
        {
            "id": "functions",
            "title": "Functions",
            "lessons": [{"id": "def"}, {"id": "lambdas"}],
            "assignments": [
                {
                    "id": "functions-project",
                    "competencies": [{"competency_id": COMPETENCY_ID, "level": 40}],
                }
            ],
        },
    ],
}


def _catalogs(t: Topics, start: datetime) -> list[tuple[str, dict[str, Any]]]:
    def achievement(aid: str, name: str, points: int, **criteria: Any) -> dict[str, Any]:
        return {"id": aid, "name": name, "points": points, "criteria": criteria}

    entries: list[tuple[str, dict[str, Any]]] = [
        (t.course_updates, STRUCTURE),
        (t.competencies, {"id": COMPETENCY_ID, "name": "Python basics", "level": "beginner"}),
        (t.learning_paths, {"id": PATH_ID, "title": "Python track", "course_ids": [COURSE_ID]}),
        (t.achievements, achievement("demo-first-steps", "First steps", 5, kind="first-lesson")),
        (t.achievements, achievement("demo-quiz-ace", "Quiz ace", 20, kind="perfect-quiz")),
        (
            t.achievements,
            achievement(
                "demo-graduate", "Graduate", 50, kind="course-completed", course_id=COURSE_ID
            ),
        ),
    ]
    return [(topic, {**entry, "updated_at": start}) for topic, entry in entries]


@dataclass(frozen=True)
class Step:
    label: str
    topic: str
    event: dict[str, Any]
    shows: Callable[[dict[str, Any]], bool] | None = None  # when the API shows its effect


def _steps(t: Topics, user_id: str, start: datetime) -> list[Step]:
    def when(minutes: int) -> datetime:
        return start + timedelta(minutes=minutes)

    def base(module: str) -> dict[str, Any]:
        return {"user_id": user_id, "course_id": COURSE_ID, "module_id": module}

    def lesson(module: str, lesson_id: str, minute: int) -> list[Step]:
        ids = {**base(module), "lesson_id": lesson_id}
        return [
            Step(
                f"{lesson_id} started",
                t.lesson_activity,
                {**ids, "type": "LessonStarted", "started_at": when(minute)},
            ),
            Step(
                f"{lesson_id} half watched",
                t.lesson_activity,
                {
                    **ids,
                    "type": "LessonProgressed",
                    "occurred_at": when(minute + 3),
                    "position": 180,
                    "time_spent": 180,
                    "percent_complete": 50,
                },
            ),
            Step(
                f"lesson {lesson_id} completed",
                t.lesson_activity,
                {**ids, "type": "LessonCompleted", "completed_at": when(minute + 6)},
                lambda v: _lesson_done(v, lesson_id),
            ),
        ]

    def attempt(attempt_id: str, minute: int, answers: list[bool]) -> list[Step]:
        ids = {**base("basics"), "quiz_id": "basics-quiz", "attempt_id": attempt_id}
        steps = [
            Step(
                "quiz started",
                t.quiz_activity,
                {
                    **ids,
                    "type": "QuizAttemptStarted",
                    "started_at": when(minute),
                    "total_questions": 3,
                },
            )
        ]
        for i, correct in enumerate(answers):
            steps.append(
                Step(
                    "answer",
                    t.quiz_activity,
                    {
                        **ids,
                        "type": "QuizQuestionAnswered",
                        "question_id": f"question-{i + 1}",
                        "selected_options": ["a" if correct else "c"],
                        "correct": correct,
                        "time_spent": 30,
                        "answered_at": when(minute + i + 1),
                    },
                )
            )
        score = round(100 * sum(answers) / len(answers))
        steps.append(
            Step(
                f"quiz {attempt_id} submitted ({score}%)",
                t.quiz_activity,
                {
                    **ids,
                    "type": "QuizAttemptSubmitted",
                    "submitted_at": when(minute + 5),
                    "time_spent": 95,
                },
                lambda v: _attempt_shown(v, attempt_id),
            )
        )
        return steps

    project = {
        **base("functions"),
        "assignment_id": "functions-project",
        "submission_id": f"{user_id}-project",
    }
    return [
        *lesson("basics", "variables", 1),
        *lesson("basics", "loops", 10),
        *attempt("attempt-1", 20, [True, False, False]),
        *attempt("attempt-2", 30, [True, True, True]),
        *lesson("functions", "def", 40),
        *lesson("functions", "lambdas", 50),
        Step(
            "project draft saved",
            t.assignment_activity,
            {
                **project,
                "type": "AssignmentDraftSaved",
                "submission_type": "text",
                "text_content": "WIP",
                "saved_at": when(60),
            },
        ),
        Step(
            "project submitted",
            t.assignment_activity,
            {
                **project,
                "type": "AssignmentSubmitted",
                "submission_type": "link",
                "link_url": "https://git.example.org/demo/project",
                "submitted_at": when(70),
            },
            lambda v: v["status"] == "completed",
        ),
        Step(
            "project graded",
            t.assignment_activity,
            {
                **project,
                "type": "AssignmentGraded",
                "score": 92,
                "feedback": "Well done",
                "graded_by": "tutor-1",
                "graded_at": when(90),
            },
        ),
    ]


def _lesson_done(view: dict[str, Any], lesson_id: str) -> bool:
    order = [x["id"] for m in STRUCTURE["modules"] for x in m["lessons"]]
    return view["completed_lessons"] >= order.index(lesson_id) + 1


def _attempt_shown(view: dict[str, Any], attempt_id: str) -> bool:
    # The second attempt passes, which completes the quiz.
    return attempt_id == "attempt-1" or view["completed_quizzes"] == 1


def _encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, default=lambda v: v.isoformat()).encode()


class _Api:
    def __init__(self, http: aiohttp.ClientSession, user_id: str) -> None:
        self.http = http
        self.user_id = user_id

    async def get(self, path: str) -> dict[str, Any]:
        async with self.http.get(f"/users/{self.user_id}{path}") as response:
            return await response.json() if response.status == 200 else {}

    async def course_when(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Poll the course view until ``check`` accepts it (15 s at most)."""
        async with asyncio.timeout(15.0):
            while True:
                view = await self.get(f"/courses/{COURSE_ID}")
                if view and check(view):
                    return view
                await asyncio.sleep(0.05)


async def run_demo(settings: Settings) -> int:
    t = settings.topics
    user_id = f"demo-learner-{int(time.time())}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    base_url = f"http://{settings.api_host}:{settings.api_port}"
    producer = AIOKafkaProducer(**kafka_client_options(settings), acks="all")
    watched = [t.course_completed, t.achievement_earned, t.competency_acquired, t.quiz_completed]
    consumer = AIOKafkaConsumer(
        *watched,
        **kafka_client_options(settings),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    await consumer.start()
    try:
        async with aiohttp.ClientSession(base_url) as http:
            api = _Api(http, user_id)
            print(f"demo: learner {user_id}, course {COURSE_ID}")
            print("  catalogs: learning path, competency, 3 achievements; course structure:")
            print("  4 lessons, 1 quiz (pass mark 60%), 1 assignment, in 2 modules")
            for topic, entry in _catalogs(t, start):
                await producer.send_and_wait(topic, key=entry["id"].encode(), value=_encode(entry))
            enrollment = {
                "id": f"enr-{user_id}",
                "course_id": COURSE_ID,
                "user_id": user_id,
                "enrolled_at": start,
            }
            await producer.send_and_wait(
                t.enrollments, key=user_id.encode(), value=_encode(enrollment)
            )
            view = await api.course_when(lambda v: v.get("total_lessons") == 4)
            _show("enrolled", view)

            for step in _steps(t, user_id, start):
                await producer.send_and_wait(
                    step.topic, key=user_id.encode(), value=_encode(step.event)
                )
                if step.shows is not None:
                    _show(step.label, await api.course_when(step.shows))

            # The same completion again, and a message that is not an event at all.
            last_lesson = next(
                s for s in reversed(_steps(t, user_id, start)) if s.topic == t.lesson_activity
            )
            await producer.send_and_wait(
                t.lesson_activity, key=user_id.encode(), value=_encode(last_lesson.event)
            )
            await producer.send_and_wait(t.lesson_activity, key=user_id.encode(), value=b"{oops")
            await asyncio.sleep(1.0)

            counts = await _count_published(consumer, user_id)
            return await _report(api, settings, user_id, counts)
    finally:
        await producer.stop()
        await consumer.stop()


def _show(label: str, view: dict[str, Any]) -> None:
    print(f"  {label:<32} -> course {view['percent_complete']:6.2f}%  {view['status']}")


async def _report(api: _Api, settings: Settings, user_id: str, counts: dict[str, int]) -> int:
    t = settings.topics
    course = await api.get(f"/courses/{COURSE_ID}")
    overall = await api.get("/progress")
    paths = (await api.get("/learning-paths")).get("learning_paths", [])
    competencies = (await api.get("/competencies")).get("competencies", [])
    achievements = (await api.get("/achievements")).get("achievements", [])
    attempts = (await api.get("/quiz-attempts")).get("quiz_attempts", [])
    assignments = (await api.get("/assignments")).get("assignments", [])
    print(f"  final course: {course['percent_complete']:.2f}% {course['status']}")
    for a in attempts:
        print(f"  quiz attempt {a['attempt_number']}: {a['score']:.2f}% passed={a['passed']}")
    for s in assignments:
        print(f"  assignment {s['assignment_id']}: {s['status']}, score {s['score']}")
    for p in paths:
        print(
            f"  learning path {p['learning_path_id']}: {p['percent_complete']:.0f}% {p['status']}"
        )
    for c in competencies:
        print(f"  competency {c['competency_id']}: level {c['level']} {c['status']}")
    names = sorted(a.get("name") or a["achievement_id"] for a in achievements)
    print(f"  achievements: {', '.join(names)}; total points {overall.get('total_points')}")
    print(
        f"  published for this learner: {counts[t.course_completed]} CourseCompleted, "
        f"{counts[t.quiz_completed]} QuizCompleted, {counts[t.achievement_earned]} "
        f"AchievementEarned, {counts[t.competency_acquired]} CompetencyAcquired"
    )
    root = f"http://{settings.api_host}:{settings.api_port}"
    base = f"{root}/users/{user_id}"
    # Ids may hold "+" (course keys), which a query string would read as a space.
    dashboard = f"{root}/dashboard"
    print(
        "\nwhere to look:\n"
        f"  the dashboard (live): {dashboard}?user_id={quote(user_id, safe='')}\n"
        f"                        {dashboard}?course_id={quote(COURSE_ID, safe='')}\n"
        f"  {base}/progress\n"
        f"  {base}/courses/{COURSE_ID}\n"
        f"  {base}/quiz-attempts  {base}/assignments\n"
        f"  {base}/learning-paths  {base}/competencies  {base}/achievements\n"
        f"  psql {settings.database_url} -c 'table course_progress'\n"
        f"  topics: {t.course_completed}, {t.achievement_earned}, {t.dead_letter}"
    )
    ok = (
        course.get("status") == "completed"
        and counts[t.course_completed] == 1
        and counts[t.quiz_completed] == 2
        and counts[t.achievement_earned] == 3
        and counts[t.competency_acquired] == 1
        and [p["status"] for p in paths] == ["completed"]
    )
    print("demo: OK" if ok else "demo: FAILED")
    return 0 if ok else 1


async def _count_published(consumer: AIOKafkaConsumer, user_id: str) -> dict[str, int]:
    counts: dict[str, int] = {topic: 0 for topic in consumer.subscription()}
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=300)
        for tp, records in batches.items():
            counts[tp.topic] += sum(1 for r in records if r.key == user_id.encode())
    return counts
