"""Parsed learner states kept in memory, least recently used dropped first, with the size
each takes in the ``learners`` table as last known.

A learner's next event then skips the table read and the parse. What is kept is what the
table holds (written or read), so it must be dropped whenever partitions move: another
worker may change a learner meanwhile (``LearnerStream.forget_cached``).
"""

from __future__ import annotations

from collections import OrderedDict

from progress.state import LearnerState

# Bounded, since a worker's partitions can hold millions of learners; a parsed state takes
# about 12 KB (2.4 KB of JSON) in the benchmark's workload, so this is some 120 MB, and about
# 24 MB more for its courses' JSON, which ``streams.encoding_memo`` keeps while they live.
KEPT_LEARNERS = 10_000


class LearnerCache:
    def __init__(self, capacity: int = KEPT_LEARNERS) -> None:
        self._capacity = capacity
        self._kept: OrderedDict[str, LearnerState] = OrderedDict()
        # Stored sizes as last known (read, written or measured); dropped with the state.
        self._sizes: dict[str, int] = {}

    def get(self, user_id: str) -> LearnerState | None:
        kept = self._kept.get(user_id)
        if kept is not None:
            self._kept.move_to_end(user_id)
        return kept

    def keep(self, user_id: str, state: LearnerState, size: int) -> None:
        """Keep ``state``, stored in ``size`` bytes; the least recently used goes if full."""
        self._sizes[user_id] = size
        self._kept[user_id] = state
        self._kept.move_to_end(user_id)
        if len(self._kept) > self._capacity:
            gone, _ = self._kept.popitem(last=False)
            self._sizes.pop(gone, None)

    def size(self, user_id: str) -> int:
        """The learner's stored size as last known; 0 when not known."""
        return self._sizes.get(user_id, 0)

    def measured(self, user_id: str, size: int) -> None:
        self._sizes[user_id] = size

    def drop(self, user_id: str) -> None:
        self._kept.pop(user_id, None)

    def clear(self) -> None:
        self._kept.clear()
        self._sizes.clear()
