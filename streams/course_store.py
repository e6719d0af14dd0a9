"""Course structures as each partition holds them (the ``courses`` table, keyed
``<partition>/<course_id>``), parsed once: each learner event reads its course's."""

from __future__ import annotations

from typing import Any

from faust.types import TableT

from progress.state import KnownCourse
from streams.tables import partition_key, write


class CourseStore:
    def __init__(self, courses: TableT[str, Any]) -> None:
        self.table = courses
        # Parsed courses by table key; dropped when partitions move (``forget``), since
        # another worker may change them meanwhile.
        self._courses: dict[str, KnownCourse | None] = {}

    def forget(self) -> None:
        self._courses.clear()

    def known(self, p: int, course_id: str) -> KnownCourse | None:
        key = partition_key(p, course_id)
        if key in self._courses:
            return self._courses[key]
        raw = self.table.get(key)
        known = KnownCourse.model_validate(raw) if raw else None
        if known is not None:
            # Unknown courses are not remembered: the entry a CourseUpdated writes is.
            self._courses[key] = known
        return known

    def store(self, p: int, course_id: str, known: KnownCourse, value: dict[str, Any]) -> None:
        """Store the course as ``value`` (``known``, JSON-able, within a record's limit)."""
        key = partition_key(p, course_id)
        write(self.table, key, value)
        self._courses[key] = known
