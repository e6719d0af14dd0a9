"""bench.lag's summary of lag samples: what the freshness section reports beside latencies."""

from __future__ import annotations

from bench.lag import Sample, lag_figures


def test_lag_figures_give_each_groups_largest_and_last_lag_and_the_timeline() -> None:
    samples = [
        Sample(0.0, {"worker": 10, "sink": 0}),
        Sample(1.0, {"worker": 900, "sink": 40}),
        Sample(2.1, {"worker": 350, "sink": 5}),
    ]
    figures = lag_figures(samples)
    assert figures["worker_lag_max"] == 900.0
    assert figures["worker_lag_end"] == 350.0
    assert figures["sink_lag_max"] == 40.0
    assert figures["sink_lag_end"] == 5.0
    assert figures["worker_lag_timeline"] == "0:10 1:900 2.1:350"
    assert figures["sink_lag_timeline"] == "0:0 1:40 2.1:5"


def test_no_samples_no_figures() -> None:
    assert lag_figures([]) == {}
