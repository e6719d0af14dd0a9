"""The base of the worker's exceptions (``progress.errors`` holds the root)."""

from progress.errors import ProgressError


class WorkerError(ProgressError):
    """Raised by the Faust worker (``streams``)."""


class NoCurrentEvent(WorkerError):
    """A table write outside the handling of an event: Faust routes writes by the event's
    partition, so there would be no partition to write to (a bug, not bad input)."""
