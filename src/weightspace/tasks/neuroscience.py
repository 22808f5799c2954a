"""Paper 002's task families: vanilla or mean-field RNNs trained to a loss threshold on four
neuroscience tasks (flip-flop, delayed discrimination, sine generation, path integration).

A zoo of one of these families is one *condition* of the degeneracy study: ``models`` networks
that differ only in their seed, with the knobs (channels, delay, auxiliary output, width,
parametrisation and gamma, regulariser and its strength) as settings and as table columns. The
trial generators are in :mod:`weightspace.tasks.trials`; training is
:class:`~weightspace.training.threshold.ThresholdTrainer` (each network stops on its own).

Each zoo stores two rows per network: its initialisation (step 0) and its trained network (the
last step; a network that stopped early holds its weights from its stop). Table columns: the
knobs, ``converged`` (the training loss met the threshold and the stored network meets it on the
held-out evaluation trials), ``converged_in_training`` (the first only), ``converged_epoch``,
``stop_step``, ``final_lr``, ``train_loss`` (the last epoch's mean MSE; written by the zoo builder from
the trainer), ``test_mse`` and ``ood_mse`` on fixed evaluation trials (the OOD condition doubles the
trial length, or the delay for delayed discrimination).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .. import counter_rng
from ..networks.mean_field import MeanFieldRNN
from ..networks.recurrent import RNN
from ..training.threshold import REGULARIZERS, StoppingRule, ThresholdTrainer, masked_mse
from . import trials as generators
from .base import ShardTask, Task, TaskConfig

PARAMETRISATIONS = ("standard", "mean-field")
#: the OOD condition multiplies the trial length (delayed discrimination: the delay) by this
OOD_FACTOR = 2
#: settings that describe a condition, stored as table columns
KNOBS = ("hidden_size", "parametrisation", "gamma", "regularizer", "strength")


@dataclass(frozen=True)
class RNNTaskConfig(TaskConfig):
    """One condition of paper 002: networks trained to a threshold, then ``patience_epochs``
    more epochs. ``steps`` is the most training steps (max epochs x ``steps_per_epoch``)."""

    models: int = field(default=16, metadata={"help": "Networks of this condition (paper 002: 50)."})
    population: int = field(default=64, metadata={"help": "Networks trained together in one batched computation."})
    steps: int = field(
        default=128_000,
        metadata={"help": "Most training steps per network: max epochs x steps_per_epoch (paper 002: 1,000 x 128)."},
    )
    steps_per_epoch: int = field(default=128, metadata={"help": "Training steps per epoch."})
    batch_size: int = field(default=64, metadata={"help": "Trials per network and step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate eta0 (mean-field: gamma x eta0)."})
    threshold: float = field(
        default=1e-3, metadata={"help": "Training MSE (an epoch's mean) that counts as converged."}
    )
    patience_epochs: int = field(default=3, metadata={"help": "Epochs trained after convergence before stopping."})
    plateau_factor: float = field(default=0.5, metadata={"help": "ReduceLROnPlateau factor."})
    plateau_patience: int = field(default=40, metadata={"help": "ReduceLROnPlateau patience (epochs)."})
    hidden_size: int = field(default=128, metadata={"help": "Hidden units N."})
    parametrisation: str = field(
        default="standard",
        metadata={
            "help": "standard: h = tanh(W_h h + W_x x + b), nn.RNN's init; mean-field: the leaky muP RNN with gamma."
        },
    )
    gamma: float = field(default=1.0, metadata={"help": "Mean-field feature-learning strength (readout 1/(gamma N))."})
    tau: float = field(default=0.1, metadata={"help": "Mean-field leak (time constant in steps: 1/tau)."})
    regularizer: str = field(default="none", metadata={"help": "Penalty on the recurrent matrix: none, nuclear or l1."})
    strength: float = field(default=0.0, metadata={"help": "Penalty strength lambda."})
    evaluation_trials: int = field(default=256, metadata={"help": "Fixed trials for test and OOD MSE."})

    def __post_init__(self):
        if self.checkpoints is None:
            object.__setattr__(self, "checkpoints", (0, self.steps))
        super().__post_init__()

    def problems(self) -> list[str]:
        problems = [
            f"{name} must be >= 1 (got {getattr(self, name)})"
            for name in ("steps_per_epoch", "batch_size", "hidden_size", "evaluation_trials")
            if getattr(self, name) < 1
        ]
        if self.steps % self.steps_per_epoch:
            problems.append(f"steps ({self.steps}) must be a multiple of steps_per_epoch ({self.steps_per_epoch})")
        if self.parametrisation not in PARAMETRISATIONS:
            problems.append(f"parametrisation must be one of {list(PARAMETRISATIONS)} (got {self.parametrisation!r})")
        if self.regularizer not in REGULARIZERS:
            problems.append(f"regularizer must be one of {list(REGULARIZERS)} (got {self.regularizer!r})")
        if self.gamma <= 0 or self.learning_rate <= 0 or self.threshold <= 0 or self.strength < 0:
            problems.append("gamma, learning_rate and threshold must be > 0 and strength >= 0")
        return problems + self.task_problems()

    def task_problems(self) -> list[str]:
        return []

    def rule(self) -> StoppingRule:
        return StoppingRule(
            self.threshold,
            self.patience_epochs,
            self.steps_per_epoch,
            self.steps // self.steps_per_epoch,
            self.plateau_factor,
            self.plateau_patience,
        )


class NeuroscienceTask(Task):
    """Shared machinery of the four families; a subclass says how trials look (:meth:`trials`)
    and how many channels go in and out."""

    config_class = RNNTaskConfig
    plot_columns = ("run_id", "test_mse")
    #: the task's own knobs (table columns besides :data:`KNOBS`)
    task_knobs: tuple[str, ...] = ()

    def input_size(self, config) -> int:
        raise NotImplementedError

    def output_size(self, config) -> int:
        raise NotImplementedError

    def trials(self, config, keys, stream: int, batch: int, ood: bool = False) -> generators.Trials:
        raise NotImplementedError

    def architecture(self, config):
        if config.parametrisation == "mean-field":
            return MeanFieldRNN(
                self.input_size(config), config.hidden_size, self.output_size(config), config.gamma, config.tau
            )
        return RNN(self.input_size(config), config.hidden_size, 1, self.output_size(config))

    def learning_rate(self, config) -> float:
        return config.learning_rate * (config.gamma if config.parametrisation == "mean-field" else 1.0)

    def plan(self, config) -> pd.DataFrame:
        n = config.models
        frame = pd.DataFrame(
            {
                "run_id": np.arange(n),
                "split": np.full(n, "train"),
                "seed": counter_rng.derive_seeds(config.seed, n),
                "learning_rate": np.full(n, self.learning_rate(config)),
            }
        )
        for knob in self.task_knobs + KNOBS:
            frame[knob] = getattr(config, knob)
        return frame

    def shard_task(self, runs, config, device) -> ShardTask:
        keys = runs["seed"].to_numpy()
        trainers = []  # the evaluation reads the shard's trainer state

        def batch(step, networks):
            t = self.trials(
                config, keys[networks.cpu().numpy()], counter_rng.stream_id(self.name, "batch", step), config.batch_size
            )
            return t.inputs.to(device), t.targets.to(device), t.mask.to(device)

        def trainer(architecture, runs, config, device):
            made = ThresholdTrainer(
                architecture,
                architecture.init(keys, device),
                batch,
                config.rule(),
                runs["learning_rate"].to_numpy(),
                config.regularizer,
                config.strength,
            )
            trainers.append(made)
            return made

        def evaluate(architecture, weights, step):
            state = trainers[0]
            metrics = {
                name: self.evaluation_mse(architecture, weights, config, keys, ood, device)
                for name, ood in (("test_mse", False), ("ood_mse", True))
            }
            # converged: the training loss met the threshold and the stored network meets it on the
            # held-out evaluation trials (it is stored some epochs after the crossing)
            held_out = metrics["test_mse"].cpu() <= config.threshold
            metrics.update(
                converged=(state.converged.cpu() & held_out).float(),
                converged_in_training=state.converged.float(),
                converged_epoch=state.converged_epoch.float(),
                stop_step=state.stop_step.float(),
                final_lr=state.lr,
            )
            return metrics, {}

        return ShardTask(batch=None, evaluate=evaluate, trainer=trainer)

    @torch.no_grad()
    def evaluation_mse(self, architecture, weights, config, keys, ood: bool, device) -> torch.Tensor:
        """Each network's MSE on its fixed evaluation trials (in distribution or OOD): (K,)."""
        t = self.trials(
            config, keys, counter_rng.stream_id(self.name, "evaluation", ood), config.evaluation_trials, ood
        ).to(device)
        return masked_mse(architecture.forward(weights, t.inputs)[0], t.targets, t.mask)

    def describe(self, config) -> dict:
        task = {
            "family": self.summary,
            "knobs": {k: getattr(config, k) for k in self.task_knobs + KNOBS},
            "trials": self.trial_settings(config),
            "training": {
                "optimizer": "Adam (AdamW with weight decay 0), no weight decay",
                "loss": "MSE over the masked time steps and the outputs",
                "stopping": dataclasses.asdict(config.rule()),
                "learning_rate": self.learning_rate(config),
            },
            "rows": "step 0: the initialisation; the last step: the network when it stopped",
        }
        return {
            "task": task,
            "splits": {"rule": "every network is train (no downstream split)"},
            "rollouts": {"count": 0, "tensors": {}},
        }

    def trial_settings(self, config) -> dict:
        return {}

    @staticmethod
    def trial_length(config, ood: bool) -> int:
        """Time steps of a trial of a family with ``trial_steps``, in or out of distribution."""
        return config.trial_steps * (OOD_FACTOR if ood else 1)

    @staticmethod
    def length_settings(config) -> dict:
        return {"steps": config.trial_steps, "ood_steps": OOD_FACTOR * config.trial_steps}


