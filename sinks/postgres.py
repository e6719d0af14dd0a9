"""The snapshot writer: a batch of snapshots into PostgreSQL, in one transaction, idempotently.

Contract: a row is written only if it is newer than the stored one (a higher ``version`` for
per-learner rows, a later ``updated_at`` for catalog rows); an older or equal row is a no-op.
So redelivery, replay and two sinks overlapping during a rebalance all converge on the
newest rows, and the order in which batches arrive does not matter.

Batching: ``cursor.executemany`` of one fixed ``INSERT ... ON CONFLICT`` statement per table.
psycopg 3 runs it in pipeline mode (all rows sent without waiting for each answer) and
prepares the statement once, so a table costs about one round trip per batch. It adapts every
column type the same way a single execute would (``text[]``, NULL timestamps), needs no
parameter-count chunking, and keeps the SQL text constant per table; unnest() would need one
array per column and cannot carry the ``text[]`` column as rows of arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from psycopg import AsyncConnection, sql

from progress.models import (
    ALL_ROW_MODELS,
    CourseProgress,
    ModuleProgress,
    Row,
    UserCompetency,
    VersionedRow,
)
from progress.snapshots import Snapshot

# Model fields that are not columns: evidence rows are written to their own table.
_NOT_COLUMNS: dict[type[Row], frozenset[str]] = {UserCompetency: frozenset({"evidence"})}


def table_columns(model: type[Row]) -> tuple[str, ...]:
    """The columns a model's table has in common with the model, in field order."""
    skip = _NOT_COLUMNS.get(model, frozenset())
    return tuple(name for name in model.model_fields if name not in skip)


@dataclass(frozen=True, slots=True)
class _Upsert:
    columns: tuple[str, ...]
    statement: sql.Composed


def _build_upsert(model: type[Row]) -> _Upsert:
    columns = table_columns(model)
    table = sql.Identifier(model.table)
    # Per-learner rows order by the learner's version; catalog rows by their updated_at.
    guard = sql.Identifier("version" if issubclass(model, VersionedRow) else "updated_at")
    updates: list[sql.Composable] = [
        sql.SQL("{col} = excluded.{col}").format(col=sql.Identifier(column))
        for column in columns
        if column != "id"
    ]
    updates.append(sql.SQL("synced_at = now()"))
    statement = sql.SQL(
        "insert into {table} ({columns}) values ({values})"
        " on conflict (id) do update set {updates}"
        " where {table}.{guard} < excluded.{guard}"
    ).format(
        table=table,
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        updates=sql.SQL(", ").join(updates),
        guard=guard,
    )
    return _Upsert(columns=columns, statement=statement)


# Built once per table, from the models: pure data, no connection involved.
_UPSERTS: Mapping[type[Row], _Upsert] = MappingProxyType(
    {model: _build_upsert(model) for model in ALL_ROW_MODELS}
)


def _is_newer(row: Row, than: Row) -> bool:
    if isinstance(row, VersionedRow) and isinstance(than, VersionedRow):
        return row.version > than.version
    # Catalog rows have no version; every model has updated_at.
    row_time: datetime = getattr(row, "updated_at")  # noqa: B009
    than_time: datetime = getattr(than, "updated_at")  # noqa: B009
    return row_time > than_time


def coalesce(snapshots: Iterable[Snapshot]) -> dict[type[Row], list[Row]]:
    """The newest row per (table, id) across the snapshots, grouped by model.

    On a tie the first one seen is kept, as PostgreSQL keeps the stored row on a tie.
    """
    newest: dict[tuple[type[Row], str], Row] = {}
    for snapshot in snapshots:
        for row in snapshot.rows():
            key = (type(row), row.id)
            kept = newest.get(key)
            if kept is None or _is_newer(row, kept):
                newest[key] = row
    grouped: dict[type[Row], list[Row]] = {}
    for (model, _), row in newest.items():
        grouped.setdefault(model, []).append(row)
    return grouped


def learner_versions(snapshots: Iterable[Snapshot]) -> dict[str, int]:
    """The highest version offered per learner: what the cache must advance to."""
    versions: dict[str, int] = {}
    for snapshot in snapshots:
        for row in snapshot.rows():
            if isinstance(row, VersionedRow) and row.version > versions.get(row.user_id, -1):
                versions[row.user_id] = row.version
    return versions


def _params(columns: Sequence[str], row: Row) -> tuple[Any, ...]:
    return tuple(getattr(row, column) for column in columns)


async def write_snapshots(conn: AsyncConnection, snapshots: list[Snapshot]) -> dict[str, int]:
    """Write the snapshots' rows in one transaction; return the highest version per user_id.

    Rows that lose to the stored ones are skipped by the database, and their learners are
    still listed: advancing the cache to a version it already holds is a no-op.
    """
    grouped = coalesce(snapshots)
    if not grouped:
        return {}
    async with conn.transaction(), conn.cursor() as cursor:
        # A fixed table order and sorted ids: two sinks overlapping during a rebalance lock
        # rows in the same order and cannot deadlock each other.
        for model in ALL_ROW_MODELS:
            rows = grouped.get(model)
            if not rows:
                continue
            upsert = _UPSERTS[model]
            rows.sort(key=lambda row: row.id)
            await cursor.executemany(
                upsert.statement, [_params(upsert.columns, row) for row in rows]
            )
        retired = _retired_modules(grouped)
        if retired:
            await cursor.executemany(_RETIRE_MODULES, retired)
    return learner_versions(snapshots)


# A snapshot with a course row carries every module of the course's current structure, so
# module rows of that learner and course that it does not carry were removed from the course.
_RETIRE_MODULES = sql.SQL(
    "delete from module_progress"
    " where user_id = %s and course_id = %s and version < %s and not (module_id = any(%s))"
)


def _retired_modules(grouped: Mapping[type[Row], list[Row]]) -> list[tuple[Any, ...]]:
    """Parameters of ``_RETIRE_MODULES``: one per course row, with its current module ids."""
    current: dict[tuple[str, str, int], list[str]] = {
        (row.user_id, row.course_id, row.version): []
        for row in grouped.get(CourseProgress, [])
        if isinstance(row, CourseProgress)
    }
    for row in grouped.get(ModuleProgress, []):
        if isinstance(row, ModuleProgress):
            current.get((row.user_id, row.course_id, row.version), []).append(row.module_id)
    return [(*key, modules) for key, modules in current.items()]
