"""Catalog entries as each partition holds them (the ``catalog`` table), and the parsed
``Catalog`` the learner rules read.

Every partition keeps its own copy of every entry, one table key each:
``<partition>/<kind>/<id>`` (``kind``: the entry's ``CatalogEntry.kind``). An earlier worker
kept one record per kind (``<partition>/<kind>``); its entries are read too, and split into
keys of their own on the next write of that kind.
"""

from __future__ import annotations

from typing import Any

from faust.types import TableT

from progress.catalog import (
    AchievementUpdated,
    CatalogEntry,
    CompetencyUpdated,
    LearningPathUpdated,
)
from progress.learner_rules import Catalog
from streams.tables import delete, partition_key, write


class CatalogStore:
    def __init__(self, catalog: TableT[str, Any]) -> None:
        self.table = catalog
        # Parsed catalogs per partition; dropped on a write and when partitions move
        # (``forget``), since another worker may change them meanwhile.
        self._catalogs: dict[int, Catalog] = {}

    def forget(self) -> None:
        self._catalogs.clear()

    def held(self, p: int, entry: CatalogEntry) -> dict[str, Any] | None:
        """The stored entry of ``entry``'s kind and id, as stored."""
        return self.stored_entries(p, entry.kind).get(entry.id)

    def write(self, p: int, entry: CatalogEntry, value: dict[str, Any]) -> None:
        """Store ``value`` (the entry, JSON-able) as the partition's entry of its id."""
        self._migrate(p, entry.kind)
        write(self.table, partition_key(p, f"{entry.kind}/{entry.id}"), value)
        self._catalogs.pop(p, None)

    def catalog(self, p: int) -> Catalog:
        """The partition's entries, deleted ones left out, parsed once until changed."""
        cached = self._catalogs.get(p)
        if cached is None:
            cached = Catalog(
                learning_paths=self._entries(p, LearningPathUpdated),
                competencies=self._entries(p, CompetencyUpdated),
                achievements=self._entries(p, AchievementUpdated),
            )
            self._catalogs[p] = cached
        return cached

    def stored_entries(self, p: int, kind: str) -> dict[str, dict[str, Any]]:
        """This partition's entries of a kind as stored, by id: one table key per entry
        (``<p>/<kind>/<id>``), and the entries of an earlier worker's one record per kind
        (``<p>/<kind>``) that have none yet."""
        entries: dict[str, dict[str, Any]] = dict(self.table.get(partition_key(p, kind)) or {})
        prefix = partition_key(p, f"{kind}/")
        for key, value in self.table.items():
            if isinstance(key, str) and key.startswith(prefix) and value:
                entries[key[len(prefix) :]] = value
        return entries

    def _migrate(self, p: int, kind: str) -> None:
        """Give each entry of an earlier worker's one record per kind a key of its own, and
        delete that record: together, entries could grow past a Kafka record's limit."""
        old_key = partition_key(p, kind)
        old: dict[str, Any] = self.table.get(old_key) or {}
        if not old:
            return
        stored = self.stored_entries(p, kind)
        for entry_id in old:
            write(self.table, partition_key(p, f"{kind}/{entry_id}"), stored[entry_id])
        delete(self.table, old_key)

    def _entries(self, p: int, model: type[Any]) -> dict[str, Any]:
        raw = self.stored_entries(p, model.kind)
        parsed = (model.model_validate(value) for value in raw.values())
        return {entry.id: entry for entry in parsed if not entry.deleted}
