"""Python's cyclic garbage collector, tuned for a process that holds many long-lived objects.

The worker keeps every learner state it has read as immutable models, and derives each event
by building new small objects (rows, copies of the models on the changed path) that reference
counting frees. With the interpreter's default (a young-generation pass every 700 net
allocations, and a full pass once enough survived), most of those passes walk the states held
and find nothing: measured at about 30% of the domain core's CPU on the benchmark's workload
(``python -m bench.core``, which applies the same setting as the worker). The core makes no
reference cycles, so a higher threshold delays little real garbage.
"""

from __future__ import annotations

import gc


def tune_collector(young_threshold: int) -> None:
    """Run the young generation's pass every ``young_threshold`` net allocations (the older
    generations keep their default ratios); 0 turns the cyclic collector off."""
    if young_threshold == 0:
        gc.disable()
        return
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
