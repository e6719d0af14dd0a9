"""The root of the project's exceptions, and the core's own base.

Every error the project raises on purpose is a ``ProgressError``, through the base of the
package that raises it: ``DomainError`` here (``progress``), ``AdapterError``
(``adapters.errors``), ``WorkerError`` (``streams.errors``), ``SinkError``
(``sinks.errors``), ``ApiError`` (``api.errors``). Edges (the worker's agents, the sink's
loop, the API's middleware, the CLI) catch them by type; docs/operations.md#errors lists
them. Validators of pydantic models still raise ``ValueError``, which pydantic turns into
the ``ValidationError`` their callers catch.

This module imports nothing, so every layer can use it.
"""


class ProgressError(Exception):
    """Root of every exception the project defines."""


class DomainError(ProgressError):
    """Raised by the pure core (``progress``)."""


class ConflictingIds(DomainError):
    """An event names an attempt or a submission that the learner's state holds for another
    quiz or assignment: the event is refused (dead-lettered ``conflicting-ids``)."""
