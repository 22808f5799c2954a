"""Multi-layer perceptrons as populations, named like ``nn.Sequential(Linear, act, Linear, ...)``.

A member's state dict has keys ``0.weight``, ``0.bias``, ``2.weight``, ... exactly as the
``nn.Sequential`` built by :meth:`MLP.torch_module`; inputs are ``(K, B, in_features)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from ..errors import WeightspaceError
from .weights import Axis, Population, TensorSpec, WeightSpec, initialize

ACTIVATIONS = {"elu": (nn.ELU, torch.nn.functional.elu), "relu": (nn.ReLU, torch.relu), "tanh": (nn.Tanh, torch.tanh)}


@dataclass(frozen=True)
class MLP:
    sizes: tuple[int, ...]
    activation: str = "elu"
    kind = "mlp"

    def __post_init__(self):
        if len(self.sizes) < 2:
            raise ValueError("an MLP needs at least input and output sizes")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose from {list(ACTIVATIONS)}")

    @cached_property
    def spec(self) -> WeightSpec:
        tensors = []
        for layer, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            last = layer == len(self.sizes) - 2
            rows = Axis(fan_out, None if last else f"h{layer}")
            cols = Axis(fan_in, None if layer == 0 else f"h{layer - 1}")
            bound = 1.0 / fan_in**0.5
            tensors += [
                TensorSpec(f"{2 * layer}.weight", (rows, cols), bound, layer),
                TensorSpec(f"{2 * layer}.bias", (rows,), bound, layer),
            ]
        return WeightSpec(
            architecture="mlp",
            config={"sizes": list(self.sizes), "activation": self.activation},
            tensors=tuple(tensors),
            permutations={f"h{i}": n for i, n in enumerate(self.sizes[1:-1])},
        )

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input's shape (what ``module-probing`` feeds)."""
        return (self.sizes[0],)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.sizes[-1],)

    def init(self, seeds, device="cpu") -> Population:
        return initialize(self.spec, seeds, device)

    def forward(self, weights: Population, x: torch.Tensor, return_hidden: bool = False):
        """Outputs ``(K, B, out)``; with ``return_hidden`` also every hidden activation."""
        if x.ndim != 3 or x.shape[0] != weights.size or x.shape[2] != self.sizes[0]:
            raise WeightspaceError(
                f"expected inputs of shape (K={weights.size}, B, {self.sizes[0]}), got {tuple(x.shape)}"
            )
        act = ACTIVATIONS[self.activation][1]
        hidden = []
        n_layers = len(self.sizes) - 1
        for layer in range(n_layers):
            x = torch.baddbmm(
                weights[f"{2 * layer}.bias"].unsqueeze(1), x, weights[f"{2 * layer}.weight"].transpose(1, 2)
            )
            if layer < n_layers - 1:
                x = act(x)
                hidden.append(x)
        return (x, hidden) if return_hidden else x

    def torch_module(self) -> nn.Sequential:
        modules = []
        for layer, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            if layer:
                modules.append(ACTIVATIONS[self.activation][0]())
            modules.append(nn.Linear(fan_in, fan_out))
        return nn.Sequential(*modules)

    def to_torch(self, weights: Population, k: int) -> nn.Sequential:
        module = self.torch_module().to(weights.device)
        module.load_state_dict({n: t.detach().clone() for n, t in weights.state_dict(k).items()})
        return module