# ---- the four families --------------------------------------------------------------------------
@dataclass(frozen=True)
class FlipFlopConfig(RNNTaskConfig):
    threshold: float = field(
        default=1e-3, metadata={"help": "Training MSE that counts as converged (paper 002: 1e-3)."}
    )
    channels: int = field(default=3, metadata={"help": "N: input and output channels."})
    trial_steps: int = field(default=100, metadata={"help": "Time steps per trial (OOD: twice as many)."})
    p_switch: float = field(default=0.05, metadata={"help": "Probability of a pulse per channel and step."})

    def task_problems(self):
        return (
            []
            if self.channels >= 1 and self.trial_steps >= 1 and 0 < self.p_switch < 1
            else ["channels and trial_steps must be >= 1 and p_switch in (0, 1)"]
        )


class FlipFlop(NeuroscienceTask):
    name = "flip-flop"
    summary = "N-bit flip-flop (Sussillo & Barak 2013), RNNs trained to a threshold (paper 002)"
    config_class = FlipFlopConfig
    task_knobs = ("channels",)

    def input_size(self, config):
        return config.channels

    output_size = input_size

    def trials(self, config, keys, stream, batch, ood=False):
        return generators.flip_flop(
            keys, stream, batch, self.trial_length(config, ood), config.channels, config.p_switch
        )

    def trial_settings(self, config):
        return {**self.length_settings(config), "p_switch": config.p_switch}


