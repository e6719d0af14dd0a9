"""Running the ``progress`` console script as an operator would, with a test's settings."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from adapters.settings import Settings
from tests.support.processes import settings_env

PROGRESS = str(Path(sys.executable).parent / "progress")


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


async def run_progress(settings: Settings, *args: str, **env: str) -> Done:
    """``progress *args`` with ``settings`` (and ``env`` over them) in its environment."""
    proc = await asyncio.create_subprocess_exec(
        PROGRESS,
        *args,
        env={**settings_env(settings), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())
