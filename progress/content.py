"""Bulky content outside the learner state: where each piece lives, when an event brought new
content, and how a rebuild hands it back to the sink.

The state keeps only a digest of each piece (``progress.state.content_digest``): a quiz
answer's options and text, a submission's text and URLs, a grade's feedback. The content
itself passes through to the snapshot of the event that brought it and, so that a rebuild of
PostgreSQL loses none of it, to a compacted topic (``progress.content``), one record per
piece, keyed ``<row id>/<part>``: the newest record of a key is the content of its digest
when it was written. A piece whose digest becomes empty is a tombstone there (its row says
"" without it), and so is every piece of an erased learner.

``progress resnapshot`` sends a ``ContentRestore`` for each record whose digest is the one
the learner's state holds, after the learner's rows, and the sink writes its fields into the
row (``ContentRestore`` says where).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import model_validator

from progress.items import response_row_id, submission_row_id
from progress.models import Row
from progress.schema import OutputModel
from progress.snapshots import Snapshot
from progress.state import SUBMISSION_CONTENT, LearnerState, content_digest

ContentPart = Literal["answer", "submission", "feedback"]
ContentTable = Literal["quiz_question_responses", "assignment_submissions"]
ContentValue = str | list[str]

# Each part's columns, in the order its digest takes them.
PART_FIELDS: dict[ContentPart, tuple[str, ...]] = {
    "answer": ("selected_options", "text_response"),
    "submission": SUBMISSION_CONTENT,
    "feedback": ("feedback",),
}
PART_TABLES: dict[ContentPart, ContentTable] = {
    "answer": "quiz_question_responses",
    "submission": "assignment_submissions",
    "feedback": "assignment_submissions",
}


def content_key(row_id: str, part: ContentPart) -> str:
    """The key of a piece on the content topic: a submission row holds two pieces."""
    return f"{row_id}/{part}"


@dataclass(frozen=True, slots=True)
class ContentSlot:
    """A piece of content a learner's state knows of: its row, its part, its digest."""

    row_id: str
    part: ContentPart
    digest: str

    @property
    def key(self) -> str:
        return content_key(self.row_id, self.part)


def content_slots(
    state: LearnerState, course_ids: Collection[str] | None = None
) -> dict[str, ContentSlot]:
    """Every piece of content the state knows of (of ``course_ids`` only, if given), by key,
    empty ones included."""
    slots: dict[str, ContentSlot] = {}
    user_id = state.user_id

    def add(row_id: str, part: ContentPart, digest: str) -> None:
        slot = ContentSlot(row_id, part, digest)
        slots[slot.key] = slot

    for course_id, course in state.courses.items():
        if course_ids is not None and course_id not in course_ids:
            continue
        for attempt_id, attempt in course.quiz_attempts.items():
            for question_id, response in attempt.responses.items():
                row_id = response_row_id(user_id, attempt_id, question_id)
                add(row_id, "answer", response.answer_digest)
        for submission_id, submission in course.submissions.items():
            row_id = submission_row_id(user_id, submission_id)
            add(row_id, "submission", submission.content_digest)
            grade = submission.grade
            add(row_id, "feedback", grade.feedback_digest if grade else "")
    return slots


class ContentRecord(OutputModel):
    """A record of ``progress.content``, keyed ``<id>/<part>``: the content of one piece."""

    table: ContentTable
    id: str  # the row's
    part: ContentPart
    user_id: str
    digest: str  # content_digest of ``fields``, in PART_FIELDS order
    fields: dict[str, ContentValue]

    @model_validator(mode="after")
    def _fields_of_the_part(self) -> Self:
        _check_fields(self.table, self.part, self.fields)
        return self

    @property
    def key(self) -> str:
        return content_key(self.id, self.part)


def _check_fields(table: str, part: ContentPart, fields: dict[str, ContentValue]) -> None:
    if PART_TABLES[part] != table or set(fields) != set(PART_FIELDS[part]):
        raise ValueError(f"{part} content of {table} has the fields {PART_FIELDS[part]}")


def _row_content(row: Row, part: ContentPart) -> dict[str, ContentValue] | None:
    """The part's fields as the row carries them, or None when it leaves them unchanged."""
    values = {name: getattr(row, name) for name in PART_FIELDS[part]}
    if any(value is None for value in values.values()):
        return None
    return {
        name: list(value) if isinstance(value, list | tuple) else value
        for name, value in values.items()
    }


