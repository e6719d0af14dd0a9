"""The snapshot: what the worker hands the sink after processing events for one learner.

One message on ``progress.snapshots``, keyed by user_id, carrying every row the event
changed, at the learner's state ``version``. The sink writes them in one transaction, so
PostgreSQL never shows half of an event's effect. A row left out is as it was.

Sets: a course's module rows, and the learner's paths, competencies and evidence, lose rows
(a module dropped from the course, a path that lost the learner's courses, evidence
withdrawn). A snapshot carries such a set either whole, declaring it with the version
(``whole_modules``, ``whole_learner_wide``), and the sink removes the set's rows older than
that version; or partially, only the rows that changed, and then none of the set was removed.
A snapshot that does not say (older workers' snapshots) carries every set whole.

The worker sends one snapshot per learner and batch of events: ``merge`` of the snapshots of
the learner's events, in order. A merged snapshot holds each row at the newest version any of
them had it, so its rows can be older than its ``version``, never newer; written, it leaves
PostgreSQL as the snapshots it merges would have (see ``merge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Self, TypeVar

from pydantic import Field, model_validator

from progress.errors import DomainError
from progress.models import (
    AssignmentSubmission,
    CourseProgress,
    LearningPathProgress,
    LessonProgress,
    ModuleProgress,
    QuizAttempt,
    QuizQuestionResponse,
    Row,
    UserAchievement,
    UserCompetency,
    UserProgress,
    VersionedRow,
    fill_unchanged,
)
from progress.schema import OutputModel


class MixedLearners(DomainError):
    """Snapshots of different learners were given to one ``merge``."""


class Snapshot(OutputModel):
    user_id: str
    version: int
    # Always present: its version is the learner's, which the API's cache is keyed on.
    user_progress: UserProgress
    course_progress: tuple[CourseProgress, ...] = ()
    module_progress: tuple[ModuleProgress, ...] = ()
    lesson_progress: tuple[LessonProgress, ...] = ()
    quiz_attempts: tuple[QuizAttempt, ...] = ()
    quiz_question_responses: tuple[QuizQuestionResponse, ...] = ()
    assignment_submissions: tuple[AssignmentSubmission, ...] = ()
    learning_path_progress: tuple[LearningPathProgress, ...] = ()
    user_competencies: tuple[UserCompetency, ...] = ()
    user_achievements: tuple[UserAchievement, ...] = ()
    # Which sets the snapshot carries whole, each at a version: a course's module rows (by
    # course id), the learner's paths, competencies and evidence (0: not whole). The sink
    # removes the rows of a whole set older than its version (module docstring).
    whole_modules: dict[str, int] = Field(default_factory=dict)
    whole_learner_wide: int = 0

    @model_validator(mode="before")
    @classmethod
    def _whole_by_default(cls, data: Any) -> Any:
        # A snapshot that does not say (one written before partial snapshots, or built by
        # hand) carries every set whole, at its parent row's version, as every snapshot did.
        if isinstance(data, dict) and (
            "whole_modules" not in data or "whole_learner_wide" not in data
        ):
            data = dict(data)
            if "whole_modules" not in data:
                data["whole_modules"] = {
                    _field(row, "course_id"): _field(row, "version")
                    for row in data.get("course_progress", ())
                }
            if "whole_learner_wide" not in data and data.get("user_progress") is not None:
                data["whole_learner_wide"] = _field(data["user_progress"], "version")
        return data

    @model_validator(mode="after")
    def _rows_are_the_learners(self) -> Self:
        # At the snapshot's version, or older in a merged snapshot (module docstring).
        for row in self.rows():
            if isinstance(row, VersionedRow) and (
                row.user_id != self.user_id or row.version > self.version
            ):
                raise ValueError(
                    f"{row.table} row {row.id} is for {row.user_id}@{row.version}, "
                    f"not {self.user_id}@{self.version} or older"
                )
        return self

    def rows(self) -> list[Row]:
        """Every row in the snapshot, user_progress first; evidence travels inside its
        UserCompetency and is listed after it."""
        out: list[Row] = [self.user_progress]
        for name in _ROW_GROUPS:
            out.extend(getattr(self, name))
        for competency in self.user_competencies:
            out.extend(competency.evidence)
        return out


def _field(row: Any, name: str) -> Any:
    """A field of a row given as a model or as its JSON's dict."""
    return row[name] if isinstance(row, dict) else getattr(row, name)


VersionedRowT = TypeVar("VersionedRowT", bound=VersionedRow)


