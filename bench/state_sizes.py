"""How big a learner's state is, as the worker serializes it for its table, on the benchmark's
workload: what the worker's largest single cost (``model_dump_json`` of the whole state, once
per learner and batch) grows with.

    .venv/bin/python -m bench.state_sizes [--users N] [--courses N] [--events N] [--seed N]
    .venv/bin/python -m bench.state_sizes --worst [--attempts N] [--submissions N] [--id-length N]

``--worst``: one learner built through the core (``on_quiz_activity``,
``on_assignment_activity``) with ``--attempts`` quiz attempts of 10 questions and
``--submissions`` graded submissions, every id, text and URL at its longest: the size of the
state the worker writes for it (bulky content is kept only as digests), as JSON,
zlib-compressed at zlib's default level (for reference) and as the worker stores it.

The events are derived by the domain core in process, as the worker derives them; every 10th
event's resulting state is measured (so the figures weigh learners by their activity, as the
worker's batches do). No Kafka, PostgreSQL or Redis.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.topics import LEARNER_STATE_MAX_BYTES
from bench.loadgen import generate
from bench.seeding import _outcome
from progress.decode import decode_event
from progress.events import (
    CourseUpdated,
    UserEnrolled,
    assignment_activity_adapter,
    quiz_activity_adapter,
)
from progress.facts import merge_course_update
from progress.learner_rules import Catalog
from progress.outcomes import on_assignment_activity, on_enrollment, on_quiz_activity
from progress.state import KnownCourse, LearnerState
from streams.state_codec import encode_state


def measure(users: int, courses: int, events: int, seed: int) -> dict[str, Any]:
    workload = generate(users, courses, events, seed)
    known: dict[str, KnownCourse] = {}
    for record in workload.course_records:
        update = decode_event(record.kind, record.key, record.value)
        assert isinstance(update, CourseUpdated)
        known[update.id] = merge_course_update(None, update)
    catalog = Catalog()
    states: dict[str, LearnerState] = {}
    sizes: list[int] = []
    dump_seconds = 0.0
    for index, record in enumerate(workload.activity):
        # Activity in a course, all of it (the generator's activity kinds).
        event: Any = decode_event(record.kind, record.key, record.value)
        outcome = _outcome(states.get(event.user_id), event, known[event.course_id], catalog)
        states[event.user_id] = outcome.state
        if index % 10 == 0:
            started = time.perf_counter()
            sizes.append(len(outcome.state.model_dump_json()))
            dump_seconds += time.perf_counter() - started
    sizes.sort()
    return {
        "measured_states": len(sizes),
        "state_bytes_mean": round(statistics.mean(sizes)),
        "state_bytes_median": sizes[len(sizes) // 2],
        "state_bytes_p90": sizes[int(len(sizes) * 0.9)],
        "state_bytes_max": sizes[-1],
        "dump_us_mean": round(1e6 * dump_seconds / len(sizes), 1),
        "courses_per_learner_mean": round(
            statistics.mean(len(s.courses) for s in states.values()), 2
        ),
        "share_of_largest_20": _shares(sorted(states.values(), key=_size, reverse=True)[:20]),
    }


def _size(state: LearnerState) -> int:
    return len(state.model_dump_json())


def _shares(states: list[LearnerState]) -> dict[str, float]:
    """Which parts of the largest states their JSON is made of, in percent."""
    parts: Counter[str] = Counter()
    for state in states:
        parts["learner (all but courses)"] += len(state.model_dump_json(exclude={"courses"}))
        for course in state.courses.values():
            for name in type(course).model_fields:
                parts[name] += len(course.model_dump_json(include={name}))
    total = sum(parts.values())
    return {name: round(100 * size / total, 1) for name, size in parts.most_common(6)}


def _id(prefix: str, n: int, length: int = 128) -> str:
    """An id of ``length`` characters (128: the longest allowed), distinct per ``n``, padded
    with hex digits that do not compress (as real ids: UUIDs, hashes)."""
    pad = hashlib.sha512(f"{prefix}{n}".encode()).hexdigest()
    return f"{prefix}{n}-{pad}"[:length]


def worst_case(attempts: int, submissions: int, id_length: int = 128) -> dict[str, Any]:
    """One learner in one course, ``attempts`` submitted quiz attempts of 10 answered
    questions and ``submissions`` submitted and graded submissions, through the core, with
    every id ``id_length`` characters long."""

    def _longest_id(prefix: str, n: int) -> str:
        return _id(prefix, n, id_length)

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    user, course, module = (_longest_id(p, 0) for p in ("u", "c", "m"))
    base = {"user_id": user, "course_id": course, "module_id": module, "lesson_id": module}
    known = merge_course_update(
        None, CourseUpdated.model_validate({"id": course, "updated_at": t0.isoformat()})
    )
    catalog = Catalog()
    enrolled = UserEnrolled(id="e", user_id=user, course_id=course, enrolled_at=t0)
    state = on_enrollment(None, enrolled, known, catalog).state
    tick = 0

    def at() -> str:
        nonlocal tick
        tick += 1
        return (t0 + timedelta(seconds=tick)).isoformat()

    for a in range(attempts):
        quiz = {**base, "quiz_id": _longest_id("q", a % 50), "attempt_id": _longest_id("t", a)}
        events: list[dict[str, Any]] = [
            {**quiz, "type": "QuizAttemptStarted", "started_at": at(), "total_questions": 10}
        ]
        events += [
            {
                **quiz,
                "type": "QuizQuestionAnswered",
                "event_id": _longest_id("ev", tick + q),
                "answered_at": at(),
                "question_id": _longest_id("question", q),
                "selected_options": ["o" * 1_000] * 100,
                "text_response": "r" * 20_000,
                "correct": q % 2 == 0,
                "score": 0.5,
                "time_spent": 10**6,
            }
            for q in range(10)
        ]
        events.append({**quiz, "type": "QuizAttemptSubmitted", "submitted_at": at()})
        for raw in events:
            event = quiz_activity_adapter.validate_python(raw)
            state = on_quiz_activity(state, event, known, catalog).state
    for s in range(submissions):
        item = {
            **base,
            "assignment_id": _longest_id("a", s % 50),
            "submission_id": _longest_id("s", s),
        }
        submitted = {
            **item,
            "type": "AssignmentSubmitted",
            "submitted_at": at(),
            "submission_type": "text",
            "text_content": "t" * 200_000,
            "file_url": "f" * 2_000,
            "link_url": "l" * 2_000,
        }
        graded = {
            **item,
            "type": "AssignmentGraded",
            "graded_at": at(),
            "score": 10**6,
            "max_score": 10**6,
            "feedback": "g" * 20_000,
            "graded_by": _longest_id("g", 0),
        }
        for raw in (submitted, graded):
            graded_event = assignment_activity_adapter.validate_python(raw)
            state = on_assignment_activity(state, graded_event, known, catalog).state
    encoded = state.model_dump_json().encode()
    return {
        "attempts": attempts,
        "submissions": submissions,
        "id_length": id_length,
        "state_bytes": len(encoded),
        "state_bytes_zlib": len(zlib.compress(encoded)),
        # As the worker stores it (streams/state_codec.py), against its limit.
        "state_bytes_stored": len(encode_state(state)),
        "stored_limit": LEARNER_STATE_MAX_BYTES,
        "quiz_attempts_bytes": len(
            state.courses[course].model_dump_json(include={"quiz_attempts"})
        ),
        "submissions_bytes": len(state.courses[course].model_dump_json(include={"submissions"})),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--courses", type=int, default=50)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--worst", action="store_true", help="one learner at the bound")
    parser.add_argument("--attempts", type=int, default=1_000)
    parser.add_argument("--submissions", type=int, default=1_000)
    parser.add_argument("--id-length", type=int, default=128)
    args = parser.parse_args()
    if args.worst:
        figures = worst_case(args.attempts, args.submissions, args.id_length)
    else:
        figures = measure(args.users, args.courses, args.events, args.seed)
    for name, value in figures.items():
        print(f"{name:28} {value}")


if __name__ == "__main__":
    main()
