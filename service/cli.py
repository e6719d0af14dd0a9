"""``progress``: one console script for every process of the service.

    progress topics   create the Kafka topics (the other commands do it too)
    progress worker   the Faust stream processor
    progress sink     snapshots -> PostgreSQL, then Redis
    progress api      the aiohttp query API
    progress demo     a built-in demo stream, watched through the API

Imports are inside the commands so that each process loads only what it runs
(the API never imports Faust).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from service.config import Settings


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiokafka narrates every rebalance and metadata change at INFO.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.root.level))


def _topics(settings: Settings) -> None:
    from streams.topics import ensure_topics

    asyncio.run(ensure_topics(settings))


def _worker(settings: Settings) -> None:
    import faust

    from streams.app import create_app

    _topics(settings)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, loop=asyncio.new_event_loop())
    worker.execute_from_commandline()


def _sink(settings: Settings) -> None:
    from sinks.runner import run_sink

    _topics(settings)
    asyncio.run(run_sink(settings))


def _api(settings: Settings) -> None:
    from api.app import run_api

    run_api(settings)


def _demo(settings: Settings) -> None:
    from service.demo import run_demo

    _topics(settings)
    sys.exit(asyncio.run(run_demo(settings)))


COMMANDS = {
    "topics": _topics,
    "worker": _worker,
    "sink": _sink,
    "api": _api,
    "demo": _demo,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="progress",
        description="LMS learner progress service. Settings come from environment variables "
        "(docs/operations.md).",
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv)
    settings = Settings()
    _logging(settings)
    COMMANDS[args.command](settings)


if __name__ == "__main__":
    main()
