"""DWSNet: weight-space layers equivariant to the exact hidden-neuron permutation group.

After Navon et al. (2023) / Zhou et al. (2023) as adapted to LSTMs in paper 000 (section 3 and
appendix B). Everything is derived from the axis labels of the subject's :class:`WeightSpec`, so
the same code handles LSTMs, GRUs, tanh-RNNs and MLPs.

**Feature maps.** Every weight tensor becomes a channels-last feature map
``(N, n_1, ..., n_k, C)`` with one spatial dimension per *permutable* axis (``n`` = the size of
that axis's permutation). A permutable axis of ``blocks`` stacked gate blocks is split into
``(blocks, n)`` and the block index goes to the channels (gates as channels, appendix B). A fixed
axis (input features of the first layer, output classes of the readout) goes to the channels
entirely, so hidden permutations are the only symmetry the maps are tied to, and fixed positions
get their own weights (as in NFN's "NP" variant). So an LSTM's ``weight_ih_l0`` of shape
``(4H, I)`` is a map ``(N, H, 4 I)``, ``weight_hh_l0`` is ``(N, H, H, 4)``, ``readout.bias`` is
``(N, O)``.

**Equivariant linear layer.** Each output map ``u`` is a sum of "pool and broadcast" terms over
all input maps ``t``: keep a subset ``S`` of ``t``'s spatial dimensions (mean over the rest), place
each kept dimension on a distinct output dimension carrying the same permutation id, mix channels
with a learned matrix and broadcast over the output's remaining dimensions. Every such term is
equivariant, and together they contain

* (a) the global mean of every tensor (``S`` empty): appendix B's ``a`` and ``b``;
* (b) every row/column mean of every tensor placed on every output axis of the same permutation
  (``c``, ``d``, ``e``, ``f``; across layers too: columns of the next layer's input matrix and
  of the readout share the rows' permutation, and so do biases). Where appendix B places a
  mean on an axis of another permutation (``e^{l,l} (W_hh^l)_{*,k}`` with ``k`` a layer-(l-1)
  neuron, ``f^{l,l-1}``), the labels decide: the equivariant versions of those terms are here;
* (c) the identity term ``g`` (``S`` = all dimensions of ``u`` itself) and full-map terms between
  tensors of the same labels (e.g. ``bias_ih`` <-> ``bias_hh`` <-> row-vector of ``weight_ih_l0``);
* (d) the cross terms of the recurrent matrix, whose rows and columns carry one permutation: its
  row mean may land on rows or columns of any output axis of that id, and the matrix itself maps
  onto itself both directly and transposed.

Diagonal extraction/placement terms (also equivariant for a matrix with two equal labels) are left
out, as in appendix B. Terms landing on the same output dimensions are concatenated along channels
and mixed with one ``nn.Linear``; a bias per output tensor rides on the global-mean term.

**Encoder.** Every tensor is divided by its spec's init bound (a per-tensor constant), then
``layers`` equivariant layers (``channels`` wide, ReLU after each), invariant mean pooling over
the spatial dimensions of every map, concatenated over tensors, then an MLP head.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..networks.weights import Population, WeightSpec
from .base import TaskIO, WeightEncoder, mlp


@dataclass(frozen=True)
class FeatureLayout:
    """How one weight tensor is laid out as a feature map ``(N, *sizes, channels)``."""

    name: str
    permutations: tuple[str, ...]  # permutation id of each spatial dimension
    sizes: tuple[int, ...]
    channels: int  # input channels: gate blocks times fixed-axis sizes


def feature_layouts(spec: WeightSpec) -> tuple[FeatureLayout, ...]:
    """The feature-map layout of every tensor of ``spec``, in spec order."""
    layouts = []
    for tensor in spec.tensors:
        perms, sizes, channels = [], [], 1
        for axis in tensor.axes:
            if axis.permutation is None:
                channels *= axis.size
            else:
                perms.append(axis.permutation)
                sizes.append(axis.size // axis.blocks)
                channels *= axis.blocks
        layouts.append(FeatureLayout(tensor.name, tuple(perms), tuple(sizes), channels))
    return tuple(layouts)


def to_features(weights: Population) -> list[torch.Tensor]:
    """Weights -> channels-last feature maps ``(N, *sizes, channels)``, in spec order."""
    out = []
    N = weights.size
    for tensor in weights.spec.tensors:
        view, spatial, channel = [N], [], []
        for axis in tensor.axes:
            if axis.permutation is None:
                channel.append(len(view))
                view.append(axis.size)
            else:  # PyTorch stacks gate blocks: row index = block * n + neuron
                channel.append(len(view))
                spatial.append(len(view) + 1)
                view += [axis.blocks, axis.size // axis.blocks]
        x = weights[tensor.name].reshape(view).permute(0, *spatial, *channel)
        out.append(x.reshape(*x.shape[: 1 + len(spatial)], -1))
    return out


def permute_features(
    features: Sequence[torch.Tensor],
    layouts: Sequence[FeatureLayout],
    permutations: Mapping[str, torch.Tensor],
) -> list[torch.Tensor]:
    """Apply hidden permutations (id -> (N, n) or (n,)) to feature maps.

    The same action as :func:`weightspace.networks.symmetry.permute` with the correct variant:
    ``new[..., i, ...] = old[..., perm[i], ...]`` on every dimension labelled with that id (the
    same permutation inside every gate block, which here lives in the channels).
    """
    out = []
    for x, layout in zip(features, layouts):
        N = x.shape[0]
        for d, pid in enumerate(layout.permutations):
            perm = torch.as_tensor(permutations[pid], device=x.device)
            perm = perm.expand(N, layout.sizes[d]) if perm.ndim == 1 else perm
            view = [N] + [1] * (x.ndim - 1)
            view[d + 1] = layout.sizes[d]
            x = torch.gather(x, d + 1, perm.view(view).expand_as(x))
        out.append(x)
    return out


@dataclass(frozen=True)
class Term:
    """Input map ``source`` with spatial dims ``kept`` (others mean-pooled); ``kept[i]`` lands on
    output dim ``target[i]`` (``target`` is sorted)."""

    source: int
    kept: tuple[int, ...]
    target: tuple[int, ...]


def equivariant_terms(layouts: Sequence[FeatureLayout]) -> list[dict[tuple[int, ...], list[Term]]]:
    """For every output map: its terms, grouped by the output dims they land on."""
    result = []
    for out_layout in layouts:
        groups: dict[tuple[int, ...], list[Term]] = {}
        m = len(out_layout.permutations)
        for source, in_layout in enumerate(layouts):
            k_in = len(in_layout.permutations)
            for size in range(min(k_in, m) + 1):
                for kept in itertools.combinations(range(k_in), size):
                    for placed in itertools.permutations(range(m), size):
                        if any(in_layout.permutations[a] != out_layout.permutations[b] for a, b in zip(kept, placed)):
                            continue
                        order = sorted(range(size), key=lambda i: placed[i])
                        term = Term(source, tuple(kept[i] for i in order), tuple(placed[i] for i in order))
                        groups.setdefault(term.target, []).append(term)
        result.append(groups)
    return result


class EquivariantLayer(nn.Module):
    """One linear layer equivariant to the hidden permutations (see module docstring)."""

    def __init__(self, layouts: Sequence[FeatureLayout], in_channels: Sequence[int], out_channels: int):
        super().__init__()
        self.layouts = tuple(layouts)
        self.in_channels = tuple(in_channels)
        self.out_channels = out_channels
        self.groups = [list(g.items()) for g in equivariant_terms(self.layouts)]
        self.linears = nn.ModuleList(
            nn.ModuleList(
                # one bias per output tensor, on the global-mean (broadcast-everywhere) group
                nn.Linear(sum(self.in_channels[t.source] for t in terms), out_channels, bias=target == ())
                for target, terms in groups
            )
            for groups in self.groups
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        pooled_cache: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}

        def pooled(term: Term) -> torch.Tensor:
            kept_sorted = tuple(sorted(term.kept))
            key = (term.source, kept_sorted)
            if key not in pooled_cache:
                x = features[term.source]
                drop = [1 + d for d in range(x.ndim - 2) if d not in kept_sorted]
                pooled_cache[key] = x.mean(dim=drop) if drop else x
            y = pooled_cache[key]
            if term.kept != kept_sorted:  # e.g. the transpose of a recurrent matrix
                y = y.permute(0, *[1 + kept_sorted.index(d) for d in term.kept], y.ndim - 1)
            return y

        outputs = []
        N = features[0].shape[0]
        for layout, groups, linears in zip(self.layouts, self.groups, self.linears):
            out = None
            for (target, terms), linear in zip(groups, linears):
                parts = [pooled(t) for t in terms]
                x = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
                y = linear(x)
                shape = (
                    [N]
                    + [layout.sizes[d] if d in target else 1 for d in range(len(layout.sizes))]
                    + [self.out_channels]
                )
                y = y.reshape(shape)
                out = y if out is None else out + y
            outputs.append(out.expand(N, *layout.sizes, self.out_channels))
        return outputs


def invariant_pool(features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over every spatial (permutable) dimension, concatenated over tensors: (N, sum C)."""
    return torch.cat([x.mean(dim=tuple(range(1, x.ndim - 1))) if x.ndim > 2 else x for x in features], dim=1)


