"""Gaussian policies as populations: a tanh MLP for the action mean and a state-independent log-std.

This is CleanRL's ``ppo_continuous_action`` actor (``actor_mean`` and ``actor_logstd``), the policy
whose weights TIPL (papers 001/003) models. A member's state dict holds the MLP's tensors under the
names of ``nn.Sequential(Linear, Tanh, Linear, Tanh, Linear)`` (``0.weight`` ... ``4.bias``) and
``log_std`` (action_size,). Hidden-neuron permutations act on the MLP exactly as in
:class:`~weightspace.networks.mlp.MLP`; the log-std has no permutable axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch

from .mlp import MLP
from .weights import Axis, Population, TensorSpec, WeightSpec, initialize


@dataclass(frozen=True)
class GaussianMLP:
    """``sizes`` = (observation, hidden..., action): the mean network; plus one log-std per action."""

    sizes: tuple[int, ...]
    activation: str = "tanh"
    kind = "gaussian-mlp"

    @cached_property
    def mean_network(self) -> MLP:
        return MLP(tuple(self.sizes), self.activation)

    @property
    def action_size(self) -> int:
        return self.sizes[-1]

    @cached_property
    def spec(self) -> WeightSpec:
        base = self.mean_network.spec
        log_std = TensorSpec("log_std", (Axis(self.action_size),), 0.0, len(self.sizes) - 2)
        return WeightSpec(
            architecture=self.kind,
            config={"sizes": list(self.sizes), "activation": self.activation},
            tensors=(*base.tensors, log_std),
            permutations=dict(base.permutations),
        )

    def init(self, seeds, device="cpu") -> Population:
        return initialize(self.spec, seeds, device)

    def mean(self, weights: Population, x: torch.Tensor) -> torch.Tensor:
        """Action means (K, B, action) for observations ``x`` (K, B, observation)."""
        return self.mean_network.forward(weights, x)

    def forward(self, weights: Population, x: torch.Tensor) -> torch.Tensor:
        return self.mean(weights, x)

    @staticmethod
    def log_prob(mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Log-density of ``action`` under N(mean, exp(log_std)^2), summed over action dimensions:
        ``torch.distributions.Normal(mean, std).log_prob(action).sum(-1)``, written out so that a
        log-std of shape (K, 1, action) broadcasts over a population."""
        return (-((action - mean) ** 2) / (2 * torch.exp(2 * log_std)) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    @staticmethod
    def entropy(log_std: torch.Tensor) -> torch.Tensor:
        return (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)
