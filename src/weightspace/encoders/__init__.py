"""Weight encoders: paper 000's six, and ``module-probing`` for imported modules; each maps a
population's weights to (N, 16) embeddings.

What an encoder can do (permutation invariance, batching over seeds, probing, whether it needs
the zoo's :class:`TaskIO`, which networks it reads, its size in the paper) are attributes of its
class (:class:`WeightEncoder`); ask them, not the name."""

from __future__ import annotations

from ..errors import ConfigError
from ..registry import Registry
from .base import TaskIO, WeightEncoder


class UnknownEncoderError(ConfigError, ValueError):
    """An encoder name that no registered encoder has."""


_PAPER_ENCODERS = {
    "statistics": ("statistics", "LayerwiseStatistics"),
    "flattened": ("flattened", "FlattenedWeights"),
    "transformer": ("transformer", "ParameterTransformer"),
    "dwsnet": ("dwsnet", "DWSNet"),
    "probing": ("probing", "NonInteractiveProbing"),
    "interactive": ("probing", "InteractiveProbing"),
}
#: encoder name -> its class, imported on demand so one encoder's import cost is not everyone's;
#: an installed package can add encoders through the ``weightspace.encoders`` entry-point group
ENCODERS = Registry(
    "encoder",
    __name__,
    {**_PAPER_ENCODERS, "module-probing": ("probing", "ModuleProbing")},
    group="weightspace.encoders",
    instantiate=False,
    error=UnknownEncoderError,
)
#: the paper's six, in its order
ENCODER_NAMES = tuple(_PAPER_ENCODERS)


def encoder_class(name: str) -> type[WeightEncoder]:
    """The class of encoder ``name``; an unknown name is one clear error listing the known ones."""
    return ENCODERS.get(name)


def build_encoder(name: str, architecture, task: TaskIO | None, **options) -> WeightEncoder:
    """The encoder ``name`` with the paper's hyperparameters unless ``options`` override them
    (``task``: None for an encoder that reads only the weights)."""
    return encoder_class(name)(architecture, task, **options)


def build_zoo_encoder(name: str, zoo, **options) -> WeightEncoder:
    """The encoder ``name`` for the networks of ``zoo``; the zoo's TaskIO is asked for only by an
    encoder that needs one (so the weight encoders read an imported zoo, whose task is unknown)."""
    cls = encoder_class(name)
    return cls(zoo.architecture, zoo.task.task_io(zoo) if cls.needs_task else None, **options)


def encoder_problem(name: str, architecture, has_task: bool) -> str | None:
    """Why encoder ``name`` cannot encode networks of ``architecture`` (``has_task``: whether their
    zoo has a TaskIO), or None."""
    cls = encoder_class(name)
    if cls.needs_task and not has_task:
        return "needs the inputs the networks were trained on (the zoo's TaskIO), which this zoo does not have"
    return cls.cannot_read(architecture)


def fitting_encoders(architecture, has_task: bool) -> list[str]:
    """The registered encoders that can encode networks of ``architecture``."""
    return [name for name in ENCODERS.names() if encoder_problem(name, architecture, has_task) is None]


__all__ = [
    "ENCODERS",
    "ENCODER_NAMES",
    "TaskIO",
    "WeightEncoder",
    "build_encoder",
    "build_zoo_encoder",
    "encoder_class",
    "encoder_problem",
    "fitting_encoders",
]
