"""The service's processes (worker, sink, API) run as real subprocesses for the tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from adapters.settings import Settings

STACK = Path(__file__).resolve().parents[2] / "scripts" / "stack.sh"


@asynccontextmanager
async def stopped(service: str, for_seconds: float = 0.0) -> AsyncIterator[None]:
    """``service`` (kafka, postgres or redis) is stopped with the project's own script for
    the block, plus ``for_seconds``, and started again after it, whatever happens."""
    await asyncio.to_thread(_stack, "down", service)
    try:
        yield
        await asyncio.sleep(for_seconds)
    finally:
        await asyncio.to_thread(_stack, "up", service)


def _stack(action: str, service: str) -> None:
    subprocess.run([str(STACK), action, service], check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            env.pop(name.upper(), None)
        else:
            env[name.upper()] = str(value)
    return env


class ServiceProcess:
    def __init__(
        self, command: str, settings: Settings, log_dir: Path, name: str | None = None
    ) -> None:
        self.command = command
        self.log_path = log_dir / f"{name or command}.log"
        self._log = self.log_path.open("ab")
        # A restarted process appends to the same log: only what it writes counts.
        self._log_start = self.log_path.stat().st_size
        progress = Path(sys.executable).parent / "progress"
        self.proc = subprocess.Popen(
            [str(progress), command],
            env=settings_env(settings),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_text(self) -> str:
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def wait_for_log(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.log_text():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command} exited early:\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.command} not ready:\n{self.log_text()[-4000:]}")
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def wait_for_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout}s")
        time.sleep(0.2)


@contextmanager
def running_service(settings: Settings, log_dir: Path) -> Iterator[dict[str, ServiceProcess]]:
    """Worker, sink and API for one test session, stopped (and their logs kept) after it."""
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, ServiceProcess] = {}
    try:
        for command in ("worker", "sink", "api"):
            processes[command] = ServiceProcess(command, settings, log_dir)
        processes["worker"].wait_for_log("Ready", timeout=90)
        wait_for_http(f"http://{settings.api_host}:{settings.api_port}/readyz", timeout=60)
        yield processes
    finally:
        for process in processes.values():
            process.stop()
