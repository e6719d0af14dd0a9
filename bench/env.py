"""One benchmark run's isolated corner of the shared stack: its own topic prefix, consumer
groups, PostgreSQL database, Redis database and working directory.

The stack (Kafka, PostgreSQL, Redis) is shared with other work, so a run never touches what
is not its own: everything it creates carries the run id (its database is
``progress_bench_<run id>``), and ``cleanup`` deletes only the topics whose names contain
it and that database. Two runs at once therefore keep apart, but for Redis db 1, which they
share: their API caches hold the same learners' keys, so only one run at a time measures the
API.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from adapters.schema import apply_migrations
from adapters.settings import Settings
from adapters.topics import ensure_topics, learner_input_topics
from bench.offsets import end_offsets

log = logging.getLogger(__name__)

BENCH_DATABASE_PREFIX = "progress_bench_"
BENCH_REDIS_DB = 1


@dataclass(frozen=True, slots=True)
class BenchEnv:
    run_id: str
    settings: Settings
    work_dir: Path  # worker state, peer state, process logs

    @property
    def tag(self) -> str:
        """In every topic and group name of the run, and only there."""
        return f"bench-{self.run_id}"

    @property
    def database(self) -> str:
        return f"{BENCH_DATABASE_PREFIX}{self.run_id}"

    def group(self, name: str) -> str:
        return f"{self.tag}.{name}"

    def process_env(self, settings: Settings | None = None) -> dict[str, str]:
        """The environment that gives a ``progress`` subprocess these settings."""
        env = dict(os.environ)
        for name, value in (settings or self.settings).model_dump().items():
            if value is None:
                env.pop(name.upper(), None)
            else:
                env[name.upper()] = str(value)
        return env


def _with_database(url: str, database: str) -> str:
    params = conninfo_to_dict(url)
    params["dbname"] = database
    return make_conninfo(**params)  # type: ignore[arg-type]


def _with_redis_db(url: str, db: int) -> str:
    base = url.split("?", 1)[0]
    scheme, _, rest = base.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{db}"


def create_env(base: Settings, api_port: int) -> BenchEnv:
    run_id = secrets.token_hex(3)
    work_dir = Path(tempfile.mkdtemp(prefix=f"bench-{run_id}-"))
    settings = base.model_copy(
        update={
            "topic_prefix": f"bench-{run_id}.",
            "worker_app_id": "worker",
            "worker_data_dir": work_dir / "worker",
            "sink_group_id": f"bench-{run_id}.sink",
            "database_url": _with_database(base.database_url, BENCH_DATABASE_PREFIX + run_id),
            "redis_url": _with_redis_db(base.redis_url, BENCH_REDIS_DB),
            "api_port": api_port,
            "api_auth": "off",
            # Any free port for the probes and metrics: two workers (the two_workers section)
            # cannot both take the default one.
            "worker_http_port": 0,
            "sink_http_port": 0,
        }
    )
    return BenchEnv(run_id=run_id, settings=settings, work_dir=work_dir)


async def prepare(env: BenchEnv, base: Settings) -> None:
    """A fresh bench database with the project's schema, and the run's topics."""
    admin_url = base.database_url
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
        name = sql.Identifier(env.database)
        await conn.execute(sql.SQL("drop database if exists {} with (force)").format(name))
        await conn.execute(sql.SQL("create database {}").format(name))
    # Applied here, so that the sink's measured start does not include them.
    async with await psycopg.AsyncConnection.connect(env.settings.database_url) as conn:
        await apply_migrations(conn)
    await ensure_topics(env.settings)
    # Producing before every new partition has a leader only earns retries.
    await end_offsets(env.settings.kafka_bootstrap, learner_input_topics(env.settings.topics))


async def create_topics(env: BenchEnv, names: Iterable[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=env.settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        n = env.settings.topic_partitions
        missing = [NewTopic(name, n, 1) for name in names if name not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


async def cleanup(env: BenchEnv, base: Settings, *, keep_work_dir: bool = False) -> list[str]:
    """Delete the run's topics (input, output, changelogs, peers'), its database (kept with
    the work dir), and its work dir."""
    admin = AIOKafkaAdminClient(bootstrap_servers=env.settings.kafka_bootstrap)
    await admin.start()
    try:
        ours = sorted(name for name in await admin.list_topics() if env.tag in name)
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()
    if not keep_work_dir:
        await _drop_database(base.database_url, env.database)
        shutil.rmtree(env.work_dir, ignore_errors=True)
    log.info("deleted %d topics of %s", len(ours), env.tag)
    return ours


async def _drop_database(admin_url: str, database: str) -> None:
    """Drop the run's database; a failure is logged, not raised (the run's figures are in).

    Without FORCE: the run's processes are gone by now, and PostgreSQL stops an autovacuum
    worker in the database itself, where FORCE would try to terminate it and fail for lack
    of the superuser's rights (seen at the end of a run)."""
    drop = sql.SQL("drop database if exists {}").format(sql.Identifier(database))
    try:
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as conn:
            await conn.execute(drop)
    except psycopg.Error as error:
        log.warning("could not drop database %s: %s", database, error)
