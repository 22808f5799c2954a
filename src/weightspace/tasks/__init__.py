"""Task families: a registry from names to :class:`~weightspace.tasks.base.Task` objects.

The built-in families are imported on first use, so listing them (``--help``) costs nothing.
User code adds a family with :func:`register_task`; the zoo reader finds it by the manifest's
``kind`` as long as it was registered in that process. An installed package can also offer a
family to every process (the CLI included) through the entry-point group ``weightspace.tasks``,
each entry naming a :class:`~weightspace.tasks.base.Task` subclass::

    [project.entry-points."weightspace.tasks"]
    shifted-copy = "my_package.tasks:ShiftedCopy"
"""

from __future__ import annotations

from importlib import import_module

from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import ShardTask, Task, TaskConfig

#: built-in families: name -> (module, class)
_BUILT_IN = {
    "formal-languages": ("formal_languages", "FormalLanguages"),
    "digits": ("digits", "RotatedDigits"),
    "cartpole": ("cartpole", "CartPole"),
}
_REGISTERED: dict[str, Task] = {}


def register_task(task: Task, replace: bool = False) -> Task:
    """Make ``task`` available by ``task.name`` to the zoo builder, the reader and experiments."""
    if not replace and (task.name in _BUILT_IN or task.name in _REGISTERED):
        raise ValueError(f"a task named {task.name!r} is already registered")
    _REGISTERED[task.name] = task
    return task


def _entry_points():
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group="weightspace.tasks")}


def task_names() -> list[str]:
    names = [*_BUILT_IN, *(n for n in _REGISTERED if n not in _BUILT_IN)]
    return names + [n for n in _entry_points() if n not in names]


def get_task(name: str) -> Task:
    """The task family ``name``; an unknown name is one clear error."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILT_IN:
        module, cls = _BUILT_IN[name]
        task = getattr(import_module(f".{module}", __name__), cls)()
        _REGISTERED[name] = task
        return task
    entry = _entry_points().get(name)
    if entry is not None:
        return register_task(entry.load()())
    raise ConfigError(f"unknown task family {name!r}; choose from {', '.join(task_names())}")


def __getattr__(name):  # the base classes import torch: only when asked for
    if name in ("ShardTask", "Task", "TaskConfig"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ShardTask", "Task", "TaskConfig", "get_task", "register_task", "task_names"]