def newest_row(kept: VersionedRowT | None, row: VersionedRowT) -> VersionedRowT:
    """Which of two offers of one row to keep: ``kept``, offered first (None: none was), or
    ``row``, offered after it. The newer version wins, ``kept`` on equal versions, as
    PostgreSQL keeps the stored row on a tie; the winner's ``unchanged`` fields left None
    are taken from the other (``models.fill_unchanged``), as the sink keeps a stored value.

    The one rule for "newest version wins": ``merge`` and the sink's ``coalesce`` both keep
    rows by it, so a merged snapshot writes what its parts would.
    """
    if kept is None:
        return row
    if row.version > kept.version:
        # Checking ``unchanged`` first saves a call for the rows that have none.
        return fill_unchanged(row, kept) if row.unchanged else row
    if row.version == kept.version and row.unchanged:
        return fill_unchanged(kept, row)
    return kept


# The fields of a snapshot that hold rows, each a set keyed by row id.
_ROW_GROUPS = (
    "course_progress",
    "module_progress",
    "lesson_progress",
    "quiz_attempts",
    "quiz_question_responses",
    "assignment_submissions",
    "learning_path_progress",
    "user_competencies",
    "user_achievements",
)


def merge(snapshots: Sequence[Snapshot]) -> Snapshot:
    """One snapshot for a learner's snapshots, given in the order they were made.

    Each row is kept at the newest version any of them has it, the first of equal versions
    (``newest_row``, the sink's rule too), so the rows the sink writes are the same.
    The sets the sink removes rows of (a course's modules, the learner-wide paths,
    competencies and evidence: ``whole_modules``, ``whole_learner_wide``) come out the same
    too: each set is whole at the newest version any of the snapshots has it whole, and the
    rows of the set that snapshot left out are older than that, in the merge as in the
    snapshots apart, so they are removed as they would have been. A competency row carries
    its evidence, which therefore goes with the newest competency row.
    """
    if len(snapshots) == 1:
        return snapshots[0]
    first = snapshots[0]
    groups: dict[str, dict[str, Any]] = {name: {} for name in _ROW_GROUPS}
    user_progress = first.user_progress
    version = first.version
    whole_modules: dict[str, int] = {}
    whole_learner_wide = 0
    for snapshot in snapshots:
        if snapshot.user_id != first.user_id:
            raise MixedLearners(f"cannot merge snapshots of {first.user_id} and {snapshot.user_id}")
        version = max(version, snapshot.version)
        user_progress = newest_row(user_progress, snapshot.user_progress)
        for name in _ROW_GROUPS:
            kept = groups[name]
            for row in getattr(snapshot, name):
                kept[row.id] = newest_row(kept.get(row.id), row)
        for course_id, at in snapshot.whole_modules.items():
            whole_modules[course_id] = max(at, whole_modules.get(course_id, 0))
        whole_learner_wide = max(whole_learner_wide, snapshot.whole_learner_wide)
    return Snapshot(
        user_id=first.user_id,
        version=version,
        user_progress=user_progress,
        whole_modules=whole_modules,
        whole_learner_wide=whole_learner_wide,
        **{name: tuple(rows.values()) for name, rows in groups.items()},
    )


def merge_within(snapshots: Sequence[Snapshot], max_bytes: int) -> list[bytes]:
    """The snapshots, given in the order they were made, merged and encoded as messages of at
    most ``max_bytes`` each where the snapshots allow it: one, as ``merge``, if it fits;
    else merged by consecutive runs. Bulky content travels only in the snapshot of its event,
    so a batch of a learner's bulky events can pass the limit merged and not apart.

    Written in order, the runs leave PostgreSQL as the one merge would (``merge``). A run's
    merge is never larger than its snapshots apart, so a snapshot over the limit on its own
    is the only message over it.
    """
    whole = merge(snapshots).model_dump_json().encode()
    if len(whole) <= max_bytes or len(snapshots) == 1:
        return [whole]
    messages: list[bytes] = []
    run: list[tuple[Snapshot, bytes]] = []
    size = 0
    for snapshot in snapshots:
        encoded = snapshot.model_dump_json().encode()
        if run and size + len(encoded) > max_bytes:
            messages.append(_encoded_run(run))
            run, size = [], 0
        run.append((snapshot, encoded))
        size += len(encoded)
    messages.append(_encoded_run(run))
    return messages


def _encoded_run(run: list[tuple[Snapshot, bytes]]) -> bytes:
    if len(run) == 1:
        return run[0][1]
    return merge([snapshot for snapshot, _ in run]).model_dump_json().encode()


class Erasure(OutputModel):
    """On ``progress.snapshots`` keyed by user_id: delete every row of this learner, in
    order with the learner's snapshots (same key, same partition)."""

    kind: Literal["erasure"] = "erasure"
    user_id: str
    erased_at: datetime
