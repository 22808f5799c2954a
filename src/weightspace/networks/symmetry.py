"""Hidden-neuron permutations, derived from the axis labels of a :class:`WeightSpec`.

A correct permutation applies one permutation per hidden layer to every axis the spec labels
with that layer's id (inside each gate block): the function of the network is unchanged.
The incorrect and incomplete variants are the same mechanism with part of the description left
out or broken, which is what the invariance analysis of paper 000 (figures 17/18) compares.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .weights import Axis, Population, TensorSpec, WeightSpec

CORRECT = "correct"
#: Incorrect or incomplete permutation variants, with what each one gets wrong.
INCORRECT_VARIANTS: dict[str, str] = {
    "rows_only": "permute rows and biases only, not the columns of any matrix",
    "no_recurrent_columns": "leave the columns of the recurrent (hidden-to-hidden) matrices",
    "no_next_layer": "leave the columns of the next layer's input matrix and of the readout",
    "no_biases": "leave the bias vectors",
    "gates_separately": "give every gate block its own permutation instead of a shared one",
}
VARIANTS = (CORRECT, *INCORRECT_VARIANTS)


def _axis_role(tensor: TensorSpec, axis_index: int) -> str:
    """'row', 'bias', 'recurrent_column' or 'next_layer_column' for a permuted axis."""
    if tensor.is_bias:
        return "bias"
    if axis_index == 0:
        return "row"
    if tensor.axes[0].permutation == tensor.axes[axis_index].permutation:
        return "recurrent_column"
    return "next_layer_column"


_SKIPPED_ROLES = {
    CORRECT: set(),
    "rows_only": {"recurrent_column", "next_layer_column"},
    "no_recurrent_columns": {"recurrent_column"},
    "no_next_layer": {"next_layer_column"},
    "no_biases": {"bias"},
    "gates_separately": set(),
}


def _axis_index(axis: Axis, perm: torch.Tensor, separate_gates: bool) -> torch.Tensor:
    """Index (K, axis.size) that permutes inside every gate block of ``axis``."""
    n = axis.size // axis.blocks
    blocks = []
    for b in range(axis.blocks):
        block_perm = perm
        if separate_gates and b > 0:
            # Compose with a rotation by b: a permutation that differs from ``perm`` for n > 1.
            block_perm = perm[:, (torch.arange(n, device=perm.device) + b) % n]
        blocks.append(block_perm + b * n)
    return torch.cat(blocks, dim=1)


def permute(weights: Population, permutations: Mapping[str, torch.Tensor], variant: str = CORRECT) -> Population:
    """Apply hidden-neuron ``permutations`` (id -> (K, n) or (n,) index tensor) to ``weights``.

    ``variant`` is ``"correct"`` or one of :data:`INCORRECT_VARIANTS`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown permutation variant {variant!r}; choose from {VARIANTS}")
    spec = weights.spec
    K = weights.size
    perms = {}
    for pid, size in spec.permutations.items():
        perm = torch.as_tensor(permutations[pid], device=weights.device)
        perm = perm.expand(K, size) if perm.ndim == 1 else perm
        if perm.shape != (K, size):
            raise ValueError(f"permutation {pid!r}: expected shape (K={K}, {size}), got {tuple(perm.shape)}")
        perms[pid] = perm
    skipped = _SKIPPED_ROLES[variant]
    out = {}
    for tensor in spec.tensors:
        value = weights[tensor.name]
        for a, axis in enumerate(tensor.axes):
            if axis.permutation is None or _axis_role(tensor, a) in skipped:
                continue
            index = _axis_index(axis, perms[axis.permutation], variant == "gates_separately")
            view = [K] + [1] * len(tensor.axes)
            view[a + 1] = axis.size
            value = torch.gather(value, a + 1, index.view(view).expand_as(value))
        out[tensor.name] = value
    return Population(spec, out)


def applicable_variants(spec: WeightSpec) -> list[str]:
    """The incorrect variants that differ from the correct permutation for this architecture:
    ``gates_separately`` needs gate blocks, a skipped role needs axes of that role."""
    roles = {_axis_role(t, a) for t in spec.tensors for a, axis in enumerate(t.axes) if axis.permutation}
    gated = any(axis.blocks > 1 for t in spec.tensors for axis in t.axes if axis.permutation)
    return [v for v in INCORRECT_VARIANTS if (gated if v == "gates_separately" else bool(_SKIPPED_ROLES[v] & roles))]


def random_permutations(
    spec: WeightSpec, count: int, generator: torch.Generator | None = None, device="cpu"
) -> dict[str, torch.Tensor]:
    """One uniformly random permutation per hidden layer and network: id -> (count, n)."""
    return {
        pid: torch.argsort(torch.rand(count, n, generator=generator), dim=1).to(device)
        for pid, n in spec.permutations.items()
    }


def augment(weights: Population, generator: torch.Generator | None = None) -> Population:
    """Random correct-permutation augmentation: each network gets its own random permutation."""
    perms = random_permutations(weights.spec, weights.size, generator, weights.device)
    return permute(weights, perms)
