"""A seeded, reproducible workload: courses with structure, and learners working through them.

The same ``(users, courses, seed)`` always gives the same bytes, so every measurement of a run
reads identical input and two runs can be compared. Activity per learner is Zipf-skewed (a
few learners are very busy, most are occasional), and so is course popularity. Each learner
works through an enrolled course in order: a lesson is started, sometimes progressed, mostly
completed; a quiz attempt is started, its questions answered, then submitted (a failed
attempt is sometimes retried); an assignment may be drafted, is submitted, then graded.

Records are generated into memory first, then produced with batched, un-awaited sends, so
that the producer is never what a measurement waits on (``produce`` reports its own rate).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from adapters.settings import Topics
from adapters.topics import input_topic
from progress.decode import InvalidEvent, decode_event
from progress.kinds import INPUTS, StreamKind

# Zipf-Mandelbrot weights 1 / (rank + q) ** s: activity per learner, popularity per course.
# The offset q flattens the head, so the busiest learner is busy like a person, not a bot
# (about 1% of all events with 10,000 learners).
USER_ZIPF = (1.0, 20.0)
COURSE_ZIPF = (0.8, 1.0)
# Share of picks where a learner with courses under way enrolls in yet another one.
NEW_ENROLLMENT_P = 0.03
MAX_ACTIVE_COURSES = 4
START = datetime(2026, 5, 1, tzinfo=UTC)

# The decoder's kind of each topic this generator writes to.
KINDS: tuple[StreamKind, ...] = (
    "course-updates",
    "enrollments",
    "lesson-activity",
    "quiz-activity",
    "assignment-activity",
)
ACTIVITY_KINDS: tuple[StreamKind, ...] = KINDS[1:]


def topic_for(topics: Topics, kind: StreamKind) -> str:
    return input_topic(topics, INPUTS[kind])


@dataclass(frozen=True, slots=True)
class Record:
    kind: StreamKind
    key: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class Item:
    kind: str  # "lesson", "quiz" or "assignment"
    module_id: str
    id: str


@dataclass(frozen=True, slots=True)
class Course:
    id: str
    items: tuple[Item, ...]  # in the order a learner meets them

    @property
    def lessons(self) -> int:
        return sum(item.kind == "lesson" for item in self.items)


@dataclass(slots=True)
class _Enrollment:
    course: Course
    cursor: int = 0
    pending: deque[tuple[StreamKind, dict[str, Any]]] = field(default_factory=deque)


def _zipf_cum_weights(n: int, shape: tuple[float, float]) -> list[float]:
    s, q = shape
    return list(itertools.accumulate(1.0 / (rank + q) ** s for rank in range(1, n + 1)))


def make_courses(count: int, rng: random.Random) -> list[Course]:
    courses = []
    for c in range(count):
        items: list[Item] = []
        for m in range(rng.randint(3, 6)):
            module = f"m{m}"
            items += [Item("lesson", module, f"m{m}-l{i}") for i in range(rng.randint(3, 6))]
            if rng.random() < 0.7:
                items.append(Item("quiz", module, f"m{m}-quiz"))
            if rng.random() < 0.4:
                items.append(Item("assignment", module, f"m{m}-project"))
        courses.append(Course(id=f"course-v1:Bench+C{c:04d}+2026", items=tuple(items)))
    return courses


def course_updated(course: Course) -> dict[str, Any]:
    """The CourseUpdated of docs/events.md, with the structure."""
    modules: dict[str, dict[str, Any]] = {}
    for item in course.items:
        module = modules.setdefault(
            item.module_id,
            {"id": item.module_id, "title": item.module_id, "lessons": [], "quizzes": []},
        )
        if item.kind == "lesson":
            module["lessons"].append({"id": item.id})
        elif item.kind == "quiz":
            module["quizzes"].append({"id": item.id, "pass_mark": 60, "completion": "passed"})
        else:
            module.setdefault("assignments", []).append(
                {"id": item.id, "max_score": 100, "completion": "submitted"}
            )
    return {
        "id": course.id,
        "title": f"Bench course {course.id}",
        "updated_at": START.isoformat().replace("+00:00", "Z"),
        "modules": list(modules.values()),
    }


class LoadGenerator:
    """An endless, seeded stream of learner activity over a fixed set of courses."""

    def __init__(
        self, users: int, courses: list[Course], seed: int, user_prefix: str = "u"
    ) -> None:
        self.rng = random.Random(seed)
        self.courses = courses
        self.user_ids = [f"{user_prefix}{i:06d}" for i in range(users)]
        self._user_weights = _zipf_cum_weights(users, USER_ZIPF)
        self._course_weights = _zipf_cum_weights(len(courses), COURSE_ZIPF)
        self._enrolled: dict[str, dict[str, _Enrollment]] = {}
        self._clock = START
        self._serial = 0

    def take(self, count: int) -> list[Record]:
        return [self.next_record() for _ in range(count)]

    def next_record(self) -> Record:
        user = self.rng.choices(self.user_ids, cum_weights=self._user_weights)[0]
        return self.next_for(user)

    def next_for(self, user: str) -> Record:
        """The next event of this learner (a new enrollment when nothing is under way)."""
        self._clock += timedelta(milliseconds=self.rng.randint(1, 2000))
        active = self._enrolled.setdefault(user, {})
        kind, event = None, None
        while event is None:
            under_way = [e for e in active.values() if e.pending or e.cursor < len(e.course.items)]
            if not under_way or (
                len(under_way) < MAX_ACTIVE_COURSES and self.rng.random() < NEW_ENROLLMENT_P
            ):
                kind, event = self._enroll(user, active)
                if event is None:  # enrolled everywhere and finished: start a course again
                    active.clear()
                continue
            enrollment = self.rng.choice(under_way)
            if not enrollment.pending:
                self._plan_item(user, enrollment)
            kind, queued = enrollment.pending.popleft()
            # Stamped when emitted, so a learner's events are in time order even when their
            # courses interleave.
            event = {**queued, _TIME_FIELD[queued["type"]]: self._now()}
        self._serial += 1
        event["event_id"] = f"bench-{self._serial}"
        assert kind is not None
        return Record(kind, user.encode(), json.dumps(event, separators=(",", ":")).encode())

    def _now(self) -> str:
        return self._clock.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _enroll(
        self, user: str, active: dict[str, _Enrollment]
    ) -> tuple[StreamKind, dict[str, Any] | None]:
        if len(active) >= len(self.courses):
            return "enrollments", None
        while True:
            course = self.rng.choices(self.courses, cum_weights=self._course_weights)[0]
            if course.id not in active:
                break
        active[course.id] = _Enrollment(course)
        event = {
            "type": "UserEnrolled",
            "id": f"enr-{user}-{course.id}",
            "course_id": course.id,
            "user_id": user,
            "enrolled_at": self._now(),
        }
        return "enrollments", event

    def _plan_item(self, user: str, enrollment: _Enrollment) -> None:
        """Queue the events of the learner's next item in the course."""
        rng = self.rng
        course = enrollment.course
        item = course.items[enrollment.cursor]
        enrollment.cursor += 1
        common = {"user_id": user, "course_id": course.id, "module_id": item.module_id}
        queue = enrollment.pending
        if item.kind == "lesson":
            lesson = {**common, "lesson_id": item.id}
            queue.append(("lesson-activity", {"type": "LessonStarted", **lesson}))
            for step in range(rng.randint(0, 2)):
                queue.append(
                    (
                        "lesson-activity",
                        {
                            "type": "LessonProgressed",
                            **lesson,
                            "position": 60 * (step + 1),
                            "time_spent": 55 * (step + 1),
                            "percent_complete": 30.0 * (step + 1),
                        },
                    )
                )
            if rng.random() < 0.9:
                queue.append(("lesson-activity", {"type": "LessonCompleted", **lesson}))
        elif item.kind == "quiz":
            for attempt in range(2 if rng.random() < 0.25 else 1):
                quiz = {**common, "quiz_id": item.id, "attempt_id": f"{item.id}-a{attempt}"}
                questions = rng.randint(3, 6)
                queue.append(
                    (
                        "quiz-activity",
                        {"type": "QuizAttemptStarted", **quiz, "total_questions": questions},
                    )
                )
                for q in range(questions):
                    correct = rng.random() < 0.7
                    queue.append(
                        (
                            "quiz-activity",
                            {
                                "type": "QuizQuestionAnswered",
                                **quiz,
                                "question_id": f"q{q}",
                                "selected_options": ["a" if correct else "b"],
                                "correct": correct,
                                "time_spent": rng.randint(5, 60),
                            },
                        )
                    )
                queue.append(
                    (
                        "quiz-activity",
                        {"type": "QuizAttemptSubmitted", **quiz, "time_spent": 300},
                    )
                )
        else:
            submission = {**common, "assignment_id": item.id, "submission_id": f"{item.id}-s0"}
            content = {"submission_type": "link", "link_url": f"https://git.example.org/{user}"}
            if rng.random() < 0.5:
                queue.append(
                    (
                        "assignment-activity",
                        {"type": "AssignmentDraftSaved", **submission, **content},
                    )
                )
            queue.append(
                ("assignment-activity", {"type": "AssignmentSubmitted", **submission, **content})
            )
            queue.append(
                (
                    "assignment-activity",
                    {
                        "type": "AssignmentGraded",
                        **submission,
                        "score": float(rng.randint(40, 100)),
                        "graded_by": "grader-1",
                    },
                )
            )


