"""Parameter transformer (Schurholt et al. 2021; paper 000 section 3): one token per neuron."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from .base import WeightEncoder


def neuron_groups(spec) -> list[list[str]]:
    """Tensors whose rows belong to the same neurons: per layer, every tensor with that layer's
    rows (an LSTM layer: W_ih, W_hh, b_ih, b_hh; the readout: weight and bias)."""
    groups = defaultdict(list)
    for tensor in spec.tensors:
        groups[tensor.layer].append(tensor.name)
    return [groups[layer] for layer in sorted(groups)]


def neuron_tokens(weights) -> list[torch.Tensor]:
    """Per layer, (N, rows, features): each row of every weight matrix with its biases."""
    tokens = []
    for names in neuron_groups(weights.spec):
        rows = [weights[n].reshape(weights.size, weights[n].shape[1], -1) for n in names]
        tokens.append(torch.cat(rows, -1))
    return tokens


class ParameterTransformer(WeightEncoder):
    """Neuron tokens -> per-layer linear embedding + learned positional encoding -> encoder-only
    transformer (paper: width 128, 6 layers, 2 heads, MLP 512) -> mean over tokens -> linear.
    Not permutation invariant: trained with correct-permutation augmentation."""

    name = "transformer"
    paper_parameters = (1276688, 1278480)
    # 2 seeds on the toy zoo of tests/test_pretrain_seeds.py: 6.0 s together against 5.2 s alone
    seed_batching_problem = (
        "torch.func.vmap has no batching rule for CPU attention and loops over the seeds, slower than one at a time"
    )
    augment = True

    def __init__(
        self,
        architecture,
        task,
        embedding_size: int = 16,
        width: int = 128,
        layers: int = 6,
        heads: int = 2,
        mlp_hidden: int = 512,
    ):
        super().__init__(architecture, task, embedding_size)
        shapes = []
        for names in neuron_groups(self.spec):
            rows = self.spec[names[0]].shape[0]
            features = sum(self.spec[n].numel // self.spec[n].shape[0] for n in names)
            shapes.append((rows, features))
        self.embed = nn.ModuleList(nn.Linear(features, width) for _, features in shapes)
        self.position = nn.Parameter(torch.randn(sum(rows for rows, _ in shapes), width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, mlp_hidden, dropout=0.0, batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, embedding_size)

    def encode(self, weights):
        tokens = torch.cat([embed(t) for embed, t in zip(self.embed, neuron_tokens(weights))], 1)
        hidden = self.transformer(tokens + self.position)
        return self.head(self.norm(hidden).mean(1))
