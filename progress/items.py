"""Quizzes and assignments: scoring, when each counts as done, and their rows.

Rules (docs/events.md repeats them):
- An attempt's Score is the credit of its answers over its questions, as a percentage
  (TotalQuestions from QuizAttemptStarted, else the number of questions answered).
  Unanswered = TotalQuestions - answered. Passed: submitted with Score >= the quiz's
  pass mark (structure; 50 by default).
- AttemptNumber is the attempt's rank among the learner's attempts at the quiz, by start
  time, so a late-arriving first attempt is still number 1.
- A quiz is done when an attempt passed (``completion: passed``, the default) or was merely
  submitted (``completion: submitted``); an assignment when a submission was submitted
  (``completion: submitted``, the default) or graded at or above ``pass_ratio`` of its max
  score (``completion: graded``). Its completion time is the earliest that qualifies.

Rows carry an answer's options and text, a submission's content and a grade's feedback only
when they are known (see ``progress.models``): empty, or carried by the event being handled
with the digest the state kept. Otherwise they are None, "unchanged".
"""

from __future__ import annotations

from datetime import datetime

from progress.events import AssignmentContent, AssignmentGraded, ConsumedEvent, QuizQuestionAnswered
from progress.facts import answer_digest, submission_digest
from progress.models import (
    AssignmentSubmission,
    AttemptStatus,
    QuizAttempt,
    QuizQuestionResponse,
    SubmissionStatus,
)
from progress.schema import stable_id
from progress.state import AttemptState, CourseState, SubmissionState, content_digest
from progress.structure import DEFAULT_PASS_MARK, AssignmentDef, CourseStructure, QuizDef


def response_row_id(user_id: str, attempt_id: str, question_id: str) -> str:
    """The id of an answer's ``quiz_question_responses`` row, and of its content's piece."""
    return stable_id("quiz_question_response", user_id, attempt_id, question_id)


def submission_row_id(user_id: str, submission_id: str) -> str:
    """The id of a submission's ``assignment_submissions`` row, and of its content's pieces."""
    return stable_id("assignment_submission", user_id, submission_id)


def attempt_questions(attempt: AttemptState) -> int:
    answered = len(attempt.responses)
    return max(attempt.total_questions or 0, answered)


def attempt_score(attempt: AttemptState) -> float:
    questions = attempt_questions(attempt)
    credit = sum(r.credit for r in attempt.responses.values())
    return round(100.0 * credit / questions, 2) if questions else 0.0


def attempt_passed(attempt: AttemptState, pass_mark: float) -> bool:
    return attempt.submitted_at is not None and attempt_score(attempt) >= pass_mark


def quiz_done_at(quiz: QuizDef, attempts: list[AttemptState]) -> datetime | None:
    times = [
        a.submitted_at
        for a in attempts
        if a.submitted_at is not None
        and (quiz.completion == "submitted" or attempt_passed(a, quiz.pass_mark))
    ]
    return min(times, default=None)


def _graded_enough(submission: SubmissionState, assignment: AssignmentDef) -> bool:
    grade = submission.grade
    if grade is None:
        return False
    max_score = grade.max_score or assignment.max_score
    return grade.score >= assignment.pass_ratio * max_score


def assignment_done_at(
    assignment: AssignmentDef, submissions: list[SubmissionState]
) -> datetime | None:
    if assignment.completion == "submitted":
        times = [s.submitted_at for s in submissions if s.submitted_at is not None]
    else:
        times = [
            s.grade.graded_at for s in submissions if s.grade and _graded_enough(s, assignment)
        ]
    return min(times, default=None)


def attempts_of(course: CourseState, quiz_id: str) -> list[AttemptState]:
    return [a for a in course.quiz_attempts.values() if a.quiz_id == quiz_id]


def submissions_of(course: CourseState, assignment_id: str) -> list[SubmissionState]:
    return [s for s in course.submissions.values() if s.assignment_id == assignment_id]


# --------------------------------------------------------------------------- rows


