"""Build a model zoo: train runs in populations (shards), write them atomically, resume after a kill.

A zoo of N runs is trained as ceil(N / population) shards of at most ``population`` networks,
each shard one batched computation. A finished shard is written as a weights file and a
rollouts file, then the table and then the manifest (which lists finished shards) are
rewritten; a reader trusts only shards the manifest lists. While a shard trains, its trainer
state and the checkpoints recorded so far are saved to ``progress/`` at every checkpoint and
every ``save_every`` steps, so a killed build resumes mid-shard. All randomness is
counter-based (:mod:`weightspace.counter_rng`), so a resumed build writes exactly the numbers
an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from .. import __version__
from ..errors import ConfigError, ZooFormatError
from ..training import PopulationTrainer, default_checkpoints
from . import storage
from .format import FORMAT_NAME, FORMAT_VERSION, MANIFEST, TABLE, read_manifest, shard_file


@dataclass(frozen=True)
class ShardTask:
    """What a zoo kind provides for one shard: training batches (or its own trainer) and evaluation.

    ``batch(step) -> (inputs (K, B, T, I), targets (K, B, T))`` must be a pure function of the step;
    ``evaluate(architecture, weights, step) -> (metrics {name: (K,)}, rollouts {name: (K, ...)})``.
    """

    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None
    evaluate: Callable
    trainer: Callable | None = None  # (architecture, runs, config, device) -> trainer; None: sequence trainer

    def make_trainer(self, architecture, runs, config, device):
        """The shard's trainer. A custom one (e.g. DQN) needs the interface of PopulationTrainer
        that the builder uses: ``step``, ``last_loss``, ``run``, ``state_tensors``, ``load_state_tensors``."""
        if self.trainer is not None:
            return self.trainer(architecture, runs, config, device)
        return PopulationTrainer(
            architecture, architecture.init(runs["seed"].to_numpy(), device), self.batch, config.steps,
            lr=runs["learning_rate"].to_numpy(), weight_decay=runs["weight_decay"].to_numpy(),
        )


@dataclass(frozen=True)
class ZooConfig:
    """Everything that determines a zoo's contents (the device does not, up to float rounding)."""

    models: int = 1000
    steps: int = 20000
    checkpoints: tuple[int, ...] | None = None  # None: the paper's steps up to ``steps``
    seed: int = 0
    population: int = 64
    batch_size: int = 32
    learning_rate: float = 0.01
    weight_decay: float = 1e-4
    hidden_size: int = 32
    num_layers: int = 2
    samples: int = 1000  # evaluation samples per checkpoint (sampled strings; training images for train_loss)
    rollouts: int = 100  # stored rollouts per checkpoint
    data_dir: str | None = None  # a real dataset's directory (digits: MNIST IDX files); None: built-in data
    tile_size: int | None = None  # digits: tile side in pixels; None: 4 for MNIST, 2 for the 8x8 digits
    save_every: int = 1000  # steps between mid-shard progress saves
    max_episode_steps: int = 200  # cartpole: episode cap (paper 004, CartPole-v0 semantics)

    def __post_init__(self):
        checkpoints = (default_checkpoints(self.steps) if self.checkpoints is None
                       else sorted(set(int(c) for c in self.checkpoints)))
        object.__setattr__(self, "checkpoints", tuple(checkpoints))
        if self.data_dir is not None:  # one spelling of the path, so a resume from elsewhere matches
            object.__setattr__(self, "data_dir", str(Path(self.data_dir).expanduser().resolve()))
        problems = []
        if self.models < 1:
            problems.append(f"--models must be >= 1 (got {self.models})")
        if self.steps < 0:
            problems.append(f"--steps must be >= 0 (got {self.steps})")
        if self.population < 1:
            problems.append(f"--population must be >= 1 (got {self.population})")
        if any(c < 0 or c > self.steps for c in checkpoints):
            problems.append(f"checkpoints must lie in [0, {self.steps}] (got {list(checkpoints)})")
        if not checkpoints:
            problems.append("at least one checkpoint is needed")
        if self.rollouts > self.samples:
            problems.append(f"--rollouts ({self.rollouts}) cannot exceed --samples ({self.samples})")
        if self.tile_size is not None and self.tile_size < 1:
            problems.append(f"--tile-size must be >= 1 (got {self.tile_size})")
        if self.save_every < 1:
            problems.append(f"--save-every must be >= 1 (got {self.save_every})")
        if problems:
            raise ConfigError("; ".join(problems))

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["checkpoints"] = list(self.checkpoints)
        return out

    @classmethod
    def field_defaults(cls) -> dict:
        return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}



