"""The worker's quiet Faust Monitor (streams/monitor.py): what Faust reads of it is kept."""

from __future__ import annotations

from faust.types import TP, Message

from streams.monitor import QuietMonitor


class _Owner:
    pass


class _Stream:
    task_owner = _Owner()


def test_the_quiet_monitor_keeps_the_partitions_last_event_time_and_counts_nothing() -> None:
    monitor = QuietMonitor()
    tp = TP("lms.lesson-activity", 3)
    message = Message(tp.topic, tp.partition, 7, 0.0, 0, None, key=b"k", value=b"v", checksum=None)
    stream = _Stream()
    monitor.on_message_in(tp, 7, message)
    state = monitor.on_stream_event_in(tp, 7, stream, None)  # type: ignore[arg-type]
    monitor.on_stream_event_out(tp, 7, stream, None, state)  # type: ignore[arg-type]
    monitor.on_message_out(tp, 7, message)
    # Faust's stall check reads this: without it, it would log the stream never started.
    assert tp in monitor.stream_inbound_time
    assert monitor.messages_received_total == 0
    assert monitor.events_total == 0
    assert len(monitor.events_runtime) == 0


def test_the_quiet_monitor_still_records_commits_and_end_offsets() -> None:
    # Called by Faust's consumer directly (not through the sensors): kept as Faust has them.
    monitor = QuietMonitor()
    tp = TP("lms.lesson-activity", 3)
    monitor.on_tp_commit({tp: 42})
    monitor.track_tp_end_offset(tp, 50)
    assert monitor.tp_committed_offsets[tp] == 42
    assert monitor.tp_end_offsets[tp] == 50
