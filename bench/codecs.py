"""Codecs for the worker's learner state and snapshots, measured on the benchmark's own states.

    .venv/bin/python -m bench.codecs [--users N] [--courses N] [--events N] [--seed N]
                                     [--repeat N]

Runs the workload through the core (bench/core.py) to get real learner states and snapshots,
picks a typical small, medium and large one of each (the states nearest 4 KB, 10 KB and
20 KB of JSON; the snapshots at p50, p90 and p99 of size), and times encode and decode
(µs per call, the best of ``repeat`` rounds, CPU time) with:

- ``pydantic``: ``model_dump_json`` / ``model_validate_json`` (the worker before #12);
- ``msgspec``: ``streams.model_codec.encode`` (msgspec's encoder on the models' field dicts,
  what the worker uses) / ``Trusted.decode`` below (msgspec's parser, then the model tree
  built without validation: measured slower than pydantic's decode, so not used);
- ``orjson``: ``orjson.dumps`` on the same field dicts (``OPT_UTC_Z``) / ``orjson.loads``
  then the same tree building (``Trusted.from_data``), when orjson is installed;
- ``parse only``: msgspec's and orjson's parsers to plain data, without the models, which
  is the floor of any decode that ends in models.

Decoding a snapshot is the sink's (which validates, at the boundary): only its encoding is
the worker's, and only that is measured for snapshots.
"""

from __future__ import annotations

import argparse
import importlib
import time
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec
from pydantic import BaseModel

from bench.core import BATCH, _Core
from bench.figures import print_figures
from bench.loadgen import generate
from progress.outcomes import Outcome
from progress.state import LearnerState
from streams.model_codec import encode

orjson: Any
try:  # a candidate measured when present, not a dependency
    orjson = importlib.import_module("orjson")
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None

M = TypeVar("M", bound=BaseModel)
Convert = Callable[[Any], Any]


class Untrusted(Exception):
    """The value is not in the shape ``encode`` writes: validate it instead."""


def _same(value: Any) -> Any:
    return value


def _str(value: Any) -> Any:
    if type(value) is not str:
        raise Untrusted
    return value


def _int(value: Any) -> Any:
    if type(value) is not int:
        raise Untrusted
    return value


def _float(value: Any) -> Any:
    # JSON writes a whole float as 1.0, but a value from elsewhere may say 1.
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    raise Untrusted


def _bool(value: Any) -> Any:
    if type(value) is not bool:
        raise Untrusted
    return value


def _datetime(value: Any) -> Any:
    if type(value) is not str:
        raise Untrusted
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Untrusted from None
    if parsed.tzinfo is None:  # the models hold aware times only
        raise Untrusted
    return parsed


_SCALARS: dict[Any, Convert] = {
    str: _str,
    int: _int,
    float: _float,
    bool: _bool,
    datetime: _datetime,
    Any: _same,
}


def _optional(inner: Convert) -> Convert:
    def convert(value: Any) -> Any:
        return None if value is None else inner(value)

    return convert


def _dict_of(inner: Convert) -> Convert:
    def convert(value: Any) -> Any:
        if type(value) is not dict:
            raise Untrusted
        return {k: inner(v) for k, v in value.items()}

    return convert


def _tuple_of(inner: Convert) -> Convert:
    def convert(value: Any) -> Any:
        if type(value) is not list:
            raise Untrusted
        return tuple(inner(v) for v in value)

    return convert


def _literal(allowed: tuple[Any, ...]) -> Convert:
    choices = frozenset(allowed)

    def convert(value: Any) -> Any:
        if value not in choices:
            raise Untrusted
        return value

    return convert


def _converter(annotation: Any, plans: dict[type[BaseModel], Convert]) -> Convert:
    """How to turn the JSON of a field annotated ``annotation`` into its value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _plan(annotation, plans)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        # Constraints (lengths, patterns) held when the value was written.
        return _converter(args[0], plans)
    if origin is typing.Literal:
        return _literal(args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return _optional(_converter(rest[0], plans))
    if origin is dict and args and args[0] is str:
        return _dict_of(_converter(args[1], plans))
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple_of(_converter(args[0], plans))
    raise TypeError(f"no trusted decoding for fields annotated {annotation!r}")


def _plan(model: type[BaseModel], plans: dict[type[BaseModel], Convert]) -> Convert:
    """The converter of ``model``'s JSON object, compiled once from its fields."""
    known = plans.get(model)
    if known is not None:
        return known
    config = model.model_config
    decorators = model.__pydantic_decorators__
    if (
        config.get("extra") != "forbid"
        or config.get("alias_generator") is not None
        or decorators.field_serializers
        or decorators.model_serializers
        or decorators.computed_fields
        or any(
            f.alias not in (None, name) or f.serialization_alias not in (None, name)
            for name, f in model.model_fields.items()
        )
    ):
        # Its JSON is not its field dict: ``encode`` would not write what pydantic writes.
        raise TypeError(f"{model.__name__} is not encoded as its field dict")
    converters: dict[str, Convert] = {}
    required = frozenset(name for name, f in model.model_fields.items() if f.is_required())
    construct = model.model_construct

    def convert(value: Any) -> Any:
        if type(value) is not dict or not required <= value.keys():
            raise Untrusted
        try:
            fields = {name: converters[name](v) for name, v in value.items()}
        except KeyError:  # a field the model does not have
            raise Untrusted from None
        return construct(**fields)

    # Registered before its fields are, so a model that contains itself terminates.
    plans[model] = convert
    for name, info in model.model_fields.items():
        converters[name] = _converter(info.annotation, plans)
    return convert


