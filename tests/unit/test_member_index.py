"""The course member index of the worker (streams/indexes.py): sharded lists, and the
unsharded lists a worker wrote before, read together. Plain dicts stand in for the Faust
tables: only their get and set are used here."""

from __future__ import annotations

from typing import Any

from streams.indexes import LearnerIndex, _member_shard


def index(indexes: dict[str, Any]) -> LearnerIndex:
    return LearnerIndex(indexes)  # type: ignore[arg-type]


def test_members_are_indexed_in_small_shards_and_read_from_all_of_them() -> None:
    indexes: dict[str, Any] = {}
    learners = index(indexes)
    users = [f"u{i}" for i in range(200)]
    for user in users:
        learners.add_member(3, "c1", user)
    assert learners.members(3, "c1") == sorted(users)
    assert learners.members(2, "c1") == []
    assert all(key.startswith("3/members/c1/") for key in indexes)
    assert max(len(listed) for listed in indexes.values()) < 20  # 200 members, 64 shards


def test_an_unsharded_member_list_written_before_is_still_read() -> None:
    learners = index({"0/members/c1": ["old"], f"0/members/{_member_shard('c1', 'new')}": ["new"]})
    assert learners.members(0, "c1") == ["new", "old"]
