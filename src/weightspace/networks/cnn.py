"""The Small CNN Zoo's network (Unterthiner et al., "Predicting Neural Network Accuracy from
Weights"): conv layers of stride 2 with an elementwise activation, global average pooling and a
linear head; 1 -> 16 -> 16 -> 16 channels with 3x3 kernels and 10 classes is 4,970 parameters.

:func:`small_cnn` is the ``torch.nn.Module`` (what ``weightspace zoo import small-cnn-zoo`` loads
each network into, and the factory a zoo's manifest records); :func:`population_forward` runs a
whole population of them, each with its own weights, activation and dropout, as one computation
per layer: the K networks' images side by side in the channel axis and one grouped convolution
(``groups=K``), instead of K module calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "tanh")


class SmallCNN(nn.Module):
    def __init__(self, channels: Sequence[int], kernels: Sequence[int], classes: int, activation: str = "relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS} (got {activation!r})")
        self.activation = activation
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, k, stride=2, padding=k // 2) for a, b, k in zip(channels[:-1], channels[1:], kernels)
        )
        self.head = nn.Linear(channels[-1], classes)

    def forward(self, x):
        act = torch.tanh if self.activation == "tanh" else torch.relu
        for conv in self.convs:
            x = act(conv(x))
        return self.head(x.mean(dim=(2, 3)))


def small_cnn(channels: Sequence[int] = (1, 16, 16, 16), kernels: Sequence[int] = (3, 3, 3), classes: int = 10):
    """The Small CNN Zoo's network with ReLU (CIFAR-10-GS: 1 -> 16 -> 16 -> 16 channels, 3x3
    kernels, 10 classes, 4,970 parameters)."""
    return SmallCNN(channels, kernels, classes, "relu")


def small_cnn_tanh(channels: Sequence[int] = (1, 16, 16, 16), kernels: Sequence[int] = (3, 3, 3), classes: int = 10):
    """:func:`small_cnn` with tanh."""
    return SmallCNN(channels, kernels, classes, "tanh")


#: the factory (``pkg.mod:callable``) a manifest records for a zoo of one activation
FACTORIES = {"relu": f"{__name__}:small_cnn", "tanh": f"{__name__}:small_cnn_tanh"}


def conv_layers(weights) -> int:
    """How many ``convs.{i}`` layers a population's weights hold."""
    return sum(1 for name in weights.keys() if name.startswith("convs.") and name.endswith(".weight"))


def population_forward(
    weights,
    x: torch.Tensor,
    tanh: torch.Tensor | None = None,
    dropout: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits of K small CNNs, each on its own images: ``x`` (K, B, C, H, W) -> (K, B, classes).

    ``weights``: the spec's tensors with a leading network axis (``convs.{i}.weight`` (K, out, in,
    h, w), ``convs.{i}.bias``, ``head.weight`` (K, classes, C), ``head.bias``); ``tanh`` (K,) bool:
    the networks that use tanh (the others ReLU; default all ReLU); ``dropout`` (K,) rates and
    ``keep`` (K, B, C) uniforms in [0, 1) for inverted dropout on the pooled features before the
    head (training only; both or neither)."""
    K, B = x.shape[:2]
    h = x.transpose(0, 1).reshape(B, K * x.shape[2], *x.shape[3:])  # the networks side by side
    for i in range(conv_layers(weights)):
        w, b = weights[f"convs.{i}.weight"], weights[f"convs.{i}.bias"]
        out = w.shape[1]
        h = F.conv2d(h, w.reshape(K * out, *w.shape[2:]), b.reshape(-1), stride=2, padding=w.shape[-1] // 2, groups=K)
        if tanh is None:
            h = torch.relu(h)
        else:
            h5 = h.reshape(B, K, out, *h.shape[2:])
            h = torch.where(tanh.view(1, K, 1, 1, 1), torch.tanh(h5), torch.relu(h5)).reshape(h.shape)
    pooled = h.reshape(B, K, -1, h.shape[-2] * h.shape[-1]).mean(-1).transpose(0, 1)  # (K, B, C)
    if dropout is not None:
        rate = dropout.view(K, 1, 1).to(pooled.dtype)
        pooled = pooled * (keep >= rate) / (1 - rate)
    return torch.einsum("kbc,koc->kbo", pooled, weights["head.weight"]) + weights["head.bias"][:, None]
