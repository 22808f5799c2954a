"""The two references every pretraining run is read against (issue: "make the encoders learn").

* the **constant floor**: the emulator conditioned on one learned embedding shared by every
  network. It learns the zoo's average behaviour; an encoder that does no better has learned
  nothing about the individual networks.
* the **oracle ceiling**: the embedding computed by a small MLP from what the zoo's table says
  about each network (its task and its performance; see ``Task.oracle_columns``). An encoder
  reading the weights should approach it.

Both train with the same emulator, data, split and budget as the encoder they are compared to,
so their losses sit on the same scale. They read table features, not weights: the pretraining
loop gives them ``features`` where an encoder gets ``weights``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: reference name -> what it is, for reports
REFERENCES = {
    "constant": "constant floor (one learned embedding for every network)",
    "oracle": "oracle ceiling (an MLP from the table's task and performance columns)",
}


class _Reference(nn.Module):
    #: the pretraining loop gives it table features (N, F) where an encoder gets weights
    reads_features = True

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ConstantEmbedding(_Reference):
    def __init__(self, embedding_size: int = 16):
        super().__init__()
        self.z = nn.Parameter(torch.randn(embedding_size) * 0.1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.z.expand(features.shape[0], -1)


class OracleEmbedding(_Reference):
    """A 2-hidden-layer MLP from standardised table features to the embedding."""

    def __init__(
        self,
        num_features: int,
        embedding_size: int = 16,
        hidden: int = 64,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
    ):
        super().__init__()
        self.register_buffer(
            "mean", torch.as_tensor(np.zeros(num_features) if mean is None else mean, dtype=torch.float32)
        )
        self.register_buffer("std", torch.as_tensor(np.ones(num_features) if std is None else std, dtype=torch.float32))
        self.net = nn.Sequential(
            nn.Linear(num_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, embedding_size),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) / self.std)


def build_reference(name: str, num_features: int, embedding_size: int, train_features: np.ndarray | None = None):
    if name == "constant":
        return ConstantEmbedding(embedding_size)
    mean = std = None
    if train_features is not None and len(train_features):
        mean = train_features.mean(0)
        std = np.where(train_features.std(0) > 0, train_features.std(0), 1.0)
    return OracleEmbedding(num_features, embedding_size, mean=mean, std=std)