class DWSNet(WeightEncoder):
    """Permutation-equivariant weight-space network with invariant pooling and an MLP head.

    Defaults follow the paper's table 8 (48 channels, 4 layers). The equivariant layers alone
    hold 1,277,184 parameters for the formal-language LSTM(6, 32, 2, 6), so the head stays small
    (pooled 10 x 48 -> 64 -> 64 -> 16): 1,313,168 in all (paper: 1,279,736) and 1,348,880 for the
    digits LSTM(16, 32, 2, 10) (paper: 1,282,400).
    """

    name = "dwsnet"
    permutation_invariant = True
    paper_parameters = (1279736, 1282400)

    @classmethod
    def cannot_read(cls, architecture) -> str | None:
        spec = architecture.spec
        kernels = [t.name for t in spec.tensors if len(t.axes) > 2]
        if kernels:
            return (
                f"DWSNet reads stacks of weight matrices and biases (MLPs, LSTMs), not the kernel {kernels[0]} "
                f"of shape {tuple(spec[kernels[0]].shape)}: the statistics, flattened and transformer "
                "encoders read any network"
            )
        return None

    def __init__(
        self,
        architecture,
        task: TaskIO | None,
        embedding_size: int = 16,
        channels: int = 48,
        layers: int = 4,
        head_hidden: int = 64,
        head_layers: int = 3,
    ):
        super().__init__(architecture, task, embedding_size)
        self.layouts = feature_layouts(self.spec)
        in_channels = [layout.channels for layout in self.layouts]
        blocks = []
        for _ in range(layers):
            blocks.append(EquivariantLayer(self.layouts, in_channels, channels))
            in_channels = [channels] * len(self.layouts)
        self.layers = nn.ModuleList(blocks)
        self.pooled_size = sum(in_channels)
        self.head = mlp([self.pooled_size] + [head_hidden] * (head_layers - 1) + [embedding_size])

    def features(self, weights: Population) -> list[torch.Tensor]:
        """The equivariant feature maps after every layer (input of the invariant pooling).

        Each tensor is first divided by its default-initialisation bound (a fixed per-tensor
        constant from the spec, so equivariance is untouched): freshly initialised weights
        enter as U(-1, 1), whatever the hidden size.
        """
        x = [f / t.init_bound for f, t in zip(to_features(weights), self.spec.tensors)]
        for layer in self.layers:
            x = [torch.relu(y) for y in layer(x)]
        return x

    def encode(self, weights: Population) -> torch.Tensor:
        return self.head(invariant_pool(self.features(weights)))
