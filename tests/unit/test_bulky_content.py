"""Bulky content (answers, submission content, feedback) passes through to the snapshot and is
kept in the learner's state only as a digest (issue 10, point 3)."""

from __future__ import annotations

import json
from typing import Any

from progress.learner_rules import Catalog
from progress.models import AssignmentSubmission, QuizQuestionResponse
from progress.outcomes import Outcome, on_assignment_activity, on_course_known, on_quiz_activity
from progress.snapshots import Snapshot, merge, merge_within
from progress.state import LearnerState
from sinks.postgres import coalesce
from tests.unit.test_domain_catalogs import (
    answer,
    assignment,
    enroll,
    play,
    quiz,
    structure,
)

C1 = {"c1": structure()}
ESSAY = ("An essay. " * 2_000).strip()  # 20 KB; input text is stripped
OTHER = ("Another essay. " * 1_000).strip()


def submission(outcome: Outcome) -> AssignmentSubmission:
    (row,) = outcome.snapshot.assignment_submissions
    return row


def response(outcome: Outcome, question: str) -> QuizQuestionResponse:
    return next(r for r in outcome.snapshot.quiz_question_responses if r.question_id == question)


def again(outcome: Outcome, event: Any) -> Outcome:
    """The event handled once more on the state ``outcome`` left: a replay."""
    return on_assignment_activity(outcome.state, event, C1["c1"], Catalog())


# ------------------------------------------------------------------ the state


def test_the_state_keeps_no_bulky_content_only_its_digest() -> None:
    outcomes = play(
        [
            enroll(),
            assignment("AssignmentSubmitted", 1, text_content=ESSAY, link_url="https://x.org"),
            assignment("AssignmentGraded", 2, score=5, feedback=OTHER, graded_by="t9"),
            quiz("QuizQuestionAnswered", 3, question_id="q1", correct=True, text_response=ESSAY),
        ],
        C1,
    )
    encoded = outcomes[-1].state.model_dump_json()
    assert "An essay" not in encoded and "Another essay" not in encoded
    assert "x.org" not in encoded
    assert len(encoded) < 3_000


def test_the_same_content_twice_changes_nothing_and_other_content_is_a_new_version() -> None:
    first = assignment("AssignmentDraftSaved", 1, text_content=ESSAY)
    _, saved = play([enroll(), first], C1)
    replayed = again(saved, first)
    assert not replayed.changed and replayed.state == saved.state
    # The same content in a later event: only the times move, the digest stays.
    same = again(saved, assignment("AssignmentDraftSaved", 2, text_content=ESSAY))
    assert (
        same.state.courses["c1"].submissions["s1"].content_digest
        == saved.state.courses["c1"].submissions["s1"].content_digest
    )
    changed = again(same, assignment("AssignmentDraftSaved", 3, text_content=OTHER))
    assert changed.changed and changed.state.version == same.state.version + 1
    assert submission(changed).text_content == OTHER
    # The same time and id with other content is still seen as a change.
    reworded = again(saved, assignment("AssignmentDraftSaved", 1, text_content=OTHER))
    assert reworded.changed


def test_old_state_with_content_loads_as_its_digest_and_a_replay_changes_nothing() -> None:
    events = [
        enroll(),
        assignment("AssignmentSubmitted", 1, text_content=ESSAY, file_url="f"),
        assignment("AssignmentGraded", 2, score=5, feedback="good", graded_by="t9"),
        answer("q1", True, 3),
        quiz("QuizQuestionAnswered", 4, question_id="q2", correct=False, text_response="x"),
    ]
    outcomes = play(events, C1)
    new = outcomes[-1].state
    # The state as written before this change: the content itself, no digests.
    old = json.loads(new.model_dump_json())
    course = old["courses"]["c1"]
    sub = course["submissions"]["s1"]
    del sub["content_digest"]
    sub.update(text_content=ESSAY, file_url="f", link_url="")
    del sub["grade"]["feedback_digest"]
    sub["grade"]["feedback"] = "good"
    for question, text in (("q1", ""), ("q2", "x")):
        held = course["quiz_attempts"]["t1"]["responses"][question]
        del held["answer_digest"]
        held.update(selected_options=[], text_response=text)

    loaded = LearnerState.model_validate_json(json.dumps(old))
    assert loaded == new
    for event in events[1:]:
        if hasattr(event, "submission_id"):
            replay = on_assignment_activity(loaded, event, C1["c1"], Catalog())
        else:
            replay = on_quiz_activity(loaded, event, C1["c1"], Catalog())
        assert not replay.changed


# ------------------------------------------------------------------ the rows


def test_a_row_carries_content_only_from_the_event_that_brought_it() -> None:
    submitted = assignment("AssignmentSubmitted", 1, text_content=ESSAY)
    _, sent, graded = play(
        [enroll(), submitted, assignment("AssignmentGraded", 2, score=5, graded_by="t9")], C1
    )
    row = submission(sent)
    assert (row.text_content, row.file_url, row.link_url, row.feedback) == (ESSAY, "", "", "")
    # A later event of the learner leaves it unchanged; its empty feedback is known.
    row = submission(graded)
    assert (row.text_content, row.file_url, row.link_url, row.feedback) == (None, None, None, "")
    # A replay re-sends the text, at the current version.
    replayed = again(graded, submitted)
    assert not replayed.changed
    assert submission(replayed).text_content == ESSAY
    assert submission(replayed).version == graded.state.version
    # So does a re-derivation after a course update: unchanged.
    rederived = on_course_known(graded.state, structure(title="New"), Catalog())
    assert submission(rederived).text_content is None


