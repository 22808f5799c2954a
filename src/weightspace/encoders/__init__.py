"""Six weight encoders of paper 000: each maps a population's weights to (N, 16) embeddings.

What an encoder can do (permutation invariance, batching over seeds, probing, its size in the
paper) are attributes of its class (:class:`WeightEncoder`); ask them, not the name."""

from __future__ import annotations

from ..errors import ConfigError
from ..registry import Registry
from .base import TaskIO, WeightEncoder


class UnknownEncoderError(ConfigError, ValueError):
    """An encoder name that no registered encoder has."""


#: encoder name -> its class, imported on demand so one encoder's import cost is not everyone's;
#: an installed package can add encoders through the ``weightspace.encoders`` entry-point group
ENCODERS = Registry(
    "encoder",
    __name__,
    {
        "statistics": ("statistics", "LayerwiseStatistics"),
        "flattened": ("flattened", "FlattenedWeights"),
        "transformer": ("transformer", "ParameterTransformer"),
        "dwsnet": ("dwsnet", "DWSNet"),
        "probing": ("probing", "NonInteractiveProbing"),
        "interactive": ("probing", "InteractiveProbing"),
    },
    group="weightspace.encoders",
    instantiate=False,
    error=UnknownEncoderError,
)
#: the paper's six, in its order
ENCODER_NAMES = tuple(ENCODERS.built_in)


def encoder_class(name: str) -> type[WeightEncoder]:
    """The class of encoder ``name``; an unknown name is one clear error listing the known ones."""
    return ENCODERS.get(name)


def build_encoder(name: str, architecture, task: TaskIO, **options) -> WeightEncoder:
    """The encoder ``name`` with the paper's hyperparameters unless ``options`` override them."""
    return encoder_class(name)(architecture, task, **options)


__all__ = ["ENCODERS", "ENCODER_NAMES", "TaskIO", "WeightEncoder", "build_encoder", "encoder_class"]
