"""The pure pieces of metrics, probes and JSON logs (adapters/metrics.py, probes.py, logs.py)."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry

from adapters.logs import REQUEST_ID, JsonFormatter, logging_config, request_id
from adapters.metrics import (
    ApiMetrics,
    CommitClock,
    SinkMetrics,
    Tallies,
    WorkerMetrics,
    consumer_lag,
    exposition,
)
from adapters.probes import Readiness, report

DOCS = Path(__file__).parents[2] / "docs"


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "streams.dead_letters", logging.WARNING, "f.py", 1, message, (), None
    )
    record.__dict__.update(extra)
    return record


def test_a_json_line_carries_the_message_and_every_extra_field() -> None:
    line = JsonFormatter().format(
        _record("dead-lettered t[2]@7", topic="t", partition=2, offset=7, key="u1")
    )
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "dead-lettered t[2]@7"
    assert parsed["level"] == "WARNING"
    assert parsed["logger"] == "streams.dead_letters"
    assert (parsed["topic"], parsed["partition"], parsed["offset"], parsed["key"]) == (
        "t",
        2,
        7,
        "u1",
    )
    assert "request_id" not in parsed
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", parsed["time"])


def test_a_json_line_keeps_a_traceback_and_the_current_request_id_on_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        exc_info = sys.exc_info()
    record = _record("failed")
    record.exc_info = exc_info
    token = REQUEST_ID.set("req-1")
    try:
        line = JsonFormatter().format(record)
    finally:
        REQUEST_ID.reset(token)
    assert len(line.splitlines()) == 1
    parsed = json.loads(line)
    assert parsed["request_id"] == "req-1"
    assert "ValueError: bad\nthing" in parsed["exc_info"]


def test_values_that_are_not_json_are_logged_as_text() -> None:
    parsed = json.loads(JsonFormatter().format(_record("x", where=Path("/tmp/a"))))
    assert parsed["where"] == "/tmp/a"


def test_logging_config_selects_the_formatter() -> None:
    json_config = logging_config("json", "debug")
    assert json_config["formatters"]["default"] == {"()": "adapters.logs.JsonFormatter"}
    assert json_config["root"]["level"] == "DEBUG"
    assert "format" in logging_config("text", "INFO")["formatters"]["default"]


def test_a_plain_request_id_is_kept_and_anything_else_replaced() -> None:
    assert request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    for bad in (None, "", "has space", "x" * 129, "new\nline", "é"):
        made = request_id(bad)
        assert re.fullmatch(r"[0-9a-f]{32}", made), bad
    assert request_id(None) != request_id(None)


def test_lag_is_the_end_less_the_committed_offset_for_known_partitions_only() -> None:
    lag = consumer_lag(
        [("a", 0), ("a", 1), ("a", 2), ("b", 0)],
        {("a", 0): 10, ("a", 1): 5, ("b", 0): 3},
        {("a", 0): 4, ("a", 1): 7, ("a", 2): 1},
    )
    # a[1]: committed past the end Faust last heard of (a newer fetch is on its way): 0.
    assert lag == {("a", 0): 6, ("a", 1): 0}


def test_a_worker_batch_counts_its_events_by_topic_once() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry, CommitClock())
    metrics.batch(["t1", "t2", "t1"], 0.02)
    metrics.batch(["t1"], 0.01)
    sample = registry.get_sample_value
    assert sample("progress_worker_events_consumed_total", {"topic": "t1"}) == 3
    assert sample("progress_worker_events_consumed_total", {"topic": "t2"}) == 1
    assert sample("progress_worker_batch_events_count") == 2
    assert sample("progress_worker_batch_events_sum") == 4
    assert sample("progress_worker_batch_duration_seconds_bucket", {"le": "0.01"}) == 1


def test_tallies_are_read_when_scraped() -> None:
    counts = {"malformed-json": 1}
    registry = CollectorRegistry()
    registry.register(
        Tallies("x_dead_letters", "d", ("reason",), lambda: {(k,): v for k, v in counts.items()})
    )
    counts["malformed-json"] = 3
    counts["invalid"] = 1
    assert registry.get_sample_value("x_dead_letters_total", {"reason": "malformed-json"}) == 3
    assert registry.get_sample_value("x_dead_letters_total", {"reason": "invalid"}) == 1


def test_the_last_commit_gauge_is_nan_until_a_commit() -> None:
    registry = CollectorRegistry()
    clock = CommitClock()
    SinkMetrics(registry, clock)
    assert "progress_sink_last_commit_timestamp_seconds NaN" in exposition(registry).decode()
    assert clock.age_seconds() is None
    clock.committed()
    stamp = registry.get_sample_value("progress_sink_last_commit_timestamp_seconds")
    assert stamp is not None and stamp > 1.7e9
    age = clock.age_seconds()
    assert age is not None and age >= 0


def test_readiness_reports_each_check_and_the_commit_age() -> None:
    waiting = report(
        Readiness({"group_joined": True, "tables_recovered": False}, last_commit_age_seconds=None)
    )
    assert waiting.status == "not-ready"
    assert waiting.checks == {"group_joined": "ok", "tables_recovered": "waiting"}
    ready = report(Readiness({"group_joined": True}, last_commit_age_seconds=1.23456))
    assert ready.status == "ready"
    assert ready.last_commit_age_seconds == 1.235


def _documented() -> set[str]:
    text = (DOCS / "operations.md").read_text()
    return set(re.findall(r"^\| `(progress_[a-z_]+)` \|", text, re.M))


def test_every_metric_the_adapters_define_is_documented() -> None:
    registry = CollectorRegistry()
    WorkerMetrics(registry, CommitClock())
    SinkMetrics(registry, CommitClock())
    ApiMetrics(registry)
    # prometheus-client names a counter's family without its ``_total``.
    defined = {
        f"{family.name}_total" if family.type == "counter" else family.name
        for family in registry.collect()
    }
    assert len(defined) == 14
    assert defined <= _documented(), defined - _documented()


def test_the_dashboard_uses_only_documented_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana" / "progress.json").read_text())
    used = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bprogress_[a-z_]+", target["expr"])
    }
    documented = _documented()
    assert used, "the dashboard has no panel on the service's metrics"
    assert used <= documented, used - documented
    # Every documented metric has a panel.
    assert documented <= used, documented - used
