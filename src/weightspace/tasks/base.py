"""The task protocol: one object per task family owns everything the toolkit knows about it.

A task family (formal languages, rotated digits, CartPole, ...) is one module that defines a
:class:`TaskConfig` subclass (its settings and their defaults, in one place) and a :class:`Task`
subclass, registered by name in :mod:`weightspace.tasks`. The zoo builder, the zoo reader, the
encoders, emulation, downstream prediction, the analyses and the CLI ask the task; none of them
compares a zoo kind to a string. A new family is one new module plus a registry entry (or a
:func:`~weightspace.tasks.register_task` call in user code).

What a task provides, and who asks:

===========================  ==========================================================
building (``zoo build``)     ``config_class``, ``architecture``, ``plan`` (one row per run:
                             task, seed, hyperparameters, split), ``shard_task`` (batches or
                             its own trainer, and evaluation with rollouts), ``store_rollout``,
                             ``describe`` (the manifest's task, splits and rollouts sections);
                             or, for a family with its own training loop, ``segmented``,
                             ``segments`` and ``segment_trainer`` (one segment at a time)
encoders, emulation          ``task_io`` (how subject networks are fed and read),
                             ``emulation`` (whether pretraining by emulation applies),
                             ``emulation_data`` (emulator inputs and targets from rollouts),
                             ``emulated_performance`` (the fidelity metric, figure 5)
downstream prediction        ``targets`` (with their losses and metrics), ``split_key``
plots                        ``plot_columns`` (what colours the embedding figures)
===========================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from .. import config as typed
from ..errors import ConfigError, WeightspaceError
from ..training import PopulationTrainer, default_checkpoints


@dataclass(frozen=True)
class TaskConfig:
    """Settings every zoo has. A task family subclasses it, adds its own fields and may restate
    these with its own defaults; the manifest stores :meth:`to_json` and the reader rebuilds it."""

    models: int = field(default=1000, metadata={"help": "Number of training runs (networks)."})
    steps: int = field(default=20000, metadata={"help": "Training steps per run."})
    checkpoints: tuple[int, ...] | None = field(
        default=None,
        metadata={
            "help": "Steps to save (0 = the initialisation); default: the paper's steps up to --steps, plus --steps."
        },
    )
    seed: int = field(default=0, metadata={"help": "Zoo seed: fixes every run's task, initialisation and data."})
    population: int = field(default=64, metadata={"help": "Networks trained together in one batched computation."})
    save_every: int = field(default=1000, metadata={"help": "Steps between progress saves inside a shard."})

    def __post_init__(self):
        checkpoints = (
            default_checkpoints(self.steps)
            if self.checkpoints is None
            else sorted(set(int(c) for c in self.checkpoints))
        )
        object.__setattr__(self, "checkpoints", tuple(checkpoints))
        problems = []
        for name in ("models", "population", "save_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.steps < 0:
            problems.append(f"steps must be >= 0 (got {self.steps})")
        if any(c < 0 or c > self.steps for c in checkpoints):
            problems.append(f"checkpoints must lie in [0, {self.steps}] (got {list(checkpoints)})")
        if not checkpoints:
            problems.append("at least one checkpoint is needed")
        problems += self.problems()
        if problems:
            raise ConfigError("; ".join(problems))

    def problems(self) -> list[str]:
        """A subclass's own checks: one message per invalid setting."""
        return []

    def to_json(self) -> dict:
        return typed.to_json(self)


@dataclass(frozen=True)
class LSTMTaskConfig(TaskConfig):
    """Settings of a family whose subject networks are LSTMs trained on sequences by the population
    trainer (AdamW with the paper's piecewise-linear schedule; paper 000's defaults)."""

    batch_size: int = field(default=32, metadata={"help": "Training sequences per network and step."})
    learning_rate: float = field(
        default=0.01, metadata={"help": "AdamW peak learning rate (piecewise-linear schedule)."}
    )
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    hidden_size: int = field(default=32, metadata={"help": "LSTM hidden units per layer."})
    num_layers: int = field(default=2, metadata={"help": "LSTM layers."})
    samples: int = field(default=1000, metadata={"help": "Evaluation samples per checkpoint."})
    rollouts: int = field(default=100, metadata={"help": "Rollouts stored per checkpoint."})

    def problems(self) -> list[str]:
        return [
            f"{name} must be >= 1 (got {getattr(self, name)})"
            for name in ("batch_size", "hidden_size", "num_layers", "samples", "rollouts")
            if getattr(self, name) < 1
        ]