@dataclass(frozen=True)
class DelayedDiscriminationConfig(RNNTaskConfig):
    threshold: float = field(
        default=0.01, metadata={"help": "Training MSE that counts as converged (paper 002: 0.01)."}
    )
    delay_min: int = field(default=5, metadata={"help": "Shortest delay between the pulses (steps; OOD: doubled)."})
    delay_max: int = field(default=20, metadata={"help": "Longest delay (steps; OOD: doubled)."})
    auxiliary: bool = field(default=False, metadata={"help": "A second output: |f2 - f1| / 8."})

    def task_problems(self):
        return [] if 1 <= self.delay_min <= self.delay_max else ["need 1 <= delay_min <= delay_max"]


class DelayedDiscrimination(NeuroscienceTask):
    name = "delayed-discrimination"
    summary = "delayed discrimination of two pulses, RNNs trained to a threshold (paper 002)"
    config_class = DelayedDiscriminationConfig
    task_knobs = ("delay_min", "delay_max", "auxiliary")

    def input_size(self, config):
        return 1

    def output_size(self, config):
        return 2 if config.auxiliary else 1

    def trials(self, config, keys, stream, batch, ood=False):
        scale = OOD_FACTOR if ood else 1
        return generators.delayed_discrimination(
            keys, stream, batch, (config.delay_min * scale, config.delay_max * scale), config.auxiliary
        )

    def trial_settings(self, config):
        return {
            "fixation": generators.FIXATION,
            "pulse": generators.PULSE,
            "response": generators.RESPONSE,
            "frequencies": list(generators.FREQUENCY_RANGE),
            "delay": [config.delay_min, config.delay_max],
            "ood_delay": [OOD_FACTOR * config.delay_min, OOD_FACTOR * config.delay_max],
            "loss": "response period only",
        }


