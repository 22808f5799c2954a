"""Layer-wise statistics encoder (Unterthiner et al. 2020; paper 000 section 3)."""

from __future__ import annotations

import torch

from .base import WeightEncoder, mlp

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def layerwise_statistics(weights) -> torch.Tensor:
    """Mean, std and the 0/.25/.5/.75/1 quantiles of every weight tensor, per gate block for
    gated layers (an LSTM layer gives 16 vectors: 4 gates x W_ih, W_hh, b_ih, b_hh): (N, 7 * vectors)."""
    q = None
    features = []
    for tensor in weights.spec.tensors:
        values = weights[tensor.name]
        blocks = tensor.axes[0].blocks
        values = values.reshape(values.shape[0], blocks, -1)  # gate blocks are contiguous row ranges
        if q is None:
            q = torch.tensor(QUANTILES, dtype=values.dtype, device=values.device)
        quantiles = torch.quantile(values, q, dim=-1).movedim(0, -1)  # (N, blocks, 5)
        stats = torch.cat([values.mean(-1, keepdim=True), values.std(-1, keepdim=True), quantiles], -1)
        features.append(stats.reshape(values.shape[0], -1))
    return torch.cat(features, 1)


class LayerwiseStatistics(WeightEncoder):
    """Statistics of every (per-gate) weight tensor, then an MLP (paper: hidden 768, 3 layers).

    Invariant to *all* permutations within a tensor, correct or not (paper appendix E.2)."""

    name = "statistics"
    permutation_invariant = True
    paper_parameters = (1248016, 1248016)

    def __init__(self, architecture, task, embedding_size: int = 16, hidden: int = 768, layers: int = 3):
        super().__init__(architecture, task, embedding_size)
        n_vectors = sum(t.axes[0].blocks for t in self.spec.tensors)
        self.mlp = mlp([7 * n_vectors] + [hidden] * layers + [embedding_size])

    def encode(self, weights):
        return self.mlp(layerwise_statistics(weights))
