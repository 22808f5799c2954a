"""weightspace: learning from the weights of neural networks."""

from .versions import weightspace_version

__version__ = weightspace_version()

from .errors import WeightspaceError, ZooFormatError  # noqa: E402
from .networks import GRU, LSTM, MLP, RNN, Population, WeightSpec  # noqa: E402
from .threads import available_cores, set_threads  # noqa: E402


def load_zoo(path):
    """Open a zoo directory written by ``weightspace zoo build`` (see docs/zoo-format.md)."""
    from .zoo.reader import load_zoo as _load

    return _load(path)


__all__ = [
    "GRU",
    "LSTM",
    "MLP",
    "Population",
    "RNN",
    "WeightSpec",
    "WeightspaceError",
    "ZooFormatError",
    "__version__",
    "available_cores",
    "load_zoo",
    "set_threads",
]
