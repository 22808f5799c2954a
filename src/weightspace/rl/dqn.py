"""Deep Q-learning for a population: K Q-networks trained together, each as if alone.

Paper 004 (section 3.3) trains CartPoleNet as a Q-network: "at each epoch, we sample state-action
pairs with an epsilon-decreasing policy and store them with their rewards in an experience
replay buffer to train the neural network". Every network here has its own environments,
replay buffer, target network, Adam moments, learning rate, discount, exploration schedule and
training length; a network whose training length is reached stops updating (its environments
keep running, unused). One training step of one network is:

1. act epsilon-greedily in each of its environments (epsilon decreases linearly from
   ``epsilon_start`` to the network's ``epsilon_final`` over its ``exploration_steps``),
2. store the transitions (s, a, r, s', terminated) in its replay buffer (a ring of ``replay_capacity``),
3. once the buffer holds ``learning_starts`` transitions: sample ``batch_size`` of them uniformly,
   take one AdamW step on the Huber loss between Q(s, a) and r + gamma * (1 - terminated) *
   max_a' Q_target(s', a'),
4. copy the online network into the target network every ``target_update`` steps.

A truncated episode (the step cap) is not terminal for the target: the state still has value.
All randomness (initial weights, exploration, replay samples, episode starts) is a pure function
of (network seed, purpose, step) through :mod:`weightspace.counter_rng`, so a network trains the
same whatever population it is in, and a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import counter_rng
from ..networks.weights import Population
from ..threads import intra_op_threads
from ..training.optim import adamw_update
from ..training.trainer import run_with_checkpoints
from .cartpole import OBSERVATION_SIZE, PAPER_MAX_EPISODE_STEPS, RESET_BOUND, CartPoleBatch

TRANSITION_SIZE = 2 * OBSERVATION_SIZE + 3


@dataclass(frozen=True)
class DQNSettings:
    """Settings shared by every network of a population (per-network ones: :class:`DQNRuns`)."""

    batch_size: int = 32
    replay_capacity: int = 2000
    learning_starts: int = 100  # transitions in a buffer before its network's first update
    epsilon_start: float = 1.0
    envs_per_network: int = 1
    max_episode_steps: int = PAPER_MAX_EPISODE_STEPS
    huber_delta: float = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8

    def __post_init__(self):
        if self.batch_size < 1 or self.replay_capacity < 1 or self.envs_per_network < 1:
            raise ValueError("batch_size, replay_capacity and envs_per_network must be >= 1")
        if not 0 < self.learning_starts <= self.replay_capacity:
            raise ValueError(f"learning_starts must be in [1, replay_capacity={self.replay_capacity}]")


#: Per-network hyperparameters, the columns of a zoo plan that :class:`PopulationDQN` reads.
RUN_COLUMNS = (
    "seed",
    "learning_rate",
    "weight_decay",
    "gamma",
    "epsilon_final",
    "exploration_steps",
    "target_update",
    "train_steps",
)


@dataclass(frozen=True)
class DQNRuns:
    """One value per network: seed, learning rate, AdamW weight decay, discount, final epsilon,
    steps over which epsilon decreases, steps between target-network copies, training length."""

    seed: np.ndarray
    learning_rate: np.ndarray
    weight_decay: np.ndarray
    gamma: np.ndarray
    epsilon_final: np.ndarray
    exploration_steps: np.ndarray
    target_update: np.ndarray
    train_steps: np.ndarray

    @classmethod
    def from_frame(cls, runs: pd.DataFrame) -> DQNRuns:
        missing = [c for c in RUN_COLUMNS if c not in runs.columns]
        if missing:
            raise ValueError(f"the runs lack the DQN columns {missing}")
        return cls(**{c: runs[c].to_numpy(copy=True) for c in RUN_COLUMNS})

    def __len__(self) -> int:
        return len(self.seed)


class PopulationDQN:
    """Deep Q-learning of K networks at once (see module docstring); the zoo builder's trainer.

    ``total_steps`` is the length of the run (the longest training length or more); network k
    updates during its first ``runs.train_steps[k]`` steps only. :meth:`run` uses ``threads``
    torch threads (default 1, see :mod:`weightspace.threads`; None: torch's setting).
    """

    def __init__(
        self,
        architecture,
        runs: DQNRuns,
        total_steps: int,
        settings: DQNSettings = DQNSettings(),
        device="cpu",
        threads: int | None = 1,
    ):
        self.threads = threads
        self.architecture = architecture
        self.runs = runs
        self.settings = settings
        self.total_steps = int(total_steps)
        self.device = torch.device(device)
        self.keys = np.asarray(runs.seed, dtype=np.int64)
        K, E, C = len(runs), settings.envs_per_network, settings.replay_capacity
        self.K, self.E = K, E

        def per_network(values, dtype=torch.float32):
            return torch.as_tensor(np.asarray(values), dtype=dtype, device=self.device)

        self.learning_rate = per_network(runs.learning_rate)
        self.weight_decay = per_network(runs.weight_decay)
        self.gamma = per_network(runs.gamma)
        self.epsilon_final = per_network(runs.epsilon_final)
        self.exploration_steps = per_network(runs.exploration_steps)
        self.target_update = np.asarray(runs.target_update, dtype=np.int64)
        self.train_steps = np.asarray(runs.train_steps, dtype=np.int64)

        initial = architecture.init(self.keys, self.device)
        self.spec = initial.spec
        self.params = {n: t.clone().requires_grad_() for n, t in initial.items()}
        self.target = {n: t.clone() for n, t in initial.items()}
        self.exp_avg = {n: torch.zeros_like(t) for n, t in initial.items()}
        self.exp_avg_sq = {n: torch.zeros_like(t) for n, t in initial.items()}
        # one row per transition: observation (4), action, reward, next observation (4), terminated
        self.replay = torch.zeros(K, C, TRANSITION_SIZE, device=self.device)
        self.env = CartPoleBatch(K * E, settings.max_episode_steps)
        self.env.set_state(self._initial_states(np.arange(K * E), 0))
        self.episodes = np.zeros(K, dtype=np.int64)  # finished training episodes per network
        self.step = 0
        self.last_loss = torch.full((K,), float("nan"))

    # Pieces of one step ------------------------------------------------------------------
    def _initial_states(self, envs: np.ndarray, step: int) -> np.ndarray:
        """Initial states for environments ``envs`` (flat indices) that start before ``step``."""
        draws = (
            counter_rng.uniform(self.keys, counter_rng.stream_id("episode-start", step), (self.E, OBSERVATION_SIZE))
            .numpy()
            .astype(np.float64)
        )
        draws = draws.reshape(self.K * self.E, OBSERVATION_SIZE)[envs]
        return (draws * 2 - 1) * RESET_BOUND

    def epsilon(self, step: int) -> torch.Tensor:
        """Each network's exploration probability at ``step``: (K,)."""
        progress = torch.clamp(step / self.exploration_steps.clamp(min=1), max=1.0)
        start = self.settings.epsilon_start
        return start + (self.epsilon_final - start) * progress

    @property
    def weights(self) -> Population:
        return Population(self.spec, {n: p.detach() for n, p in self.params.items()})

    def active(self, step: int | None = None) -> np.ndarray:
        """Indices of the networks still training at ``step`` (default: the current step)."""
        return np.flatnonzero((self.step if step is None else step) < self.train_steps)

    def train_step(self) -> torch.Tensor:
        t, K, E, s = self.step, self.K, self.E, self.settings
        active = self.active(t)
        if len(active) == 0:  # everyone is done: nothing left to compute
            self.step += 1
            return self.last_loss
        full = len(active) == K
        index = None if full else torch.as_tensor(active, device=self.device)

        def pick(tensors):
            return tensors if full else {n: v[index] for n, v in tensors.items()}

        A = len(active)
        online = Population(self.spec, pick(self.params))

        # 1. act epsilon-greedily (networks that stopped training push left; nobody uses those envs)
        observation = self.env.observation(self.device).view(K, E, OBSERVATION_SIZE)
        draws = counter_rng.uniform(self.keys[active], counter_rng.stream_id("explore", t), (E, 2), self.device)
        with torch.no_grad():
            greedy = self.architecture.forward(online.detach(), observation[active]).argmax(-1)
        explore = draws[..., 0] < self.epsilon(t)[active].unsqueeze(1)
        chosen = torch.where(explore, (draws[..., 1] < 0.5).long(), greedy)
        actions = torch.zeros(K, E, dtype=torch.int64, device=self.device)
        actions[active] = chosen
        terminated, truncated = self.env.step(actions.view(-1))
        next_observation = self.env.observation(self.device).view(K, E, OBSERVATION_SIZE)

        # 2. store the transitions (every active network has made exactly t * E before these)
        slots = (t * E + torch.arange(E, device=self.device)) % s.replay_capacity
        done = torch.from_numpy(terminated.reshape(K, E)[active].astype(np.float32)).to(self.device)
        transitions = torch.cat(
            [
                observation[active],
                chosen.unsqueeze(-1).float(),
                torch.ones(A, E, 1, device=self.device),  # CartPole rewards every step
                next_observation[active],
                done.unsqueeze(-1),
            ],
            dim=-1,
        )
        self.replay[torch.as_tensor(active, device=self.device).unsqueeze(1), slots] = transitions

        # episode ends: count them, start new episodes from counter-based initial states
        finished = terminated | truncated
        if finished.any():
            self.episodes += finished.reshape(K, E).sum(1) * (t < self.train_steps)
            envs = np.flatnonzero(finished)
            self.env.set_state(self._initial_states(envs, t + 1), envs)

        # 3. one update from the replay buffer
        stored = min((t + 1) * E, s.replay_capacity)
        if stored >= s.learning_starts:
            updates = t + 2 - -(-s.learning_starts // E)  # this network's updates so far, this one included
            samples = counter_rng.integers(
                self.keys[active], counter_rng.stream_id("replay", t), 0, stored, (s.batch_size,), self.device
            )
            rows = torch.as_tensor(active * s.replay_capacity, device=self.device).unsqueeze(1)
            flat = (rows + samples).view(-1)  # one gather from the flattened buffers is much faster
            batch = self.replay.view(K * s.replay_capacity, TRANSITION_SIZE).index_select(0, flat)
            batch = batch.view(A, s.batch_size, TRANSITION_SIZE)
            s_batch, a_batch, r_batch, next_s_batch, terminal_batch = torch.split(
                batch, [OBSERVATION_SIZE, 1, 1, OBSERVATION_SIZE, 1], dim=-1
            )
            with torch.no_grad():
                next_q = self.architecture.forward(Population(self.spec, pick(self.target)), next_s_batch).amax(
                    -1, keepdim=True
                )
                gamma = self.gamma[active].view(A, 1, 1)
                target_q = r_batch + gamma * (1 - terminal_batch) * next_q
            q = self.architecture.forward(online, s_batch).gather(-1, a_batch.long())
            losses = F.huber_loss(q, target_q, reduction="none", delta=s.huber_delta).view(A, -1).mean(1)
            for p in self.params.values():
                p.grad = None
            losses.sum().backward()
            self._adam_step(index, updates)
            loss = self.last_loss.clone()
            loss[active] = losses.detach().cpu()
            self.last_loss = loss

        # 4. target networks
        copy = active[(t + 1) % self.target_update[active] == 0]
        if len(copy):
            with torch.no_grad():
                for n in self.target:
                    self.target[n][copy] = self.params[n].detach()[copy]
        self.step += 1
        return self.last_loss

    def _adam_step(self, index: torch.Tensor | None, updates: int) -> None:
        """AdamW on the rows ``index`` (None: all); each of them has made ``updates`` updates,
        this one included."""
        lr = self.learning_rate if index is None else self.learning_rate[index]
        weight_decay = self.weight_decay if index is None else self.weight_decay[index]
        adamw_update(
            self.params,
            self.exp_avg,
            self.exp_avg_sq,
            lr,
            weight_decay,
            updates,
            self.settings.adam_betas,
            self.settings.adam_eps,
            rows=index,
        )

    # The zoo builder's interface ---------------------------------------------------------
    def run(
        self,
        checkpoints,
        on_checkpoint: Callable[[int, Population], None],
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        """Train up to ``total_steps``, calling ``on_checkpoint(step, weights)`` at each checkpoint
        step not yet passed (0 is the initialisation) and ``on_step(step)`` after every step."""
        with intra_op_threads(self.threads if self.device.type == "cpu" else None):
            run_with_checkpoints(self, checkpoints, on_checkpoint, on_step)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything a resume needs: parameters, target networks, Adam moments, replay buffers,
        environment states and counters (epsilon and the replay position follow from the step)."""
        out = {f"param.{n}": p.detach() for n, p in self.params.items()}
        out.update({f"target.{n}": t for n, t in self.target.items()})
        out.update({f"exp_avg.{n}": t for n, t in self.exp_avg.items()})
        out.update({f"exp_avg_sq.{n}": t for n, t in self.exp_avg_sq.items()})
        out["replay"] = self.replay
        out["env.state"] = torch.from_numpy(self.env.state.copy())
        out["env.episode_steps"] = torch.from_numpy(self.env.episode_steps.astype(np.int64))
        out["episodes"] = torch.from_numpy(self.episodes.copy())
        out["epsilon"] = self.epsilon(self.step)  # for reading a progress file; recomputed on load
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], step: int) -> None:
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(tensors[f"param.{n}"])
            for group in ("target", "exp_avg", "exp_avg_sq"):
                for n, t in getattr(self, group).items():
                    t.copy_(tensors[f"{group}.{n}"])
            self.replay.copy_(tensors["replay"])
        self.env.set_state(tensors["env.state"].numpy(), episode_steps=tensors["env.episode_steps"].numpy())
        self.episodes = tensors["episodes"].numpy().astype(np.int64).copy()
        self.step = int(step)