def attempt_rows(
    user_id: str,
    version: int,
    course_id: str,
    course: CourseState,
    structure: CourseStructure | None,
    quiz_id: str,
    event: ConsumedEvent | None = None,
    *,
    only: str | None = None,
    since: AttemptState | None = None,
) -> tuple[list[QuizAttempt], list[QuizQuestionResponse]]:
    """Rows of every attempt at one quiz (their numbers depend on each other). ``event``:
    the one being handled, whose answer its response row carries if it is the one kept.

    ``only``: the row of that attempt alone (the others' are as they were: its start did not
    move). ``since``: that attempt before the event; the response rows of the answers it
    held already (the same objects) are left out."""
    quiz = structure.quiz(quiz_id) if structure else None
    pass_mark = quiz.pass_mark if quiz else DEFAULT_PASS_MARK
    attempts = sorted(
        ((attempt_id, a) for attempt_id, a in course.quiz_attempts.items() if a.quiz_id == quiz_id),
        key=lambda item: (item[1].started_at or item[1].first_seen_at, item[0]),
    )
    rows: list[QuizAttempt] = []
    responses: list[QuizQuestionResponse] = []
    answer = event if isinstance(event, QuizQuestionAnswered) else None
    digest = answer_digest(answer) if answer is not None else ""
    for number, (attempt_id, a) in enumerate(attempts, 1):
        if only is not None and attempt_id != only:
            continue
        row_id = stable_id("quiz_attempt", user_id, attempt_id)
        answered = len(a.responses)
        correct = sum(1 for r in a.responses.values() if r.correct)
        questions = attempt_questions(a)
        status: AttemptStatus = (
            "completed" if a.submitted_at else "abandoned" if a.abandoned_at else "in-progress"
        )
        rows.append(
            QuizAttempt(
                id=row_id,
                user_id=user_id,
                version=version,
                course_id=course_id,
                module_id=a.module_id,
                lesson_id=a.lesson_id,
                quiz_id=quiz_id,
                status=status,
                score=attempt_score(a),
                total_questions=questions,
                correct_answers=correct,
                incorrect_answers=answered - correct,
                unanswered_questions=questions - answered,
                time_spent=max(a.time_spent, sum(r.time_spent for r in a.responses.values())),
                passed=attempt_passed(a, pass_mark),
                attempt_number=number,
                started_at=a.started_at or a.first_seen_at,
                completed_at=a.submitted_at,
                created_at=a.first_seen_at,
                updated_at=a.last_activity_at,
            )
        )
        held = since.responses if since is not None and attempt_id == only else {}
        for question_id, r in sorted(a.responses.items()):
            if held.get(question_id) is r:
                continue
            options: list[str] | None = None
            text: str | None = None
            if not r.answer_digest:
                options, text = [], ""
            elif (
                answer is not None
                and (answer.attempt_id, answer.question_id) == (attempt_id, question_id)
                and digest == r.answer_digest
            ):
                options, text = list(answer.selected_options), answer.text_response
            responses.append(
                QuizQuestionResponse(
                    id=response_row_id(user_id, attempt_id, question_id),
                    user_id=user_id,
                    version=version,
                    quiz_attempt_id=row_id,
                    question_id=question_id,
                    selected_options=options,
                    text_response=text,
                    correct=r.correct,
                    score=r.credit,
                    time_spent=r.time_spent,
                    created_at=r.first_answered_at,
                    updated_at=r.answered_at,
                )
            )
    return rows, responses


def submission_row(
    user_id: str,
    version: int,
    course_id: str,
    submission_id: str,
    s: SubmissionState,
    structure: CourseStructure | None,
    event: ConsumedEvent | None = None,
) -> AssignmentSubmission:
    """The submission's row. ``event``: the one being handled, whose content (or feedback)
    the row carries if it is the one kept."""
    assignment = structure.assignment(s.assignment_id) if structure else None
    default_max = assignment.max_score if assignment else 100.0
    grade = s.grade
    status: SubmissionStatus = "graded" if grade else "submitted" if s.submitted_at else "draft"
    content: tuple[str | None, str | None, str | None] = (None, None, None)
    if not s.content_digest:
        content = ("", "", "")
    elif (
        isinstance(event, AssignmentContent)
        and event.submission_id == submission_id
        and submission_digest(event) == s.content_digest
    ):
        content = (event.text_content, event.file_url, event.link_url)
    feedback: str | None = None
    if grade is None or not grade.feedback_digest:
        feedback = ""
    elif (
        isinstance(event, AssignmentGraded)
        and event.submission_id == submission_id
        and content_digest(event.feedback) == grade.feedback_digest
    ):
        feedback = event.feedback
    return AssignmentSubmission(
        id=submission_row_id(user_id, submission_id),
        user_id=user_id,
        version=version,
        course_id=course_id,
        module_id=s.module_id,
        lesson_id=s.lesson_id,
        assignment_id=s.assignment_id,
        status=status,
        submission_type=s.submission_type,
        text_content=content[0],
        file_url=content[1],
        link_url=content[2],
        score=grade.score if grade else None,
        max_score=(grade.max_score if grade and grade.max_score else default_max),
        feedback=feedback,
        graded_by=grade.graded_by if grade else "",
        submitted_at=s.submitted_at,
        graded_at=grade.graded_at if grade else None,
        created_at=s.first_seen_at,
        updated_at=s.last_activity_at,
    )
