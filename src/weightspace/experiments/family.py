"""Experiment families: one per kind of paper pipeline, registered by name.

A family owns its config dataclass (read from the TOML's data), the steps of its pipeline (run
and cached by :mod:`weightspace.experiments.steps`), how the report's numbers are gathered from
the steps' results, and its report template. A new paper is one module with a :class:`Family`
subclass plus a registry entry (or a :func:`register_family` call in user code).

==================  ===========  =======================================================
family              paper        module
==================  ===========  =======================================================
representations     000          :mod:`weightspace.experiments.representations`
agent-embeddings    004          :mod:`weightspace.experiments.agent_embeddings`
==================  ===========  =======================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from pathlib import Path
from typing import ClassVar

from ..errors import ConfigError
from .steps import Finished, Step


class Family:
    """An experiment family. Every config has ``name``, ``seeds`` and ``results_dir`` (so the
    command line's ``--seeds`` and ``--results-dir`` apply to every family) and ``family``."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    #: torch intra-op threads while the steps run on a CPU (None: torch's default); see
    #: :mod:`weightspace.threads`
    cpu_threads: ClassVar[int | None] = None

    def config(self, data: dict, where: str):
        """The typed config from a TOML file's data (``where`` names the file in errors)."""
        raise NotImplementedError

    def steps(self, config, finished: dict[str, Finished]) -> Iterable[Step]:
        """The pipeline, in order; may read ``finished`` (the results of the steps run so far)."""
        raise NotImplementedError

    def results(self, config, finished: dict[str, Finished], out: Path) -> dict:
        """The report's numbers (written to results.json), from the steps' results."""
        raise NotImplementedError

    def report(self, config, results: dict, out: Path) -> list[str]:
        """The report's Markdown lines (the shared writer adds the steps section); may draw
        figures into ``out / "figures"``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<experiment family {self.name}>"


#: built-in families: name -> (module, class)
_BUILT_IN = {
    "representations": ("representations", "Representations"),
    "agent-embeddings": ("agent_embeddings", "AgentEmbeddings"),
}
_REGISTERED: dict[str, Family] = {}


def register_family(family: Family, replace: bool = False) -> Family:
    if not replace and (family.name in _BUILT_IN or family.name in _REGISTERED):
        raise ValueError(f"an experiment family named {family.name!r} is already registered")
    _REGISTERED[family.name] = family
    return family


def family_names() -> list[str]:
    return [*_BUILT_IN, *(n for n in _REGISTERED if n not in _BUILT_IN)]


def get_family(name: str) -> Family:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILT_IN:
        module, cls = _BUILT_IN[name]
        family = getattr(import_module(f".{module}", __package__), cls)()
        _REGISTERED[name] = family
        return family
    raise ConfigError(f"unknown experiment family {name!r}; choose from {', '.join(family_names())}")
