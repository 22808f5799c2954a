"""The zoo step every family starts with: build (or resume, or reuse) a task's zoo.

Its key hashes the task's name and config (and the family's summary of the zoo), so the same
settings give the same zoo in any experiment. A zoo lives in the step's directory
(``steps/zoo/NAME/KEY/zoo``) unless the config gives it a ``path`` (a zoo shared between
experiments, e.g. ``zoos/demo-formal-languages``): the step's ``location``, not hashed, since the
zoo is the same wherever it is built. Building is :func:`~weightspace.zoo.build_zoo`'s job, with
its own resume after a kill and its own refusal to mix settings in one directory.

A family whose zoos are not built here (imported networks, ``Task.buildable = False``) has its
zoo read from ``path``: its config is the manifest's (:func:`existing_zoo_config`, when the
experiment file is read) and the step only checks that the zoo there is still that one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from .steps import Finished, Step, StepContext

ZOO_DIRECTORY = "zoo"


def zoo_step(
    name: str, task_name: str, config, path: str | None = None, summary: Callable[[object], dict] | None = None
) -> Step:
    """The step ``name`` that builds the zoo of task ``task_name`` with ``config`` (the task's
    typed config) at ``path`` (None: in the step's directory). Its result records where the zoo
    is, its checkpoint count, and ``summary(zoo)`` if given (a module-level function)."""
    from ..tasks import get_task
    from .code import module_of

    settings = {"task": task_name, "config": config.to_json()}
    if summary is not None:
        settings["summary"] = f"{summary.__module__}:{summary.__qualname__}"
    return Step(
        name, "zoo", settings, build_zoo_step, location=path, relocatable=True, code=(module_of(get_task(task_name)),)
    )


def build_zoo_step(context: StepContext, settings: dict) -> dict:
    from ..errors import ConfigError
    from ..tasks import get_task
    from ..zoo import build_zoo, load_zoo

    task = get_task(settings["task"])
    location = Path(context.location) if context.location else context.directory / ZOO_DIRECTORY
    config = task.config_from_manifest(settings["config"])
    if task.buildable:
        build_zoo(location, task, config, device=context.device, progress=context.progress)
    zoo = load_zoo(location)
    if not task.buildable and (zoo.kind != task.name or zoo.config != config):
        raise ConfigError(f"{location} no longer holds the {task.name} zoo the experiment read; run it again")
    result = {"path": context.location, "kind": settings["task"], "checkpoints": len(zoo)}
    if settings.get("summary"):
        module, function = settings["summary"].split(":")
        result.update(getattr(importlib.import_module(module), function)(zoo))
    return result


def zoo_location(finished: Finished) -> Path:
    """Where the zoo of a finished zoo step is."""
    path = finished.result["path"]
    return Path(path) if path else finished.directory / ZOO_DIRECTORY


def open_zoo(finished: Finished):
    from ..zoo import load_zoo

    return load_zoo(zoo_location(finished))


def existing_zoo_config(task, path: str | None, given: dict, where: str):
    """The config of the zoo of a family not built here (``task.buildable`` is False: imported
    networks), from the manifest of the zoo at ``path``. Settings in ``given`` must equal the
    manifest's (an experiment file written back holds them all); a zoo is read as it was written."""
    from ..errors import ConfigError, WeightspaceError
    from ..zoo.format import read_manifest

    if path is None:
        raise ConfigError(
            f'{where}: {task.name} zoos are not built by experiments; give the directory of one as path = "..."'
        )
    try:
        manifest = read_manifest(path)
    except WeightspaceError as error:
        raise ConfigError(
            f"{where}: {error} (a zoo of networks from elsewhere is written by weightspace zoo import)"
        ) from None
    if manifest["kind"] != task.name:
        raise ConfigError(f"{where}: {path} holds a {manifest['kind']!r} zoo, not a zoo of kind {task.name!r}")
    stored = task.config_from_manifest(manifest["config"])
    if given:
        wanted, written = task.config({**stored.to_json(), **given}, where).to_json(), stored.to_json()
        for key in given:
            if wanted[key] != written[key]:
                raise ConfigError(
                    f"{where}: {path} was written with {key} = {written[key]!r}, not {wanted[key]!r}; "
                    "a zoo that is not built here is read as it is (give only name, kind and path)"
                )
    return stored
