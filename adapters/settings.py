"""Every setting of every process, read from environment variables, in one place.

Each field's environment variable is its name in upper case (``KAFKA_BOOTSTRAP``, ...).
The defaults match the local stack that ``scripts/stack.sh up`` starts; docs/operations.md
lists them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Topics(BaseModel):
    """Kafka topic names, all under one optional prefix so test runs can share a broker."""

    prefix: str = ""

    def _name(self, name: str) -> str:
        return f"{self.prefix}{name}"

    # Consumed, keyed by user_id: a learner's activity.
    @property
    def enrollments(self) -> str:
        return self._name("lms.enrollments")

    @property
    def lesson_activity(self) -> str:
        return self._name("lms.lesson-activity")

    @property
    def quiz_activity(self) -> str:
        return self._name("lms.quiz-activity")

    @property
    def assignment_activity(self) -> str:
        return self._name("lms.assignment-activity")

    @property
    def competency_evidence(self) -> str:
        return self._name("lms.competency-evidence")

    @property
    def learner_profiles(self) -> str:
        return self._name("lms.learner-profiles")

    @property
    def erasure_requests(self) -> str:
        return self._name("lms.erasure-requests")

    # Consumed, keyed by the entry's id, compacted: catalogs.
    @property
    def course_updates(self) -> str:
        return self._name("lms.course-updates")

    @property
    def learning_paths(self) -> str:
        return self._name("lms.learning-paths")

    @property
    def competencies(self) -> str:
        return self._name("lms.competencies")

    @property
    def achievements(self) -> str:
        return self._name("lms.achievements")

    # Internal: catalog entries copied to every partition of the user-keyed stream.
    @property
    def catalog_broadcast(self) -> str:
        return self._name("progress.catalog-broadcast")

    # Published, keyed by user_id.
    @property
    def progress_updated(self) -> str:
        return self._name("progress.progress-updated")

    @property
    def course_completed(self) -> str:
        return self._name("progress.course-completed")

    @property
    def quiz_completed(self) -> str:
        return self._name("progress.quiz-completed")

    @property
    def assignment_submitted(self) -> str:
        return self._name("progress.assignment-submitted")

    @property
    def achievement_earned(self) -> str:
        return self._name("progress.achievement-earned")

    @property
    def competency_acquired(self) -> str:
        return self._name("progress.competency-acquired")

    @property
    def learner_erased(self) -> str:
        return self._name("progress.learner-erased")

    # Internal: worker to sink (learner rows by user_id, catalog rows by catalog/<kind>/<id>).
    @property
    def snapshots(self) -> str:
        return self._name("progress.snapshots")

    @property
    def dead_letter(self) -> str:
        return self._name("progress.dead-letter")

    # Published by the sink, keyed as the snapshot was: snapshots it can never write.
    @property
    def sink_dead_letter(self) -> str:
        return self._name("progress.sink-dead-letter")

    @property
    def learner_inputs(self) -> tuple[str, ...]:
        return (
            self.enrollments,
            self.lesson_activity,
            self.quiz_activity,
            self.assignment_activity,
            self.competency_evidence,
            self.learner_profiles,
            self.erasure_requests,
        )

    @property
    def catalogs(self) -> tuple[str, ...]:
        return (self.course_updates, self.learning_paths, self.competencies, self.achievements)

    @property
    def published(self) -> tuple[str, ...]:
        return (
            self.progress_updated,
            self.course_completed,
            self.quiz_completed,
            self.assignment_submitted,
            self.achievement_earned,
            self.competency_acquired,
            self.learner_erased,
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, frozen=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    database_url: str = "postgresql://progress:progress@127.0.0.1:5432/progress"
    redis_url: str = "redis://127.0.0.1:6379/0"

    topic_prefix: str = ""
    # Partitions of every user-keyed topic: the most workers that can share the load.
    topic_partitions: int = Field(default=8, ge=1)

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

    log_level: str = "INFO"

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix)
