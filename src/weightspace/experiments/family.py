"""Experiment families: one per kind of paper pipeline, registered by name.

A family owns its config dataclass (read from the TOML's data), the steps of its pipeline (run
and cached by :mod:`weightspace.experiments.steps`), how the report's numbers are gathered from
the steps' results, and its report template. Each paper's pipeline lives in its own package,
``experiments/<paper>/`` (``family.py``, ``report.py``, figures), beside the generic runner
(``steps.py``, ``runner.py``, ``report.py``, ``config.py``). A new paper is one such package with a
:class:`Family` subclass plus a registry entry (or a :func:`register_family` call in user code).

==================  ===========  =======================================================
family              paper        module
==================  ===========  =======================================================
representations     000          :mod:`weightspace.experiments.representations`
agent-embeddings    004          :mod:`weightspace.experiments.agent_embeddings`
degeneracy          002          :mod:`weightspace.experiments.degeneracy`
tipl                001/003      :mod:`weightspace.experiments.tipl`
==================  ===========  =======================================================
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from ..registry import Registry
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

    #: the module of this package with the family's report template: its ``gather_results`` and
    #: ``report_lines`` are :meth:`results` and :meth:`report` (imported on first use); a family
    #: from another package overrides those two instead
    report_module: ClassVar[str] = ""

    def results(self, config, finished: dict[str, Finished], out: Path) -> dict:
        """The report's numbers (written to results.json), from the steps' results."""
        return self._template().gather_results(config, finished, out)

    def report(self, config, results: dict, out: Path) -> list[str]:
        """The report's Markdown lines (the shared writer adds the steps section); may draw
        figures into ``out / "figures"``."""
        return self._template().report_lines(config, results, out)

    def _template(self):
        if not self.report_module:
            raise NotImplementedError(f"{self!r} names no report module")
        return importlib.import_module(f"{__package__}.{self.report_module}")

    def __repr__(self) -> str:
        return f"<experiment family {self.name}>"


_FAMILIES = Registry(
    "experiment family",
    __package__,
    {
        "representations": ("representations.family", "Representations"),
        "agent-embeddings": ("agent_embeddings.family", "AgentEmbeddings"),
        "degeneracy": ("degeneracy.family", "Degeneracy"),
        "tipl": ("tipl.family", "TIPL"),
    },
    group="weightspace.experiment_families",
)


def register_family(family: Family, replace: bool = False) -> Family:
    return _FAMILIES.register(family, replace)


def family_names() -> list[str]:
    return _FAMILIES.names()


def get_family(name: str) -> Family:
    return _FAMILIES.get(name)
