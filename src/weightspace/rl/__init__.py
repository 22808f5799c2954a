"""Reinforcement learning for populations: batched CartPole, survival time, population DQN;
MuJoCo environments with CleanRL's wrappers and population PPO (``mujoco``, ``ppo``: imported on use)."""

from .cartpole import CARTPOLE_NET, PAPER_MAX_EPISODE_STEPS, CartPoleBatch, test_initial_states
from .dqn import DQNRuns, DQNSettings, PopulationDQN
from .evaluation import (
    GROUP_EDGES,
    GROUP_NAMES,
    PAPER_TEST_EPISODES,
    episode_lengths,
    greedy_policy,
    survival_group,
    survival_time,
)

__all__ = [
    "CARTPOLE_NET",
    "GROUP_EDGES",
    "GROUP_NAMES",
    "PAPER_MAX_EPISODE_STEPS",
    "PAPER_TEST_EPISODES",
    "CartPoleBatch",
    "DQNRuns",
    "DQNSettings",
    "PopulationDQN",
    "episode_lengths",
    "greedy_policy",
    "survival_group",
    "survival_time",
    "test_initial_states",
]
