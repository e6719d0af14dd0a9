"""Bulky content on its compacted topic (progress/content.py): which records an event's
outcome writes, and which a rebuild restores."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bench.core import _Core
from bench.loadgen import generate
from progress.content import (
    ContentRecord,
    ContentRestore,
    ContentSlot,
    _changed_slots,
    content_slots,
    new_content,
    restores,
)
from progress.decode import decode_event
from progress.learner_rules import Catalog
from progress.outcomes import Outcome, on_assignment_activity, on_quiz_activity
from progress.state import LearnerState, content_digest
from tests.unit.test_domain_catalogs import assignment, enroll, play, quiz, structure

C1 = {"c1": structure()}


def written(before: Outcome | None, outcome: Outcome) -> list[tuple[str, ContentRecord | None]]:
    return new_content(before.state if before else None, outcome.state, outcome.snapshot)


def test_new_content_writes_one_record_per_piece_with_its_fields_and_digest() -> None:
    enrolled, submitted, graded, answered = play(
        [
            enroll(),
            assignment("AssignmentSubmitted", 1, text_content="essay", link_url="https://x.org/1"),
            assignment("AssignmentGraded", 2, score=5, feedback="well done", graded_by="t9"),
            quiz(
                "QuizQuestionAnswered",
                3,
                question_id="q1",
                correct=True,
                selected_options=["a", "c"],
                text_response="because",
            ),
        ],
        C1,
    )
    [(key, record)] = written(enrolled, submitted)
    assert record is not None and key == record.key == f"{record.id}/submission"
    assert record.fields == {"text_content": "essay", "file_url": "", "link_url": "https://x.org/1"}
    assert record.digest == content_digest("essay", "", "https://x.org/1")
    assert record.id == submitted.snapshot.assignment_submissions[0].id
    [(_, feedback)] = written(submitted, graded)
    assert feedback is not None and (feedback.part, feedback.fields) == (
        "feedback",
        {"feedback": "well done"},
    )
    [(_, answer)] = written(graded, answered)
    assert answer is not None and answer.table == "quiz_question_responses"
    assert answer.fields == {"selected_options": ["a", "c"], "text_response": "because"}


def test_a_repeated_event_or_unchanged_content_writes_nothing() -> None:
    first = assignment("AssignmentSubmitted", 1, text_content="essay")
    enrolled, submitted = play([enroll(), first], C1)
    assert len(written(enrolled, submitted)) == 1
    replayed = on_assignment_activity(submitted.state, first, C1["c1"], Catalog())
    assert written(submitted, replayed) == []
    # A later event with the same content moves times, not the digest.
    same = on_assignment_activity(
        submitted.state,
        assignment("AssignmentGraded", 2, score=5, graded_by="t9"),
        C1["c1"],
        Catalog(),
    )
    assert same.changed and written(submitted, same) == []


def test_content_that_becomes_empty_is_a_tombstone() -> None:
    enrolled, saved, emptied = play(
        [
            enroll(),
            assignment("AssignmentDraftSaved", 1, text_content="draft"),
            assignment("AssignmentDraftSaved", 2, text_content=""),
        ],
        C1,
    )
    [(key, record)] = written(saved, emptied)
    assert record is None and key.endswith("/submission")
    # Empty content to begin with needs no record: its row says "" without one.
    assert (
        written(enrolled, play([enroll(), quiz("QuizAttemptStarted", 1, total_questions=2)], C1)[1])
        == []
    )


def test_slots_name_every_piece_of_the_state_for_erasure() -> None:
    outcomes = play(
        [
            enroll(),
            assignment("AssignmentSubmitted", 1, text_content="x"),
            quiz("QuizQuestionAnswered", 2, question_id="q1", correct=True),
            quiz("QuizQuestionAnswered", 3, question_id="q2", correct=False, text_response="y"),
        ],
        C1,
    )
    slots = content_slots(outcomes[-1].state)
    assert sorted(slot.part for slot in slots.values()) == [
        "answer",
        "answer",
        "feedback",
        "submission",
    ]
    assert {slot.digest for slot in slots.values() if slot.part == "feedback"} == {""}


def test_a_record_is_restored_only_for_the_digest_the_state_holds() -> None:
    _, saved, changed = play(
        [
            enroll(),
            assignment("AssignmentDraftSaved", 1, text_content="old"),
            assignment("AssignmentDraftSaved", 2, text_content="new"),
        ],
        C1,
    )
    [(_, old)] = written(None, saved)
    [(_, new)] = written(saved, changed)
    assert old is not None and new is not None
    state = changed.state
    held = {
        key: (state.user_id, state.version, slot.digest)
        for key, slot in content_slots(state).items()
    }
    assert restores(held, old) is None
    restore = restores(held, new)
    assert restore is not None
    assert (restore.version, restore.fields["text_content"]) == (state.version, "new")
    # Another learner's record under the key, or a key the states do not hold: nothing.
    assert restores(held, new.model_copy(update={"user_id": "someone-else"})) is None
    assert restores({}, new) is None


def test_a_restore_carries_exactly_its_parts_fields() -> None:
    with pytest.raises(ValidationError):
        ContentRestore(
            user_id="u",
            version=1,
            table="assignment_submissions",
            id="r",
            part="feedback",
            fields={"text_content": "x"},
        )
    with pytest.raises(ValidationError):
        ContentRecord(
            table="quiz_question_responses",
            id="r",
            part="submission",
            user_id="u",
            digest="d",
            fields={"text_content": "x", "file_url": "", "link_url": ""},
        )


def test_quiz_answers_changed_in_a_later_event_write_the_new_answer_only() -> None:
    outcomes = play(
        [
            enroll(),
            quiz("QuizQuestionAnswered", 1, question_id="q1", correct=False, text_response="a"),
            quiz("QuizQuestionAnswered", 2, question_id="q2", correct=True, text_response="b"),
            quiz("QuizQuestionAnswered", 3, question_id="q1", correct=True, text_response="c"),
        ],
        C1,
    )
    [(_, last)] = written(outcomes[2], outcomes[3])
    assert last is not None and last.fields["text_response"] == "c"
    # An earlier answer arriving late is not kept, so writes nothing.
    late = on_quiz_activity(
        outcomes[3].state,
        quiz("QuizQuestionAnswered", 0.5, question_id="q1", correct=True, text_response="z"),
        C1["c1"],
        Catalog(),
    )
    assert written(outcomes[3], late) == []


def _diff_of_every_slot(
    before: LearnerState | None, after: LearnerState, courses: set[str]
) -> list[ContentSlot]:
    """The reference: every slot of ``after``'s courses whose digest differs from the one
    ``before`` holds ("" if none), each piece compared."""
    now = content_slots(after, courses)
    was = content_slots(before, courses) if before is not None else {}
    return [slot for key, slot in now.items() if slot.digest != getattr(was.get(key), "digest", "")]


def test_the_changed_pieces_on_the_workload_are_the_diff_of_every_piece() -> None:
    # new_content skips the attempts and submissions an event left as they were (the same
    # objects) instead of comparing every piece. States read back from JSON (no object in
    # common) must give the same pieces too.
    workload = generate(users=60, courses=3, events=3_000, seed=5)
    core = _Core()
    changed = records = 0
    for record in workload.records:
        event = decode_event(record.kind, record.key, record.value)
        for outcome in core.derive(event):
            before, after = core.states.get(outcome.state.user_id), outcome.state
            read_back = before and LearnerState.model_validate_json(before.model_dump_json())
            # Course by course: the workload names submissions and attempts alike in every
            # course, so their pieces' keys (which a platform's unique ids keep apart) collide
            # between courses, and the reference's dict keeps one of each.
            for course_id in after.courses:
                expected = _diff_of_every_slot(before, after, {course_id})
                assert _changed_slots(before, after, {course_id}) == expected
                assert _changed_slots(read_back, after, {course_id}) == expected
                changed += len(expected)
            records += len(new_content(before, after, outcome.snapshot))
            core.states[after.user_id] = after
    assert changed > 100 and records > 100  # the workload's answers bring content
