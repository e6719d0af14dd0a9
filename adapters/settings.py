"""Every setting of every process, read from environment variables, in one place.

Each field's environment variable is its name in upper case (``KAFKA_BOOTSTRAP``, ...).
The defaults match the local stack that ``scripts/stack.sh up`` starts; docs/operations.md
lists them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.errors import AdapterError


class InvalidSettings(AdapterError, ValueError):
    """Settings that cannot work together; the message names the variables to change."""


class Topics(BaseModel):
    """Kafka topic names, all under one optional prefix so test runs can share a broker."""

    prefix: str = ""

    def consumed(self, kind: str) -> str:
        """The topic producers send a kind of input on (``progress.kinds``)."""
        return f"{self.prefix}lms.{kind}"

    def produced(self, kind: str) -> str:
        """A topic this service writes: published events, its own internal topics."""
        return f"{self.prefix}progress.{kind}"

    # Topics by name, for code and tests that mean one (a new kind needs none): the topics of
    # a role (learner inputs, catalogs, published) are looked up by kind in adapters/topics.py.

    # Consumed, keyed by user_id: a learner's activity.
    @property
    def enrollments(self) -> str:
        return self.consumed("enrollments")

    @property
    def lesson_activity(self) -> str:
        return self.consumed("lesson-activity")

    @property
    def quiz_activity(self) -> str:
        return self.consumed("quiz-activity")

    @property
    def assignment_activity(self) -> str:
        return self.consumed("assignment-activity")

    @property
    def competency_evidence(self) -> str:
        return self.consumed("competency-evidence")

    @property
    def learner_profiles(self) -> str:
        return self.consumed("learner-profiles")

    @property
    def erasure_requests(self) -> str:
        return self.consumed("erasure-requests")

    # Consumed, keyed by the entry's id, compacted: catalogs.
    @property
    def course_updates(self) -> str:
        return self.consumed("course-updates")

    @property
    def learning_paths(self) -> str:
        return self.consumed("learning-paths")

    @property
    def competencies(self) -> str:
        return self.consumed("competencies")

    @property
    def achievements(self) -> str:
        return self.consumed("achievements")

    # Internal: catalog entries copied to every partition of the user-keyed stream.
    @property
    def catalog_broadcast(self) -> str:
        return self.produced("catalog-broadcast")

    # Published, keyed by user_id.
    @property
    def progress_updated(self) -> str:
        return self.produced("progress-updated")

    @property
    def course_completed(self) -> str:
        return self.produced("course-completed")

    @property
    def quiz_completed(self) -> str:
        return self.produced("quiz-completed")

    @property
    def assignment_submitted(self) -> str:
        return self.produced("assignment-submitted")

    @property
    def achievement_earned(self) -> str:
        return self.produced("achievement-earned")

    @property
    def competency_acquired(self) -> str:
        return self.produced("competency-acquired")

    @property
    def learner_erased(self) -> str:
        return self.produced("learner-erased")

    # Internal: worker to sink (learner rows by user_id, catalog rows by catalog/<kind>/<id>).
    @property
    def snapshots(self) -> str:
        return self.produced("snapshots")

    # Internal, compacted: each piece of bulky content, keyed <row id>/<part> (progress.content).
    @property
    def content(self) -> str:
        return self.produced("content")

    @property
    def dead_letter(self) -> str:
        return self.produced("dead-letter")

    # Published by the sink, keyed as the snapshot was: snapshots it can never write.
    @property
    def sink_dead_letter(self) -> str:
        return self.produced("sink-dead-letter")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, frozen=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    # How every Kafka client the project makes talks to the brokers (adapters/kafka_clients.py):
    # the listener's protocol, for SASL the mechanism and the credentials, for TLS the CA that
    # signed the brokers' certificates and, for mutual TLS, this client's own certificate.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = Field(default="", repr=False)
    kafka_ssl_cafile: Path | None = None  # None: the system's trusted CAs
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: str = Field(default="", repr=False)
    # Off only for brokers whose certificates do not name the host clients reach them by.
    kafka_ssl_check_hostname: bool = True
    database_url: str = "postgresql://progress:progress@127.0.0.1:5432/progress"
    redis_url: str = "redis://127.0.0.1:6379/0"

    # How long a PostgreSQL client waits for a pooled connection: then an API request answers
    # 503, and a sink write counts as a failed attempt (retried).
    pg_connection_timeout_seconds: float = Field(default=5.0, gt=0)

    topic_prefix: str = ""
    # Partitions of every user-keyed topic: the most workers that can share the load.
    topic_partitions: int = Field(default=8, ge=1)
    # Retention (adapters/topics.py ``topic_configs``), in hours; -1 keeps records forever.
    # Learner input and dead letters: 30 days, a month to notice a fault and re-drive or
    # replay, and no longer, since they carry personal data an erasure cannot reach inside
    # the log (they age out within the month an access or erasure request allows).
    topic_input_retention_hours: int = Field(default=720, ge=-1)
    # Snapshots: 7 days, long enough for the sink to wait out an outage; longer buys
    # nothing since ``progress resnapshot`` rebuilds from the worker's tables. Not
    # compacted: a learner's snapshot holds only the rows its events touched.
    topic_snapshot_retention_hours: int = Field(default=168, ge=-1)

    # Faust worker.
    worker_app_id: str = "lms-progress"
    worker_store: str = "rocksdb://"
    worker_data_dir: Path = Path("var/worker")
    # How long a crashed worker keeps its partitions before the group moves them: Faust's
    # default of 60 s stalls a learner's progress for a minute after every crash.
    worker_session_timeout_seconds: float = Field(default=10.0, ge=6.0)
    # Produce batching: a few milliseconds' wait and batches of up to 256 KiB (snapshots are
    # about 6 KB) send fewer, fuller requests; Faust's defaults (0 ms, 16 KiB) cost the worker
    # about a seventh of its throughput (BENCHMARKS.md).
    worker_producer_linger_ms: int = Field(default=5, ge=0)
    worker_producer_batch_bytes: int = Field(default=262_144, ge=16_384)
    # Learner-event batches (streams/batching.py): a batch is what is waiting, up to this many
    # events (a learner's state is written once per batch, however many of its events it
    # holds), handed over once no event came for a moment (nothing more is waiting), or after
    # this long taking them in.
    worker_batch_max_events: int = Field(default=1000, ge=1)
    worker_batch_max_wait_ms: int = Field(default=100, ge=0)
    # A batch is handed over once no event came for this long: Faust's stream reads what is
    # waiting at a few thousand records per second (a record every few hundred µs), so a
    # pause this long means nothing more is waiting. Shorter splits batches that could have
    # filled (more state writes per event); longer adds to every quiet-time event's latency.
    worker_batch_idle_ms: float = Field(default=5.0, ge=0)
    # Faust's Monitor sensor (streams/monitor.py): "quiet" keeps only what Faust itself reads
    # of it; "stock" also keeps its per-event statistics, which only Faust's web pages show
    # (the worker runs without them), at about 2 µs per event (bench/faust_overhead.py).
    worker_faust_monitor: Literal["quiet", "stock"] = "quiet"
    # Net allocations between passes of the cyclic garbage collector's young generation
    # (adapters/collector.py; Python's default is 700): the states the worker holds make each
    # pass costly, and its derivation makes no cycles. 0: the cyclic collector is off.
    worker_gc_threshold: int = Field(default=50_000, ge=0)

    # Snapshot sink.
    sink_group_id: str = "lms-progress-sink"
    sink_batch_max_records: int = Field(default=2000, ge=1)
    sink_batch_timeout_ms: int = Field(default=100, ge=1)
    sink_retry_max_seconds: float = Field(default=10.0, gt=0)

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    cache_ttl_seconds: int = Field(default=3600, ge=1)
    # Bearer tokens (api/auth.py). "off" is for local development only: the API then
    # answers anyone as if they were staff with every scope.
    api_auth: Literal["jwt", "off"] = "jwt"
    api_jwt_key: str = Field(default="", repr=False)  # HS256 secret, or a PEM public key
    api_jwt_algorithms: str = "HS256"  # comma-separated
    api_jwt_issuer: str | None = None
    api_jwt_audience: str | None = None
    # CORS (api/cors.py): origins whose pages may call the API, comma-separated and exact
    # ("https://dash.example.com"), or "*" for any; empty: no cross-origin access.
    api_cors_origins: str = ""
    # How long a browser may reuse a preflight's answer.
    api_cors_max_age_seconds: int = Field(default=600, ge=0)

    # Probes and metrics of the worker and the sink (adapters/probes.py): /healthz, /readyz
    # and /metrics, without authentication; bound to loopback unless set otherwise.
    worker_http_host: str = "127.0.0.1"
    worker_http_port: int = Field(default=8081, ge=0, le=65535)
    sink_http_host: str = "127.0.0.1"
    sink_http_port: int = Field(default=8082, ge=0, le=65535)

    log_level: str = "INFO"
    # "text": a line for a person; "json": one JSON object per line (adapters/logs.py).
    log_format: Literal["text", "json"] = "text"

    @field_validator("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        # `KAFKA_SSL_CAFILE=` (as an env file writes an unset one) means no file, not ".".
        return None if value == "" else value

    @field_validator("topic_input_retention_hours", "topic_snapshot_retention_hours")
    @classmethod
    def _retention_not_zero(cls, hours: int) -> int:
        if hours == 0:
            raise ValueError("0 hours would delete records as they arrive: -1 keeps them forever")
        return hours

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix)