def test_an_older_content_that_is_not_kept_is_not_sent() -> None:
    _, newer, older = play(
        [
            enroll(),
            assignment("AssignmentDraftSaved", 5, text_content=ESSAY),
            assignment("AssignmentDraftSaved", 1, text_content=OTHER),
        ],
        C1,
    )
    assert submission(newer).text_content == ESSAY
    assert submission(older).text_content is None


def test_feedback_passes_through_and_a_regrade_replaces_it() -> None:
    outcomes = play(
        [
            enroll(),
            assignment("AssignmentGraded", 2, score=5, feedback="first", graded_by="t9"),
            assignment("AssignmentGraded", 3, score=6, feedback="second", graded_by="t9"),
            assignment("AssignmentGraded", 1, score=1, feedback="late old", graded_by="t9"),
        ],
        C1,
    )
    assert [submission(o).feedback for o in outcomes[1:]] == ["first", "second", None]
    # No content yet: the row's content is known to be empty.
    assert submission(outcomes[1]).text_content == ""


def test_an_answer_passes_through_to_its_response_row_only() -> None:
    _, first, second = play(
        [
            enroll(),
            quiz("QuizQuestionAnswered", 1, question_id="q1", correct=True, text_response=ESSAY),
            quiz(
                "QuizQuestionAnswered",
                2,
                question_id="q2",
                correct=False,
                selected_options=["b", "c"],
            ),
        ],
        C1,
    )
    assert (response(first, "q1").selected_options, response(first, "q1").text_response) == (
        [],
        ESSAY,
    )
    # The next answer's snapshot has its own row only: the other one's is as it was.
    assert [r.question_id for r in second.snapshot.quiz_question_responses] == ["q2"]
    assert (response(second, "q2").selected_options, response(second, "q2").text_response) == (
        ["b", "c"],
        "",
    )
    # Sent again (a whole snapshot, as after a structure change), a row not carrying its
    # answer says "unchanged"; the rules' facts stay in the state.
    again = merge([first.snapshot, second.snapshot])
    q1 = next(r for r in again.quiz_question_responses if r.question_id == "q1")
    assert (q1.selected_options, q1.text_response, q1.correct) == ([], ESSAY, True)
    [attempt] = second.state.courses["c1"].quiz_attempts.values()
    assert attempt.responses["q1"].correct is True


# ------------------------------------------------------------------ merging


def test_merge_and_the_sinks_coalescing_keep_content_a_later_row_leaves_unchanged() -> None:
    outcomes = play(
        [
            enroll(),
            assignment("AssignmentSubmitted", 1, text_content=ESSAY),
            assignment("AssignmentGraded", 2, score=5, feedback="ok", graded_by="t9"),
        ],
        C1,
    )
    snapshots = [o.snapshot for o in outcomes]
    merged = merge(snapshots).assignment_submissions[0]
    (coalesced,) = coalesce(snapshots)[AssignmentSubmission]
    for row in (merged, coalesced):
        assert isinstance(row, AssignmentSubmission)
        assert (row.version, row.status, row.text_content, row.feedback) == (
            outcomes[-1].state.version,
            "graded",
            ESSAY,
            "ok",
        )
    # Equal versions: a re-derivation's row (unchanged) and then a replay's (with the text).
    rederived = on_course_known(outcomes[-1].state, C1["c1"], Catalog()).snapshot
    replayed = again(outcomes[-1], assignment("AssignmentSubmitted", 1, text_content=ESSAY))
    assert rederived.version == replayed.snapshot.version
    for row in (
        merge([rederived, replayed.snapshot]).assignment_submissions[0],
        coalesce([rederived, replayed.snapshot])[AssignmentSubmission][0],
    ):
        assert isinstance(row, AssignmentSubmission)
        assert row.text_content == ESSAY


def test_a_learners_bulky_batch_is_sent_in_runs_that_each_fit() -> None:
    big = "x" * 176_000
    events = [enroll()] + [
        assignment("AssignmentSubmitted", i, submission=f"s{i}", text_content=big)
        for i in range(1, 7)
    ]
    snapshots = [o.snapshot for o in play(events, C1)]
    messages = merge_within(snapshots, 1_000_000)
    assert len(messages) > 1
    assert all(len(m) <= 1_000_000 for m in messages)
    decoded = [Snapshot.model_validate_json(m) for m in messages]
    texts = {
        row.id: row.text_content
        for s in decoded
        for row in s.assignment_submissions
        if row.text_content
    }
    assert len(texts) == 6 and set(texts.values()) == {big}
    assert decoded[-1].version == snapshots[-1].version
    # Small batches stay one merged message.
    merged = merge(snapshots[:3]).model_dump_json().encode()
    assert merge_within(snapshots[:3], 1_000_000) == [merged]