@dataclass(frozen=True)
class SineGenerationConfig(RNNTaskConfig):
    threshold: float = field(
        default=0.05, metadata={"help": "Training MSE that counts as converged (paper 002: 0.05)."}
    )
    frequencies: int = field(default=10, metadata={"help": "N_freq: frequencies evenly spaced in [1, 30] Hz."})
    trial_steps: int = field(default=250, metadata={"help": "Time steps per trial (OOD: twice as many)."})
    dt: float = field(default=0.004, metadata={"help": "Seconds per time step."})

    def task_problems(self):
        return (
            []
            if self.frequencies >= 1 and self.trial_steps >= 1 and self.dt > 0
            else ["frequencies and trial_steps must be >= 1 and dt > 0"]
        )


class SineGeneration(NeuroscienceTask):
    name = "sine-generation"
    summary = "sine generation at a frequency a static input selects, RNNs trained to a threshold (paper 002)"
    config_class = SineGenerationConfig
    task_knobs = ("frequencies",)

    def input_size(self, config):
        return 1

    def output_size(self, config):
        return 1

    def trials(self, config, keys, stream, batch, ood=False):
        return generators.sine_generation(
            keys, stream, batch, self.trial_length(config, ood), config.frequencies, config.dt
        )

    def trial_settings(self, config):
        return {
            **self.length_settings(config),
            "dt": config.dt,
            "frequencies_hz": [round(f, 4) for f in generators.sine_frequencies(config.frequencies).tolist()],
        }


@dataclass(frozen=True)
class PathIntegrationConfig(RNNTaskConfig):
    threshold: float = field(
        default=0.05, metadata={"help": "Training MSE that counts as converged (paper 002: 0.05)."}
    )
    dimensions: int = field(default=2, metadata={"help": "2 or 3."})
    trial_steps: int = field(default=100, metadata={"help": "Time steps per trial (OOD: twice as many)."})

    def task_problems(self):
        return (
            []
            if self.dimensions in (2, 3) and self.trial_steps >= 1
            else ["dimensions must be 2 or 3 and trial_steps >= 1"]
        )


class PathIntegration(NeuroscienceTask):
    name = "path-integration"
    summary = "2D or 3D path integration from heading and speed, RNNs trained to a threshold (paper 002)"
    config_class = PathIntegrationConfig
    task_knobs = ("dimensions",)

    def input_size(self, config):
        return config.dimensions + 1

    def output_size(self, config):
        return config.dimensions

    def trials(self, config, keys, stream, batch, ood=False):
        return generators.path_integration(keys, stream, batch, self.trial_length(config, ood), config.dimensions)

    def trial_settings(self, config):
        return {
            **self.length_settings(config),
            "arena": generators.ARENA,
            "turn_std": generators.TURN_STD,
            "max_speed": generators.MAX_SPEED,
            "input": "heading as a unit vector, then the speed of the step taken",
        }
