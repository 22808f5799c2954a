"""Subject networks as populations, and the one description of their weights."""

from .architectures import architecture_from_spec
from .from_module import spec_from_module
from .mlp import MLP
from .recurrent import GRU, LSTM, RNN, TorchSubject
from .symmetry import INCORRECT_VARIANTS, VARIANTS, applicable_variants, augment, permute, random_permutations
from .weights import Axis, Population, TensorSpec, WeightSpec, initialize

__all__ = [
    "Axis",
    "GRU",
    "INCORRECT_VARIANTS",
    "LSTM",
    "MLP",
    "Population",
    "RNN",
    "TensorSpec",
    "TorchSubject",
    "VARIANTS",
    "WeightSpec",
    "applicable_variants",
    "architecture_from_spec",
    "augment",
    "initialize",
    "permute",
    "random_permutations",
    "spec_from_module",
]
