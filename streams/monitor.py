"""A Faust Monitor that keeps only what Faust itself reads of it, for workers that export no
Faust statistics (the worker runs with ``web_enabled=False``: nothing else reads them).

Faust calls its Monitor sensor four to six times per event (message in, stream event in and
out, message out, table get and set), each counting into dicts and deques for the web
statistics page, and timing the event. Of all that, Faust's own code reads only
``stream_inbound_time`` (a partition's last event time, which its stall check logs about), and
calls the per-commit and per-rebalance hooks directly: those are kept, the per-event counting
is not. Chosen by ``WORKER_FAUST_MONITOR`` (adapters/settings.py); bench/faust_overhead.py
measures what each costs per event.

A subclass chosen through Faust's own ``Monitor`` setting, not a patch: Faust's behaviour
outside the Monitor's own counters does not change.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors import Monitor
from faust.types import TP, CollectionT, EventT, Message, StreamT


class QuietMonitor(Monitor):
    """Faust's Monitor without its per-event statistics (module docstring)."""

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        return None

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: EventT
    ) -> dict[str, Any] | None:
        # Read by Faust's stall check (``verify_event_path``): it would otherwise log that
        # the partition's stream never started.
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT,
        event: EventT,
        state: dict[str, Any] | None = None,
    ) -> None:
        return None

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        return None

    def on_table_get(self, table: CollectionT, key: Any) -> None:
        return None

    def on_table_set(self, table: CollectionT, key: Any, value: Any) -> None:
        return None
