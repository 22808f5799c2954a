"""Flattened-weights encoder: all weights in one vector, then an MLP (paper 000 section 3)."""

from __future__ import annotations

from .base import WeightEncoder, mlp


class FlattenedWeights(WeightEncoder):
    """MLP on the flattened weights (paper: hidden 128, 3 layers). Not permutation invariant:
    trained with random correct-permutation augmentation (``augment = True``)."""

    name = "flattened"
    paper_parameters = (1797264, 1978000)
    augment = True

    def __init__(self, architecture, task, embedding_size: int = 16, hidden: int = 128, layers: int = 3):
        super().__init__(architecture, task, embedding_size)
        self.mlp = mlp([self.spec.num_parameters] + [hidden] * layers + [embedding_size])

    def encode(self, weights):
        return self.mlp(weights.flatten())
