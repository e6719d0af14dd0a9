"""Incremental derivation sends only the rows an event changed; the reference sends them all.

Equality of the two over whole logs is the oracle properties' (``reference_problems`` in
tests/unit/test_oracle_core.py); these pin what a partial snapshot holds and how sets are
declared whole.
"""

from __future__ import annotations

from progress.snapshots import Snapshot, merge
from tests.unit.test_oracle_core import course, enroll, lesson, run_core

TWO_MODULES = [
    {"id": "m1", "lessons": [{"id": "l1"}]},
    {"id": "m2", "lessons": [{"id": "l2"}, {"id": "l3"}]},
]
ARRIVALS = [
    course(-60, TWO_MODULES),
    enroll(0),
    lesson("LessonCompleted", 10),
    lesson("LessonCompleted", 20, lesson_id="l2", module_id="m2"),
]


def test_an_activity_sends_its_item_its_module_and_its_course_only() -> None:
    last = run_core(ARRIVALS).snapshots[-1]
    assert [row.lesson_id for row in last.lesson_progress] == ["l2"]
    assert [row.module_id for row in last.module_progress] == ["m2"]
    assert [row.percent_complete for row in last.course_progress] == [66.67]
    assert (last.whole_modules, last.whole_learner_wide) == ({}, 0)


def test_the_reference_sends_every_module_and_every_set_whole() -> None:
    last = run_core(ARRIVALS, incremental=False).snapshots[-1]
    assert [row.module_id for row in last.module_progress] == ["m1", "m2"]
    assert (last.whole_modules, last.whole_learner_wide) == ({"c1": last.version}, last.version)


def test_an_enrollment_and_a_structure_change_send_the_modules_whole() -> None:
    core = run_core([*ARRIVALS, course(30, TWO_MODULES[:1])])
    enrolled, changed = core.snapshots[0], core.snapshots[-1]  # the course alone: none
    assert enrolled.whole_modules == {"c1": enrolled.version}
    assert changed.whole_modules == {"c1": changed.version}
    assert [row.module_id for row in changed.module_progress] == ["m1"]
    assert sorted(key[1] for key in core.rows if key[0] == "module_progress") == [
        next(row.id for row in changed.module_progress)
    ]


def test_a_repeated_event_sends_every_row_again() -> None:
    # Unchanged, the state is the one a crash may have kept without its rows.
    core = run_core([*ARRIVALS, ARRIVALS[-1]])
    again = core.snapshots[-1]
    assert again.version == core.snapshots[-2].version
    assert [row.module_id for row in again.module_progress] == ["m1", "m2"]
    assert again.whole_modules == {"c1": again.version}
    assert again.whole_learner_wide == again.version


def test_a_merge_keeps_each_set_whole_at_the_newest_version_any_part_had_it() -> None:
    snapshots = run_core(ARRIVALS).snapshots  # the enrollment's whole, then partial ones
    merged = merge(snapshots)
    assert merged.whole_modules == {"c1": snapshots[0].version}
    assert merged.whole_learner_wide == snapshots[0].version
    assert sorted(row.module_id for row in merged.module_progress) == ["m1", "m2"]


def test_a_snapshot_that_does_not_say_carries_its_sets_whole() -> None:
    # Written before partial snapshots: the sink reads it as it did then.
    sent = run_core(ARRIVALS, incremental=False).snapshots[-1]
    data = sent.model_dump(mode="json", exclude={"whole_modules", "whole_learner_wide"})
    old = Snapshot.model_validate_json(Snapshot.model_validate(data).model_dump_json())
    read = Snapshot.model_validate(data)
    assert read.whole_modules == {"c1": sent.version} == old.whole_modules
    assert read.whole_learner_wide == sent.version
