"""The project's processes (``progress worker|sink|api``) as subprocesses of a benchmark run,
each with the run's settings and its own log file."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from adapters.settings import Settings
from bench.env import BenchEnv

PROGRESS = Path(sys.executable).parent / "progress"


class Service:
    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
    ) -> None:
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self._log_start = log_path.stat().st_size
        self.started = time.time()
        self.proc = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @classmethod
    def progress(
        cls, env: BenchEnv, command: str, settings: Settings | None = None, name: str = ""
    ) -> Service:
        return cls(
            [str(PROGRESS), command],
            env.process_env(settings),
            env.work_dir / "logs" / f"{name or command}.log",
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    async def wait_for_log(self, needle: str, within: float) -> float:
        """The time.time() at which ``needle`` was first seen in the log (polled)."""
        deadline = time.monotonic() + within
        while needle not in self.log_text():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log_path.name} exited:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} not in {self.log_path}")
            await asyncio.sleep(0.1)
        return time.time()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
