"""``progress``: one console script for every process of the service.

    progress topics   create the Kafka topics (the other commands do it too)
    progress worker   the Faust stream processor
    progress sink     snapshots -> PostgreSQL, then Redis
    progress api      the aiohttp query API
    progress demo     a built-in demo stream, watched through the API
    progress catalog <kind> <file.json>
                      publish catalog entries (one, or a JSON list) to their topic
    progress erase <user_id>
                      request the erasure of every record of a learner
    progress redrive [--error-type T] [--dry-run]
                      re-send the dead letters that are valid now to their topics
    progress resnapshot
                      re-send every learner's rows and every catalog row, from the
                      worker's tables, for the sink to rebuild PostgreSQL and Redis
    progress export <user_id>
                      print every row PostgreSQL holds of a learner, as JSON
    progress --version
    progress token <subject> [--role R] [--scope S ...] [--hours H] [--private-key PEM]
                      mint a bearer token signed with API_JWT_KEY (HS256), or with a
                      private key for RS256/ES256
    progress contract [--write | --check] [--dir DIR]
                      the OpenAPI and AsyncAPI documents: print, write to docs/, or check

Imports are inside the commands so that each process loads only what it runs
(the API never imports Faust).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from adapters.logs import configure_logging, logging_config
from adapters.publishing import CATALOG_KINDS, CatalogKind
from adapters.settings import Settings
from progress.errors import ProgressError
from service.errors import ServiceError

# The installed distribution whose version ``progress --version`` prints (pyproject.toml).
_DISTRIBUTION = "lms-progress"


def _logging(settings: Settings) -> None:
    configure_logging(settings.log_format, settings.log_level)


def _topics(settings: Settings) -> None:
    """Create the missing topics; every process does it first, so a broker that cannot be
    reached or refuses the credentials ends it here, with a message saying why."""
    from aiokafka.errors import KafkaError

    from adapters.kafka_clients import connection_problem
    from adapters.settings import InvalidSettings
    from adapters.topics import ensure_topics

    try:
        asyncio.run(ensure_topics(settings))
    except InvalidSettings as exc:
        raise CommandError(str(exc)) from None
    except (KafkaError, OSError):
        raise CommandError(asyncio.run(connection_problem(settings))) from None


def _worker(settings: Settings) -> None:
    import faust

    from adapters.collector import freeze_startup, tune_collector
    from streams.app import create_app

    _topics(settings)
    tune_collector(settings.worker_gc_threshold)
    # Faust creates the data dir itself, but not its parents (the demo's var/worker/<cluster>).
    settings.worker_data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    freeze_startup()  # adapters/collector.py
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        loop=asyncio.new_event_loop(),
        # Faust's worker sets up logging again: in JSON, with ours; in text, its own lines.
        logging_config=(
            logging_config(settings.log_format, settings.log_level)
            if settings.log_format == "json"
            else None
        ),
    )
    worker.execute_from_commandline()


def _sink(settings: Settings) -> None:
    from adapters.collector import freeze_startup
    from sinks.runner import run_sink

    _topics(settings)
    freeze_startup()  # adapters/collector.py

    async def until_signalled() -> None:
        # SIGTERM (docker stop, Kubernetes) and SIGINT end the sink between batches: the batch
        # in hand is written and committed, then the consumer leaves its group, exit status 0.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_sink(settings, stop=stop)

    asyncio.run(until_signalled())


def _api(settings: Settings) -> None:
    from adapters.collector import freeze_startup
    from api.app import run_api

    freeze_startup()  # adapters/collector.py
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
_HELP = {
    "topics": "create the Kafka topics (the other commands do it too)",
    "worker": "the Faust stream processor",
    "sink": "snapshots -> PostgreSQL, then Redis",
    "api": "the aiohttp query API",
    "demo": "a built-in demo stream, watched through the API",
}


# The long-running processes: their logs stay whole.
_SERVICES = frozenset({"worker", "sink", "api", "demo"})


class CommandError(ProgressError):
    """A command cannot do what it was asked; the message says why, for the terminal."""


def _catalog(settings: Settings, kind: CatalogKind, path: Path) -> None:
    """Publish every entry of the file, or none: all are validated before any is sent."""
    from adapters.publishing import (
        CatalogPublisher,
        InvalidCatalogEntry,
        PublishError,
        validate_entry,
    )

    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path} is not JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise CommandError(f"{path} holds no entry")
    entries = []
    for number, item in enumerate(items, start=1):
        try:
            entries.append(validate_entry(kind, item))
        except InvalidCatalogEntry as exc:
            where = f"entry {number} of {len(items)}" if isinstance(data, list) else "the entry"
            named = f" (id {item.get('id')!r})" if isinstance(item, dict) and "id" in item else ""
            raise CommandError(
                f"{path}: {where}{named} is invalid, nothing was published: {exc}"
            ) from None

    _topics(settings)

    async def publish_all() -> None:
        publisher = CatalogPublisher(settings)
        try:
            for entry in entries:
                await publisher.publish(kind, entry)
                topic = publisher.topic(kind)
                print(f"published {kind} {entry.id} {entry.updated_at.isoformat()} to {topic}")
        finally:
            await publisher.close()

    try:
        asyncio.run(publish_all())
    except PublishError as exc:
        raise CommandError(str(exc)) from None


def _erase(settings: Settings, user_id: str) -> None:
    from adapters.publishing import CatalogPublisher, PublishError

    _valid_user_id(user_id)

    async def request() -> str:
        publisher = CatalogPublisher(settings)
        try:
            return (await publisher.request_erasure(user_id)).request_id
        finally:
            await publisher.close()

    _topics(settings)
    try:
        request_id = asyncio.run(request())
    except PublishError as exc:
        raise CommandError(str(exc)) from None
    print(f"requested erasure of {user_id} (request {request_id})")


def _redrive(settings: Settings, error_type: str | None, dry_run: bool) -> None:
    from service.redrive import redrive

    report = asyncio.run(redrive(settings, error_type=error_type, dry_run=dry_run))
    for line in report.lines():
        print(("dry run: " if dry_run else "") + line)


def _resnapshot(settings: Settings) -> None:
    from service.resnapshot import resnapshot

    _topics(settings)
    report = asyncio.run(resnapshot(settings))
    for line in report.lines():
        print(line)
    if report.failed:
        raise CommandError(f"{len(report.failed)} learner state(s) could not be sent")


def _export(settings: Settings, user_id: str) -> None:
    from pydantic_core import to_json

    from service.export import export_learner

    export = asyncio.run(export_learner(settings, _valid_user_id(user_id)))
    sys.stdout.write(to_json(export, indent=2).decode() + "\n")


def _valid_user_id(user_id: str) -> str:
    from pydantic import TypeAdapter, ValidationError

    from progress.schema import Id

    try:
        return TypeAdapter(Id).validate_python(user_id)
    except ValidationError:
        raise CommandError(f"{user_id!r} is not a valid user id") from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def _token(
    settings: Settings,
    subject: str,
    role: str,
    scopes: list[str],
    hours: float,
    private_key: Path | None = None,
) -> None:
    """Print a token signed with the first of API_JWT_ALGORITHMS: with API_JWT_KEY for HS*,
    with ``private_key`` (a PEM file) for the others, since API_JWT_KEY is then the public
    key the API verifies with."""
    import jwt
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from api.auth import mint_token

    algorithm = settings.api_jwt_algorithms.split(",")[0].strip()
    if algorithm.startswith("HS"):
        if private_key is not None:
            raise CommandError(
                f"--private-key is for RS256/ES256; {algorithm} signs with API_JWT_KEY"
            )
        if not settings.api_jwt_key:
            raise CommandError("API_JWT_KEY is not set: there is no key to sign with")
        key = settings.api_jwt_key
    else:
        if private_key is None:
            raise CommandError(
                f"{algorithm} tokens are signed with a private key: pass --private-key FILE "
                "(API_JWT_KEY holds the public key the API verifies with)"
            )
        try:
            key = private_key.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {private_key}: {exc}") from None
        try:
            # Checked here: PyJWT given a public key fails deep inside with AttributeError.
            load_pem_private_key(key.encode(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise CommandError(
                f"cannot sign a {algorithm} token with {private_key}: "
                "it is not an unencrypted PEM private key"
            ) from None
    try:
        token = mint_token(
            key,
            subject,
            role=role,
            scopes=tuple(scopes),
            lifetime_seconds=int(hours * 3600),
            algorithm=algorithm,
        )
    except (jwt.PyJWTError, NotImplementedError, ValueError, TypeError) as exc:
        # A key of the wrong kind or not PEM (PyJWTError), an unknown algorithm
        # (NotImplementedError), cryptography's refusals: never the key in the message.
        raise CommandError(f"cannot sign a {algorithm} token with that key: {exc}") from None
    print(token)


def _contract(directory: Path, write: bool, check: bool) -> None:
    from service import contract

    if write:
        for path in contract.write(directory):
            print(f"wrote {path}")
    elif check:
        stale = contract.stale(directory)
        if stale:
            raise CommandError(
                f"{', '.join(map(str, stale))} differ from the code: run progress contract --write"
            )
    else:
        print(json.dumps({name: json.loads(text) for name, text in contract.rendered().items()}))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="progress",
        description="LMS learner progress service. Settings come from environment variables "
        "(docs/operations.md).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name in COMMANDS:
        commands.add_parser(name, help=_HELP[name])
    catalog = commands.add_parser(
        "catalog",
        help="publish catalog entries from a JSON file",
        description="Publish the catalog entries of a JSON file (one entry, or a list) to "
        "the kind's compacted topic, keyed by id. If any entry is invalid, none is published.",
    )
    catalog.add_argument("kind", choices=CATALOG_KINDS)
    catalog.add_argument("file", type=Path, help="a JSON entry, or a JSON list of entries")
    erase = commands.add_parser(
        "erase",
        help="request the erasure of every record of a learner",
        description="Publish a right-to-erasure request: the worker deletes the learner's "
        "state, the sink their rows and cached answers (docs/reliability.md).",
    )
    erase.add_argument("user_id")
    redrive = commands.add_parser(
        "redrive",
        help="re-send the dead letters that are valid now",
        description="Read the dead-letter topic from the start and re-send to its source "
        "topic every message that today's rules accept. Re-sending twice changes nothing.",
    )
    redrive.add_argument("--error-type", help="only dead letters of this error_type")
    redrive.add_argument("--dry-run", action="store_true", help="count, send nothing")
    commands.add_parser(
        "resnapshot",
        help="re-send every learner's rows from the worker's tables",
        description="Read the worker's tables from their changelog topics and send every "
        "learner's rows, and every catalog row, to the snapshots topic: the sink then "
        "rebuilds PostgreSQL and Redis (docs/operations.md, Rebuild PostgreSQL and Redis).",
    )
    export = commands.add_parser(
        "export",
        help="print every row PostgreSQL holds of a learner, as JSON",
        description="For access requests: every row of every table with a user_id, "
        "grouped by table, as GET /admin/learners/{user_id}/export answers it.",
    )
    export.add_argument("user_id")
    token = commands.add_parser(
        "token",
        help="mint a bearer token signed with API_JWT_KEY",
        description="For operators and tests: a learner token reads its own progress; "
        "staff and service tokens what their scopes allow (docs/api.md).",
    )
    token.add_argument("subject", help="the user id of a learner, or a name for staff/service")
    token.add_argument("--role", choices=["learner", "staff", "service"], default="learner")
    token.add_argument(
        "--scope",
        action="append",
        default=[],
        choices=["progress:read", "catalog:write", "learners:erase", "learners:export"],
    )
    token.add_argument("--hours", type=float, default=1.0)
    token.add_argument(
        "--private-key",
        type=Path,
        help="a PEM private key file: how RS256/ES256 tokens are signed "
        "(the API verifies them with the public key in API_JWT_KEY)",
    )
    contract = commands.add_parser(
        "contract",
        help="the OpenAPI and AsyncAPI documents",
        description="Generate docs/openapi.json (the API) and docs/asyncapi.json (the topics) "
        "from the code: print both, write the files, or check that they are current.",
    )
    what = contract.add_mutually_exclusive_group()
    what.add_argument("--write", action="store_true", help="write the files that changed")
    what.add_argument("--check", action="store_true", help="fail if a file is not current")
    contract.add_argument("--dir", type=Path, default=Path("docs"), help="default: docs")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = Settings()
    _logging(settings)
    if args.command not in _SERVICES:
        # A one-shot command says in one line why it failed: aiokafka's own report of each
        # connection attempt would only repeat it.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        if args.command == "catalog":
            _catalog(settings, args.kind, args.file)
        elif args.command == "erase":
            _erase(settings, args.user_id)
        elif args.command == "redrive":
            _redrive(settings, args.error_type, args.dry_run)
        elif args.command == "contract":
            _contract(args.dir, args.write, args.check)
        elif args.command == "resnapshot":
            _resnapshot(settings)
        elif args.command == "export":
            _export(settings, args.user_id)
        elif args.command == "token":
            _token(settings, args.subject, args.role, args.scope, args.hours, args.private_key)
        else:
            COMMANDS[args.command](settings)
    except (CommandError, ServiceError) as exc:
        print(f"progress {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
