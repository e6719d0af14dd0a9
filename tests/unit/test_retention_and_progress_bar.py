"""Topic retention as configured (``adapters.topics.topic_configs``), and the long commands'
progress bar (``service.progress_bar``): pure, no services."""

from __future__ import annotations

import io

import pytest
from pydantic import ValidationError

from adapters.settings import Settings
from adapters.topics import catalog_topics, learner_input_topics, topic_configs
from service.progress_bar import ProgressBar

HOUR_MS = 3_600_000


def test_defaults_keep_input_30_days_and_snapshots_7() -> None:
    settings = Settings()
    configs = topic_configs(settings)
    t = settings.topics
    for name in learner_input_topics(t):
        assert configs[name] == {"retention.ms": str(720 * HOUR_MS)}, name
    assert configs[t.dead_letter]["retention.ms"] == str(720 * HOUR_MS)
    assert configs[t.sink_dead_letter]["retention.ms"] == str(720 * HOUR_MS)
    assert configs[t.snapshots]["retention.ms"] == str(168 * HOUR_MS)
    # Snapshots are not compacted: a learner's snapshot holds only what its events touched.
    assert "cleanup.policy" not in configs[t.snapshots]
    # Compacted topics keep the newest record per key forever: no time limit set on them.
    for name in catalog_topics(t):
        assert configs[name] == {"cleanup.policy": "compact"}


def test_retention_is_configurable_and_minus_one_keeps_forever() -> None:
    settings = Settings(topic_input_retention_hours=-1, topic_snapshot_retention_hours=24)
    configs = topic_configs(settings)
    assert configs[settings.topics.lesson_activity]["retention.ms"] == "-1"
    assert configs[settings.topics.snapshots]["retention.ms"] == str(24 * HOUR_MS)
    # The record limits stay beside the retention: AlterConfigs replaces settings whole.
    assert configs[settings.topics.snapshots]["max.message.bytes"] == "8000000"


@pytest.mark.parametrize("hours", [0, -2])
def test_a_retention_that_would_delete_everything_is_refused(hours: int) -> None:
    with pytest.raises(ValidationError, match="topic_input_retention_hours"):
        Settings(topic_input_retention_hours=hours)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_draws_on_a_terminal_and_ends_its_line() -> None:
    out = _Terminal()
    bar = ProgressBar("resnapshot", 4, stream=out)
    bar.advance(3)
    bar.close()
    assert bar.line() == "resnapshot [######################--------] 3/4 75%"
    assert out.getvalue().endswith("\r" + bar.line() + "\n")


def test_the_bar_is_silent_when_not_on_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar("redrive", 10, stream=out)
    bar.advance(10)
    bar.close()
    assert out.getvalue() == ""
    assert bar.line() == "redrive [##############################] 10/10 100%"


def test_an_unknown_total_is_a_count() -> None:
    bar = ProgressBar("redrive", 0, stream=io.StringIO())
    bar.advance(7)
    assert bar.line() == "redrive: 7"
