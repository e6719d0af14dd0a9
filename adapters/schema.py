"""The PostgreSQL schema: its migrations, and the columns each row model has in it.

Migrations: ``adapters/migrations/NNN_name.sql``, applied in order, each exactly once.

Every process that writes or reads PostgreSQL may call ``apply_migrations`` at start. Each
migration runs in its own transaction holding a transaction-level advisory lock, so two
processes starting together apply it once: the second waits, then sees it recorded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from adapters.errors import AdapterError
from progress.catalog import LearningPathRow
from progress.models import Row, UserCompetency

log = logging.getLogger(__name__)

# Any constant works as long as every process uses the same one: "lmsprogr" in ASCII.
_LOCK_KEY = 0x6C6D7370726F6772
_FILE_NAME = re.compile(r"^(\d{3})_[A-Za-z0-9_]+\.sql$")


class MigrationError(AdapterError):
    """The migration files themselves are inconsistent (not a database failure)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: bytes


def load_migrations() -> list[Migration]:
    """The packaged migration files, in version order."""
    found: dict[str, Migration] = {}
    for entry in (files("adapters") / "migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is None:
            continue
        version = match.group(1)
        if version in found:
            raise MigrationError(
                f"two migrations share version {version}: {found[version].name}, {entry.name}"
            )
        found[version] = Migration(version=version, name=entry.name, sql=entry.read_bytes())
    return [found[version] for version in sorted(found)]


async def apply_migrations(target: AsyncConnection | AsyncConnectionPool) -> list[str]:
    """Apply the pending migrations; return the versions this call applied."""
    if isinstance(target, AsyncConnectionPool):
        async with target.connection() as conn:
            return await _apply_all(conn)
    return await _apply_all(target)


async def _apply_all(conn: AsyncConnection) -> list[str]:
    applied: list[str] = []
    for migration in load_migrations():
        if await _apply_one(conn, migration):
            applied.append(migration.version)
            log.info("applied migration %s", migration.name)
    return applied


async def _apply_one(conn: AsyncConnection, migration: Migration) -> bool:
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        # Created under the lock: two concurrent "create table if not exists" can still
        # collide on the catalog's unique indexes.
        await conn.execute(
            "create table if not exists schema_migrations ("
            " version text primary key,"
            " applied_at timestamptz not null default now())"
        )
        cursor = await conn.execute(
            "select 1 from schema_migrations where version = %s", (migration.version,)
        )
        if await cursor.fetchone() is not None:
            return False
        # No parameters, so psycopg sends the file as one simple query: several statements.
        await conn.execute(migration.sql)
        await conn.execute(
            "insert into schema_migrations (version) values (%s)", (migration.version,)
        )
        return True


# Model fields that are not columns: evidence rows are written to their own table.
_NOT_COLUMNS: dict[type[Any], frozenset[str]] = {UserCompetency: frozenset({"evidence"})}


def table_columns(model: type[Row] | type[LearningPathRow]) -> tuple[str, ...]:
    """The columns a model's table has in common with the model, in field order."""
    skip = _NOT_COLUMNS.get(model, frozenset())
    return tuple(name for name in model.model_fields if name not in skip)