def _versions() -> dict:
    return {"weightspace": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _prepare(out: Path, kind, config: ZooConfig) -> dict:
    """Create a new manifest or check that ``out`` holds a build of the same zoo."""
    if (out / MANIFEST).exists():
        manifest = read_manifest(out)
        if manifest["kind"] != kind.name:
            raise ConfigError(f"{out} holds a {manifest['kind']!r} zoo, not {kind.name!r}; choose another --out")
        # a field added in a later version is absent from older manifests: it had its default there
        defaults = ZooConfig.field_defaults()
        stored = {**defaults, **manifest["config"]}
        wanted = config.to_json()
        diffs = [f"{k}: {stored.get(k)} there vs {v} now" for k, v in wanted.items() if stored.get(k) != v]
        if diffs:
            raise ConfigError(f"{out} holds a zoo built with other settings ({'; '.join(diffs)}); "
                              "rerun with the same settings to resume, or choose another --out")
        return manifest
    if out.exists() and any(p.name != "progress" for p in out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty, but has no {MANIFEST}; choose another --out")
    architecture = kind.architecture(config)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": kind.name,
        "config": config.to_json(),
        "seed": config.seed,
        "created_with": _versions(),
        "architecture": architecture.spec.to_json(),
        "task": kind.task_description(config),
        "splits": kind.split_description(config),
        "rollouts": kind.rollout_description(config),
        "shards": {"total": math.ceil(config.models / config.population), "completed": []},
        "table": {"file": TABLE, "rows": 0},
    }
    storage.write_json(out / MANIFEST, manifest)
    return manifest


def build_zoo(out, kind, config: ZooConfig, device: str = "cpu", progress: bool = True) -> Path:
    """Build (or resume building) the zoo of ``kind`` with ``config`` in directory ``out``."""
    out = Path(out)
    device = torch.device(device)
    manifest = _prepare(out, kind, config)
    plan = kind.plan(config)
    plan["shard"] = plan["run_id"] // config.population
    completed = set(manifest["shards"]["completed"])
    table = pd.read_parquet(out / TABLE) if (out / TABLE).exists() else None
    if table is not None:
        table = table[table["shard"].isin(completed)]
    done_runs = int(plan["shard"].isin(completed).sum())
    bar = tqdm(total=config.models * config.steps, initial=done_runs * config.steps, unit="net·step",
               unit_scale=True, disable=not progress, dynamic_ncols=True, desc=f"{kind.name} zoo")
    for shard in range(manifest["shards"]["total"]):
        if shard in completed:
            continue
        runs = plan[plan["shard"] == shard].reset_index(drop=True)
        bar.set_postfix_str(f"shard {shard + 1}/{manifest['shards']['total']}")
        rows, weights, rollouts = _train_shard(out, shard, runs, kind, config, device, bar)
        first_row = 0 if table is None else len(table)
        rows.insert(0, "model_id", np.arange(first_row, first_row + len(rows)))
        storage.write_tensors(out / shard_file("weights", shard), weights)
        storage.write_tensors(out / shard_file("rollouts", shard), rollouts)
        table = rows if table is None else pd.concat([table, rows], ignore_index=True)
        storage.write_parquet(out / TABLE, table)
        completed.add(shard)
        manifest["shards"]["completed"] = sorted(completed)
        manifest["table"]["rows"] = len(table)
        storage.write_json(out / MANIFEST, manifest)
        (out / _progress_file(shard)).unlink(missing_ok=True)
    bar.close()
    if (out / "progress").is_dir() and not any((out / "progress").iterdir()):
        (out / "progress").rmdir()
    return out


def _progress_file(shard: int) -> str:
    return f"progress/shard-{shard:05d}.safetensors"


def _train_shard(out: Path, shard: int, runs: pd.DataFrame, kind, config: ZooConfig, device, bar):
    """Train one shard's population; returns its table rows, weights and rollouts."""
    architecture = kind.architecture(config)
    task = kind.shard_task(runs, config, device)
    trainer = task.make_trainer(architecture, runs, config, device)
    records: dict[int, dict[str, torch.Tensor]] = {}
    progress_path = out / _progress_file(shard)
    if progress_path.exists():
        step = _load_progress(progress_path, trainer, records)
        bar.update(len(runs) * step)

    def save_progress():
        tensors = dict(trainer.state_tensors())
        tensors["last_loss"] = trainer.last_loss
        for step, record in records.items():
            tensors.update({f"checkpoint.{step}.{name}": t for name, t in record.items()})
        storage.write_tensors(progress_path, tensors, {
            "step": str(trainer.step), "recorded": json.dumps(sorted(records))})

    def on_checkpoint(step, weights):
        metrics, rollouts = task.evaluate(architecture, weights, step)
        metrics.setdefault("train_loss", trainer.last_loss)  # the last training batch's loss
        # copies: the trainer updates its parameters in place after this step
        record = {f"weights.{n}": t.to("cpu", copy=True) for n, t in weights.items()}
        record.update({f"metric.{n}": t.to("cpu", torch.float32, copy=True) for n, t in metrics.items()})
        record.update({f"rollout.{n}": t.to("cpu", copy=True) for n, t in rollouts.items()})
        records[step] = record
        save_progress()

    def on_step(step):
        bar.update(len(runs))
        if step % config.save_every == 0 and step not in config.checkpoints:
            save_progress()

    trainer.run([c for c in config.checkpoints if c not in records], on_checkpoint, on_step)
    return _assemble(runs, records, kind, config)


def _load_progress(path: Path, trainer: PopulationTrainer, records: dict) -> int:
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    step = int(metadata["step"])
    trainer.load_state_tensors(tensors, step)
    trainer.last_loss = tensors["last_loss"]
    for recorded in json.loads(metadata["recorded"]):
        prefix = f"checkpoint.{recorded}."
        records[recorded] = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return step


def _assemble(runs: pd.DataFrame, records: dict, kind, config: ZooConfig):
    """Rows ordered run-major then by step; tensors get a leading axis in that row order."""
    steps = sorted(records)
    K, C = len(runs), len(steps)

    def stack(name):  # (C, K, ...) -> (K * C, ...)
        stacked = torch.stack([records[s][name] for s in steps], dim=1)
        return stacked.reshape(K * C, *stacked.shape[2:])

    names = records[steps[0]].keys()
    weights = {n[len("weights."):]: stack(n) for n in names if n.startswith("weights.")}
    rollouts = {n[len("rollout."):]: kind.store_rollout(n[len("rollout."):], stack(n))
                for n in names if n.startswith("rollout.")}
    rows = runs.loc[np.repeat(np.arange(K), C)].reset_index(drop=True)
    rows.insert(1, "step", np.tile(np.array(steps, dtype=np.int64), K))
    rows.insert(rows.columns.get_loc("shard") + 1, "shard_row", np.arange(K * C))
    for n in sorted(names):  # sorted: a resumed build reads records back in sorted key order
        if n.startswith("metric."):
            rows[n[len("metric."):]] = stack(n).numpy().astype(np.float64)
    return rows, weights, rollouts
