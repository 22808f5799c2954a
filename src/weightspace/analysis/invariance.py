"""Hidden-neuron permutation invariance of the subject networks and of the encoders (paper 000,
appendix E.2, figures 17 and 18).

For networks theta (from ``weights_a``), a permuted copy theta_hat (the correct permutation or
one of the incorrect/incomplete variants of :mod:`weightspace.networks.symmetry`) and an unrelated
network psi (from ``weights_b``), a cell of the matrix is the mean over networks of

    ||E(theta_hat) - E(theta)|| / ||E(psi) - E(theta)||

for an encoder E, and the same with the subject's outputs f(x) on a fixed random input batch x
for the row ``"subject network"``. 0 means "unchanged", 1 "changed as much as a different
network would change it".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..encoders.base import TaskIO
from ..networks.symmetry import VARIANTS, permute, random_permutations
from ..networks.weights import Population
from ..plotting import pyplot

SUBJECT_ROW = "subject network"


def _concatenate(populations: Sequence[Population]) -> Population:
    spec = populations[0].spec
    return Population(spec, {name: torch.cat([p[name] for p in populations]) for name in spec.names})


def random_inputs(
    task: TaskIO, count: int, batch: int, length: int, generator: torch.Generator, dtype=torch.float32
) -> torch.Tensor:
    """One random input batch (batch, length, X), the same for all ``count`` networks:
    (count, batch, length, X). Categorical inputs are one-hot random tokens, continuous ones
    uniform in [0, 1) (the range of the digits task's pixels)."""
    if task.input_kind == "categorical":
        tokens = torch.randint(task.input_size, (batch, length), generator=generator)
        x = F.one_hot(tokens, task.input_size).to(dtype)
    else:
        x = torch.rand(batch, length, task.input_size, generator=generator, dtype=dtype)
    return x.unsqueeze(0).expand(count, *x.shape)  # a view: every network reads the same batch


def _ratios(outputs: torch.Tensor, networks: int, variants: int) -> torch.Tensor:
    """Mean change ratio per variant from outputs stacked as [theta, psi, variant_1, ...]."""
    flat = outputs.reshape(variants + 2, networks, -1).double()
    original, other, permuted = flat[0], flat[1], flat[2:]
    reference = (other - original).norm(dim=-1)  # (N,)
    change = (permuted - original).norm(dim=-1)  # (V, N)
    # a network whose "other" is indistinguishable from it gives no scale: leave it out
    ratio = torch.where(reference > 0, change / reference.clamp_min(1e-300), torch.nan)
    return torch.nanmean(ratio, dim=1)


@torch.no_grad()
def invariance_matrix(
    architecture,
    weights_a: Population,
    weights_b: Population,
    encoders: Mapping[str, nn.Module],
    task: TaskIO,
    generator: torch.Generator | None = None,
    variants: Sequence[str] = VARIANTS,
    batch: int = 16,
    length: int | None = None,
) -> pd.DataFrame:
    """Invariance ratios: rows ``"subject network"`` and one per encoder, columns ``variants``.

    ``weights_a`` and ``weights_b`` hold the same number N of networks; network k of
    ``weights_b`` is the "other network" psi of network k of ``weights_a``. Each network of
    ``weights_a`` gets its own random permutation (drawn from ``generator``), the same one for
    every variant, so the columns differ only in what the variant leaves out. The subject row
    reads the outputs on ``batch`` random sequences of ``length`` steps (default: the task's
    probe length). All variants of all networks go through each encoder in one call.
    """
    if weights_a.spec != architecture.spec or weights_b.spec != architecture.spec:
        raise ValueError(f"weights do not match the subject architecture {dict(architecture.spec.config)}")
    if weights_a.size != weights_b.size:
        raise ValueError(
            f"weights_a has {weights_a.size} networks but weights_b has {weights_b.size}; "
            "every network needs one other network to compare with"
        )
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown permutation variants {unknown}; choose from {VARIANTS}")
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    N, V = weights_a.size, len(variants)

    permutations = random_permutations(weights_a.spec, N, generator, weights_a.device)
    stacked = _concatenate([weights_a, weights_b, *(permute(weights_a, permutations, v) for v in variants)])

    dtype = next(iter(weights_a.values())).dtype
    x = random_inputs(task, stacked.size, batch, length or task.probe_length, generator, dtype)
    subject_outputs, _ = architecture.forward(stacked, x.to(weights_a.device))
    rows = {SUBJECT_ROW: _ratios(subject_outputs, N, V)}

    for name, encoder in encoders.items():
        was_training = encoder.training
        encoder.eval()
        try:
            rows[name] = _ratios(encoder(stacked), N, V)
        finally:
            encoder.train(was_training)

    matrix = pd.DataFrame({name: ratio.cpu().numpy() for name, ratio in rows.items()}, index=list(variants)).T
    matrix.index.name = "model"
    matrix.columns.name = "permutation"
    return matrix


def plot_invariance(matrix: pd.DataFrame, path, title: str = "") -> None:
    """Heat map of an :func:`invariance_matrix`: dark = unchanged, bright = changed as much as a
    different network (figures 17/18). Cells are annotated with their ratio."""
    plt = pyplot()

    values = matrix.to_numpy(dtype=float)
    top = max(1.0, float(pd.Series(values.ravel()).max(skipna=True) if values.size else 1.0))
    rows, columns = values.shape
    fig, ax = plt.subplots(figsize=(1.2 * columns + 2.5, 0.5 * rows + 1.6))
    image = ax.imshow(values, cmap="magma", vmin=0.0, vmax=top, aspect="auto")
    for i in range(rows):
        for j in range(columns):
            value = values[i, j]
            text = "n/a" if value != value else f"{value:.2f}"
            bright = value == value and value > 0.6 * top
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if bright else "white")
    ax.set_xticks(range(columns), [str(c).replace("_", " ") for c in matrix.columns], rotation=30, ha="right")
    ax.set_yticks(range(rows), [str(r) for r in matrix.index])
    fig.colorbar(image, ax=ax, label="change relative to a different network")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
