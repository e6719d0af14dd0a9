"""The models of what the API answers beside the rows (``api.queries``): errors, health,
admin acknowledgements, and the admin request bodies. They describe the answers in the
OpenAPI document (``api.openapi``); the handlers build the same shapes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from progress.catalog import AnyCatalogEntry
from progress.schema import EventTime, OutputModel


class ErrorBody(OutputModel):
    """Every error: a code (``bad_request``, ``not_found``, ...) and, but for 500, a detail."""

    error: str
    detail: str | None = None


class Health(OutputModel):
    status: Literal["ok"]


class Readiness(OutputModel):
    """``checks``: ``ok``, or what failed (``failing`` unless the caller is staff)."""

    status: Literal["ready", "not-ready"]
    checks: dict[str, str]


class Published(OutputModel):
    """A catalog entry as published, and the topic it was published on."""

    published: dict[str, Any]
    topic: str


class ErasureAccepted(OutputModel):
    """The erasure request as published (``user_id``, ``request_id``, ``requested_at``)."""

    requested: dict[str, Any]


class LearnerExport(OutputModel):
    """Every row of a learner, by table name: each row as its table's columns."""

    user_id: str
    tables: dict[str, list[dict[str, Any]]]


class _Body(BaseModel):
    # Bodies may carry fields the API does not read: they are ignored, as the handlers do.
    model_config = ConfigDict(extra="allow")


class TombstoneBody(_Body):
    """Optional body of a catalog DELETE: the deletion's time, now by default."""

    updated_at: EventTime | None = None


class ErasureBody(_Body):
    """Optional body of an erasure request: the caller's id for it, a new UUID by default."""

    request_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None


# The body of a catalog PUT: an entry of the path's kind. ``type`` is filled in from the
# kind when missing, ``id`` from the path (if given it must be the path's).
CatalogEntryBody = AnyCatalogEntry
