"""PPO for a population of trials: CleanRL's ``ppo_continuous_action``, K seeds as one computation.

Every trial has its own actor (a :class:`~weightspace.networks.policy.GaussianMLP`: tanh MLP for
the mean, state-independent log-std), its own critic (a tanh MLP), its own environment
(:class:`~weightspace.rl.mujoco.MujocoEnvs`) and its own Adam moments; their tensors carry a
leading trial axis, so the rollout's forward passes and each minibatch update are one batched
computation for all K trials. The loop reads as CleanRL's does:

1. anneal the learning rate linearly to 0 over the iterations;
2. collect ``num_steps`` steps per trial with the sampled actions;
3. GAE(gamma, lambda) with the bootstrap value of the last observation (a truncated episode is
   treated as terminated, as in CleanRL);
4. ``update_epochs`` passes over ``num_minibatches`` shuffled minibatches: clipped surrogate,
   clipped value loss, entropy bonus, per-minibatch advantage normalisation, gradient norm clipped
   to ``max_grad_norm`` over all of a trial's parameters (``clip_grad_norm_per_network``), Adam
   (eps 1e-5).

The sum of the trials' losses is differentiated once; each trial's gradient is that of its own
loss, its clipping uses its own norm, and Adam is elementwise, so a trial trains as it would alone
(a test checks it). Random numbers (initial weights, action noise, minibatch order, episode
resets) are counter-based functions of the trial's seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import counter_rng
from ..networks.mlp import MLP
from ..networks.policy import GaussianMLP
from ..networks.weights import Population
from ..training.optim import clip_grad_norm_per_network
from .mujoco import MujocoEnvs

#: finished training episodes averaged into a snapshot's training return
RECENT_EPISODES = 10


@dataclass(frozen=True)
class PPOSettings:
    """CleanRL ``ppo_continuous_action`` defaults (its command-line flags of the same names)."""

    num_steps: int = field(default=2048, metadata={"help": "Environment steps per trial and rollout."})
    num_minibatches: int = field(default=32, metadata={"help": "Minibatches per epoch."})
    update_epochs: int = field(default=10, metadata={"help": "Passes over each rollout."})
    learning_rate: float = field(default=3e-4, metadata={"help": "Adam learning rate (annealed linearly to 0)."})
    anneal_lr: bool = field(default=True, metadata={"help": "Anneal the learning rate linearly to 0."})
    gamma: float = field(default=0.99, metadata={"help": "Discount (also of the reward normalisation)."})
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda."})
    clip_coef: float = field(default=0.2, metadata={"help": "Surrogate (and value) clipping."})
    clip_vloss: bool = field(default=True, metadata={"help": "Clipped value loss."})
    ent_coef: float = field(default=0.0, metadata={"help": "Entropy coefficient."})
    vf_coef: float = field(default=0.5, metadata={"help": "Value-loss coefficient."})
    max_grad_norm: float = field(default=0.5, metadata={"help": "Gradient-norm clip per trial."})
    norm_adv: bool = field(default=True, metadata={"help": "Normalise advantages per minibatch."})
    adam_eps: float = field(default=1e-5, metadata={"help": "Adam epsilon."})

    @property
    def minibatch_size(self) -> int:
        return self.num_steps // self.num_minibatches

    @property
    def updates_per_iteration(self) -> int:
        return self.update_epochs * self.num_minibatches


def gaussian(seeds, stream: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Standard normal draws (len(seeds), *shape), counter-based (Box-Muller)."""
    u = counter_rng.uniform(seeds, stream, (2, *shape)).double()
    return (torch.sqrt(-2 * torch.log1p(-u[:, 0])) * torch.cos(2 * math.pi * u[:, 1])).float()


def orthogonal(seeds, name: str, rows: int, cols: int, gain: float) -> torch.Tensor:
    """``torch.nn.init.orthogonal_(W, gain)`` for each trial (K, rows, cols), from counter-based draws."""
    flat = gaussian(seeds, counter_rng.stream_id("orthogonal", name), (rows, cols)).double()
    if rows < cols:
        flat = flat.transpose(1, 2)
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)
    if rows < cols:
        q = q.transpose(1, 2)
    return (gain * q).float().contiguous()


def layer_init(network: MLP, seeds, prefix: str, last_gain: float) -> dict[str, torch.Tensor]:
    """CleanRL's ``layer_init``: orthogonal weights (gain sqrt 2, the last layer ``last_gain``), zero biases."""
    tensors, layers = {}, len(network.sizes) - 1
    for layer, (fan_in, fan_out) in enumerate(zip(network.sizes[:-1], network.sizes[1:])):
        gain = last_gain if layer == layers - 1 else math.sqrt(2)
        tensors[f"{2 * layer}.weight"] = orthogonal(seeds, f"{prefix}.{layer}", fan_out, fan_in, gain)
        tensors[f"{2 * layer}.bias"] = torch.zeros(len(seeds), fan_out)
    return tensors


