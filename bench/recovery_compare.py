"""The state-and-recovery section of any commit, with the recovery's CPU measured from outside,
so that a commit whose ``bench/state_recovery.py`` does not report CPU can be compared with
one that does, side by side on the same day.

    cd <a clone of the commit to measure, set up by its scripts/bootstrap.sh>
    .venv/bin/python <this clone>/bench/recovery_compare.py [KEYS]

The clone's own virtualenv: the section starts the worker as the ``progress`` script beside
the Python that runs it, and that script runs the code its virtualenv was installed from.
Runs ``bench.state_recovery.measure`` of the clone in the current directory (RocksDB store,
2,000 learners built, ``KEYS`` keys, 1,000,000 by default) and prints its figures as JSON,
with: the worker's CPU seconds (/proc) at each milestone of its log (``recovery_started``,
``changelog_read``, ...) and at its stop, by process; and the records and bytes of every
changelog topic as the broker holds them (its log files under ``PROGRESS_STACK_DIR``,
``scripts/stack.sh``). Recovery CPU per record is then (CPU at ``changelog_read`` minus CPU
at ``recovery_started``) over the changelog records, as newer commits report it themselves.

It wraps three functions of that module (``_follow_log``, ``stop_worker``, ``build_keys``),
which every commit since the section's first one has.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.getcwd())  # the commit measured is the one in the current directory

import bench.state_recovery as section

STACK_DIR = Path(os.environ.get("PROGRESS_STACK_DIR", Path.home() / ".cache/lms-progress"))
CPU: dict[int, dict[str, Any]] = {}
SIZES: dict[str, dict[str, int]] = {}


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _follow_log(run: Any) -> None:
    # The section's own log follower, with the CPU read at each milestone it sees.
    with run.log_path.open("ab") as log:
        async for line in run.process.stderr:
            log.write(line)
            log.flush()
            text = line.decode(errors="replace")
            for name, pattern in section._MILESTONES.items():
                if name not in run.seen and pattern.search(text):
                    run.seen[name] = time.monotonic() - run.started
                    with contextlib.suppress(OSError):
                        CPU.setdefault(run.pid, {})[name] = _cpu(run.pid)


_stop_worker = section.stop_worker
_build_keys = section.build_keys


async def _stop(run: Any) -> float:
    with contextlib.suppress(OSError):
        CPU.setdefault(run.pid, {}).update(at_stop=_cpu(run.pid), log=run.log_path.name)
    stopped: float = await _stop_worker(run)
    return stopped


async def _build(settings: Any, changelog: Any, built: Any, keys: int) -> dict[str, Any]:
    figures: dict[str, Any] = await _build_keys(settings, changelog, built, keys)
    await asyncio.sleep(2)  # the broker's log files catch up with the last writes
    prefix = settings.topic_prefix
    for directory in sorted((STACK_DIR / "kafka-data").glob(f"{prefix}*changelog-*")):
        topic = directory.name.rsplit("-", 1)[0]
        size = SIZES.setdefault(topic.removeprefix(prefix), {"bytes": 0})
        size["bytes"] += sum(part.stat().st_size for part in directory.glob("*.log"))
    for topic, size in SIZES.items():
        size["records"] = sum((await section.high_watermarks(settings, prefix + topic)).values())
    return figures


def main() -> None:
    keys = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    section._follow_log = _follow_log
    section.stop_worker = _stop
    section.build_keys = _build
    figures = asyncio.run(section.measure(keys=keys, built=2000, stores=["rocksdb"]))
    print(json.dumps({"cwd": os.getcwd(), "figures": figures, "cpu": CPU, "changelogs": SIZES}))


if __name__ == "__main__":
    main()
