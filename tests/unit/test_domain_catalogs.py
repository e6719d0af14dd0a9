"""Quizzes, assignments, learning paths, competencies and achievements in the pure core."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from progress.catalog import AchievementUpdated, CompetencyUpdated, LearningPathUpdated
from progress.events import (
    AchievementEarned,
    AssignmentSubmitted,
    CompetencyAcquired,
    CourseCompleted,
    CourseUpdated,
    ExternalEvidenceRecorded,
    LearnerProfileUpdated,
    PublishedEvent,
    QuizCompleted,
    UserEnrolled,
    assignment_activity_adapter,
    lesson_activity_adapter,
    quiz_activity_adapter,
)
from progress.facts import merge_course_update
from progress.learner_rules import Catalog
from progress.outcomes import (
    Outcome,
    on_assignment_activity,
    on_catalog_changed,
    on_course_known,
    on_enrollment,
    on_external_evidence,
    on_lesson_activity,
    on_profile,
    on_quiz_activity,
)
from progress.snapshots import merge
from progress.state import KnownCourse, LearnerState

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
USER = "u1"


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def structure(cid: str = "c1", **course: Any) -> KnownCourse:
    """Course c1: module m1 with lesson l1, quiz q1 (pass mark 60), assignment a1."""
    modules = course.pop(
        "modules",
        [
            {
                "id": "m1",
                "lessons": [{"id": "l1"}],
                "quizzes": [
                    {
                        "id": "q1",
                        "pass_mark": 60,
                        "competencies": [{"competency_id": "py", "level": 50}],
                    }
                ],
                "assignments": [
                    {"id": "a1", "competencies": [{"competency_id": "py", "level": 40}]}
                ],
            }
        ],
    )
    update = CourseUpdated.model_validate(
        {"id": cid, "updated_at": at(0), "modules": modules, **course}
    )
    return merge_course_update(None, update)


def enroll(cid: str = "c1", minute: float = 0) -> UserEnrolled:
    return UserEnrolled.model_validate(
        {"id": f"e-{cid}", "course_id": cid, "user_id": USER, "enrolled_at": at(minute)}
    )


def lesson_done(lesson: str, minute: float, cid: str = "c1", module: str = "m1") -> Any:
    return lesson_activity_adapter.validate_python(
        {
            "user_id": USER,
            "course_id": cid,
            "module_id": module,
            "lesson_id": lesson,
            "completed_at": at(minute),
        }
    )


def quiz(kind: str, minute: float, attempt: str = "t1", **extra: Any) -> Any:
    time_field = {
        "QuizAttemptStarted": "started_at",
        "QuizQuestionAnswered": "answered_at",
        "QuizAttemptSubmitted": "submitted_at",
        "QuizAttemptAbandoned": "abandoned_at",
    }[kind]
    return quiz_activity_adapter.validate_python(
        {
            "type": kind,
            "user_id": USER,
            "course_id": "c1",
            "module_id": "m1",
            "quiz_id": "q1",
            "attempt_id": attempt,
            time_field: at(minute),
            **extra,
        }
    )


def answer(question: str, correct: bool, minute: float, attempt: str = "t1") -> Any:
    return quiz("QuizQuestionAnswered", minute, attempt, question_id=question, correct=correct)


def assignment(kind: str, minute: float, submission: str = "s1", **extra: Any) -> Any:
    time_field = {
        "AssignmentDraftSaved": "saved_at",
        "AssignmentSubmitted": "submitted_at",
        "AssignmentGraded": "graded_at",
    }[kind]
    content = {} if kind == "AssignmentGraded" else {"submission_type": "text"}
    return assignment_activity_adapter.validate_python(
        {
            "type": kind,
            "user_id": USER,
            "course_id": "c1",
            "module_id": "m1",
            "assignment_id": "a1",
            "submission_id": submission,
            time_field: at(minute),
            **content,
            **extra,
        }
    )


def play(
    events: list[Any], courses: dict[str, KnownCourse], catalog: Catalog | None = None
) -> list[Outcome]:
    catalog = catalog or Catalog()
    state: LearnerState | None = None
    outcomes = []
    for event in events:
        if isinstance(event, UserEnrolled):
            outcome = on_enrollment(state, event, courses.get(event.course_id), catalog)
        elif isinstance(event, ExternalEvidenceRecorded):
            outcome = on_external_evidence(state, event, catalog)
        elif isinstance(event, LearnerProfileUpdated):
            outcome = on_profile(state, event, catalog)
        elif hasattr(event, "attempt_id"):
            outcome = on_quiz_activity(state, event, courses.get(event.course_id), catalog)
        elif hasattr(event, "submission_id"):
            outcome = on_assignment_activity(state, event, courses.get(event.course_id), catalog)
        else:
            outcome = on_lesson_activity(state, event, courses.get(event.course_id), catalog)
        outcomes.append(outcome)
        state = outcome.state
    return outcomes


def published(outcomes: list[Outcome], kind: type[PublishedEvent]) -> list[Any]:
    return [e for o in outcomes for e in o.published if isinstance(e, kind)]


C1 = {"c1": structure()}
FULL_COURSE = [
    enroll(),
    lesson_done("l1", 1),
    quiz("QuizAttemptStarted", 2, total_questions=2),
    answer("x", True, 3),
    answer("y", True, 4),
    quiz("QuizAttemptSubmitted", 5, time_spent=170),
    assignment("AssignmentSubmitted", 6, text_content="my essay"),
]


# --------------------------------------------------------------------------- quizzes


def test_quiz_attempt_scores_counts_and_passes_against_the_pass_mark() -> None:
    outcomes = play(
        [
            enroll(),
            quiz("QuizAttemptStarted", 1, total_questions=4),
            answer("x", True, 2),
            answer("y", False, 3),
            answer("z", True, 4),
            quiz("QuizAttemptSubmitted", 5, time_spent=240),
        ],
        C1,
    )
    stored = merge([outcome.snapshot for outcome in outcomes])  # the newest row of each
    row = stored.quiz_attempts[0]
    assert (row.score, row.correct_answers, row.incorrect_answers, row.unanswered_questions) == (
        50.0,
        2,
        1,
        1,
    )
    assert (row.status, row.passed, row.attempt_number, row.time_spent) == (
        "completed",
        False,
        1,
        240,
    )
    assert len(stored.quiz_question_responses) == 3
    [done] = published(outcomes, QuizCompleted)
    assert (done.score, done.passed, done.completed_at) == (50.0, False, T0 + timedelta(minutes=5))
    # Not passed: the quiz does not count as done.
    assert outcomes[-1].snapshot.course_progress[0].completed_quizzes == 0


def test_resubmitted_attempt_and_answers_count_once() -> None:
    outcomes = play(
        [
            enroll(),
            quiz("QuizAttemptStarted", 1, total_questions=1),
            answer("x", True, 2),
            quiz("QuizAttemptSubmitted", 3),
            quiz("QuizAttemptSubmitted", 4),  # re-submitted
            answer("x", True, 2),  # duplicate
        ],
        C1,
    )
    assert len(published(outcomes, QuizCompleted)) == 1
    row = outcomes[-1].snapshot.quiz_attempts[0]
    assert (row.correct_answers, row.score, row.completed_at) == (
        1,
        100.0,
        T0 + timedelta(minutes=3),
    )
    assert outcomes[-1].snapshot.course_progress[0].completed_quizzes == 1


def test_abandoned_attempt_does_not_count_and_later_attempt_is_number_two() -> None:
    outcomes = play(
        [
            enroll(),
            quiz("QuizAttemptStarted", 10, attempt="t2", total_questions=1),
            answer("x", True, 11, attempt="t2"),
            quiz("QuizAttemptSubmitted", 12, attempt="t2"),
            # The first attempt arrives late: numbering follows start time, not arrival.
            quiz("QuizAttemptStarted", 1, attempt="t1", total_questions=1),
            quiz("QuizAttemptAbandoned", 2, attempt="t1"),
        ],
        C1,
    )
    stored = merge([outcome.snapshot for outcome in outcomes])  # the newest row of each
    rows = {r.quiz_id + r.id: r for r in stored.quiz_attempts}
    by_number = {r.attempt_number: r for r in rows.values()}
    assert by_number[1].status == "abandoned" and by_number[2].status == "completed"
    assert len(published(outcomes, QuizCompleted)) == 1


def test_submitted_attempt_is_never_abandoned_whatever_the_order() -> None:
    for order in itertools.permutations(
        [quiz("QuizAttemptSubmitted", 3), quiz("QuizAttemptAbandoned", 4)]
    ):
        outcomes = play([enroll(), quiz("QuizAttemptStarted", 1, total_questions=1), *order], C1)
        assert outcomes[-1].snapshot.quiz_attempts[0].status == "completed"


# --------------------------------------------------------------------------- assignments


def test_assignment_goes_draft_submitted_graded_and_regrading_updates() -> None:
    outcomes = play(
        [
            enroll(),
            assignment("AssignmentDraftSaved", 1, text_content="draft"),
            assignment("AssignmentSubmitted", 2, text_content="final"),
            assignment("AssignmentGraded", 3, score=70, feedback="ok", graded_by="t9"),
            assignment("AssignmentGraded", 9, score=85, feedback="better", graded_by="t9"),
            assignment("AssignmentGraded", 5, score=10, feedback="late old", graded_by="t9"),
        ],
        C1,
    )
    statuses = [o.snapshot.assignment_submissions[0].status for o in outcomes[1:4]]
    assert statuses == ["draft", "submitted", "graded"]
    # The late old grade's snapshot leaves the text and feedback unchanged (None); merged
    # with the earlier ones, as the sink keeps them, the row holds the newest of each.
    assert outcomes[-1].snapshot.assignment_submissions[0].text_content is None
    row = merge([o.snapshot for o in outcomes]).assignment_submissions[0]
    assert (row.text_content, row.score, row.feedback, row.max_score) == (
        "final",
        85,
        "better",
        100,
    )
    assert len(published(outcomes, AssignmentSubmitted)) == 1


def test_course_completes_only_when_lessons_quizzes_and_assignments_are_done() -> None:
    outcomes = play(FULL_COURSE, C1)
    percents = [o.snapshot.course_progress[0].percent_complete for o in outcomes]
    assert percents == [0.0, 33.33, 33.33, 33.33, 33.33, 66.67, 100.0]
    final = outcomes[-1].snapshot
    assert final.course_progress[0].status == "completed"
    # Points: lesson 10 + quiz 20 + assignment 30 by default.
    assert final.user_progress.total_points == 60
    assert final.user_progress.completed_quizzes == 1
    assert final.user_progress.completed_assignments == 1
    assert len(published(outcomes, CourseCompleted)) == 1


def test_assignment_completion_can_require_a_passing_grade() -> None:
    graded = structure(
        modules=[
            {
                "id": "m1",
                "assignments": [{"id": "a1", "completion": "graded", "pass_ratio": 0.6}],
            }
        ]
    )
    courses = {"c1": graded}
    low = play(
        [
            enroll(),
            assignment("AssignmentSubmitted", 1),
            assignment("AssignmentGraded", 2, score=50, graded_by="t"),
        ],
        courses,
    )
    assert low[-1].snapshot.course_progress[0].status == "in-progress"
    regraded = on_assignment_activity(
        low[-1].state, assignment("AssignmentGraded", 3, score=60, graded_by="t"), graded, Catalog()
    )
    assert regraded.snapshot.course_progress[0].status == "completed"


# --------------------------------------------------------------------------- learning paths


PATH = LearningPathUpdated.model_validate(
    {"id": "p1", "title": "Python", "course_ids": ["c1", "c2"], "updated_at": at(0)}
)


def test_learning_path_follows_its_courses_and_names_the_current_one() -> None:
    catalog = Catalog(learning_paths={"p1": PATH})
    courses = {
        "c1": structure(),
        "c2": structure("c2", modules=[{"id": "m9", "lessons": [{"id": "z"}]}]),
    }
    outcomes = play([*FULL_COURSE, enroll("c2", 7)], courses, catalog)
    [path] = outcomes[-1].snapshot.learning_path_progress
    assert (path.status, path.percent_complete, path.current_course_id) == (
        "in-progress",
        50.0,
        "c2",
    )
    done = play([*FULL_COURSE, enroll("c2", 7), lesson_done("z", 8, "c2", "m9")], courses, catalog)
    [path] = done[-1].snapshot.learning_path_progress
    assert (path.status, path.completed_courses, path.current_course_id) == ("completed", 2, "")
    assert path.completed_at == T0 + timedelta(minutes=8)

    # The path grows: it reopens.
    grown = LearningPathUpdated.model_validate(
        {"id": "p1", "course_ids": ["c1", "c2", "c3"], "updated_at": at(20)}
    )
    reopened = on_catalog_changed(done[-1].state, Catalog(learning_paths={"p1": grown}), T0)
    [path] = reopened.snapshot.learning_path_progress
    assert (path.status, path.total_courses, path.current_course_id) == ("in-progress", 3, "c3")


# --------------------------------------------------------------------------- competencies


PY = CompetencyUpdated.model_validate({"id": "py", "name": "Python", "updated_at": at(0)})


def test_competency_levels_add_up_and_mastery_is_announced_once() -> None:
    catalog = Catalog(competencies={"py": PY})
    outcomes = play(
        [*FULL_COURSE, assignment("AssignmentSubmitted", 30, submission="s2")], C1, catalog
    )
    # The newest row of each (the last event changed no competency: its snapshot has none).
    [competency] = merge([outcome.snapshot for outcome in outcomes]).user_competencies
    # Quiz 50 + assignment 40 = 90: mastered (80) when the assignment was submitted.
    assert (competency.level, competency.status) == (90, "mastered")
    assert competency.acquired_at == T0 + timedelta(minutes=6)
    assert [e.type for e in competency.evidence] == ["quiz", "assignment"]
    [acquired] = published(outcomes, CompetencyAcquired)
    assert (acquired.competency_name, acquired.level) == ("Python", 90)


def test_external_evidence_counts_and_caps_at_100() -> None:
    catalog = Catalog(competencies={"py": PY})
    evidence = ExternalEvidenceRecorded.model_validate(
        {
            "user_id": USER,
            "competency_id": "py",
            "evidence_id": "cert-1",
            "level": 70,
            "url": "https://example.org/cert/1",
            "recorded_at": at(100),
        }
    )
    outcomes = play([*FULL_COURSE, evidence, evidence], C1, catalog)
    [competency] = outcomes[-1].snapshot.user_competencies
    assert competency.level == 100
    assert {e.type for e in competency.evidence} == {"quiz", "assignment", "external"}
    assert not outcomes[-1].changed  # the duplicate evidence changed nothing
    assert len(published(outcomes, CompetencyAcquired)) == 1


# --------------------------------------------------------------------------- achievements


def achievement(aid: str, kind: str, points: int = 5, **criteria: Any) -> AchievementUpdated:
    return AchievementUpdated.model_validate(
        {
            "id": aid,
            "name": aid.title(),
            "points": points,
            "criteria": {"kind": kind, **criteria},
            "updated_at": at(0),
        }
    )


def test_each_criterion_awards_once_with_its_points() -> None:
    catalog = Catalog(
        achievements={
            a.id: a
            for a in [
                achievement("first", "first-lesson"),
                achievement("two-lessons", "lessons", count=2),
                achievement("finisher", "course-completed", course_id="c1"),
                achievement("perfect", "perfect-quiz"),
                achievement("two-courses", "courses", count=2),
            ]
        }
    )
    outcomes = play([*FULL_COURSE, *FULL_COURSE], C1, catalog)
    earned = {e.achievement_id: e.earned_at for e in published(outcomes, AchievementEarned)}
    assert earned == {
        "first": T0 + timedelta(minutes=1),
        "perfect": T0 + timedelta(minutes=5),
        "finisher": T0 + timedelta(minutes=6),
    }
    final = outcomes[-1].snapshot
    assert {a.achievement_id for a in final.user_achievements} == set(earned)
    assert final.user_progress.total_points == 60 + 3 * 5


def test_a_new_achievement_goes_to_learners_who_already_meet_it() -> None:
    done = play(FULL_COURSE, C1)[-1]
    catalog = Catalog(achievements={"finisher": achievement("finisher", "course-completed")})
    outcome = on_catalog_changed(done.state, catalog, T0 + timedelta(days=1))
    [earned] = [e for e in outcome.published if isinstance(e, AchievementEarned)]
    assert earned.earned_at == T0 + timedelta(minutes=6)  # when it was met, not when defined
    again = on_catalog_changed(outcome.state, catalog, T0 + timedelta(days=2))
    assert again.published == () and not again.changed


def test_streak_is_counted_in_the_learners_time_zone() -> None:
    catalog = Catalog(achievements={"streak": achievement("streak", "streak", count=3)})
    lessons = [{"id": f"l{i}"} for i in range(3)]
    courses = {"c1": structure(modules=[{"id": "m1", "lessons": lessons}])}
    tokyo = LearnerProfileUpdated.model_validate(
        {"user_id": USER, "time_zone": "Asia/Tokyo", "updated_at": at(-60)}
    )
    day = 24 * 60
    # T0 is 2 March 09:00 UTC. These are 2, 3 and 5 March in UTC, but 3, 4 and 5 March in
    # Tokyo (UTC+9): a three-day streak only in Tokyo.
    times = [11 * 60, day + 7 * 60, 3 * day + 60]
    done = [lesson_done(f"l{i}", t) for i, t in enumerate(times)]
    assert published(play([enroll(), *done], courses, catalog), AchievementEarned) == []
    [earned] = published(play([tokyo, enroll(), *done], courses, catalog), AchievementEarned)
    assert earned.earned_at == T0 + timedelta(minutes=times[2])


# --------------------------------------------------------------------------- order


def test_any_order_of_a_mixed_course_ends_in_the_same_state_and_awards() -> None:
    catalog = Catalog(
        competencies={"py": PY},
        achievements={"finisher": achievement("finisher", "course-completed")},
        learning_paths={"p1": PATH},
    )
    finals = set()
    events = FULL_COURSE
    for order in itertools.islice(itertools.permutations(events), 0, None, 7):
        outcomes = play(list(order), C1, catalog)
        final = outcomes[-1].state.model_dump(mode="json", exclude={"version"})
        finals.add(json.dumps(final, sort_keys=True))
        assert len(published(outcomes, AchievementEarned)) == 1
        assert len(published(outcomes, CompetencyAcquired)) == 1
        assert len(published(outcomes, CourseCompleted)) == 1
    assert len(finals) == 1


def test_structure_change_reevaluates_quizzes_against_the_new_pass_mark() -> None:
    outcomes = play(
        [
            enroll(),
            quiz("QuizAttemptStarted", 1, total_questions=2),
            answer("x", True, 2),
            quiz("QuizAttemptSubmitted", 3),
        ],
        C1,
    )
    assert outcomes[-1].snapshot.quiz_attempts[0].passed is False  # 50 < 60
    easier = merge_course_update(
        C1["c1"],
        CourseUpdated.model_validate(
            {
                "id": "c1",
                "updated_at": at(30),
                "modules": [{"id": "m1", "quizzes": [{"id": "q1", "pass_mark": 50}]}],
            }
        ),
    )
    outcome = on_course_known(outcomes[-1].state, easier, Catalog())
    assert outcome.snapshot.quiz_attempts[0].passed is True
    assert outcome.snapshot.course_progress[0].status == "completed"


def test_a_late_earlier_completion_moves_completion_awards_back() -> None:
    """docs/catalogs.md: an earlier fact that arrives late moves EarnedAt back to when the
    criterion was met, for completions too (the course's and path's CompletedAt move back)."""
    catalog = Catalog(
        learning_paths={"p": LearningPathUpdated(id="p", course_ids=("c",), updated_at=at(-120))},
        achievements={
            a.id: a
            for a in [
                achievement("finisher", "course-completed", course_id="c"),
                achievement("one-course", "courses", count=1),
                achievement("pathfinder", "learning-path-completed", learning_path_id="p"),
            ]
        },
    )
    courses = {"c": structure("c", modules=[{"id": "m1", "lessons": [{"id": "l1"}, {"id": "l2"}]}])}
    in_arrival_order = [
        enroll("c", -60),  # 08:00
        lesson_done("l1", 0, cid="c"),  # 09:00
        lesson_done("l2", 180, cid="c"),  # 12:00: the course and path complete
        lesson_done("l2", 60, cid="c"),  # 10:00, arriving last
    ]
    outcomes = play(in_arrival_order, courses, catalog)
    ten = T0 + timedelta(minutes=60)
    final = outcomes[-1].snapshot
    assert final.course_progress[0].completed_at == ten
    assert final.learning_path_progress[0].completed_at == ten
    assert {a.achievement_id: a.earned_at for a in final.user_achievements} == {
        "finisher": ten,
        "one-course": ten,
        "pathfinder": ten,
    }
    # Published once each, when first seen: the events keep their time.
    earned = published(outcomes, AchievementEarned)
    assert sorted(e.achievement_id for e in earned) == ["finisher", "one-course", "pathfinder"]
    assert {e.earned_at for e in earned} == {T0 + timedelta(minutes=180)}
    assert len(published(outcomes, CourseCompleted)) == 1
