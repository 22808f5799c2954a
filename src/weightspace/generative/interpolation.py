"""Walking the latent space (paper 004, section 4.2, figure 7).

For two networks a and b, their agent embeddings are the posterior means z_a, z_b. For each
alpha in [0, max_alpha] the latent walk decodes z = (1 - alpha) z_a + alpha z_b (alpha > 1
extrapolates beyond b); the weight-space walk takes w = (1 - alpha) w_a + alpha w_b between the
networks decoded from z_a and z_b (the endpoints of the latent walk), with the same alphas.
All networks of all pairs (and the endpoints) are evaluated in one batched rollout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..rl.cartpole import CARTPOLE_NET, PAPER_MAX_EPISODE_STEPS
from ..rl.evaluation import PAPER_TEST_EPISODES, survival_time
from .vae import WeightVAE


def alpha_grid(points: int = 20, max_alpha: float = 1.5) -> np.ndarray:
    """Paper 004: 20 coefficients from 0 to 1.5."""
    return np.linspace(0.0, max_alpha, points)


@torch.no_grad()
def latent_walk(model: WeightVAE, first: torch.Tensor, second: torch.Tensor, alphas, labels=None) -> torch.Tensor:
    """Networks decoded along the line through the embeddings of ``first`` and ``second`` (P,):
    (len(alphas), P) flattened weights."""
    pair = torch.stack([first, second])
    if labels is not None:
        labels = torch.as_tensor(labels).long().view(2)
    means, _ = model.encode(pair, labels)
    alpha = torch.as_tensor(np.asarray(alphas), dtype=means.dtype, device=means.device).unsqueeze(1)
    z = (1 - alpha) * means[0] + alpha * means[1]
    label = None if labels is None else labels[0]
    return model.decode(z, label)


def weight_walk(first: torch.Tensor, second: torch.Tensor, alphas) -> torch.Tensor:
    """(1 - alpha) * first + alpha * second for every alpha: (len(alphas), P)."""
    alpha = torch.as_tensor(np.asarray(alphas), dtype=first.dtype, device=first.device).unsqueeze(1)
    return (1 - alpha) * first + alpha * second


@dataclass
class InterpolationResult:
    """Survival times along both walks, one row per (pair, alpha, space)."""

    table: pd.DataFrame  # columns pair, alpha, space ("latent" or "weight"), survival_time
    endpoints: torch.Tensor  # (pairs, 2, P): the networks decoded from each pair's two embeddings
    endpoint_survival: np.ndarray  # (pairs, 2): their survival times


def interpolate_pairs(
    model: WeightVAE,
    pairs: list[tuple[torch.Tensor, torch.Tensor]],
    alphas,
    episodes: int = PAPER_TEST_EPISODES,
    max_episode_steps: int = PAPER_MAX_EPISODE_STEPS,
    architecture=CARTPOLE_NET,
    progress: bool = False,
) -> InterpolationResult:
    """Both walks for every pair of flattened networks; survival times from one batched rollout."""
    alphas = np.asarray(alphas, dtype=np.float64)
    latent, weight, endpoints = [], [], []
    for first, second in pairs:
        walk = latent_walk(model, first, second, alphas)
        ends = latent_walk(model, first, second, [0.0, 1.0])
        latent.append(walk)
        weight.append(weight_walk(ends[0], ends[1], alphas))
        endpoints.append(ends)
    n, A = len(pairs), len(alphas)
    ends = torch.stack(endpoints) if endpoints else torch.zeros(0, 2, model.config.input_size)
    flat = torch.cat(latent + weight + [ends.reshape(2 * n, -1)])
    survival = survival_time(architecture, model.population(flat), episodes, max_episode_steps).numpy()
    survival, endpoint_survival = survival[: 2 * n * A], survival[2 * n * A :].reshape(n, 2)
    table = pd.DataFrame(
        {
            "pair": np.tile(np.repeat(np.arange(n), A), 2),
            "alpha": np.tile(alphas, 2 * n),
            "space": np.repeat(["latent", "weight"], n * A),
            "survival_time": survival,
        }
    )
    return InterpolationResult(table, ends, endpoint_survival)
