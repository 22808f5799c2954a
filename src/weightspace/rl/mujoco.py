"""K gymnasium MuJoCo environments stepped together, with CleanRL's wrappers as batched arrays.

CleanRL's ``ppo_continuous_action`` wraps every environment in ``ClipAction``,
``NormalizeObservation`` (then clips to +-10), ``NormalizeReward`` (then clips to +-10),
``RecordEpisodeStatistics`` and the ``TimeLimit`` of ``gym.make``, inside a ``SyncVectorEnv``
that resets a finished environment within the same step (gymnasium 0.29, whose semantics
CleanRL's published runs have). :class:`MujocoEnvs` does exactly that for K independent trials
(one environment each) with the running statistics held as (K, ...) arrays:

* The physics and the task (observation, reward, termination, reset noise) are gymnasium's own
  environment class: one instance steps each trial's ``MjData`` in turn (its ``data`` is swapped),
  which saves building K copies of the model and is the same computation as K instances.
* Episode ``e`` of trial ``k`` starts with ``reset(seed=episode_seed(seed_k, e))``: resets are a
  pure function of the trial's seed (``counter_rng``), so a trial runs the same in any population
  and a resumed run is exact. (CleanRL seeds once and lets the generator run on: the same
  distribution.)
* The whole state (physics, statistics, counters) is :meth:`state_tensors` for resume.

:func:`evaluate_policies` runs M stored policies for E fixed episodes each in one batched rollout,
with each policy's frozen observation statistics and its mean action.
"""

from __future__ import annotations

import functools
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import torch
from tqdm.auto import tqdm

from .. import counter_rng
from ..errors import ConfigError

#: epsilon of gymnasium's RunningMeanStd count and of the normalisation denominators
RMS_EPSILON = 1e-4
NORMALIZE_EPSILON = 1e-8
#: MuJoCo state that makes a restored simulation continue bit for bit
STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION


@functools.lru_cache(maxsize=None)  # it builds the environment (the model's XML compiled) to find out
def resolve_env_id(name: str) -> str:
    """``InvertedPendulum`` -> ``InvertedPendulum-v4`` (the paper's) if gymnasium and MuJoCo
    provide it, else ``-v5``; a name with a version is taken as given."""
    candidates = [name] if "-v" in name else [f"{name}-v4", f"{name}-v5"]
    problems = []
    for candidate in candidates:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gym.make(candidate, disable_env_checker=True).close()
            return candidate
        except Exception as error:  # gymnasium raises several types for missing or broken versions
            problems.append(f"{candidate}: {type(error).__name__}: {error}")
    raise ConfigError(f"no usable MuJoCo environment {name!r} ({'; '.join(problems)})")


