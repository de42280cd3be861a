"""JSON -> typed dataclasses, by the dataclasses' own annotations.

Every response type is a frozen dataclass whose fields carry defaults, so a field the gateway omits is
``None`` (never an invented value) and a field the SDK does not know yet stays reachable in ``raw``.
Money fields are :class:`decimal.Decimal`: the gateway prints amounts as the shortest decimal that
round-trips, so ``Decimal(repr(number))`` is the exact amount it meant.

Tests turn on :func:`strict` to prove the types cover everything a real gateway sends: an unknown key
then raises instead of being kept aside (types marked ``OPEN`` expect extra keys and are exempt).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from decimal import Decimal
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")

_strict = False


def strict(on: bool = True) -> None:
    """Raise on keys the SDK types do not declare (used by the SDK's own tests)."""
    global _strict
    _strict = on


class ConversionError(TypeError):
    pass


def alias(json_name: str, factory: Any = None) -> Any:
    """A field whose JSON key differs from its Python name (``inputModalities`` -> ``input_modalities``)."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"json": json_name})
    return dataclasses.field(default=None, metadata={"json": json_name})


def listf() -> Any:
    return dataclasses.field(default_factory=list)


def dictf() -> Any:
    return dataclasses.field(default_factory=dict)


def raw_field() -> Any:
    return dataclasses.field(default_factory=dict, repr=False, compare=False)


@cache
def _fields(cls: type) -> tuple[tuple[str, str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, f.metadata.get("json", f.name), hints[f.name])
                 for f in dataclasses.fields(cls) if f.name != "raw")


def convert(tp: Any, value: Any, path: str = "$") -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        for opt in options:
            try:
                return convert(opt, value, path)
            except ConversionError:
                continue
        raise ConversionError(f"{path}: {value!r} matches none of {options}")
    if origin is typing.Literal:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConversionError(f"{path}: expected a list, got {type(value).__name__}")
        (item,) = typing.get_args(tp)
        return [convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConversionError(f"{path}: expected an object, got {type(value).__name__}")
        _, vt = typing.get_args(tp)
        return {k: convert(vt, v, f"{path}.{k}") for k, v in value.items()}
    if tp is Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConversionError(f"{path}: expected an amount, got {value!r}")
        return Decimal(repr(value) if isinstance(value, float) else str(value))
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConversionError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConversionError(f"{path}: expected {tp.__name__}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return load(tp, value, path)
    raise ConversionError(f"{path}: unsupported type {tp!r}")


def load(cls: type[T], data: Any, path: str = "$") -> T:
    """Build ``cls`` from a decoded JSON object (unknown keys kept in ``raw``)."""
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected an object for {cls.__name__}, got {type(data).__name__}")
    kwargs: dict[str, Any] = {}
    known: set[str] = set()
    for name, key, tp in _fields(typing.cast(type, cls)):
        known.add(key)
        if data.get(key) is not None:  # null: the field's default (None, or an empty value object)
            kwargs[name] = convert(tp, data[key], f"{path}.{key}")
    if _strict and not getattr(cls, "OPEN", False):
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConversionError(f"{path}: {cls.__name__} does not declare {unknown}")
    obj = cls(**kwargs)
    if any(f.name == "raw" for f in dataclasses.fields(cls)):  # type: ignore[arg-type]
        object.__setattr__(obj, "raw", data)
    return obj
