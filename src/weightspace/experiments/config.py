"""Experiment files: TOML read into one typed config per experiment family, with command-line
overrides, and written back (``weightspace run FILE --print-config``) with every default and
each field's help as a comment.

The top-level ``family`` key names the family (see :mod:`weightspace.experiments.family`);
without it a file is a ``representations`` experiment (paper 000). The command line always wins:
``--seeds``, ``--results-dir`` and ``--set section.key=value`` change the file's data before it is
validated, so an override is checked like the file's own values (unknown keys and wrong types are
one-line :class:`~weightspace.errors.ConfigError` s).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from pathlib import Path

from ..errors import ConfigError

FAMILY_KEY = "family"
DEFAULT_FAMILY = "representations"


def read_toml(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"experiment file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"cannot read experiment file {path}: {error.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def parse_assignment(text: str) -> tuple[str, object]:
    """``section.key=value`` -> ("section.key", value); the value is read as a TOML value
    (``3``, ``1e-3``, ``true``, ``[0, 1]``, ``"text"``), and as a plain string if it is not one."""
    dotted, sep, raw = text.partition("=")
    dotted = dotted.strip()
    if not sep or not dotted:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return dotted, value


def set_value(data: dict, dotted: str, value) -> None:
    """Set ``data[a][b][c] = value`` for ``a.b.c``, creating tables on the way. In a list of tables
    (``[[zoos]]``) a part is an index or the ``name`` of one table: ``zoos.digits.models``."""
    parts = dotted.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = _list_item(node, part, where)
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {dotted}: {'.'.join(parts[:depth])} is a value, not a table")
    if isinstance(node, list):
        raise ConfigError(f"--set {dotted}: choose one table of {'.'.join(parts[:-1])} by index or name")
    if not isinstance(node, dict):
        raise ConfigError(f"--set {dotted}: {'.'.join(parts[:-1])} is a value, not a table")
    node[parts[-1]] = value


def _list_item(items: list, part: str, where: str):
    if part.isdigit() and int(part) < len(items):
        return items[int(part)]
    named = [item for item in items if isinstance(item, dict) and item.get("name") == part]
    if len(named) != 1:
        names = [item.get("name") for item in items if isinstance(item, dict)]
        raise ConfigError(f"--set {where}: no table named {part!r} (names: {names}; or an index below {len(items)})")
    return named[0]


def override(data: dict, seeds=None, results_dir=None, assignments=()) -> dict:
    """The file's data with the command line's values written over it."""
    data = json.loads(json.dumps(data))  # a copy (TOML data is JSON data, dates aside)
    for dotted, value in assignments:
        set_value(data, dotted, value)
    if seeds is not None:
        data["seeds"] = list(seeds)
    if results_dir is not None:
        data["results_dir"] = str(results_dir)
    return data


def family_name(data: dict) -> str:
    name = data.get(FAMILY_KEY, DEFAULT_FAMILY)
    if not isinstance(name, str):
        raise ConfigError(f"{FAMILY_KEY} must be a string, got {name!r}")
    return name


def load_experiment(path, seeds=None, results_dir=None, assignments=()):
    """The typed config of the experiment in ``path`` with the command line's overrides
    (``assignments``: ``(dotted key, value)`` pairs, see :func:`parse_assignment`)."""
    from .family import get_family

    data = override(read_toml(path), seeds, results_dir, assignments)
    return get_family(family_name(data)).config(data, str(path))


# ---- writing a config back as TOML ---------------------------------------------------------
def toml_data(config, skip=()) -> dict:
    """A config dataclass as the TOML file would hold it (fields marked ``flatten`` in their
    metadata are written into the enclosing table; a :func:`library` section's per-step fields
    are left out)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {
            key: toml_data(value, per_step) for key, value, _, per_step in _items(config, skip) if value is not None
        }
    if isinstance(config, (list, tuple)):
        return [toml_data(v) for v in config]
    if isinstance(config, dict):
        return {k: toml_data(v) for k, v in config.items()}
    return config


