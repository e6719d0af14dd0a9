"""The small HTTP server of the worker and the sink: ``GET /healthz``, ``/readyz``, ``/metrics``.

- ``/healthz``: 200 while the process runs (its event loop answers).
- ``/readyz``: 200 once the process's checks pass (the worker: consumer group joined and
  tables recovered; the sink: consumer group joined), else 503; the body names each check and
  gives the age of the last offset commit in seconds (null before the first).
- ``/metrics``: the process's Prometheus registry, as text.

No authentication: it says nothing about learners. It listens on loopback unless
``WORKER_HTTP_HOST`` / ``SINK_HTTP_HOST`` say otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from adapters.metrics import CONTENT_TYPE_LATEST, exposition

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Readiness:
    """What ``/readyz`` reports: each check passed or not, and the last commit's age."""

    checks: Mapping[str, bool]
    last_commit_age_seconds: float | None

    @property
    def ready(self) -> bool:
        return all(self.checks.values())


class ReadinessReport(BaseModel):
    """The body of ``/readyz``."""

    status: Literal["ready", "not-ready"]
    checks: dict[str, Literal["ok", "waiting"]]
    last_commit_age_seconds: float | None


def report(readiness: Readiness) -> ReadinessReport:
    return ReadinessReport(
        status="ready" if readiness.ready else "not-ready",
        checks={name: "ok" if ok else "waiting" for name, ok in readiness.checks.items()},
        last_commit_age_seconds=(
            None
            if readiness.last_commit_age_seconds is None
            else round(readiness.last_commit_age_seconds, 3)
        ),
    )


def probe_app(readiness: Callable[[], Readiness], registry: CollectorRegistry) -> web.Application:
    """The probe routes over a readiness function and a metrics registry."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        body = report(readiness())
        return web.Response(
            text=body.model_dump_json(),
            content_type="application/json",
            status=200 if body.status == "ready" else 503,
        )

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=exposition(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_routes(
        [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]
    )
    return app


class ProbeServer:
    """``probe_app`` listening on ``host:port`` between ``start`` and ``stop``."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        readiness: Callable[[], Readiness],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._host = host
        self._port = port
        self._runner = web.AppRunner(probe_app(readiness, registry), access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        log.info(
            "%s probes and metrics on http://%s:%d (/healthz, /readyz, /metrics)",
            self._name,
            self._host,
            self._port,
        )

    async def stop(self) -> None:
        await self._runner.cleanup()
