"""The sink's exceptions (``progress.errors`` holds the root)."""

from progress.errors import ProgressError


class SinkError(ProgressError):
    """Raised by the snapshot sink (``sinks``)."""


class InvalidSnapshot(SinkError, ValueError):
    """A record of the snapshot topic that is no message the sink can write: it is
    dead-lettered as undecodable. A ``ValueError`` too, like pydantic's ``ValidationError``
    that reports the other undecodable records."""
