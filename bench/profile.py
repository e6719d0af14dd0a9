"""Summarizing a py-spy profile (``--format raw``: collapsed stacks, one ``a;b;c count`` a
line) into the functions that cost the most, by their own samples and by inclusive ones.

    .venv/bin/python -m bench.profile bench/results/worker.pyspy [--top 25] [--functions]

A frame is a function at a line; ``--functions`` counts a function's lines as one frame, so
a function called from several of its caller's lines is counted once per sample.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def summarize(
    path: Path, top: int = 25, functions: bool = False
) -> dict[str, list[tuple[str, float]]]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = stack.split(";")
        if functions:
            frames = [_LINE.sub(")", frame) for frame in frames]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not samples:
        return {"own": [], "inclusive": []}
    share = 100.0 / samples
    return {
        "own": [(frame, n * share) for frame, n in own.most_common(top)],
        "inclusive": [(frame, n * share) for frame, n in inclusive.most_common(top)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="the top costs of a py-spy raw profile")
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--functions", action="store_true", help="a function's lines as one")
    args = parser.parse_args()
    for kind, rows in summarize(args.path, args.top, args.functions).items():
        print(f"{kind} (% of samples)")
        for frame, pct in rows:
            print(f"  {pct:5.1f}  {frame}")


if __name__ == "__main__":
    main()
