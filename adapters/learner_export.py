"""A learner's data as PostgreSQL holds it, for an access request: every row of every table
with a ``user_id`` column, each row whole (all its columns), grouped by table.

The tables are found in the database's own catalog, not listed here, so a table added by a
later migration is exported without a change to this module: an access request answers for
what is stored, whatever the code knows of it. All tables are read in one REPEATABLE READ
transaction, so the export is one consistent picture even while the sink writes.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

# Tables in the connection's schema (``current_schema()``) with a user_id column.
_TABLES = """
    select c.table_name
    from information_schema.columns c
    join information_schema.tables t
      on t.table_schema = c.table_schema and t.table_name = c.table_name
    where c.table_schema = current_schema() and c.column_name = 'user_id'
      and t.table_type = 'BASE TABLE'
    order by c.table_name
"""


async def learner_rows(
    conn: AsyncConnection[Any], user_id: str
) -> dict[str, list[dict[str, Any]]] | None:
    """Every table with a user_id column, by name, with the learner's rows ordered by id
    (an empty list where it has none); None when no table holds a row of the learner."""
    out: dict[str, list[dict[str, Any]]] = {}
    async with conn.transaction():
        await conn.execute("set transaction isolation level repeatable read, read only")
        async with conn.cursor() as cursor:
            await cursor.execute(_TABLES)
            tables = [row[0] for row in await cursor.fetchall()]
        async with conn.cursor(row_factory=dict_row) as cursor:
            for table in tables:
                # Ordered by every column's first: ``id`` where there is one.
                await cursor.execute(
                    sql.SQL("select * from {table} where user_id = %s order by 1").format(
                        table=sql.Identifier(table)
                    ),
                    (user_id,),
                )
                out[table] = list(await cursor.fetchall())
    if not any(out.values()):
        return None
    return out