@dataclass(frozen=True)
class ShardTask:
    """What a task provides for one shard (a population trained together): training batches
    (or its own trainer) and evaluation.

    ``batch(step) -> (inputs (K, B, T, I), targets (K, B, T))`` must be a pure function of the step;
    ``evaluate(architecture, weights, step) -> (metrics {name: (K,)}, rollouts {name: (K, ...)})``;
    ``trainer(architecture, runs, config, device)``, when given, replaces the sequence trainer and
    needs the builder's interface: ``step``, ``last_loss``, ``run``, ``state_tensors``,
    ``load_state_tensors``.
    """

    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None
    evaluate: Callable
    trainer: Callable | None = None

    def make_trainer(self, architecture, runs: pd.DataFrame, config, device):
        if self.trainer is not None:
            return self.trainer(architecture, runs, config, device)
        return PopulationTrainer(
            architecture,
            architecture.init(runs["seed"].to_numpy(), device),
            self.batch,
            config.steps,
            lr=runs["learning_rate"].to_numpy(),
            weight_decay=runs["weight_decay"].to_numpy(),
        )


@dataclass(frozen=True)
class Segment:
    """One segment of a group's training, written as one shard: weights and rollouts with a
    leading row axis, and the table rows (the plan's columns, ``step``, ``shard``, ``shard_row``
    and the family's own) in that order."""

    weights: dict[str, torch.Tensor]
    rollouts: dict[str, torch.Tensor]
    rows: pd.DataFrame


