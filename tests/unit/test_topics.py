"""The topic -> kind map that the worker, the catalog fan-out and redrive share."""

from __future__ import annotations

from adapters.settings import Topics
from adapters.topics import consumed_kinds


def test_every_consumed_topic_has_a_kind() -> None:
    t = Topics(prefix="x.")
    assert set(consumed_kinds(t)) == {*t.learner_inputs, *t.catalogs, t.catalog_broadcast}
