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

from typing import TYPE_CHECKING

from ..registry import Registry

if TYPE_CHECKING:
    from .base import ShardTask, Task, TaskConfig

_TASKS = Registry(
    "task family",
    __name__,
    {
        "formal-languages": ("formal_languages", "FormalLanguages"),
        "digits": ("digits", "RotatedDigits"),
        "cartpole": ("cartpole", "CartPole"),
        "flip-flop": ("neuroscience", "FlipFlop"),
        "delayed-discrimination": ("neuroscience", "DelayedDiscrimination"),
        "sine-generation": ("neuroscience", "SineGeneration"),
        "path-integration": ("neuroscience", "PathIntegration"),
        "ppo-trajectories": ("ppo_trajectories", "PPOTrajectories"),
        "cnn": ("cnn", "SmallCNNDigits"),
        "imported": ("imported", "ImportedNetworks"),
    },
    group="weightspace.tasks",
)


def register_task(task: Task, replace: bool = False) -> Task:
    """Make ``task`` available by ``task.name`` to the zoo builder, the reader and experiments."""
    return _TASKS.register(task, replace)


def task_names() -> list[str]:
    return _TASKS.names()


def get_task(name: str) -> Task:
    """The task family ``name``; an unknown name is one clear error."""
    return _TASKS.get(name)


def __getattr__(name):  # the base classes import torch: only when asked for
    if name in ("ShardTask", "Task", "TaskConfig"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ShardTask", "Task", "TaskConfig", "get_task", "register_task", "task_names"]