class SegmentTrainer:
    """What a segmented family's trainer provides to the builder."""

    #: updates per run done so far (the progress bar's position after a resume)
    updates_done: int = 0

    def train_segment(self, segment: int, shard: int, on_update: Callable[[int], None]) -> Segment:
        """Train segment ``segment`` (written as shard ``shard``), calling ``on_update(count)`` as
        it goes (count: runs x updates)."""
        raise NotImplementedError

    def state_tensors(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError


class Task:
    """A task family. Subclasses set the class attributes and implement what applies to them;
    a capability a family lacks raises one clear :class:`WeightspaceError` line."""

    #: registry name, stored as the zoo manifest's ``kind``
    name: ClassVar[str]
    #: the family's settings (a :class:`TaskConfig` subclass)
    config_class: ClassVar[type[TaskConfig]] = TaskConfig
    #: one line for ``--help`` and listings
    summary: ClassVar[str] = ""
    #: the table column that identifies a network's task; downstream splits keep a task's
    #: networks together (paper 000: OOD tasks are split in halves by this key)
    split_key: ClassVar[str] = "run_id"
    #: (task column, quality column): what colours the embedding figures
    plot_columns: ClassVar[tuple[str, str]] = ("run_id", "train_loss")
    #: what the oracle-ceiling reference of pretraining reads about each network (its task and
    #: its performance; see :mod:`weightspace.emulation.references`)
    oracle_columns: ClassVar[tuple[str, ...]] = ()
    #: manifests written before configs were per task hold every family's settings: old key ->
    #: its name here, or None where the setting never applied to this family
    legacy_config_keys: ClassVar[dict[str, str | None]] = {}

    # ---- settings ------------------------------------------------------------------------
    def config(self, values: dict | None = None, where: str | None = None) -> TaskConfig:
        """The family's config from ``values`` (unknown keys and wrong types are errors)."""
        return typed.from_dict(self.config_class, dict(values or {}), where or f"{self.name} zoo settings")

    def config_from_manifest(self, stored: dict) -> TaskConfig:
        """Rebuild the config a manifest stored (see :meth:`TaskConfig.to_json`)."""
        known = {f.name for f in dataclasses.fields(self.config_class)}
        values = {}
        for key, value in stored.items():
            if key not in known and key in self.legacy_config_keys:
                if self.legacy_config_keys[key] is None:
                    continue
                key = self.legacy_config_keys[key]
            values[key] = value
        return self.config(values, f"{self.name} zoo manifest config")

    # ---- building --------------------------------------------------------------------------
    def architecture(self, config):
        raise NotImplementedError

    def plan(self, config) -> pd.DataFrame:
        """One row per run: ``run_id``, ``split``, ``seed``, and the family's own columns."""
        raise NotImplementedError

    def shard_task(self, runs: pd.DataFrame, config, device) -> ShardTask:
        raise NotImplementedError

    #: True for a family whose runs train in groups of ``population`` in a loop of its own, one
    #: zoo shard per segment (:mod:`weightspace.zoo.segmented`; PPO trajectories), instead of the
    #: builder's shards of ``population`` runs with ``checkpoints``
    segmented: ClassVar[bool] = False

    def shard_count(self, config) -> int:
        """Shards of a finished zoo: one per group of ``population`` runs (a segmented family's:
        one per segment of each group)."""
        return self.groups(config) * (self.segments(config) if self.segmented else 1)

    def groups(self, config) -> int:
        """Groups of runs trained together, ``population`` at most."""
        return math.ceil(config.models / config.population)

    def segments(self, config) -> int:
        """A segmented family's segments per group (each one shard)."""
        raise NotImplementedError

    def segment_trainer(self, config, runs: pd.DataFrame, device) -> SegmentTrainer:
        """A segmented family's trainer for one group of ``runs`` (rows of :meth:`plan`)."""
        raise NotImplementedError

    #: False for a family whose zoos are not trained here (imported networks): ``zoo build`` leaves it out
    buildable: ClassVar[bool] = True

    #: keys of :meth:`describe`'s ``task`` section that a resumed build must find unchanged (an
    #: environment's resolved version, the simulator's version): the builder refuses to resume
    #: with others, which would change the zoo's numbers midway
    resume_must_match: ClassVar[tuple[str, ...]] = ()

    def store_rollout(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """The dtype a rollout tensor is stored in (see the manifest's rollout description)."""
        return tensor

    def notices(self, config) -> list[str]:
        """What a user should know before a build with ``config`` starts (shown by ``zoo build``)."""
        return []

    def describe(self, config) -> dict:
        """The manifest's ``task``, ``splits`` and ``rollouts`` sections."""
        return {"task": {}, "splits": {}, "rollouts": {"count": 0, "tensors": {}}}

    #: False for a family whose zoos hold nothing to emulate (imported networks: no rollouts):
    #: emulation pretraining does not apply, and paper 000's experiment trains only its
    #: supervised baselines on them
    emulation: ClassVar[bool] = True

    # ---- reading -------------------------------------------------------------------------
    def task_io(self, zoo):
        """How the subject networks are fed and read (:class:`~weightspace.encoders.TaskIO`)."""
        raise WeightspaceError(
            f"{zoo.path} is a {self.name} zoo: its networks are not sequence models, "
            "so the encoders and the emulator do not apply to it"
        )

    def emulation_data(self, zoo, rollouts: dict[str, torch.Tensor]):
        """(emulator inputs (..., T, input_size), target log-distributions or values (..., T, out))."""
        raise WeightspaceError(f"{zoo.path} is a {self.name} zoo: it stores no rollouts an emulator can learn")

    def emulated_performance(self, run, zoo, indices: np.ndarray, z: torch.Tensor, samples: int, seed: int):
        """(original, emulated) scores per checkpoint with the family's own metric (figure 5)."""
        raise WeightspaceError(f"{self.name} zoos have no emulation metric")

    def oracle_features(self, table: pd.DataFrame) -> np.ndarray:
        """(rows, F) float features of the oracle reference: :attr:`oracle_columns` of ``table``."""
        columns = self.oracle_columns or self.plot_columns
        return table[list(columns)].to_numpy(dtype=np.float32)

    def targets(self, zoo) -> list:
        """Downstream targets (:class:`~weightspace.downstream.Target`) for the zoo's table."""
        return []

    def quality_column(self, zoo) -> str:
        """The table column ``zoo info`` summarises by training step (default: the plots' quality column)."""
        return self.plot_columns[1]

    def __repr__(self) -> str:
        return f"<task {self.name}>"
