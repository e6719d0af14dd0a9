"""Python's cyclic garbage collector, tuned for a process that holds many long-lived objects.

The worker keeps every learner state it has read as immutable models, and derives each event
by building new small objects (rows, copies of the models on the changed path) that reference
counting frees. With the interpreter's default (a young-generation pass every 700 net
allocations, and a full pass once enough survived), most of those passes walk the states held
and find nothing: measured at about 30% of the domain core's CPU on the benchmark's workload
(``python -m bench.core``, which applies the same setting as the worker). The core makes no
reference cycles, so a higher threshold delays little real garbage.

Every long-running process (worker, sink, API) also sets aside what its start-up made
(``freeze_startup``): modules, classes, pydantic and SQL schemas live as long as the process,
yet each full pass of the collector walks them all, stopping the process meanwhile (measured
in the sink: about 56 ms for the 90,000 objects its imports make, and 130-430 ms passes every
10-20 s while it wrote snapshots on a busy machine; a freshness probe in flight waits for it).
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


def freeze_startup() -> None:
    """Collect what start-up left as garbage, then move every object alive into the
    collector's permanent generation (``gc.freeze``): later passes no longer walk them.

    For a process's entry point, once its imports are done and before it serves: what is
    frozen is never collected as a cycle again (reference counting still frees it), so only
    objects meant to live as long as the process should be alive then.
    """
    gc.collect()
    gc.freeze()
