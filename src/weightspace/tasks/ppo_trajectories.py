"""PPO policy-weight trajectories (TIPL, papers 001/003): K PPO trials, a snapshot every k updates.

"We run 50 independent trials with different random seeds and the total interaction steps are
800k for InvertedPendulum-v4 and 2M for HalfCheetah-v4 ... For each trial, we collect the weights
of 2k or 5k policies." A zoo of this family is one row per snapshot:

* weights: the actor (a :class:`~weightspace.networks.policy.GaussianMLP`, log-std included);
* rollouts: the observation-normalisation statistics of that moment (``obs_mean``, ``obs_var``,
  ``obs_count``), without which a stored policy cannot be evaluated;
* table: ``step`` (the gradient update), ``iteration``, ``env_step``, ``train_return`` (mean raw
  return of the trial's last 10 finished training episodes), ``episodes`` and, for every
  ``evaluate_every``-th snapshot and the last, ``eval_return`` (mean raw return over
  ``eval_episodes`` fixed episodes with the mean action; NaN elsewhere).

The trials train as one population (:class:`~weightspace.rl.ppo.PopulationPPO`); more trials than
``population`` train in groups. The family supplies one segment of ``save_every`` PPO iterations
at a time (:class:`PPOSegments`); the zoo builder (:mod:`weightspace.zoo.segmented`) writes each as
a shard with the trainer's state, runs groups in worker processes and resumes a killed build after
its last finished segment with nothing lost or repeated. ``zoo.trajectory(run_id)`` gives a
trial's (T, P) weight trajectory.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache

import gymnasium
import mujoco
import numpy as np
import pandas as pd
import torch

from .. import counter_rng
from ..errors import ConfigError
from ..networks.policy import GaussianMLP
from ..rl.mujoco import evaluate_policies, make_env, resolve_env_id
from ..rl.ppo import RECENT_EPISODES, PopulationPPO, PPOSettings
from ..threads import intra_op_threads
from .base import Segment, SegmentTrainer, Task, TaskConfig

#: seed of the fixed evaluation episodes (their reset seeds are counter_rng draws from it)
EVALUATION_SEED = 1


@dataclass(frozen=True)
class PPOTrajectoryConfig(TaskConfig):
    """K PPO trials (CleanRL ppo_continuous_action defaults) and the snapshots stored per trial."""

    models: int = field(default=50, metadata={"help": "PPO trials (paper: 50)."})
    population: int = field(default=50, metadata={"help": "Trials trained together in one batched computation."})
    steps: int = field(default=0, metadata={"help": "Gradient updates per trial: derived from env_steps (leave at 0)."})
    save_every: int = field(
        default=10,
        metadata={"help": "PPO iterations per stored segment (a killed build resumes after the last finished one)."},
    )
    env: str = field(
        default="InvertedPendulum",
        metadata={"help": "gymnasium MuJoCo task; -v4 (the paper's) if installed, else -v5; or a full id."},
    )
    env_steps: int = field(
        default=800_000,
        metadata={"help": "Environment steps per trial (paper: 800k InvertedPendulum, 2M HalfCheetah)."},
    )
    policy_hidden: tuple[int, ...] = field(
        default=(8, 8), metadata={"help": "Actor hidden sizes (paper: 8,8 InvertedPendulum; 256,256 HalfCheetah)."}
    )
    critic_hidden: tuple[int, ...] = field(default=(64, 64), metadata={"help": "Critic hidden sizes (CleanRL's)."})
    snapshots: int = field(
        default=2000,
        metadata={
            "help": "Snapshots per trial after the initial policy: one every total_updates // snapshots updates."
        },
    )
    learning_rate: float = field(default=3e-4, metadata={"help": "Adam learning rate, annealed linearly to 0."})
    num_steps: int = field(default=2048, metadata={"help": "Environment steps per trial and rollout."})
    num_minibatches: int = field(default=32, metadata={"help": "Minibatches per epoch."})
    update_epochs: int = field(default=10, metadata={"help": "Passes over each rollout."})
    gamma: float = field(default=0.99, metadata={"help": "Discount."})
    gae_lambda: float = field(default=0.95, metadata={"help": "GAE lambda."})
    clip_coef: float = field(default=0.2, metadata={"help": "PPO clipping."})
    ent_coef: float = field(default=0.0, metadata={"help": "Entropy coefficient."})
    vf_coef: float = field(default=0.5, metadata={"help": "Value-loss coefficient."})
    max_grad_norm: float = field(default=0.5, metadata={"help": "Gradient-norm clip."})
    eval_episodes: int = field(default=10, metadata={"help": "Fixed episodes of a recorded evaluation return."})
    evaluate_every: int = field(
        default=100,
        metadata={"help": "Snapshots between recorded evaluation returns (the last is always evaluated; 0: only it)."},
    )
    max_episode_steps: int = field(default=0, metadata={"help": "Episode cap (0: the environment's, 1000)."})
    weights_dtype: str = field(
        default="float32",
        metadata={
            "help": "How snapshots are stored: float32, or float16 (half the disk; read back as float32, each "
            "weight rounded to 11 significant bits)."
        },
    )

    def __post_init__(self):
        problems = [
            f"{name} must be >= 1 (got {getattr(self, name)})"
            for name in ("env_steps", "snapshots", "num_steps", "num_minibatches", "update_epochs", "eval_episodes")
            if getattr(self, name) < 1
        ]
        if self.num_steps >= 1 and self.num_minibatches >= 1 and self.num_steps % self.num_minibatches:
            problems.append(
                f"num_steps ({self.num_steps}) must be a multiple of num_minibatches ({self.num_minibatches})"
            )
        if self.env_steps >= 1 and self.num_steps >= 1 and self.env_steps < self.num_steps:
            problems.append(f"env_steps ({self.env_steps}) must be at least one rollout (num_steps {self.num_steps})")
        if self.weights_dtype not in ("float32", "float16"):
            problems.append(f"weights_dtype must be float32 or float16 (got {self.weights_dtype!r})")
        if problems:
            raise ConfigError("; ".join(problems))
        updates = self.total_updates
        every = max(1, updates // self.snapshots)
        checkpoints = tuple(sorted(set(range(0, updates + 1, every)) | {updates}))
        if self.steps not in (0, updates):
            raise ConfigError(f"steps is derived from env_steps ({updates} updates here); leave it out")
        if self.checkpoints is not None and tuple(self.checkpoints) != checkpoints:
            raise ConfigError("checkpoints are derived from env_steps and snapshots; leave them out")
        object.__setattr__(self, "steps", updates)
        object.__setattr__(self, "checkpoints", checkpoints)
        super().__post_init__()

    @property
    def iterations(self) -> int:
        return self.env_steps // self.num_steps

    @property
    def total_updates(self) -> int:
        return self.iterations * self.update_epochs * self.num_minibatches

    @property
    def snapshot_every(self) -> int:
        return max(1, self.total_updates // self.snapshots)

    @property
    def segments(self) -> int:
        return math.ceil(self.iterations / self.save_every)

    def ppo_settings(self) -> PPOSettings:
        return PPOSettings(
            num_steps=self.num_steps,
            num_minibatches=self.num_minibatches,
            update_epochs=self.update_epochs,
            learning_rate=self.learning_rate,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            clip_coef=self.clip_coef,
            ent_coef=self.ent_coef,
            vf_coef=self.vf_coef,
            max_grad_norm=self.max_grad_norm,
        )


@lru_cache(maxsize=None)
def _env_sizes(env_id: str) -> tuple[int, int, int]:
    env, cap = make_env(env_id)
    return env.observation_space.shape[0], env.action_space.shape[0], cap


class PPOTrajectories(Task):
    """Policy-weight trajectories of PPO trials on a MuJoCo task (TIPL, papers 001/003)."""

    name = "ppo-trajectories"
    summary = "PPO policy-weight trajectories on MuJoCo (CleanRL defaults), a snapshot every k updates (TIPL)"
    config_class = PPOTrajectoryConfig
    plot_columns = ("run_id", "train_return")
    segmented = True
    resume_must_match = ("environment", "versions")

    def env_id(self, config) -> str:
        return resolve_env_id(config.env)

    def notices(self, config) -> list[str]:
        env_id = self.env_id(config)
        if "-v" not in config.env and not env_id.endswith("-v4"):
            return [
                f"{config.env}-v4 (the paper's) cannot be made here, so this zoo uses {env_id}; the manifest "
                "records it, and a resume elsewhere must find the same version"
            ]
        return []

    def architecture(self, config) -> GaussianMLP:
        observations, actions, _ = _env_sizes(self.env_id(config))
        return GaussianMLP((observations, *config.policy_hidden, actions), "tanh")

    def max_episode_steps(self, config) -> int:
        return config.max_episode_steps or _env_sizes(self.env_id(config))[2]

    def segments(self, config) -> int:
        return config.segments

    def segment_trainer(self, config, runs: pd.DataFrame, device) -> PPOSegments:
        return PPOSegments(self, config, runs)

    def plan(self, config) -> pd.DataFrame:
        n = config.models
        return pd.DataFrame(
            {"run_id": np.arange(n), "split": np.full(n, "train"), "seed": counter_rng.derive_seeds(config.seed, n)}
        )

    def describe(self, config) -> dict:
        env_id = self.env_id(config)
        observations = _env_sizes(env_id)[0]
        task = {
            "family": "PPO (CleanRL ppo_continuous_action) on a gymnasium MuJoCo task; policy-weight snapshots",
            "environment": env_id,
            "requested_environment": config.env,
            "versions": {"gymnasium": gymnasium.__version__, "mujoco": mujoco.__version__},
            "max_episode_steps": self.max_episode_steps(config),
            "wrappers": "ClipAction, NormalizeObservation (clip +-10), NormalizeReward(gamma) (clip +-10); "
            "same-step autoreset; episode e of trial k resets with seed episode_seeds(seed_k, e)",
            "policy": f"tanh MLP {list(self.architecture(config).sizes)} for the action mean, state-independent "
            "log_std; orthogonal init (gain sqrt 2, last layer 0.01), zero biases",
            "critic": f"tanh MLP {[observations, *config.critic_hidden, 1]} (orthogonal init, last layer gain 1)",
            "ppo": {
                **dataclasses.asdict(config.ppo_settings()),
                "iterations": config.iterations,
                "total_updates": config.total_updates,
            },
            "snapshot_every_updates": config.snapshot_every,
            "weights_dtype": f"snapshots stored as {config.weights_dtype}, read as float32",
            "step": "gradient updates (minibatch steps) before the snapshot; 0 is the initial policy",
            "train_return": f"mean raw return of the trial's last {RECENT_EPISODES} finished training episodes",
            "eval_return": f"mean raw return over {config.eval_episodes} fixed episodes (reset seeds from "
            f"EVALUATION_SEED={EVALUATION_SEED}) with the mean action and the snapshot's "
            "observation statistics (float32, as stored); NaN where not evaluated",
        }
        splits = {"rule": "every trial is 'train' in the zoo; experiments choose their test trials"}
        rollouts = {
            "count": 1,
            "tensors": {
                "obs_mean": {
                    "shape": [observations],
                    "stored_dtype": "float32",
                    "meaning": "observation running mean at the snapshot (NormalizeObservation)",
                },
                "obs_var": {
                    "shape": [observations],
                    "stored_dtype": "float32",
                    "meaning": "observation running variance",
                },
                "obs_count": {"shape": [1], "stored_dtype": "float32", "meaning": "samples in the running statistics"},
            },
        }
        return {"task": task, "splits": splits, "rollouts": rollouts}

    def targets(self, zoo) -> list:
        from ..downstream.targets import Regression

        return [Regression("train_return", ("train_return",))]


class PPOSegments(SegmentTrainer):
    """One group of trials, segment by segment: ``save_every`` PPO iterations and their snapshots."""

    def __init__(self, task: PPOTrajectories, config: PPOTrajectoryConfig, runs: pd.DataFrame):
        self.task, self.config, self.runs = task, config, runs
        self.env_id = task.env_id(config)
        self.architecture = task.architecture(config)
        self.trainer = PopulationPPO(
            self.env_id,
            runs["seed"].to_numpy(),
            config.env_steps,
            config.policy_hidden,
            config.critic_hidden,
            config.ppo_settings(),
            task.max_episode_steps(config),
        )
        self.snapshot_updates = set(config.checkpoints)

    @property
    def updates_done(self) -> int:
        return self.trainer.update

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return self.trainer.state_tensors()

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.trainer.load_state_tensors(tensors)

    def train_segment(self, segment: int, shard: int, on_update) -> Segment:
        with intra_op_threads(1):  # tensors of a few hundred numbers: threads only add overhead
            records, rows = self._run(segment, on_update)
        return self._segment(shard, records, rows)

    def _run(self, segment: int, on_update):
        """Run the segment's iterations; its snapshots as stacked tensors (snapshot, K, ...) and rows."""
        config, trainer, snapshots, rows = self.config, self.trainer, [], []

        def take(update: int) -> None:
            if update not in self.snapshot_updates:
                return
            tensors = trainer.snapshot()
            index = update // config.snapshot_every  # the snapshot's number (the last is evaluated anyway)
            evaluate = update == config.total_updates or (config.evaluate_every and index % config.evaluate_every == 0)
            evaluation = torch.full((trainer.size,), float("nan"))
            if evaluate:
                weights = trainer.actor().detach()
                evaluation = (
                    evaluate_policies(
                        self.env_id,
                        self.architecture,
                        weights,
                        tensors["statistics.obs_mean"],
                        tensors["statistics.obs_var"],
                        config.eval_episodes,
                        EVALUATION_SEED,
                        self.task.max_episode_steps(config),
                    )
                    .mean(1)
                    .float()
                )
            snapshots.append(tensors)
            rows.append(
                {
                    "step": update,
                    "iteration": trainer.iteration,
                    "env_step": (trainer.iteration + 1) * config.num_steps if update else 0,
                    "train_return": trainer.training_return().tolist(),
                    "episodes": trainer.episodes_finished.tolist(),
                    "eval_return": evaluation.tolist(),
                }
            )

        if segment == 0:
            take(0)
        stop = min((segment + 1) * config.save_every, config.iterations)
        while trainer.iteration < stop:
            trainer.run_iteration(lambda update: (take(update), on_update(trainer.size)))
        if not snapshots:  # a segment between two snapshots: an empty shard keeps the numbering
            snapshots, empty = [trainer.snapshot()], True
        else:
            empty = False
        records = {name: torch.stack([s[name] for s in snapshots])[: 0 if empty else None] for name in snapshots[0]}
        return records, rows

    def _segment(self, shard: int, records: dict, rows: list[dict]) -> Segment:
        """The shard's tensors and table rows: trial-major, then by update, as the tensors' leading axis."""
        runs = self.runs
        K, C = len(runs), len(rows)
        stack = lambda t: t.transpose(0, 1).reshape(K * C, *t.shape[2:])  # noqa: E731 - (C, K, ...) -> (K C, ...)
        dtype = getattr(torch, self.config.weights_dtype)
        weights = {n[len("weights.") :]: stack(t).to(dtype) for n, t in records.items() if n.startswith("weights.")}
        statistics = {n[len("statistics.") :]: stack(t) for n, t in records.items() if n.startswith("statistics.")}
        if "obs_count" in statistics:
            statistics["obs_count"] = statistics["obs_count"].reshape(-1, 1)
        table = runs.loc[np.repeat(np.arange(K), C)].reset_index(drop=True)
        table.insert(1, "step", np.tile(np.array([r["step"] for r in rows], dtype=np.int64), K))
        table["shard"] = shard
        table["shard_row"] = np.arange(K * C)
        table["iteration"] = np.tile(np.array([r["iteration"] for r in rows], dtype=np.int64), K)
        table["env_step"] = np.tile(np.array([r["env_step"] for r in rows], dtype=np.int64), K)
        for column in ("train_return", "episodes", "eval_return"):
            values = np.array([r[column] for r in rows], dtype=np.float64).reshape(C, K)
            table[column] = values.T.reshape(-1)
        return Segment(weights, statistics, table)