def new_content(
    before: LearnerState | None, after: LearnerState, snapshot: Snapshot
) -> list[tuple[str, ContentRecord | None]]:
    """What an event's outcome writes to the content topic: ``(key, record)`` for each piece
    whose digest it changed, the record None (a tombstone) when the digest became empty.

    A repeated event, or one that brought the content already kept, changes no digest and
    writes nothing. The content comes from the snapshot's rows, which carry a piece exactly
    when the event brought the content its digest is of (``progress.items``).
    """
    courses = {row.course_id for row in snapshot.quiz_attempts}
    courses.update(row.course_id for row in snapshot.assignment_submissions)
    if not courses:
        return []
    changed = _changed_slots(before, after, courses)
    if not changed:
        return []
    rows: dict[str, Row] = {row.id: row for row in snapshot.quiz_question_responses}
    rows.update((row.id, row) for row in snapshot.assignment_submissions)
    out: list[tuple[str, ContentRecord | None]] = []
    for slot in changed:
        if not slot.digest:
            out.append((slot.key, None))
            continue
        row = rows.get(slot.row_id)
        fields = _row_content(row, slot.part) if row is not None else None
        if fields is None or _digest(slot.part, fields) != slot.digest:
            # Not brought by this event (a rule changed the digest without it): nothing
            # to write, the topic keeps the record it has.
            continue
        record = ContentRecord(
            table=PART_TABLES[slot.part],
            id=slot.row_id,
            part=slot.part,
            user_id=after.user_id,
            digest=slot.digest,
            fields=fields,
        )
        out.append((slot.key, record))
    return out


def _changed_slots(
    before: LearnerState | None, after: LearnerState, course_ids: Collection[str]
) -> list[ContentSlot]:
    """The slots of ``content_slots(after, course_ids)`` whose digest differs from the one
    ``before`` holds ("" if none), in that order. An attempt or a submission that is the same
    object in both states holds the same digests (states are immutable), so its slots are
    not built: a learner's quiz event then pays for its attempt, not for every answer the
    learner ever gave in the course."""
    changed: list[ContentSlot] = []
    user_id = after.user_id
    for course_id, course in after.courses.items():
        if course_id not in course_ids:
            continue
        then = before.courses.get(course_id) if before is not None else None
        attempts_then = then.quiz_attempts if then is not None else {}
        submissions_then = then.submissions if then is not None else {}
        for attempt_id, attempt in course.quiz_attempts.items():
            attempt_then = attempts_then.get(attempt_id)
            if attempt_then is attempt:
                continue
            responses_then = attempt_then.responses if attempt_then is not None else {}
            for question_id, response in attempt.responses.items():
                response_then = responses_then.get(question_id)
                was = response_then.answer_digest if response_then is not None else ""
                if response.answer_digest != was:
                    row_id = response_row_id(user_id, attempt_id, question_id)
                    changed.append(ContentSlot(row_id, "answer", response.answer_digest))
        for submission_id, submission in course.submissions.items():
            submission_then = submissions_then.get(submission_id)
            if submission_then is submission:
                continue
            row_id = submission_row_id(user_id, submission_id)
            was = submission_then.content_digest if submission_then is not None else ""
            if submission.content_digest != was:
                changed.append(ContentSlot(row_id, "submission", submission.content_digest))
            grade, grade_then = submission.grade, submission_then and submission_then.grade
            feedback = grade.feedback_digest if grade is not None else ""
            if feedback != (grade_then.feedback_digest if grade_then else ""):
                changed.append(ContentSlot(row_id, "feedback", feedback))
    return changed


def _digest(part: ContentPart, fields: dict[str, ContentValue]) -> str:
    return content_digest(*(fields[name] for name in PART_FIELDS[part]))


class ContentRestore(OutputModel):
    """On ``progress.snapshots``, keyed by user_id, behind the learner's rows (sent by
    ``progress resnapshot``): the content of one piece of a row, as the learner's state at
    ``version`` holds it.

    The sink writes ``fields`` into the row with this ``id`` and ``user_id`` if the row is
    at ``version`` (the rows just sent, or rows restored from a backup that the rows just
    sent moved there), or at a newer version with the part still empty (the worker sent the
    row again meanwhile without its content, which the row then had not); a newer row with
    content has newer content, and is left as it is.
    """

    kind: Literal["content"] = "content"
    user_id: str
    version: int
    table: ContentTable
    id: str
    part: ContentPart
    fields: dict[str, ContentValue]

    @model_validator(mode="after")
    def _fields_of_the_part(self) -> Self:
        _check_fields(self.table, self.part, self.fields)
        return self

    @classmethod
    def of(cls, record: ContentRecord, version: int) -> ContentRestore:
        return cls(
            user_id=record.user_id,
            version=version,
            table=record.table,
            id=record.id,
            part=record.part,
            fields=record.fields,
        )


def restores(
    slots: dict[str, tuple[str, int, str]], record: ContentRecord
) -> ContentRestore | None:
    """The restore a content record makes, given what the learners' states hold: ``slots``
    maps each key to (user_id, the state's version, the piece's digest). None when the
    states hold other content for it (or none): the record is outdated or erased."""
    held = slots.get(record.key)
    if held is None:
        return None
    user_id, version, digest = held
    if user_id != record.user_id or digest != record.digest or not digest:
        return None
    return ContentRestore.of(record, version)
