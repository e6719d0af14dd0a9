"""JSON of the worker's own frozen pydantic models, written by msgspec instead of pydantic.

``encode`` hands msgspec's encoder the model tree, each model as its field dict (in field
order); msgspec writes datetimes as RFC 3339 (``Z`` for UTC), tuples as arrays, floats in
their shortest form: the same bytes as ``model_dump_json`` for models whose JSON is their
field dict (but for floats of 1e16 and more, which pydantic spells ``1e+16`` and msgspec
``1e16``: the same number), at a third to a quarter of the cost (bench/codecs.py).
Readers are unchanged: they parse with pydantic, which validates, and old values stay
readable because the format is the same.

A model's JSON is its field dict unless it has aliases, serializers, computed fields or
extra fields: ``require_field_dicts`` refuses a model tree with any of these, and callers
check theirs once, on import, so a model that grows one fails at once, not as different JSON.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import msgspec
from pydantic import BaseModel, PlainSerializer, WrapSerializer


def _fields(model: BaseModel) -> dict[str, Any]:
    return model.__dict__


_ENCODER = msgspec.json.Encoder(enc_hook=_fields)


def encode(model: BaseModel) -> bytes:
    """``model.model_dump_json().encode()``, for a model tree ``require_field_dicts`` took."""
    return _ENCODER.encode(model)


def encode_fields(fields: dict[str, Any]) -> bytes:
    """The JSON of a model's field dict (``model.__dict__``, in field order) whose values may
    be taken from ``encode`` already, as ``msgspec.Raw``: the model's JSON when they are that
    model's fields; for a model tree ``require_field_dicts`` took."""
    return _ENCODER.encode(fields)


def require_field_dicts(model: type[BaseModel]) -> None:
    """Raise ``TypeError`` unless ``model`` and every model its fields hold write their field
    dict as their JSON (module docstring); ``encode`` is then exact for them."""
    _check(model, set())


def _check(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    config = model.model_config
    decorators = model.__pydantic_decorators__
    fields = model.model_fields
    if (
        config.get("extra") != "forbid"
        or config.get("alias_generator") is not None
        or config.get("ser_json_timedelta", "iso8601") != "iso8601"
        or config.get("ser_json_bytes", "utf8") != "utf8"
        or config.get("ser_json_inf_nan", "null") != "null"
        or decorators.field_serializers
        or decorators.model_serializers
        or decorators.computed_fields
        or any(
            f.alias not in (None, name)
            or f.serialization_alias not in (None, name)
            or f.exclude
            or any(isinstance(m, PlainSerializer | WrapSerializer) for m in f.metadata)
            for name, f in fields.items()
        )
    ):
        raise TypeError(f"{model.__name__}'s JSON is not its field dict: encode with pydantic")
    for info in fields.values():
        for inner in _models_in(info.annotation):
            _check(inner, seen)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes an annotation mentions (``X | None``, ``dict[str, X]``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal or (origin is None and not isinstance(annotation, types.UnionType)):
        return []
    args = typing.get_args(annotation)
    return [model for arg in args for model in _models_in(arg)]
