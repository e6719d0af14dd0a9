"""Catalogs: learning paths, competencies and achievements, defined by publishing an entry.

Each kind has a compacted topic keyed by the entry's id (``lms.learning-paths``,
``lms.competencies``, ``lms.achievements``); the newest entry by ``updated_at`` wins. A
changed entry re-evaluates the learners it affects (docs/catalogs.md). Course structure is
the fourth catalog (``CourseUpdated``, in ``events.py``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Discriminator, Field, Tag, TypeAdapter, model_validator

from progress.events import ConsumedEvent, CourseUpdated, typed_discriminator
from progress.models import Achievement, Competency
from progress.ranges import CriterionCount, Points
from progress.schema import EventTime, Id, InputModel, OutputModel, stable_id

CompetencyLevel = Literal["beginner", "intermediate", "advanced"]


class CatalogEntry(ConsumedEvent):
    kind: ClassVar[str]
    id: Id
    updated_at: EventTime
    # A deleted entry stays as a tombstone so that an older definition cannot come back.
    deleted: bool = False
    # What the model requires of every entry, tombstones included; a tombstone's values are
    # never used (the worker and the sink drop a deleted entry's definition).
    tombstone_fields: ClassVar[dict[str, Any]] = {}

    @property
    def event_time(self) -> datetime:
        return self.updated_at

    def row(self, created_at: datetime) -> OutputModel:
        """The entry's row in its catalog table (``CatalogSnapshot``)."""
        raise NotImplementedError


class LearningPathUpdated(CatalogEntry):
    """An ordered list of courses. A learner is on a path once enrolled in any of them."""

    kind: ClassVar[str] = "learning-path"
    type: Literal["LearningPathUpdated"] = "LearningPathUpdated"
    title: str = ""
    description: str = ""
    course_ids: tuple[Id, ...] = Field(default=(), max_length=500)

    @model_validator(mode="after")
    def _courses_unique(self) -> Self:
        if len(set(self.course_ids)) != len(self.course_ids):
            raise ValueError("course_ids lists a course twice")
        return self

    def row(self, created_at: datetime) -> LearningPathRow:
        """The path as listed by the API; it has no creation time of its own (the seed has
        no table of paths), so ``created_at`` is not stored."""
        return LearningPathRow(
            id=self.id,
            title=self.title,
            description=self.description,
            course_ids=list(self.course_ids),
            updated_at=self.updated_at,
        )


class CompetencyUpdated(CatalogEntry):
    kind: ClassVar[str] = "competency"
    tombstone_fields: ClassVar[dict[str, Any]] = {"name": "(deleted)"}
    type: Literal["CompetencyUpdated"] = "CompetencyUpdated"
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    category: str = ""
    level: CompetencyLevel = "beginner"

    def row(self, created_at: datetime) -> Competency:
        return Competency(
            id=self.id,
            name=self.name,
            description=self.description,
            category=self.category,
            level=self.level,
            created_at=created_at,
            updated_at=self.updated_at,
        )


CriterionKind = Literal[
    "first-lesson",  # a first lesson completed
    "lessons",  # ``count`` lessons completed
    "course-completed",  # a course completed (``course_id``: that one)
    "courses",  # ``count`` courses completed
    "perfect-quiz",  # a quiz attempt scored 100%
    "learning-path-completed",  # a learning path completed (``learning_path_id``: that one)
    "streak",  # activity on ``count`` consecutive days, in the learner's time zone
]


class Criterion(InputModel):
    kind: CriterionKind
    count: CriterionCount = 1
    course_id: Id | None = None
    learning_path_id: Id | None = None

    def text(self) -> str:
        """The criterion as stored in the seed's string ``Criteria`` column."""
        return json.dumps(self.model_dump(exclude_none=True), sort_keys=True)


class AchievementUpdated(CatalogEntry):
    kind: ClassVar[str] = "achievement"
    tombstone_fields: ClassVar[dict[str, Any]] = {
        "name": "(deleted)",
        "criteria": {"kind": "first-lesson"},
    }
    type: Literal["AchievementUpdated"] = "AchievementUpdated"
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    image_url: str = ""
    category: str = ""
    points: Points = 0
    criteria: Criterion

    def row(self, created_at: datetime) -> Achievement:
        return Achievement(
            id=self.id,
            name=self.name,
            description=self.description,
            image_url=self.image_url,
            criteria=self.criteria.text(),
            points=self.points,
            category=self.category,
            created_at=created_at,
            updated_at=self.updated_at,
        )


AnyCatalogEntry = Annotated[
    Annotated[CourseUpdated, Tag("CourseUpdated")]
    | Annotated[LearningPathUpdated, Tag("LearningPathUpdated")]
    | Annotated[CompetencyUpdated, Tag("CompetencyUpdated")]
    | Annotated[AchievementUpdated, Tag("AchievementUpdated")],
    Discriminator(
        typed_discriminator,
        custom_error_type="unknown_event_type",
        custom_error_message="unknown catalog entry type",
    ),
]
CatalogEntryT = CourseUpdated | LearningPathUpdated | CompetencyUpdated | AchievementUpdated
catalog_entry_adapter: TypeAdapter[CatalogEntryT] = TypeAdapter(AnyCatalogEntry)


class LearningPathRow(OutputModel):
    """A learning path's definition as stored for the API's catalog listing (not a seed
    model: the seed has LearningPathProgress but no table of paths)."""

    table: ClassVar[str] = "learning_paths"
    id: str
    title: str
    description: str
    course_ids: list[str]
    updated_at: datetime


class CatalogSnapshot(OutputModel):
    """A catalog entry's row(s) for the sink, on ``progress.snapshots`` keyed
    ``catalog/<kind>/<id>``. ``deleted`` entries are removed from their table."""

    kind: Literal["catalog"] = "catalog"
    competency: Competency | None = None
    achievement: Achievement | None = None
    learning_path: LearningPathRow | None = None
    deleted: bool = False

    @staticmethod
    def key_for(kind: str, entry_id: str) -> str:
        return f"catalog/{kind}/{entry_id}"

    @classmethod
    def of(cls, entry: CatalogEntry) -> CatalogSnapshot:
        """The entry's row, in the field named for its kind (``learning-path``:
        ``learning_path``), created as of the entry's ``updated_at``."""
        row = entry.row(entry.updated_at)
        return cls.model_validate({entry.kind.replace("-", "_"): row, "deleted": entry.deleted})


def achievement_award_id(user_id: str, achievement_id: str) -> str:
    return stable_id("AchievementEarned", user_id, achievement_id)
