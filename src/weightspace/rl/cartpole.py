"""CartPole for populations: gymnasium's vectorized dynamics, with resets we control.

Every environment here is stepped by gymnasium's own ``CartPoleVectorEnv`` (the Sutton-Barto
equations, float64, Euler integration), so a trajectory is the one gymnasium computes. Only the
resets are ours: the vector env's autoreset draws new initial states from one generator shared
by all its environments, which would make a network's episodes depend on which other networks
share its population and on the generator state at a resume. We switch the autoreset off and set
initial states ourselves, either from gymnasium's single ``CartPoleEnv.reset(seed=s)`` (the fixed
test episodes) or from :mod:`weightspace.counter_rng` (training episodes).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv, CartPoleVectorEnv

from ..networks.mlp import MLP

#: CartPoleNet (paper 004, section 3.3): 4 inputs, 30 ELU hidden units, one Q-value per action.
CARTPOLE_NET = MLP((4, 30, 2), "elu")
#: Paper 004 ends episodes after 200 steps (CartPole-v0; v1 uses 500).
PAPER_MAX_EPISODE_STEPS = 200
#: gymnasium draws every initial state variable uniformly from (-0.05, 0.05).
RESET_BOUND = 0.05
OBSERVATION_SIZE = 4
NUM_ACTIONS = 2


class CartPoleBatch:
    """``num_envs`` CartPole environments stepped together by gymnasium's ``CartPoleVectorEnv``.

    The caller resets environments with :meth:`set_state`; :meth:`step` never resets anything.
    ``episode_steps`` counts steps since an environment's last reset (gymnasium's counter, which
    drives truncation at ``max_episode_steps``).
    """

    def __init__(self, num_envs: int, max_episode_steps: int = PAPER_MAX_EPISODE_STEPS):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1 (got {num_envs})")
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 (got {max_episode_steps})")
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.env = CartPoleVectorEnv(num_envs=num_envs, max_episode_steps=max_episode_steps)
        self.env.reset(seed=0)  # allocates the state; every state is set by set_state before use

    @property
    def state(self) -> np.ndarray:
        """Current states, (num_envs, 4) float64: cart position, cart velocity, pole angle, pole velocity."""
        return self.env.state.T

    @property
    def episode_steps(self) -> np.ndarray:
        return self.env.steps

    def set_state(
        self, states: np.ndarray, which: np.ndarray | None = None, episode_steps: np.ndarray | int = 0
    ) -> None:
        """Start (or restore) environments ``which`` (a bool mask or indices; default all) in ``states``."""
        which = slice(None) if which is None else which
        self.env.state[:, which] = np.asarray(states, dtype=np.float64).T
        self.env.steps[which] = episode_steps
        self.env.prev_done[which] = False

    def observation(self, device="cpu") -> torch.Tensor:
        """What a policy sees: the state as float32, (num_envs, 4), as gymnasium returns it."""
        return torch.from_numpy(self.env.state.T.astype(np.float32)).to(device)

    def step(self, actions) -> tuple[np.ndarray, np.ndarray]:
        """Apply ``actions`` (num_envs,) in {0: push left, 1: push right}; returns (terminated, truncated)."""
        if isinstance(actions, torch.Tensor):
            actions = actions.cpu().numpy()
        self.env.prev_done[:] = False  # no autoreset: resets are the caller's (see module docstring)
        _, _, terminated, truncated, _ = self.env.step(np.asarray(actions, dtype=np.int64))
        return terminated, truncated


@lru_cache(maxsize=8)
def _test_initial_states(episodes: int, first_seed: int) -> np.ndarray:
    env = CartPoleEnv()
    states = []
    for seed in range(first_seed, first_seed + episodes):
        env.reset(seed=seed)
        states.append(np.array(env.state, dtype=np.float64))
    env.close()
    out = np.stack(states)
    out.setflags(write=False)
    return out


def test_initial_states(episodes: int = 100, first_seed: int = 0) -> np.ndarray:
    """Initial states of the fixed test episodes: gymnasium's ``CartPoleEnv().reset(seed=s)`` for
    ``s = first_seed, ..., first_seed + episodes - 1``; (episodes, 4) float64, read-only."""
    return _test_initial_states(int(episodes), int(first_seed))


test_initial_states.__test__ = False  # not a pytest test despite its name
