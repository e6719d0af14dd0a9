"""A progress bar on stderr for the long commands, drawn only when stderr is a terminal:
a command piped or run by a script prints its result lines and nothing else."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30
# Redrawn at most this often: a line per record would cost more than the work it reports.
_REDRAW_S = 0.2


class ProgressBar:
    """``advance`` as work is done, out of ``total`` (0: unknown, a count alone)."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._shown = self._stream.isatty()
        self._drawn_at = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self._shown and now - self._drawn_at >= _REDRAW_S:
            self._drawn_at = now
            self._draw()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self._shown:
            self._draw()
            self._stream.write("\n")
            self._stream.flush()

    def line(self) -> str:
        if self.total <= 0:
            return f"{self.label}: {self.done}"
        part = min(self.done / self.total, 1.0)
        filled = int(part * _WIDTH)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total} {part:.0%}"

    def _draw(self) -> None:
        self._stream.write("\r" + self.line())
        self._stream.flush()
