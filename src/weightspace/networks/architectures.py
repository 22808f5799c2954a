"""Every architecture by the name its ``WeightSpec`` records (``kind``), to rebuild one from a
zoo's manifest or a network file."""

from __future__ import annotations

from ..errors import WeightspaceError
from ..registry import Registry

#: WeightSpec.architecture -> the architecture class (imported on use)
ARCHITECTURES = Registry(
    "architecture",
    __package__,
    {
        "lstm": ("recurrent", "LSTM"),
        "gru": ("recurrent", "GRU"),
        "rnn": ("recurrent", "RNN"),
        "mlp": ("mlp", "MLP"),
        "gaussian-mlp": ("policy", "GaussianMLP"),
        "mean-field-rnn": ("mean_field", "MeanFieldRNN"),
        "module": ("module_architecture", "ModuleArchitecture"),
    },
    instantiate=False,
    error=WeightspaceError,
)


def architecture_from_spec(spec_json: dict):
    """Rebuild an architecture from ``WeightSpec.to_json()`` (as stored in a zoo manifest): its
    class from the registry, its config as the dataclass fields (JSON lists back to tuples)."""
    cls = ARCHITECTURES.get(spec_json["architecture"])
    if hasattr(cls, "from_spec_json"):  # described by its tensors, not by a few sizes (imported networks)
        return cls.from_spec_json(spec_json)
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec_json["config"].items()})
