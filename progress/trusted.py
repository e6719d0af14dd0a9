"""Models the core builds from values it already holds valid, without validating them again.

Validation belongs at the boundaries (consumed events, the API, the sink's decode, a stored
state read back): there it turns untrusted JSON into models. Inside the core every value a
row or a state copy is built from comes from such models or from the core's own arithmetic,
so validating it again per event only costs time (bench/core.py: several rows and state
copies per event). These two builders make exactly what pydantic's ``model_construct`` and
``model_copy`` make (the same field dict, in field order, so the same JSON and equality),
with less work: pydantic's ``model_construct`` costs more than validating these models.

Contract for callers: every value has the field's type exactly as validation would leave it
(a float for a float field, a tuple for a tuple field; no coercion happens here). The test
``tests/unit/test_trusted_rows.py`` re-validates what the core builds on the benchmark's
workload and compares the JSON byte for byte.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

M = TypeVar("M", bound=BaseModel)

_new = object.__new__
_set = object.__setattr__

# Per model class: its fields in order, each with its default (or a factory), or required.
_REQUIRED = object()
_layouts: dict[type[BaseModel], tuple[tuple[str, Any, Any], ...]] = {}
_names: dict[type[BaseModel], tuple[str, ...]] = {}  # the field names alone, in order


def _layout(cls: type[BaseModel]) -> tuple[tuple[str, Any, Any], ...]:
    layout = _layouts.get(cls)
    if layout is None:
        layout = tuple(
            (
                name,
                _REQUIRED if info.default is PydanticUndefined else info.default,
                info.default_factory,
            )
            for name, info in cls.model_fields.items()
        )
        _layouts[cls] = layout
        _names[cls] = tuple(name for name, _, _ in layout)
    return layout


def built(cls: type[M], /, **fields: Any) -> M:
    """``cls(**fields)`` without validation: fields left out take their defaults. A name
    ``cls`` does not have, or a required field left out, is a ``TypeError`` (a bug)."""
    names = _names.get(cls)
    if names is not None and tuple(fields) == names:
        # Every field, given in field order (the rows the core builds): the keyword dict,
        # which is this call's own, is the field dict.
        return _made(cls, fields, set(names))
    layout = _layout(cls)
    if len(fields) == len(layout):  # every field given, as for rows: no defaults to look up
        try:
            values = {name: fields[name] for name, _, _ in layout}
        except KeyError:
            raise TypeError(f"{cls.__name__} has no field {sorted(fields)}") from None
        return _made(cls, values, set(fields))
    values = {}
    for name, default, factory in layout:
        if name in fields:
            values[name] = fields[name]
        elif factory is not None:
            values[name] = factory()
        elif default is _REQUIRED:
            raise TypeError(f"{cls.__name__}: {name} is required")
        else:
            values[name] = default
    if len(fields) > len(values) or not fields.keys() <= values.keys():
        raise TypeError(f"{cls.__name__} has no field {sorted(fields.keys() - values.keys())}")
    return _made(cls, values, set(fields))


def _made(cls: type[M], values: dict[str, Any], fields_set: set[str]) -> M:
    model = _new(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", fields_set)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def replaced(model: M, /, **update: Any) -> M:
    """``model.model_copy(update=update)`` (shallow, unvalidated, as that is) for a model
    with no extra or private attributes (the core's frozen models), at about half its cost."""
    values = model.__dict__.copy()
    values.update(update)
    return _made(type(model), values, model.__pydantic_fields_set__ | update.keys())