_TIME_FIELD = {
    "LessonStarted": "started_at",
    "LessonProgressed": "occurred_at",
    "LessonCompleted": "completed_at",
    "QuizAttemptStarted": "started_at",
    "QuizQuestionAnswered": "answered_at",
    "QuizAttemptSubmitted": "submitted_at",
    "AssignmentDraftSaved": "saved_at",
    "AssignmentSubmitted": "submitted_at",
    "AssignmentGraded": "graded_at",
}


@dataclass(slots=True)
class Workload:
    courses: list[Course]
    course_records: list[Record]
    activity: list[Record]

    @property
    def records(self) -> list[Record]:
        return [*self.course_records, *self.activity]

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for record in self.records:
            counted[record.kind] = counted.get(record.kind, 0) + 1
        return counted


def generate(users: int, courses: int, events: int, seed: int) -> Workload:
    """``events`` learner events (plus one CourseUpdated per course) for ``users`` learners."""
    rng = random.Random(seed)
    shaped = make_courses(courses, rng)
    course_records = [
        Record(
            "course-updates",
            course.id.encode(),
            json.dumps(course_updated(course), separators=(",", ":")).encode(),
        )
        for course in shaped
    ]
    generator = LoadGenerator(users, shaped, seed)
    return Workload(shaped, course_records, generator.take(events))


def self_check(workload: Workload, every: int = 97) -> int:
    """Decode every course and every ``every``-th activity record as the worker would;
    raise if one is refused. Returns how many were checked."""
    sample = [*workload.course_records, *workload.activity[::every]]
    for record in sample:
        try:
            decode_event(record.kind, record.key, record.value)
        except InvalidEvent as error:
            raise ValueError(f"load generator made an invalid {record.kind}: {error}") from error
    return len(sample)


async def produce(
    bootstrap: str, topics: Topics, records: list[Record], *, linger_ms: int = 20
) -> dict[str, float]:
    """Produce ``records`` in order; returns the producer's own rate (events/s)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=linger_ms,
        max_batch_size=512 * 1024,
        acks=1,
    )
    await producer.start()
    names = {kind: topic_for(topics, kind) for kind in KINDS}
    try:
        started = time.perf_counter()
        pending = []
        for record in records:
            # send() only waits when the batch buffer is full; delivery is awaited at the end.
            pending.append(await producer.send(names[record.kind], record.value, key=record.key))
        await producer.flush()
        await asyncio.gather(*pending)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return {
        "events": float(len(records)),
        "seconds": elapsed,
        "events_per_s": len(records) / elapsed,
    }
