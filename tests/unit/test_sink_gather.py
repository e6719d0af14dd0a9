"""The sink's one pass over a batch (``sinks.postgres.gather``) against the plain definitions
it fuses: the newest row per id over ``Snapshot.rows()``, the highest row version per
learner, the courses of the rows that carry one. Pure, no I/O."""

from __future__ import annotations

from bench.seeding import batches, interleaved, learner_snapshots
from progress.models import ALL_ROW_MODELS, CourseProgress, Row, VersionedRow
from progress.snapshots import _ROW_GROUPS, Snapshot, newest_row
from sinks.history import daily_rows, day_of, other_days
from sinks.postgres import _GROUPS, gather


def reference(
    snapshots: list[Snapshot],
) -> tuple[dict[type[Row], list[Row]], dict[str, int], set[str]]:
    newest: dict[type[Row], dict[str, VersionedRow]] = {}
    versions: dict[str, int] = {}
    courses: set[str] = set()
    for snapshot in snapshots:
        for row in snapshot.rows():
            assert isinstance(row, VersionedRow)
            by_id = newest.setdefault(type(row), {})
            by_id[row.id] = newest_row(by_id.get(row.id), row)
            versions[row.user_id] = max(versions.get(row.user_id, -1), row.version)
            course = getattr(row, "course_id", None)
            if course is not None:
                courses.add(course)
    return {m: list(by_id.values()) for m, by_id in newest.items()}, versions, courses


def test_the_groups_are_the_snapshots_row_groups() -> None:
    assert [name for name, _, _ in _GROUPS] == list(_ROW_GROUPS)
    for name, model, in_course in _GROUPS:
        assert Snapshot.model_fields[name].annotation == tuple[model, ...]  # type: ignore[valid-type]
        assert in_course == ("course_id" in model.model_fields)
        assert model in ALL_ROW_MODELS


def test_gather_equals_the_separate_definitions_on_derived_batches() -> None:
    snapshots = interleaved(learner_snapshots(40, seed=11))
    # Small batches hold several snapshots of a learner: rows replaced within the batch.
    replaced = 0
    for batch in batches(snapshots, 150):
        chunk = list(batch)
        gathered = gather(chunk)
        grouped, versions, courses = reference(chunk)
        assert gathered.grouped == grouped
        replaced += sum(len(s.rows()) for s in chunk) - sum(map(len, grouped.values()))
        assert gathered.versions == versions
        assert gathered.courses == courses
    # The case that needs newest_row: a learner's row offered again in the same batch.
    assert replaced > 0


def test_the_kept_rows_and_the_other_days_are_the_daily_rows() -> None:
    """The history a batch writes: its course_progress rows from the staging table (the
    newest per id) and ``other_days`` as parameters, together ``daily_rows``."""
    snapshots = interleaved(learner_snapshots(40, seed=11))
    spans = 0
    for batch in batches(snapshots, 150):
        chunk = list(batch)
        kept = gather(chunk).grouped.get(CourseProgress, [])
        others = other_days(chunk, {row.id: row for row in kept})
        spans += len(others)
        written = {(row.user_id, row.course_id, day_of(row)): row for row in [*kept, *others]}
        assert len(written) == len(kept) + len(others)
        assert [written[key] for key in sorted(written)] == daily_rows(chunk)
    # Learner-courses whose rows in one batch fall on two days: the case other_days is for.
    assert spans > 0
