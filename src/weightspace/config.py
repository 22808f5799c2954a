"""Typed configuration: plain frozen dataclasses, read from dicts (TOML files, manifests, the
command line) by dacite in strict mode.

Why dacite: our configs are already stdlib dataclasses (frozen, with their defaults in one place),
and dacite fills exactly those, nested ones included, refusing unknown keys (``strict``) and values
of the wrong type, without a second class hierarchy (pydantic models) or a new struct type
(msgspec). What it cannot say in one line we reword here, so every error is one
:class:`~weightspace.errors.ConfigError` line naming the section, the key, and what was expected.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import TypeVar

import dacite

from .errors import ConfigError

T = TypeVar("T")


def _to_float(value):
    # TOML and JSON write 1e-3 and 1 alike; an int where a float is expected is that float
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


_DACITE = dacite.Config(strict=True, type_hooks={float: _to_float})


def _tuples(value):
    """TOML and JSON arrays as tuples (our configs declare tuples: frozen, hashable), so that
    dacite checks them instead of casting, and a scalar where a list belongs is a type error."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def from_dict(cls: type[T], data: dict, where: str = "config", ignore=()) -> T:
    """An instance of dataclass ``cls`` from ``data``: unknown keys and wrong types are errors,
    missing keys take the dataclass defaults; lists become tuples where a tuple is declared.
    ``ignore``: keys of ``data`` that belong to something else (a step's seed beside its settings)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table of settings, got {type(data).__name__} {data!r}")
    data = {k: v for k, v in data.items() if k not in ignore}
    try:
        return dacite.from_dict(cls, _tuples(data), config=_DACITE)
    except dacite.UnexpectedDataError as error:
        allowed = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(error.keys))}; allowed: {allowed}") from None
    except dacite.WrongTypeError as error:
        value = data.get(error.field_path, error.value)  # as given (dacite pads a short tuple with None)
        shown = list(value) if isinstance(value, tuple) else value
        raise ConfigError(
            f"{where}: {error.field_path} must be {_type_name(error.field_type)}, got {type(shown).__name__} {shown!r}"
        ) from None
    except dacite.MissingValueError as error:
        raise ConfigError(f"{where}: {error.field_path} is required") from None
    except dacite.DaciteError as error:
        raise ConfigError(f"{where}: {error}") from None
    except (ConfigError, TypeError, ValueError) as error:  # raised by a dataclass's own checks
        raise ConfigError(f"{where}: {error}") from None


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        if len(args) > 1 and Ellipsis not in args:  # fixed length: tuple[float, float]
            return f"a list of {len(args)} {_type_name(args[0])}"
        args = [a for a in args if a is not Ellipsis]
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if tp is type(None):
        return "absent"
    return getattr(tp, "__name__", str(tp))


def to_json(config) -> dict:
    """A dataclass as plain JSON values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))