class PopulationPPO:
    """K PPO trials of one environment (see the module docstring). ``run_iteration`` does one
    rollout and its updates, calling ``on_update(update)`` after every gradient step."""

    def __init__(
        self,
        env_id: str,
        seeds,
        total_steps: int,
        policy_hidden=(64, 64),
        critic_hidden=(64, 64),
        settings: PPOSettings = PPOSettings(),
        max_episode_steps: int | None = None,
    ):
        self.seeds = np.asarray(seeds, dtype=np.int64)
        self.settings = s = settings
        self.envs = MujocoEnvs(env_id, self.seeds, s.gamma, max_episode_steps)
        O, A, K = self.envs.observation_size, self.envs.action_size, len(self.seeds)
        self.policy = GaussianMLP((O, *policy_hidden, A), "tanh")
        self.critic = MLP((O, *critic_hidden, 1), "tanh")
        self.iterations = total_steps // s.num_steps
        self.total_updates = self.iterations * s.updates_per_iteration
        actor = layer_init(self.policy.mean_network, self.seeds, "actor", 0.01)
        actor["log_std"] = torch.zeros(K, A)
        critic = layer_init(self.critic, self.seeds, "critic", 1.0)
        self.parameters = {
            **{f"actor.{n}": t for n, t in actor.items()},
            **{f"critic.{n}": t for n, t in critic.items()},
        }
        for tensor in self.parameters.values():
            tensor.requires_grad_(True)
        self.optimizer = torch.optim.Adam(list(self.parameters.values()), lr=s.learning_rate, eps=s.adam_eps)
        self.iteration = 0
        self.update = 0
        self.next_obs = self.envs.reset()
        self.next_done = torch.zeros(K)
        self.recent = np.full((K, RECENT_EPISODES), np.nan)  # raw returns of the last finished episodes
        self.episodes_finished = np.zeros(K, dtype=np.int64)

    # views ------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.seeds)

    def actor(self) -> Population:
        return Population(
            self.policy.spec, {n[len("actor.") :]: t for n, t in self.parameters.items() if n.startswith("actor.")}
        )

    def critic_weights(self) -> Population:
        return Population(
            self.critic.spec, {n[len("critic.") :]: t for n, t in self.parameters.items() if n.startswith("critic.")}
        )

    @property
    def env_steps(self) -> int:
        """Environment steps each trial has taken."""
        return self.iteration * self.settings.num_steps

    def training_return(self) -> np.ndarray:
        """Mean raw return of each trial's last finished episodes (NaN before the first)."""
        with np.errstate(all="ignore"):
            counts = np.sum(~np.isnan(self.recent), 1)
            return np.where(counts > 0, np.nansum(self.recent, 1) / np.maximum(counts, 1), np.nan)

    def snapshot(self) -> dict[str, torch.Tensor]:
        """What a stored policy needs: the actor's weights and the observation statistics."""
        tensors = {f"weights.{n}": t.detach().clone() for n, t in self.actor().items()}
        tensors["statistics.obs_mean"] = torch.from_numpy(self.envs.obs_mean.astype(np.float32))
        tensors["statistics.obs_var"] = torch.from_numpy(self.envs.obs_var.astype(np.float32))
        tensors["statistics.obs_count"] = torch.from_numpy(self.envs.obs_count.astype(np.float32))
        return tensors

    # one iteration -----------------------------------------------------------------------
    @torch.no_grad()
    def _collect(self):
        s, K, T = self.settings, self.size, self.settings.num_steps
        actor, critic = self.actor().detach(), self.critic_weights().detach()
        noise = gaussian(self.seeds, counter_rng.stream_id("action-noise", self.iteration), (T, self.envs.action_size))
        obs = torch.zeros(K, T, self.envs.observation_size)
        actions, logprobs = torch.zeros(K, T, self.envs.action_size), torch.zeros(K, T)
        rewards, dones, values = torch.zeros(K, T), torch.zeros(K, T), torch.zeros(K, T)
        log_std = actor["log_std"]
        for step in range(T):
            obs[:, step] = self.next_obs
            dones[:, step] = self.next_done
            x = self.next_obs.unsqueeze(1)
            mean = self.policy.mean(actor, x)[:, 0]
            action = mean + torch.exp(log_std) * noise[:, step]
            actions[:, step] = action
            logprobs[:, step] = GaussianMLP.log_prob(mean, log_std, action)
            values[:, step] = self.critic.forward(critic, x)[:, 0, 0]
            self.next_obs, rewards[:, step], done = self.envs.step(action.double().numpy())
            self.next_done = done.float()
            self._record_episodes()
        next_value = self.critic.forward(critic, self.next_obs.unsqueeze(1))[:, 0, 0]
        advantages = torch.zeros(K, T)
        last = torch.zeros(K)
        for t in reversed(range(T)):
            if t == T - 1:
                nonterminal, next_values = 1.0 - self.next_done, next_value
            else:
                nonterminal, next_values = 1.0 - dones[:, t + 1], values[:, t + 1]
            delta = rewards[:, t] + s.gamma * next_values * nonterminal - values[:, t]
            advantages[:, t] = last = delta + s.gamma * s.gae_lambda * nonterminal * last
        return obs, actions, logprobs, advantages, advantages + values, values

    def _record_episodes(self) -> None:
        for k, episode_return, _ in self.envs.finished:
            self.recent[k] = np.roll(self.recent[k], -1)
            self.recent[k, -1] = episode_return
            self.episodes_finished[k] += 1
        self.envs.finished.clear()

    def _loss(self, obs, actions, old_logprobs, advantages, returns, old_values) -> torch.Tensor:
        """Each trial's CleanRL loss on its minibatch: (K,)."""
        s = self.settings
        actor, critic = self.actor(), self.critic_weights()
        log_std = actor["log_std"].unsqueeze(1)
        new_logprob = GaussianMLP.log_prob(self.policy.mean(actor, obs), log_std, actions)
        entropy = GaussianMLP.entropy(actor["log_std"])
        new_value = self.critic.forward(critic, obs)[..., 0]
        ratio = torch.exp(new_logprob - old_logprobs)
        if s.norm_adv:
            advantages = (advantages - advantages.mean(1, keepdim=True)) / (advantages.std(1, keepdim=True) + 1e-8)
        pg_loss = torch.max(
            -advantages * ratio, -advantages * torch.clamp(ratio, 1 - s.clip_coef, 1 + s.clip_coef)
        ).mean(1)
        if s.clip_vloss:
            clipped = old_values + torch.clamp(new_value - old_values, -s.clip_coef, s.clip_coef)
            v_loss = 0.5 * torch.max((new_value - returns) ** 2, (clipped - returns) ** 2).mean(1)
        else:
            v_loss = 0.5 * ((new_value - returns) ** 2).mean(1)
        return pg_loss - s.ent_coef * entropy + v_loss * s.vf_coef

    def run_iteration(self, on_update: Callable[[int], None] | None = None) -> None:
        s, K = self.settings, self.size
        if s.anneal_lr:
            self.optimizer.param_groups[0]["lr"] = (1.0 - self.iteration / self.iterations) * s.learning_rate
        batch = self._collect()
        rows = torch.arange(K).unsqueeze(1)
        for epoch in range(s.update_epochs):
            order = torch.argsort(
                counter_rng.uniform(
                    self.seeds, counter_rng.stream_id("minibatch-order", self.iteration, epoch), (s.num_steps,)
                ),
                dim=1,
            )
            shuffled = [part[rows, order] for part in batch]  # each minibatch is then a slice
            for start in range(0, s.num_steps, s.minibatch_size):
                loss = self._loss(*(part[:, start : start + s.minibatch_size] for part in shuffled))
                self.optimizer.zero_grad(set_to_none=False)
                loss.sum().backward()
                clip_grad_norm_per_network(self.parameters.values(), s.max_grad_norm)
                self.optimizer.step()
                self.update += 1
                if on_update is not None:
                    on_update(self.update)
        self.iteration += 1

    # resume ------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"param.{n}": t.detach().clone() for n, t in self.parameters.items()}
        for n, p in self.parameters.items():
            state = self.optimizer.state.get(p)
            if state:
                tensors[f"adam.{n}.exp_avg"], tensors[f"adam.{n}.exp_avg_sq"] = state["exp_avg"], state["exp_avg_sq"]
                tensors["adam.step"] = state["step"].reshape(1)
        tensors.update(self.envs.state_tensors())
        tensors.update(
            {
                "next_obs": self.next_obs,
                "next_done": self.next_done,
                "recent": torch.from_numpy(self.recent),
                "episodes_finished": torch.from_numpy(self.episodes_finished),
                "counters": torch.tensor([self.iteration, self.update]),
            }
        )
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for n, p in self.parameters.items():
                p.copy_(tensors[f"param.{n}"])
                if f"adam.{n}.exp_avg" in tensors:
                    self.optimizer.state[p] = {
                        "step": tensors["adam.step"].reshape(()).clone(),
                        "exp_avg": tensors[f"adam.{n}.exp_avg"].clone(),
                        "exp_avg_sq": tensors[f"adam.{n}.exp_avg_sq"].clone(),
                    }
        self.envs.load_state_tensors(tensors)
        self.next_obs, self.next_done = tensors["next_obs"].clone(), tensors["next_done"].clone()
        self.recent = tensors["recent"].numpy().copy()
        self.episodes_finished = tensors["episodes_finished"].numpy().copy()
        self.iteration, self.update = (int(v) for v in tensors["counters"])
