"""Event times are ISO 8601 strings with a time zone: a number, or a string of one, is refused
rather than read as seconds since 1970 (progress.schema.EventTime)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from progress.schema import EventTime


class _Timed(BaseModel):
    at: EventTime


@pytest.mark.parametrize(
    "value",
    [1_700_000_000, 1.7e9, "1700000000", " 1700000000 ", "1.7e9", "1_700_000_000", "inf", "nan"],
)
def test_a_number_or_its_string_is_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="a time must be an ISO 8601 string"):
        _Timed.model_validate({"at": value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-01T10:15:00Z", datetime(2026, 3, 1, 10, 15, tzinfo=UTC)),
        ("2026-03-01T12:15:00+02:00", datetime(2026, 3, 1, 10, 15, tzinfo=UTC)),
    ],
)
def test_an_iso_time_with_a_zone_is_read(value: str, expected: datetime) -> None:
    assert _Timed.model_validate({"at": value}).at == expected


def test_an_iso_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValidationError):
        _Timed.model_validate({"at": "2026-03-01T10:15:00"})
