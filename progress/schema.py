"""Building blocks shared by every event and model: field naming, ids, deterministic hashes."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasGenerator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
)


def seed_name(field: str) -> str:
    """The seed document's spelling of a snake_case field: ``user_id`` -> ``UserID``."""
    return "".join("ID" if part == "id" else part.capitalize() for part in field.split("_"))


def _accept_both_spellings(field: str) -> AliasChoices:
    return AliasChoices(field, seed_name(field))


class InputModel(BaseModel):
    """An event from a producer: snake_case or the seed's PascalCase, unknown fields ignored.

    Unknown fields are ignored rather than refused so that producers can add fields
    before this service knows them, as schema evolution on a shared topic requires.
    """

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_accept_both_spellings),
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        str_strip_whitespace=True,
    )


class OutputModel(BaseModel):
    """A record this service writes: snake_case, exact, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Ids as LMSs spell them: Open edX uses "course-v1:Org+Course+Run", others UUIDs or slugs.
# No slash and no white space, so an id is always one URL path segment.
Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+@-]*$"),
]

# Event times outside these bounds are refused: before the Unix epoch no LMS existed, and a
# time more than a day ahead of the clock is a producer's clock or unit error (seconds sent
# as milliseconds), which would otherwise pin LastActivityAt in the future for good.
EARLIEST_EVENT_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE_SKEW = timedelta(days=1)


def _plausible_event_time(value: datetime) -> datetime:
    if value < EARLIEST_EVENT_TIME:
        raise ValueError("time is before the Unix epoch (1970-01-01)")
    if value > datetime.now(UTC) + MAX_FUTURE_SKEW:
        raise ValueError("time is more than a day in the future: check the producer's clock")
    return value


def _iso_8601_only(value: object) -> object:
    # pydantic would read a number, or a string of one, as seconds (or milliseconds) since
    # 1970: a unit guess that turns a wrong field into a plausible time. Times are ISO 8601.
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        if ":" in value:
            # No number's string holds a colon (and every ISO time does): decided without
            # float()'s exception, which cost more than the rest of decoding an event.
            return value
        try:
            float(value)
        except ValueError:
            return value
    raise ValueError("a time must be an ISO 8601 string with a time zone")


EventTime = Annotated[
    AwareDatetime, BeforeValidator(_iso_8601_only), AfterValidator(_plausible_event_time)
]

_NAMESPACE = uuid.UUID("0b7f6a52-3c1e-4b59-9a57-2f1e4c0d8e11")
_NAMESPACE_BYTES = _NAMESPACE.bytes
# The variant's hex digit (RFC 4122: binary 10xx), by the top two bits of the hash's nibble.
_VARIANT_DIGIT = "89ab89ab89ab89ab"


def once_id(*parts: str) -> str:
    """A UUID derived from its parts, as ``stable_id``, for an id named once (a version's
    event): not remembered, so it does not push out the ids every snapshot names again.

    ``str(uuid.uuid5(namespace, name))`` written out (RFC 4122 section 4.3: the SHA-1 of
    namespace and name, its version digit 5 and variant bits set) without building a
    ``uuid.UUID``, which costs three times as much; the tests compare it with ``uuid5``."""
    name = _NAMESPACE_BYTES + "\x1f".join(parts).encode()
    h = hashlib.sha1(name, usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[int(h[16], 16)]}{h[17:20]}-{h[20:32]}"


# Every snapshot names the same rows again (a learner's user, course and module rows), so
# their ids are remembered rather than hashed anew each time; a pure function, any size works.
@functools.lru_cache(maxsize=1 << 16)
def stable_id(*parts: str) -> str:
    """A UUID derived from its parts, so a replay gives every row and event the same id."""
    return once_id(*parts)


def content_hash(payload: dict[str, Any]) -> str:
    """A hex digest of a JSON-able dict that does not depend on key order."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