def make_env(env_id: str):
    """gymnasium's environment object itself (no wrappers) and its episode cap."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapped = gym.make(env_id, disable_env_checker=True)
    if not hasattr(wrapped.unwrapped, "data"):
        raise ConfigError(f"{env_id} is not a MuJoCo environment")
    return wrapped.unwrapped, wrapped.spec.max_episode_steps


def episode_seeds(seeds: np.ndarray, episodes: np.ndarray) -> np.ndarray:
    """The reset seed of episode ``episodes[k]`` of trial ``seeds[k]``."""
    bits = counter_rng._random_bits(
        np.asarray(seeds, dtype=np.int64) ^ (np.asarray(episodes, dtype=np.int64) << 40),
        counter_rng.stream_id("episode-reset"),
        (1,),
    )[:, 0]
    return (bits >> np.uint64(33)).astype(np.int64)


def update_moments(mean, var, count, x, rows=None):
    """gymnasium's ``RunningMeanStd.update`` with a batch of one sample per trial, for the trials
    ``rows`` (default all); ``count`` has shape (K,), ``mean``/``var`` (K,) or (K, D). In place."""
    rows = slice(None) if rows is None else rows
    c = count[rows].reshape((-1,) + (1,) * (mean.ndim - 1))
    delta = x - mean[rows]
    total = c + 1
    mean[rows] = mean[rows] + delta / total
    var[rows] = (var[rows] * c + delta**2 * c / total) / total
    count[rows] = count[rows] + 1


def normalize_observations(obs, mean, var, clip=10.0):
    return np.clip((obs - mean) / np.sqrt(var + NORMALIZE_EPSILON), -clip, clip)


class MujocoEnvs:
    """One MuJoCo environment per trial with CleanRL's wrappers (see the module docstring).

    :meth:`reset` and :meth:`step` return normalised observations (K, O) float32 tensors;
    :meth:`step` also the normalised rewards and the done flags. Raw episode returns of finished
    episodes are appended to :attr:`finished` as (trial, return, length) triples."""

    def __init__(
        self,
        env_id: str,
        seeds,
        gamma: float,
        max_episode_steps: int | None = None,
        observation_clip: float = 10.0,
        reward_clip: float = 10.0,
    ):
        self.env, default_cap = make_env(env_id)
        self.env_id = env_id
        self.max_episode_steps = int(max_episode_steps or default_cap)
        self.seeds = np.asarray(seeds, dtype=np.int64)
        self.gamma, self.observation_clip, self.reward_clip = gamma, observation_clip, reward_clip
        K = len(self.seeds)
        self.observation_size = self.env.observation_space.shape[0]
        self.action_size = self.env.action_space.shape[0]
        self.low, self.high = (
            self.env.action_space.low.astype(np.float64),
            self.env.action_space.high.astype(np.float64),
        )
        self.datas = [mujoco.MjData(self.env.model) for _ in range(K)]
        self.obs_mean = np.zeros((K, self.observation_size))
        self.obs_var = np.ones((K, self.observation_size))
        self.obs_count = np.full(K, RMS_EPSILON)
        self.return_mean, self.return_var, self.return_count = np.zeros(K), np.ones(K), np.full(K, RMS_EPSILON)
        self.discounted = np.zeros(K)
        self.episode = np.zeros(K, dtype=np.int64)
        self.elapsed = np.zeros(K, dtype=np.int64)
        self.episode_return = np.zeros(K)
        self.finished: list[tuple[int, float, int]] = []

    @property
    def size(self) -> int:
        return len(self.seeds)

    def _reset(self, trials: np.ndarray, raw: np.ndarray) -> None:
        """Start the next episode of ``trials``: their raw observations into ``raw``, then into the statistics."""
        for k, seed in zip(trials, episode_seeds(self.seeds[trials], self.episode[trials])):
            self.env.data = self.datas[k]
            raw[k], _ = self.env.reset(seed=int(seed))
        self.elapsed[trials] = 0
        self.episode_return[trials] = 0.0
        update_moments(self.obs_mean, self.obs_var, self.obs_count, raw[trials], trials)

    def reset(self) -> torch.Tensor:
        raw = np.empty((self.size, self.observation_size))
        self._reset(np.arange(self.size), raw)
        return self._normalized(raw)

    def _normalized(self, raw) -> torch.Tensor:
        return torch.from_numpy(
            normalize_observations(raw, self.obs_mean, self.obs_var, self.observation_clip).astype(np.float32)
        )

    def step(self, actions: np.ndarray):
        """One step of every trial: ``actions`` (K, A) as sampled (clipped here, as ClipAction)."""
        clipped = np.clip(actions, self.low, self.high)
        raw = np.empty((self.size, self.observation_size))
        reward = np.empty(self.size)
        terminated = np.zeros(self.size, dtype=bool)
        env = self.env
        for k in range(self.size):
            env.data = self.datas[k]
            raw[k], reward[k], terminated[k], _, _ = env.step(clipped[k])
        self.elapsed += 1
        truncated = self.elapsed >= self.max_episode_steps
        self.episode_return += reward
        update_moments(self.obs_mean, self.obs_var, self.obs_count, raw)
        self.discounted = self.discounted * self.gamma * (1 - terminated) + reward
        update_moments(self.return_mean, self.return_var, self.return_count, self.discounted)
        normalized_reward = np.clip(
            reward / np.sqrt(self.return_var + NORMALIZE_EPSILON), -self.reward_clip, self.reward_clip
        )
        done = terminated | truncated
        trials = np.flatnonzero(done)
        if len(trials):  # same-step autoreset; the reset observation updates the statistics too
            self.finished += [(int(k), float(self.episode_return[k]), int(self.elapsed[k])) for k in trials]
            self.episode[trials] += 1
            self._reset(trials, raw)
        return (self._normalized(raw), torch.from_numpy(normalized_reward.astype(np.float32)), torch.from_numpy(done))

    # resume ------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        size = mujoco.mj_stateSize(self.env.model, STATE_SPEC)
        physics = np.empty((self.size, size))
        for k, data in enumerate(self.datas):
            mujoco.mj_getState(self.env.model, data, physics[k], STATE_SPEC)
        arrays = {
            "physics": physics,
            "obs_mean": self.obs_mean,
            "obs_var": self.obs_var,
            "obs_count": self.obs_count,
            "return_mean": self.return_mean,
            "return_var": self.return_var,
            "return_count": self.return_count,
            "discounted": self.discounted,
            "episode": self.episode,
            "elapsed": self.elapsed,
            "episode_return": self.episode_return,
        }
        return {f"env.{n}": torch.from_numpy(np.array(a)) for n, a in arrays.items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        arrays = {n[len("env.") :]: t.numpy().copy() for n, t in tensors.items() if n.startswith("env.")}
        for k, data in enumerate(self.datas):
            mujoco.mj_setState(self.env.model, data, arrays["physics"][k], STATE_SPEC)
            mujoco.mj_forward(self.env.model, data)
        for name, array in arrays.items():
            if name != "physics":
                setattr(self, name, array)


@torch.no_grad()
def evaluate_policies(
    env_id: str,
    architecture,
    weights,
    obs_mean: torch.Tensor,
    obs_var: torch.Tensor,
    episodes: int,
    seed=0,
    max_episode_steps: int | None = None,
    observation_clip: float = 10.0,
    progress: bool = False,
) -> torch.Tensor:
    """Raw returns (M, E) of M Gaussian policies (``weights``: a population of ``architecture``,
    a :class:`~weightspace.networks.policy.GaussianMLP`) over E fixed episodes (reset seeds
    ``episode_seeds(seed, 0..E-1)``; ``seed`` an int, the same episodes for every policy, or one
    per policy), each with its own frozen observation statistics
    (``obs_mean``/``obs_var`` (M, O), float32 as stored) and its mean action, clipped to the
    action space. All M x E episodes run as one batched rollout."""
    env, default_cap = make_env(env_id)
    cap = int(max_episode_steps or default_cap)
    M, E = weights.size, episodes
    mean = obs_mean.double().numpy().repeat(E, 0)
    var = obs_var.double().numpy().repeat(E, 0)
    low, high = env.action_space.low, env.action_space.high
    datas = [mujoco.MjData(env.model) for _ in range(M * E)]
    policy_seeds = np.broadcast_to(np.asarray(seed, dtype=np.int64), (M,))
    reset_seeds = episode_seeds(np.repeat(policy_seeds, E), np.tile(np.arange(E), M))
    raw = np.empty((M * E, env.observation_space.shape[0]))
    for i, data in enumerate(datas):
        env.data = data
        raw[i], _ = env.reset(seed=int(reset_seeds[i]))
    returns = np.zeros(M * E)
    alive = np.ones(M * E, dtype=bool)
    bar = tqdm(
        total=cap, desc=f"evaluate {M} policies x {E} episodes", unit="step", disable=not progress, dynamic_ncols=True
    )
    for _ in range(cap):
        bar.update(1)
        bar.set_postfix(running=int(alive.sum()))
        obs = torch.from_numpy(normalize_observations(raw, mean, var, observation_clip).astype(np.float32))
        actions = architecture.mean(weights, obs.view(M, E, -1)).reshape(M * E, -1).double().numpy()
        actions = np.clip(actions, low, high)
        for i in np.flatnonzero(alive):
            env.data = datas[i]
            raw[i], reward, terminated, _, _ = env.step(actions[i])
            returns[i] += reward
            alive[i] = not terminated
        if not alive.any():
            break
    bar.close()
    return torch.from_numpy(returns.reshape(M, E))
