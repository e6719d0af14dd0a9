"""The JSON of immutable models, remembered while each model lives.

A learner's state changes one course per event; its other ``CourseState`` objects are the
same objects as in the state before (the core copies only along the changed path,
``progress.trusted.replaced``). Their JSON is then the same bytes too, so a state is written
by re-encoding only what is new and splicing the rest in (``msgspec.Raw``): about 90% of a
state's JSON is its courses and, on the benchmark's workload, two thirds of it is courses
written before (bench/core.py's ``encode_states_us_per_event``, BENCHMARKS.md).

Entries are keyed by the model's ``id()`` and hold a weak reference to it:

- an entry is used only when its reference still gives the very object asked about, so an id
  reused by a later object can never return an earlier object's bytes;
- an entry leaves when its model dies (the weak reference's callback), so the memo holds the
  JSON of models something else keeps alive (the worker's kept states,
  ``streams.learner_cache``), never the models themselves: it cannot grow beyond them.

Contract: a model given to ``EncodingMemo.json`` is never changed afterwards, nor any value
it holds (the core's models are frozen and their dicts are never changed in place: it copies
them). A model changed in place would be written with its old JSON.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import msgspec
from pydantic import BaseModel


class _Kept(weakref.KeyedRef):
    """An entry: the weak reference to the model, keyed by its id, with the model's JSON.
    One object per entry (not a tuple besides): every entry is one more object for the cyclic
    garbage collector to traverse, and the worker's collections already cost much."""

    __slots__ = ("json",)
    json: msgspec.Raw


class EncodingMemo:
    """``json(model)`` is ``msgspec.Raw(encode(model))``, encoded once per live model."""

    def __init__(self, encode: Callable[[BaseModel], bytes]) -> None:
        self._encode = encode
        self._kept: dict[int, _Kept] = {}

    def json(self, model: BaseModel) -> msgspec.Raw:
        key = id(model)
        kept = self._kept.get(key)
        if kept is not None and kept() is model:
            return kept.json
        entry = _Kept(model, self._gone, key)
        entry.json = msgspec.Raw(self._encode(model))
        self._kept[key] = entry
        return entry.json

    def _gone(self, ref: weakref.KeyedRef) -> None:
        # Only the entry this reference is: its key may hold a later object's by now.
        if self._kept.get(ref.key) is ref:
            del self._kept[ref.key]

    def __len__(self) -> int:
        """The number of models whose JSON is kept (all alive)."""
        return len(self._kept)

    def kept_bytes(self) -> int:
        """The size of the JSON kept, in bytes."""
        return sum(len(entry.json) for entry in self._kept.values())