def config_toml(config, header: str = "") -> str:
    """The config as a TOML file: every value (defaults included), each field's
    ``metadata["help"]`` as a comment above it, unset optional values commented out."""
    lines = [f"# {line}" for line in header.splitlines()]
    _table(config, [], lines, array=False)
    return "\n".join(lines).strip() + "\n"


def _items(config, skip=()) -> list[tuple[str, object, str, tuple]]:
    """(key, value, help, per-step keys of the value) of a dataclass, flattened fields inlined,
    the keys ``skip`` left out."""
    items = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in skip:
            continue
        if f.metadata.get("flatten"):
            items += _items(value)
        else:
            items.append((f.name, value, f.metadata.get("help", ""), f.metadata.get("per_step", ())))
    return items


def _is_table(value) -> bool:
    return (dataclasses.is_dataclass(value) and not isinstance(value, type)) or (
        isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values())
    )


def _is_array_of_tables(value) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(dataclasses.is_dataclass(v) for v in value)


def _table(config, path: list[str], lines: list[str], array: bool, help_text: str = "", skip=()) -> None:
    if path:
        help_text = help_text or _doc(config)
        lines += [""] + ([f"# {help_text}"] if help_text else [])
        name = ".".join(_key(p) for p in path)
        lines.append(f"[[{name}]]" if array else f"[{name}]")
    items = [(k, v, "", ()) for k, v in config.items()] if isinstance(config, dict) else _items(config, skip)
    later = []
    for key, value, help_line, per_step in items:
        if _is_table(value) or _is_array_of_tables(value):
            later.append((key, value, help_line, per_step))
            continue
        if help_line:
            lines.append(f"# {help_line}")
        lines.append(f"# {_key(key)} is not set" if value is None else f"{_key(key)} = {_value(value)}")
    for key, value, help_line, per_step in later:
        if _is_array_of_tables(value):
            for item in value:
                _table(item, path + [key], lines, array=True)
        else:
            _table(value, path + [key], lines, array=False, help_text=help_line, skip=per_step)


def _doc(config) -> str:
    """The first line of a section class's own docstring (not dataclass's generated signature)."""
    doc = (type(config).__doc__ or "") if dataclasses.is_dataclass(config) else ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ")
    return "" if first.startswith(f"{type(config).__name__}(") else " ".join(first.split())


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if dataclasses.is_dataclass(value):
        value = toml_data(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


# ---- library configs nested in an experiment ----------------------------------------------
def library(cls, per_step=(), help: str = ""):
    """A field holding the library config ``cls`` itself (no mirror of its fields): its TOML
    table takes ``cls``'s fields except ``per_step``, which the experiment sets on each step
    (the encoder and seed of a pretraining run, a VAE's input size). Those are left out when the
    config is written and refused in the table (:func:`per_step_problems`)."""
    return dataclasses.field(default_factory=cls, metadata={"help": help, "per_step": tuple(per_step)})


def per_step_problems(config) -> list[str]:
    """``[section] key is set per step`` for every per-step field of a :func:`library` section
    that the file (or ``--set``) gave a value other than the library's default."""
    problems = []
    for f in dataclasses.fields(config):
        names = f.metadata.get("per_step", ())
        if names:
            value, default = getattr(config, f.name), f.default_factory()
            given = [n for n in names if getattr(value, n) != getattr(default, n)]
            if given:
                problems.append(f"[{f.name}] {', '.join(given)}: set per step by the experiment, not in this table")
    return problems


def moved_keys(data: dict, moves: dict[tuple[str, str], str], where: str) -> None:
    """One line naming the new place of a key an older layout had (``moves``: (table, key) ->
    new dotted place), instead of an unknown-key error."""
    for (table, key), new in moves.items():
        if isinstance(data.get(table), dict) and key in data[table]:
            raise ConfigError(f"{where}: [{table}] {key} has moved to {new}")
