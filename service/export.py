"""``progress export <user_id>``: every row PostgreSQL holds of a learner, as the JSON that
``GET /admin/learners/{user_id}/export`` answers (``adapters.learner_export``)."""

from __future__ import annotations

from typing import Any

import psycopg

from adapters.learner_export import learner_rows
from adapters.settings import Settings
from service.errors import ServiceError, Unreachable


class UnknownLearner(ServiceError):
    """No table holds a row of the learner."""


async def export_learner(settings: Settings, user_id: str) -> dict[str, Any]:
    """The export of ``user_id``: ``{"user_id", "tables": {table: [row, ...]}}``.
    ``UnknownLearner`` if no table holds the learner, ``Unreachable`` if PostgreSQL does
    not answer."""
    try:
        conn = await psycopg.AsyncConnection.connect(
            settings.database_url,
            connect_timeout=max(2, round(settings.pg_connection_timeout_seconds)),
        )
    except psycopg.OperationalError as exc:
        raise Unreachable(f"PostgreSQL is not reachable: {_first_line(exc)}") from None
    try:
        async with conn:
            tables = await learner_rows(conn, user_id)
    except psycopg.OperationalError as exc:
        raise Unreachable(f"PostgreSQL failed: {_first_line(exc)}") from None
    if tables is None:
        raise UnknownLearner(f"no data of learner {user_id}")
    return {"user_id": user_id, "tables": tables}


def _first_line(exc: Exception) -> str:
    # psycopg's connection errors run over several lines (one per address tried).
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
