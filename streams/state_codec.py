"""How a learner's state is stored in the ``learners`` table: JSON, compressed when large.

Most states are a few KB and stay plain JSON (the cheapest to write). A state of
``COMPRESS_FROM_BYTES`` or more is stored compressed with zstd (level 1): JSON of many quiz
attempts and submissions repeats its field names and ids, and compresses about ninefold,
which keeps a learner with thousands of items inside a Kafka record
(docs/reliability.md#bounds). On the benchmark's states of 64 KB and more, zstd level 1
takes under a third of zlib level 1's CPU (108 against 371 µs per state) and stores them
8.9 times smaller instead of 6.3 (``python -m bench.compression``).

A stored value is told apart by its first bytes: JSON starts with ``{``, a zstd frame with
its magic number; anything else is a zlib stream, as workers before zstd compressed (never
``{``). Values written before compression existed are plain JSON and load as they are.

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

import zstandard

from progress.state import LearnerState
from streams.encoding_memo import EncodingMemo
from streams.model_codec import encode, encode_fields, require_field_dicts

require_field_dicts(LearnerState)  # else ``encode`` would not write pydantic's JSON

COMPRESS_FROM_BYTES = 64_000
# Level 1: most of the size gain for a fraction of the higher levels' time (bench.compression).
# One compressor for the process: the worker writes states from one thread.
_COMPRESSOR = zstandard.ZstdCompressor(level=1)
_DECOMPRESSOR = zstandard.ZstdDecompressor()
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # a zstd frame's first four bytes

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
    return _COMPRESSOR.compress(raw)


def stored_json(stored: bytes) -> bytes:
    """The JSON of a state as ``encode_state`` stored it, now or before zstd (zlib)."""
    if stored[:1] == b"{":
        return stored
    if stored[:4] == ZSTD_MAGIC:
        return _DECOMPRESSOR.decompress(stored)
    return zlib.decompress(stored)


def decode_state(stored: bytes | str | dict[str, Any]) -> LearnerState:
    """A state as the table holds it: bytes as ``encode_state`` wrote them, a str for a value
    written as a JSON string, or a dict from a store that decoded the JSON itself."""
    if isinstance(stored, dict):
        return LearnerState.model_validate(stored)
    if isinstance(stored, str):
        stored = stored.encode()
    return LearnerState.model_validate_json(stored_json(stored))
