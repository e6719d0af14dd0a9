"""The learner index of each partition: its learners, and the members of each course in it,
which a course or catalog change re-derives (the ``indexes`` table).

Each is kept in ``LEARNER_INDEX_SHARDS`` lists, by a hash of the user id, so that adding one
rewrites a small list: a course's whole member list would pass Kafka's 1 MB record limit at
some 50,000 members per partition. Keys: ``<partition>/members/<course_id>/<shard>`` and
``<partition>/learners/<shard>``. Member lists written before the index was sharded
(``<partition>/members/<course_id>``) are read too, and not rewritten.
"""

from __future__ import annotations

import zlib
from typing import Any

from faust.types import TableT

from streams.tables import partition_key, write

LEARNER_INDEX_SHARDS = 64


def _shard(user_id: str) -> str:
    return str(zlib.crc32(user_id.encode()) % LEARNER_INDEX_SHARDS)


def _member_shard(course_id: str, user_id: str) -> str:
    return f"{course_id}/{_shard(user_id)}"


class LearnerIndex:
    def __init__(self, indexes: TableT[str, Any]) -> None:
        self.table = indexes
        # Lists confirmed to hold a learner, by key: adding them again reads nothing. Dropped
        # when partitions move (``forget``), since another worker may change them meanwhile.
        self._indexed: dict[str, set[str]] = {}

    def forget(self) -> None:
        self._indexed.clear()

    def add_learner(self, p: int, user_id: str) -> None:
        self._add(p, "learners", _shard(user_id), user_id)

    def add_member(self, p: int, course_id: str, user_id: str) -> None:
        self._add(p, "members", _member_shard(course_id, user_id), user_id)

    def remove(self, p: int, user_id: str, course_ids: Any) -> None:
        """Take the learner out of every list: of its courses (sharded, and unsharded if
        any) and of the partition's learners."""
        for course_id in course_ids:
            self._remove(p, "members", _member_shard(course_id, user_id), user_id)
            self._remove(p, "members", course_id, user_id)  # an unsharded list, if any
        self._remove(p, "learners", _shard(user_id), user_id)

    def members(self, p: int, course_id: str) -> list[str]:
        """The course's learners in this partition, sorted."""
        shards = [self._list(p, "members", f"{course_id}/{s}") for s in range(LEARNER_INDEX_SHARDS)]
        return sorted(
            {u for shard in shards for u in shard}.union(self._list(p, "members", course_id))
        )

    def learners(self, p: int) -> list[str]:
        """Every learner of this partition, sorted."""
        shards = (self._list(p, "learners", str(s)) for s in range(LEARNER_INDEX_SHARDS))
        return sorted({u for shard in shards for u in shard})

    def _list(self, p: int, index: str, name: str) -> list[str]:
        found: list[str] = self.table.get(partition_key(p, f"{index}/{name}")) or []
        return found

    def _remove(self, p: int, index: str, name: str, user_id: str) -> None:
        key = partition_key(p, f"{index}/{name}")
        listed = self._list(p, index, name)
        if user_id in listed:
            write(self.table, key, [u for u in listed if u != user_id])
        self._indexed.pop(key, None)

    def _add(self, p: int, index: str, name: str, user_id: str) -> None:
        key = partition_key(p, f"{index}/{name}")
        cached = self._indexed.get(key)
        if cached is not None and user_id in cached:
            return
        listed = set(self._list(p, index, name))
        if user_id not in listed:
            listed.add(user_id)
            write(self.table, key, sorted(listed))
        self._indexed[key] = listed
