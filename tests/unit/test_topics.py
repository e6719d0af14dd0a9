"""The registry of kinds (progress/kinds.py) and the topics looked up by kind from it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.publishing import CATALOG_KINDS, DELETABLE_KINDS, tombstone, topic_for
from adapters.settings import Settings, Topics
from adapters.topics import (
    catalog_topics,
    consumed_kinds,
    learner_input_topics,
    published_topics,
)
from progress.catalog import (
    AchievementUpdated,
    CatalogEntry,
    CatalogSnapshot,
    CompetencyUpdated,
    Criterion,
    LearningPathUpdated,
)
from progress.events import (
    AssignmentGraded,
    ConsumedEvent,
    LearnerErasureRequested,
    LessonCompleted,
    PublishedEvent,
    QuizAttemptSubmitted,
)
from progress.kinds import INPUT_KINDS, PUBLISHED, Alone, InCourse, handling_of
from progress.outcomes import on_assignment_activity, on_lesson_activity, on_quiz_activity

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def test_every_consumed_topic_has_a_kind() -> None:
    t = Topics(prefix="x.")
    assert set(consumed_kinds(t)) == {
        *learner_input_topics(t),
        *catalog_topics(t),
        t.catalog_broadcast,
    }


def test_topics_are_named_by_their_kind() -> None:
    t = Topics(prefix="x.")
    kinds = consumed_kinds(t)
    assert kinds[t.lesson_activity] == "lesson-activity"
    assert kinds[t.erasure_requests] == "erasure-requests"
    assert kinds[t.catalog_broadcast] == "catalog-broadcast"
    assert learner_input_topics(t) == (
        t.enrollments,
        t.lesson_activity,
        t.quiz_activity,
        t.assignment_activity,
        t.competency_evidence,
        t.learner_profiles,
        t.erasure_requests,
    )
    assert catalog_topics(t) == (t.course_updates, t.learning_paths, t.competencies, t.achievements)
    assert sorted(published_topics(t).values()) == sorted(
        [
            t.progress_updated,
            t.course_completed,
            t.quiz_completed,
            t.assignment_submitted,
            t.achievement_earned,
            t.competency_acquired,
            t.learner_erased,
        ]
    )


def test_every_published_event_has_a_topic() -> None:
    assert set(PUBLISHED) == set(PublishedEvent.__subclasses__())


def test_a_family_of_events_is_dispatched_by_its_base_class() -> None:
    rules: dict[type[ConsumedEvent], object] = {
        LessonCompleted: on_lesson_activity,
        QuizAttemptSubmitted: on_quiz_activity,
        AssignmentGraded: on_assignment_activity,
    }
    for model, rule in rules.items():
        handling = handling_of(model.model_construct())
        assert isinstance(handling, InCourse)
        assert handling.derive is rule


def test_every_input_model_is_handled() -> None:
    for kind in INPUT_KINDS:
        if kind.model is None:
            assert kind.internal  # the broadcast: each entry as its own kind
            continue
        handling = handling_of(kind.model.model_construct())
        assert isinstance(handling, Alone | InCourse) or handling in (
            "course",
            "catalog",
            "erasure",
        )
    assert handling_of(LearnerErasureRequested.model_construct()) == "erasure"


def test_catalog_kinds_of_the_admin_api() -> None:
    settings = Settings(topic_prefix="x.")
    assert CATALOG_KINDS == ("courses", "learning-paths", "competencies", "achievements")
    assert DELETABLE_KINDS == ("learning-paths", "competencies", "achievements")
    assert topic_for(settings, "courses") == settings.topics.course_updates
    assert topic_for(settings, "achievements") == settings.topics.achievements
    for kind in DELETABLE_KINDS:
        assert getattr(tombstone(kind, "gone", T0), "deleted", False)


@pytest.mark.parametrize(
    "entry",
    [
        LearningPathUpdated(id="p1", updated_at=T0, title="Path", course_ids=("c1", "c2")),
        CompetencyUpdated(id="k1", name="K", updated_at=T0),
        AchievementUpdated(id="a1", name="A", updated_at=T0, criteria=Criterion(kind="lessons")),
    ],
)
def test_a_catalog_snapshot_carries_the_entry_row_in_the_field_of_its_kind(
    entry: CatalogEntry,
) -> None:
    snapshot = CatalogSnapshot.of(entry)
    rows = [snapshot.competency, snapshot.achievement, snapshot.learning_path]
    assert [row for row in rows if row is not None] == [entry.row(T0)]
    assert snapshot.deleted is entry.deleted