class Trusted(Generic[M]):
    """The measured alternative to pydantic's decode: msgspec parses, a plan compiled once
    per model class converts what JSON cannot say (datetimes, tuples, nested models) and
    builds each model with ``model_construct``, without validation; a value not in the shape
    the worker writes (an unknown or missing field, a wrong type) is validated instead."""

    def __init__(self, model: type[M]) -> None:
        self.model = model
        self._convert = _plan(model, {})
        self._decoder = msgspec.json.Decoder()

    def decode(self, raw: bytes) -> M:
        return self.from_data(self._decoder.decode(raw))

    def from_data(self, data: Any) -> M:
        try:
            return typing.cast(M, self._convert(data))
        except Untrusted:
            return self.model.model_validate(data)


def _best_us(call: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` rounds, each long enough to time, in µs per call."""
    n = 1
    while True:  # calls per round: about 20 ms of them
        t0 = time.process_time()
        for _ in range(n):
            call()
        if time.process_time() - t0 > 0.02:
            break
        n *= 2
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            call()
        best = min(best, (time.process_time() - t0) / n)
    return round(best * 1e6, 1)


def _nearest(models: list[BaseModel], size: int) -> BaseModel:
    return min(models, key=lambda m: abs(len(m.model_dump_json()) - size))


def _orjson_fields(model: BaseModel) -> dict[str, Any]:
    return model.__dict__


def codec_figures(state: BaseModel, trusted: Trusted[Any], repeat: int) -> dict[str, float]:
    """encode/decode µs of one model by each codec; decode only when ``trusted`` is given."""
    raw = state.model_dump_json().encode()
    model = type(state)
    out = {
        "json_bytes": len(raw),
        "pydantic_encode_us": _best_us(state.model_dump_json, repeat),
        "msgspec_encode_us": _best_us(lambda: encode(state), repeat),
    }
    if orjson is not None:
        option = orjson.OPT_UTC_Z

        def dumps() -> bytes:
            return orjson.dumps(state, default=_orjson_fields, option=option)

        out["orjson_encode_us"] = _best_us(dumps, repeat)
    if trusted is None:
        return out
    decoder = msgspec.json.Decoder()
    out["pydantic_decode_us"] = _best_us(lambda: model.model_validate_json(raw), repeat)
    out["msgspec_decode_us"] = _best_us(lambda: trusted.decode(raw), repeat)
    out["msgspec_parse_only_us"] = _best_us(lambda: decoder.decode(raw), repeat)
    if orjson is not None:
        out["orjson_decode_us"] = _best_us(lambda: trusted.from_data(orjson.loads(raw)), repeat)
        out["orjson_parse_only_us"] = _best_us(lambda: orjson.loads(raw), repeat)
    return out


class _Sampling(_Core):
    """The core, keeping every 20th snapshot it makes (as derived, before merging)."""

    sampled: list[BaseModel]

    def __init__(self) -> None:
        super().__init__()
        self.sampled = []

    def derive(self, event: Any) -> list[Outcome]:
        outcomes = super().derive(event)
        for outcome in outcomes:
            if self.outcomes % 20 == 0:
                self.sampled.append(outcome.snapshot)
        return outcomes


def measure(
    users: int = 2000, courses: int = 20, events: int = 20_000, seed: int = 42, repeat: int = 5
) -> dict[str, Any]:
    workload = generate(users, courses, events, seed)
    core = _Sampling()
    records = workload.records
    for start in range(0, len(records), BATCH):
        core.batch(records[start : start + BATCH])
    states: list[BaseModel] = list(core.states.values())
    snapshots: list[BaseModel] = core.sampled
    trusted = Trusted(LearnerState)
    figures: dict[str, Any] = {}
    for name, size in (("state_4k", 4_000), ("state_10k", 10_000), ("state_20k", 20_000)):
        for key, value in codec_figures(_nearest(states, size), trusted, repeat).items():
            figures[f"{name}_{key}"] = value
    by_size = sorted(snapshots, key=lambda s: len(s.model_dump_json()))
    for name, q in (("snapshot_p50", 0.5), ("snapshot_p90", 0.9), ("snapshot_p99", 0.99)):
        if not by_size:
            break
        picked = by_size[min(len(by_size) - 1, int(len(by_size) * q))]
        for key, value in codec_figures(picked, None, repeat).items():  # type: ignore[arg-type]
            figures[f"{name}_{key}"] = value
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--courses", type=int, default=20)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    params = vars(args)
    print_figures("codecs", params, measure(**params))


if __name__ == "__main__":
    main()
