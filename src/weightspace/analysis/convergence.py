"""Convergent learning between CartPoleNets (paper 004, section 4.1, after Li et al. 2015).

Two networks are compared unit by unit on a fixed reference set of 10,000 diverse CartPole
states: per layer, the correlation rho[i, j] between the absolute activation of unit i of the
first network and unit j of the second (absolute, because ELU's negative activations matter).
From that matrix:

- the bipartite matching pairs every unit with exactly one partner so that the total correlation
  is largest (scipy's ``linear_sum_assignment``);
- the semi-matching gives every unit i its most correlated partner, even if another unit has it
  too. The *canonical* semi-matching assigns the units in descending order of their
  bipartite-matched correlation; with "most correlated partner" as the rule the order only
  decides ties (an earlier unit keeps the lower index);
- the convergence distance is CD = sum_i rho[i, semi(i)] - rho[i, bipartite(i)] >= 0.
  Equation 7 prints the difference the other way round, which is <= 0 by construction; the
  paper's reported CDs are positive, so we report this magnitude. CD = 0 exactly when the
  semi-matching is already a permutation, e.g. for a network and a neuron-permuted copy of it.

A unit whose absolute activation is constant over the reference states has no correlation; it
counts as 0 (uncorrelated).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .. import counter_rng
from ..networks.weights import Population
from ..rl.cartpole import PAPER_MAX_EPISODE_STEPS, RESET_BOUND, CartPoleBatch

#: Paper 004: a reference set of 10,000 diverse states.
PAPER_REFERENCE_STATES = 10_000
LAYER_NAMES = ("hidden", "output")


def reference_states(
    count: int = PAPER_REFERENCE_STATES, seed: int = 0, max_episode_steps: int = PAPER_MAX_EPISODE_STEPS
) -> torch.Tensor:
    """``count`` CartPole states (count, 4) float32, visited by policies from skilled to random.

    256 environments each follow a balancing controller (push towards the pole's lean, with
    the pole's velocity) but act randomly with their own probability, spread evenly over [0, 1];
    episodes restart when they end. That visits both the states near upright that good networks
    see and the falling states that bad ones see. ``count`` states are then drawn without
    replacement from everything visited. A pure function of ``seed``.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1 (got {count})")
    envs = 256
    steps = max(max_episode_steps, -(-4 * count // envs))
    randomness = np.linspace(0.0, 1.0, envs)
    keys = counter_rng.derive_seeds(seed, envs, "reference-states")
    env = CartPoleBatch(envs, max_episode_steps)

    def starts(step):
        draws = counter_rng.uniform(keys, counter_rng.stream_id("start", step), (4,)).numpy().astype(np.float64)
        return (draws * 2 - 1) * RESET_BOUND

    env.set_state(starts(0))
    visited = []
    for step in range(steps):
        state = env.state.astype(np.float32)
        visited.append(state)
        draws = counter_rng.uniform(keys, counter_rng.stream_id("act", step), (2,)).numpy()
        balance = (state[:, 2] + 0.5 * state[:, 3] > 0).astype(np.int64)
        actions = np.where(draws[:, 0] < randomness, (draws[:, 1] < 0.5).astype(np.int64), balance)
        terminated, truncated = env.step(actions)
        done = np.flatnonzero(terminated | truncated)
        if len(done):
            env.set_state(starts(step + 1)[done], done)
    visited = np.concatenate(visited)
    pick = np.random.default_rng(seed).choice(len(visited), size=count, replace=False)
    return torch.from_numpy(visited[np.sort(pick)])


def absolute_activations(architecture, weights: Population, states: torch.Tensor) -> dict[str, torch.Tensor]:
    """|activation| of every unit on ``states`` (S, 4): {"hidden": (K, S, 30), "output": (K, S, 2)}."""
    with torch.no_grad():
        x = states.to(weights.device).unsqueeze(0).expand(weights.size, -1, -1)
        output, hidden = architecture.forward(weights.detach(), x, return_hidden=True)
    names = [f"hidden{i}" if len(hidden) > 1 else "hidden" for i in range(len(hidden))]
    layers = dict(zip(names, hidden))
    layers["output"] = output
    return {name: value.abs() for name, value in layers.items()}


def _standardized(activations: torch.Tensor) -> torch.Tensor:
    """(K, S, n) -> zero mean, unit (population) std per unit; constant units become all-zero."""
    centred = activations.double() - activations.double().mean(1, keepdim=True)
    std = centred.pow(2).mean(1, keepdim=True).sqrt()
    return torch.where(std > 1e-12, centred / std.clamp(min=1e-12), torch.zeros_like(centred))


def correlations(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Equation 6 for pairs of networks: activations (P, S, n1) and (P, S, n2) -> (P, n1, n2) float64."""
    if first.shape[:2] != second.shape[:2]:
        raise ValueError(f"activations must share pairs and states, got {tuple(first.shape)} and {tuple(second.shape)}")
    return _standardized(first).transpose(1, 2) @ _standardized(second) / first.shape[1]


def bipartite_matching(correlation: np.ndarray) -> np.ndarray:
    """Partner of each unit of the first network in the one-to-one matching of largest total correlation."""
    rows, cols = linear_sum_assignment(np.asarray(correlation), maximize=True)
    partner = np.empty(len(rows), dtype=np.int64)
    partner[rows] = cols
    return partner


def semi_matching(correlation: np.ndarray, bipartite: np.ndarray | None = None) -> np.ndarray:
    """The canonical semi-matching (module docstring): each unit's most correlated partner,
    assigned in descending order of the unit's bipartite-matched correlation."""
    correlation = np.asarray(correlation)
    bipartite = bipartite_matching(correlation) if bipartite is None else bipartite
    order = np.argsort(-correlation[np.arange(len(bipartite)), bipartite], kind="stable")
    partner = np.empty(len(bipartite), dtype=np.int64)
    for unit in order:
        partner[unit] = int(np.argmax(correlation[unit]))  # first maximum: lowest index wins ties
    return partner


def convergence_distance(correlation: np.ndarray) -> float:
    """CD of one layer's correlation matrix (n1, n2) (module docstring)."""
    correlation = np.asarray(correlation, dtype=np.float64)
    bipartite = bipartite_matching(correlation)
    semi = semi_matching(correlation, bipartite)
    rows = np.arange(len(bipartite))
    return float(np.sum(correlation[rows, semi] - correlation[rows, bipartite]))


@dataclass
class PairComparison:
    """Per layer, for P pairs: correlation matrices (P, n, n) and convergence distances (P,)."""

    correlations: dict[str, np.ndarray]
    distances: dict[str, np.ndarray]


def compare_pairs(architecture, weights: Population, pairs, states: torch.Tensor) -> PairComparison:
    """CD of every pair (i, j) of networks in ``weights``, per layer. One forward pass for all
    networks, one batched matrix product for all pairs; the matchings are scipy's, per pair."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    activations = absolute_activations(architecture, weights, states)
    first, second = torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])
    matrices, distances = {}, {}
    for name, values in activations.items():
        rho = correlations(values[first], values[second]).cpu().numpy()
        matrices[name] = rho
        distances[name] = np.array([convergence_distance(r) for r in rho])
    return PairComparison(matrices, distances)


def all_pairs(count: int) -> np.ndarray:
    """Every unordered pair (i < j) of ``count`` networks: (count * (count - 1) / 2, 2)."""
    i, j = np.triu_indices(count, k=1)
    return np.stack([i, j], axis=1)


def plot_correlation_matrices(panels, path, layer: str) -> Path:
    """Figures 5 and 6: per panel (title, correlation matrix (n, n), CD, bipartite partner of each
    row), the matrix with the second network's units reordered by the bipartite matching, so
    matched pairs lie on the diagonal."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(4.0 * len(panels), 3.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    image = None
    for ax, (title, matrix, distance, partner) in zip(axes, panels):
        matrix = np.asarray(matrix)
        image = ax.imshow(matrix[:, np.asarray(partner)], vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(f"{title}\n{layer} CD = {distance:.2f}", fontsize=10)
        ax.set_xlabel("unit of network 2 (matched order)")
        ax.set_ylabel("unit of network 1")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="correlation of |activation|")
    fig.savefig(path, dpi=110)
    return Path(path)
