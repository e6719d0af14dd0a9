"""Migration 009 in the real PostgreSQL: the course views' indexes on module_progress and
lesson_progress leave ``status`` out, so an update that changes a row's status is HOT (it
writes no index entry), and the funnel's queries still read a course through an index."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from psycopg_pool import AsyncConnectionPool

pytestmark = pytest.mark.integration

# Every column an index of the table depends on: keys, INCLUDE columns, expressions and
# predicates (HOT needs none of them to change).
_INDEXED = (
    "select i.indexrelid::regclass::text, a.attname from pg_index i"
    " join pg_attribute a on a.attrelid = i.indrelid and a.attnum > 0"
    " where i.indrelid = %s::regclass and (a.attnum = any(i.indkey::int2[])"
    "  or pg_get_expr(i.indexprs, i.indrelid) ~ ('\\m' || a.attname || '\\M')"
    "  or pg_get_expr(i.indpred, i.indrelid) ~ ('\\m' || a.attname || '\\M'))"
)


@pytest.mark.parametrize("table", ["module_progress", "lesson_progress"])
async def test_no_index_holds_status(pg_pool: AsyncConnectionPool, table: str) -> None:
    async with pg_pool.connection() as conn:
        rows = await (await conn.execute(_INDEXED, (table,))).fetchall()
    columns = {column for _, column in rows}
    assert "status" not in columns
    # The funnel's index, by course then item.
    assert (f"{table}_course_{table.split('_')[0]}_idx", "course_id") in rows


async def test_a_lesson_status_change_is_a_hot_update(
    pg_pool: AsyncConnectionPool, new_id: Callable[[str], str]
) -> None:
    row_id, user = new_id("row"), new_id("user")
    async with pg_pool.connection() as conn, conn.transaction(force_rollback=True):
        await conn.execute(
            "insert into lesson_progress (id, user_id, version, course_id, module_id, lesson_id,"
            " status, percent_complete, time_spent, last_position, completion_criteria,"
            " created_at, updated_at) values (%s, %s, 1, 'c1', 'm1', 'l1', 'in-progress', 50,"
            " 10, 5, 'completion-event', now(), now())",
            (row_id, user),
        )
        # The transaction's own counters: read synchronously, unlike pg_stat_user_tables.
        counters = (
            "select pg_stat_get_xact_tuples_updated('lesson_progress'::regclass),"
            " pg_stat_get_xact_tuples_hot_updated('lesson_progress'::regclass)"
        )
        before = await (await conn.execute(counters)).fetchone()
        await conn.execute(
            "update lesson_progress set status = 'completed', version = 2,"
            " percent_complete = 100, completed_at = now() where id = %s",
            (row_id,),
        )
        after = await (await conn.execute(counters)).fetchone()
    assert before is not None and after is not None
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
