"""Writing restored bulky content (``progress.content.ContentRestore``, sent by ``progress
resnapshot`` behind a learner's rows) into the rows it belongs to.

A restore is an UPDATE of the part's columns of one row, of its learner, guarded as the
message's docstring says: the row at the restore's version, or at a newer one whose part is
still empty (the worker sent the row again, without its content, before the restore came).
A row not stored (not written yet, or erased) is left alone: a restore creates nothing.
Written in the batch's transaction, after the batch's rows, so a restore behind the rows of
its learner's snapshot in the same batch finds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from psycopg import AsyncCursor, sql

from progress.content import PART_FIELDS, PART_TABLES, ContentPart, ContentRestore
from progress.snapshots import Erasure

# What an empty column of each part holds (the columns are not null: sinks/postgres.py).
_EMPTY: Mapping[str, sql.Composable] = MappingProxyType(
    {"selected_options": sql.SQL("'{}'::text[]")}
)


def _restore(part: ContentPart) -> sql.Composed:
    fields = PART_FIELDS[part]
    empty = [
        sql.SQL("{col} = {empty}").format(
            col=sql.Identifier(name), empty=_EMPTY.get(name, sql.Literal(""))
        )
        for name in fields
    ]
    return sql.SQL(
        "update {table} set {values}, synced_at = now()"
        " where id = %s and user_id = %s and (version = %s or (version > %s and {empty}))"
    ).format(
        table=sql.Identifier(PART_TABLES[part]),
        values=sql.SQL(", ").join(
            sql.SQL("{col} = %s").format(col=sql.Identifier(name)) for name in fields
        ),
        empty=sql.SQL(" and ").join(empty),
    )


RESTORES: Mapping[ContentPart, sql.Composed] = MappingProxyType(
    {part: _restore(part) for part in PART_FIELDS}
)
_VERSIONS = sql.SQL("select user_id, version from user_progress where user_id = any(%s)")


def after_erasures(messages: Sequence[Any]) -> list[ContentRestore]:
    """The restores that follow their learner's last erasure in ``messages`` (in partition
    order, as a batch lists them): one before it is of rows the erasure removes."""
    last_erasure = {m.user_id: i for i, m in enumerate(messages) if isinstance(m, Erasure)}
    return [
        message
        for index, message in enumerate(messages)
        if isinstance(message, ContentRestore) and index > last_erasure.get(message.user_id, -1)
    ]


async def write_restores(cursor: AsyncCursor[Any], restores: Sequence[ContentRestore]) -> None:
    """One guarded UPDATE per restore, in table and id order (the lock order of the sink's
    other writes, so two sinks overlapping in a rebalance cannot deadlock)."""
    for restore in sorted(restores, key=lambda r: (r.table, r.id, r.part)):
        values = [restore.fields[name] for name in PART_FIELDS[restore.part]]
        params = (*values, restore.id, restore.user_id, restore.version, restore.version)
        await cursor.execute(RESTORES[restore.part], params)


async def stored_versions(
    cursor: AsyncCursor[Any], restores: Sequence[ContentRestore]
) -> dict[str, int]:
    """The stored version of each learner a restore named: the cache's mark for them
    (``adapters.cache.ProgressCache.content_restored``)."""
    users = sorted({restore.user_id for restore in restores})
    if not users:
        return {}
    await cursor.execute(_VERSIONS, (users,))
    return {str(user): int(version) for user, version in await cursor.fetchall()}
