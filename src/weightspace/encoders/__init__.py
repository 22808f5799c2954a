"""Six weight encoders of paper 000: each maps a population's weights to (N, 16) embeddings."""

from __future__ import annotations

from importlib import import_module

from .base import TaskIO, WeightEncoder

#: encoder name -> (module, class); imported on demand so one encoder's import cost is not everyone's
_ENCODERS = {
    "statistics": ("statistics", "LayerwiseStatistics"),
    "flattened": ("flattened", "FlattenedWeights"),
    "transformer": ("transformer", "ParameterTransformer"),
    "dwsnet": ("dwsnet", "DWSNet"),
    "probing": ("probing", "NonInteractiveProbing"),
    "interactive": ("probing", "InteractiveProbing"),
}
ENCODER_NAMES = tuple(_ENCODERS)


def encoder_class(name: str) -> type[WeightEncoder]:
    if name not in _ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose from {', '.join(_ENCODERS)}")
    module, cls = _ENCODERS[name]
    return getattr(import_module(f".{module}", __name__), cls)


def build_encoder(name: str, architecture, task: TaskIO, **options) -> WeightEncoder:
    """The encoder ``name`` with the paper's hyperparameters unless ``options`` override them."""
    return encoder_class(name)(architecture, task, **options)


__all__ = ["ENCODER_NAMES", "TaskIO", "WeightEncoder", "build_encoder", "encoder_class"]
