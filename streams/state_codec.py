"""How a learner's state is stored in the ``learners`` table: JSON, compressed when large.

Most states are a few KB and stay plain JSON (the cheapest to write). A state of
``COMPRESS_FROM_BYTES`` or more is stored zlib-compressed: JSON of many quiz attempts and
submissions repeats its field names and ids, and compresses about tenfold, which keeps a
learner with thousands of items inside a Kafka record (docs/reliability.md#bounds).
A stored value is told apart by its first byte: JSON starts with ``{``, a zlib stream never
does. Values written before compression existed are plain JSON and load as they are.

The JSON is written by msgspec (``streams.model_codec``): the same bytes as pydantic's
``model_dump_json``, in a third of the time (bench/codecs.py), so a state is written in the
one format every worker version reads. A course's JSON is encoded once per ``CourseState``
object and spliced into every later state that holds the same object
(``streams.encoding_memo``): an event changes one course, so a write encodes that course and
the learner-wide fields, not the learner's other courses again.

A state is read by pydantic, which validates and migrates older states (their bulky fields,
``progress.state``): a trusted decode that builds the models without validation measured
slower than pydantic's (bench/codecs.py), and the worker reads a state only when it is not
kept in memory (``streams.learner_cache``).
"""

from __future__ import annotations

import zlib
from typing import Any

from progress.state import LearnerState
from streams.encoding_memo import EncodingMemo
from streams.model_codec import encode, encode_fields, require_field_dicts

require_field_dicts(LearnerState)  # else ``encode`` would not write pydantic's JSON

COMPRESS_FROM_BYTES = 64_000
_LEVEL = 1  # most of the size gain for a fraction of the default level's time

# The courses of the states written (or measured) and still alive.
_COURSES = EncodingMemo(encode)


def state_json(state: LearnerState) -> bytes:
    """``encode(state)``, the state's JSON, with each course's bytes encoded once per object."""
    fields = state.__dict__.copy()
    fields["courses"] = {key: _COURSES.json(course) for key, course in state.courses.items()}
    return encode_fields(fields)


def encode_state(state: LearnerState) -> bytes:
    raw = state_json(state)
    if len(raw) < COMPRESS_FROM_BYTES:
        return raw
    return zlib.compress(raw, _LEVEL)


def decode_state(stored: bytes | str | dict[str, Any]) -> LearnerState:
    """A state as the table holds it: bytes as ``encode_state`` wrote them, a str for a value
    written as a JSON string, or a dict from a store that decoded the JSON itself."""
    if isinstance(stored, dict):
        return LearnerState.model_validate(stored)
    if isinstance(stored, str):
        stored = stored.encode()
    if stored[:1] != b"{":
        stored = zlib.decompress(stored)
    return LearnerState.model_validate_json(stored)
