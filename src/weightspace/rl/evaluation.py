"""Survival time: the mean episode length of a policy over fixed test episodes (paper 004, 3.5).

A whole population is evaluated in one batched rollout: K networks x E episodes are
K * E CartPole environments stepped together, each network acting greedily on its own episodes.
Every network sees the same E initial states (gymnasium's ``reset(seed=s)`` for fixed seeds), so
survival times are comparable across networks and checkpoints, and exactly reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..networks.weights import Population
from ..threads import intra_op_threads
from .cartpole import PAPER_MAX_EPISODE_STEPS, CartPoleBatch, test_initial_states

#: Paper 004 measures survival time over 100 test episodes.
PAPER_TEST_EPISODES = 100
#: Networks per rollout at most (bounds memory: 4096 networks x 100 episodes = 409,600 environments).
DEFAULT_CHUNK = 4096

Policy = Callable[[torch.Tensor], torch.Tensor]  # observations (K, E, 4) -> actions (K, E)


def episode_lengths(
    policy: Policy,
    num_policies: int,
    episodes: int = PAPER_TEST_EPISODES,
    max_episode_steps: int = PAPER_MAX_EPISODE_STEPS,
    first_seed: int = 0,
    device="cpu",
) -> torch.Tensor:
    """Length of each test episode of each of ``num_policies`` batched policies: (K, episodes) int64.

    ``policy(observations (K, E, 4) float32) -> actions (K, E)`` in {0, 1}. An episode ends when
    the pole falls or the cart leaves the track (the terminal step counts, as gymnasium rewards
    it) or after ``max_episode_steps`` steps.
    """
    K, E = num_policies, episodes
    env = CartPoleBatch(K * E, max_episode_steps)
    env.set_state(np.tile(test_initial_states(E, first_seed), (K, 1)))
    alive = np.ones(K * E, dtype=bool)
    lengths = np.zeros(K * E, dtype=np.int64)
    for _ in range(max_episode_steps):
        with torch.no_grad():
            actions = policy(env.observation(device).view(K, E, -1)).reshape(-1)
        terminated, truncated = env.step(actions)
        lengths += alive
        alive &= ~(terminated | truncated)
        if not alive.any():
            break
    return torch.from_numpy(lengths.reshape(K, E))


def greedy_policy(architecture, weights: Population) -> Policy:
    """Act greedily on the Q-values of ``weights`` (ties go to action 0, as ``argmax`` does)."""
    return lambda observations: architecture.forward(weights, observations).argmax(-1)


def survival_time(
    architecture,
    weights: Population,
    episodes: int = PAPER_TEST_EPISODES,
    max_episode_steps: int = PAPER_MAX_EPISODE_STEPS,
    first_seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
    return_lengths: bool = False,
    threads: int | None = 1,
):
    """Mean episode length of each network's greedy policy over the fixed test episodes: (K,) float.

    With ``return_lengths`` also every episode's length, (K, episodes) int64. Runs with
    ``threads`` torch threads (see :mod:`weightspace.threads`).
    """
    weights = weights.detach()
    parts = []
    with intra_op_threads(threads if weights.device.type == "cpu" else None):
        for start in range(0, weights.size, chunk):
            part = weights.select(slice(start, start + chunk))
            parts.append(
                episode_lengths(
                    greedy_policy(architecture, part),
                    part.size,
                    episodes,
                    max_episode_steps,
                    first_seed,
                    weights.device,
                )
            )
    lengths = torch.cat(parts) if parts else torch.zeros(0, episodes, dtype=torch.int64)
    mean = lengths.double().mean(1)
    return (mean, lengths) if return_lengths else mean


#: Survival-time groups of paper 004 (table 1): 1-50, 51-100, 101-150, 151-200 steps.
GROUP_EDGES = (50.0, 100.0, 150.0)
GROUP_NAMES = ("1-50", "51-100", "101-150", "151-200")


def survival_group(survival: torch.Tensor | np.ndarray) -> np.ndarray:
    """Group 1..4 of each survival time: (0, 50] -> 1, (50, 100] -> 2, (100, 150] -> 3, above -> 4."""
    values = np.asarray(survival.cpu() if isinstance(survival, torch.Tensor) else survival, dtype=np.float64)
    return np.searchsorted(np.array(GROUP_EDGES), values, side="left").astype(np.int64) + 1
