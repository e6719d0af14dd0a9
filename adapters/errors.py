"""The base of the shared adapters' exceptions (``progress.errors`` holds the root)."""

from progress.errors import ProgressError


class AdapterError(ProgressError):
    """Raised by a shared adapter (``adapters``): publishing, schema, cache, settings."""
