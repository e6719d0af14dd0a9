"""The benchmark's report (bench/run.py): issue 12's targets and the worker's ratios, from a
run's figures. Pure: no section runs."""

from __future__ import annotations

from typing import Any

from bench.run import print_report, ratios, targets

RESULTS: dict[str, Any] = {
    "ceiling": {"events_per_s": 150_000.0, "cpu_us_per_event": 7.0},
    "core": {"events_per_s": 8_000.0, "cpu_us_per_event": 125.0},
    "pipeline": {
        "worker_events_per_s": 4_000.0,
        "worker_cpu_us_per_event": 320.0,
        "worker_mean_batch": 480.0,
        "worker_state_writes_per_event": 0.2,
        "state_bytes_p50": 2_400.0,
        "state_bytes_p99": 9_000.0,
        "state_bytes_max": 30_000.0,
    },
    "faust_floor": {"events_per_s": 6_000.0, "cpu_us_per_event": 150.0},
    "naive_peer": {"events_per_s": 2_500.0},
    "quix_peer": {"events_per_s": 25_000.0},
    "freshness": {"p99_ms": 450.0, "p50_ms": 90.0, "load_events_per_s": 1_000.0, "probes": 50},
    "sink_rows": {"batched_rows_per_s": 60_000.0},
    "api_load": {"fixed_rate_cached_p99_ms": 3.0, "fixed_rate_cached_requests_per_s": 2_000.0},
    "two_workers": {"events_per_s": 6_000.0, "cpu_us_per_event": 340.0},
}


def test_every_target_of_issue_12_is_judged_from_the_figures() -> None:
    judged = {name: (measured, wanted, met) for name, measured, wanted, met in targets(RESULTS)}
    assert judged == {
        "worker / Faust floor": (4_000 / 6_000, ">= 0.5", True),
        "worker / naive peer": (4_000 / 2_500, ">= 2", False),
        "core CPU us per event": (125.0, "<= 150", True),
        "worker CPU us per event": (320.0, "<= 300", False),
        "freshness p99 ms @1000 ev/s": (450.0, "<= 500", True),
        "sink rows/s, batched": (60_000.0, ">= 70000", False),
        "cached API p99 ms @2000/s": (3.0, "<= 5", True),
    }


def test_a_freshness_p99_under_a_lighter_load_does_not_meet_its_target() -> None:
    lighter = RESULTS | {"freshness": RESULTS["freshness"] | {"load_events_per_s": 400.0}}
    (fresh,) = [row for row in targets(lighter) if row[0].startswith("freshness")]
    assert fresh[3] is False


def test_a_target_whose_section_did_not_run_is_not_judged() -> None:
    judged = {name: met for name, _, _, met in targets({"core": RESULTS["core"]})}
    assert judged.pop("core CPU us per event") is True
    assert set(judged.values()) == {None}


def test_the_worker_is_set_against_every_peer_and_two_workers_against_one() -> None:
    assert dict(ratios(RESULTS)) == {
        "worker / ceiling": 4_000 / 150_000,
        "worker / Faust floor": 4_000 / 6_000,
        "worker / naive peer": 4_000 / 2_500,
        "worker / Quix Streams": 4_000 / 25_000,
        "two workers / one worker": 6_000 / 4_000,
    }


def test_the_printed_report_shows_cpu_batches_state_sizes_and_ratios(capsys: Any) -> None:
    report = {
        "run_id": "abc123",
        "date": "2026-12-02T00:00:00+00:00",
        "params": {"events": 200_000},
        "produce": {"events_per_s": 50_000.0},
        "results": RESULTS,
    }
    print_report(report)
    out = capsys.readouterr().out
    worker_line = next(line for line in out.splitlines() if line.startswith("worker: to tables"))
    assert worker_line.split()[-4:] == ["4,000", "320", "480.0", "0.200"]
    assert "bytes p50/p99/max: 2,400/9,000/30,000" in out
    assert "two workers / one worker 1.5" in out
    assert "worker / Quix Streams 0.16" in out
    assert "worker / ceiling 0.0267" in out
