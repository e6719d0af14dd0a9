"""The base of the worker's exceptions (``progress.errors`` holds the root)."""

from progress.errors import ProgressError


class WorkerError(ProgressError):
    """Raised by the Faust worker (``streams``)."""
