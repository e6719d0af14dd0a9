"""The CLI when a dependency does not answer: one line naming it, exit status 1, never a
traceback. Kafka and PostgreSQL are pointed at a closed port."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from adapters.settings import Settings
from tests.support.cli import run_progress
from tests.support.processes import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "command",
    [["topics"], ["erase", "u-1"], ["redrive"], ["redrive", "--dry-run"], ["resnapshot"]],
)
async def test_kafka_unreachable_is_one_line_and_status_1(
    settings: Settings, command: list[str]
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    done = await run_progress(settings, *command, KAFKA_BOOTSTRAP=closed)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"progress {command[0]}: Kafka is not reachable at {closed}")
    assert done.stderr.count("\n") == 1
    assert done.stdout == ""


async def test_catalog_with_kafka_unreachable(settings: Settings, tmp_path: Path) -> None:
    entry = tmp_path / "c.json"
    entry.write_text(json.dumps({"id": "py", "name": "Python", "updated_at": "2026-05-04T08:00Z"}))
    closed = f"127.0.0.1:{free_port()}"
    done = await run_progress(
        settings, "catalog", "competencies", str(entry), KAFKA_BOOTSTRAP=closed
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"progress catalog: Kafka is not reachable at {closed}")
    assert done.stderr.count("\n") == 1


async def test_postgres_unreachable_is_one_line_and_status_1(settings: Settings) -> None:
    port = free_port()
    url = f"postgresql://progress:progress@127.0.0.1:{port}/progress"
    done = await run_progress(settings, "export", "u-1", DATABASE_URL=url)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("progress export: PostgreSQL is not reachable:")
    assert f"port {port} failed" in done.stderr
    assert done.stderr.count("\n") == 1


async def test_version_is_the_installed_package_version(settings: Settings) -> None:
    done = await run_progress(settings, "--version")
    assert done.returncode == 0
    assert done.stdout == f"progress {version('lms-progress')}\n"
