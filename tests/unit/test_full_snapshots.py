"""``progress resnapshot``'s core: the rows ``full_snapshots`` derives from a learner's state
alone are the rows the sink holds after writing every snapshot the learner's events made,
on generated worlds whose events arrive duplicated and shuffled (``tests/generators.py``).

Versions differ by design (every row at the learner's current one), and bulky content is
not in the state, so both are left out of the comparison.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from progress.models import VersionedRow
from progress.outcomes import full_snapshots
from progress.snapshots import merge
from progress.state import KnownCourse
from tests.generators import Scenario, scenarios
from tests.unit.test_oracle_core import Core, run_core


def _without_versions(value: Any) -> Any:
    """Rows nested in a row (a competency's evidence) carry versions too."""
    if isinstance(value, dict):
        return {k: _without_versions(v) for k, v in value.items() if k != "version"}
    if isinstance(value, list | tuple):
        return [_without_versions(v) for v in value]
    return value


def _comparable(row: VersionedRow) -> tuple[str, str, dict[str, Any]]:
    # A partial snapshot leaves unchanged rows at the version that last sent them.
    return row.table, row.id, _without_versions(row.model_dump(exclude=set(row.unchanged)))


def _sink_rows(core: Core, user_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    rows = [row for row in core.rows.values() if isinstance(row, VersionedRow)]
    return sorted(_comparable(row) for row in rows if row.user_id == user_id)


def _rebuilt_rows(core: Core, user_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    courses: dict[str, KnownCourse | None] = dict(core.courses)
    snapshot = merge(full_snapshots(core.learners[user_id], courses))
    rows = [row for row in snapshot.rows() if isinstance(row, VersionedRow)]
    assert {row.version for row in rows} == {core.learners[user_id].version}
    return sorted(_comparable(row) for row in rows)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_rows_of_a_state_are_the_rows_its_snapshots_left(scenario: Scenario) -> None:
    core = run_core(scenario.arrivals)
    for user_id in core.learners:
        assert _rebuilt_rows(core, user_id) == _sink_rows(core, user_id), user_id
