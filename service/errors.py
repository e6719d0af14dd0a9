"""The entrypoints' errors: a command cannot do what it was asked, and says why in one line."""

from __future__ import annotations

from progress.errors import ProgressError


class ServiceError(ProgressError):
    """The base of the service package's errors: the CLI prints the message, exits 1."""


class Unreachable(ServiceError):
    """A dependency (Kafka, PostgreSQL) does not answer; the message names it and where."""


class TopicMissing(ServiceError):
    """A topic the command reads does not exist; the message names it."""
