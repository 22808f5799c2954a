"""A pretraining run's machinery, shared by a run trained alone (:mod:`.pretrain`) and seeds
trained as one computation (:mod:`.seeds`): the encoder and emulator it builds, the data of a
split and the batch of each step, its directory (``config.json``, ``metrics.jsonl``, the best and
last saves) and its bookkeeping for early stopping and resume."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from .. import storage
from ..encoders import build_encoder
from ..encoders.base import TaskIO
from ..errors import ConfigError
from ..networks.symmetry import augment
from ..training.optim import load_optimizer_tensors, optimizer_tensors
from ..versions import weightspace_version
from ..zoo.reader import Zoo
from .config import PretrainConfig
from .emulator import Emulator
from .references import REFERENCES, build_reference


def build_models(
    config: PretrainConfig, architecture, task: TaskIO, device, num_features: int = 0, train_features=None
):
    """The encoder (or reference) and the emulator of a run."""
    if not config.encoder:
        raise ConfigError("PretrainConfig.encoder is not set: name the encoder (or reference) to train")
    torch.manual_seed(config.seed)
    if config.encoder in REFERENCES:
        encoder = build_reference(config.encoder, num_features, config.embedding_size, train_features).to(device)
    else:
        encoder = build_encoder(
            config.encoder, architecture, task, embedding_size=config.embedding_size, **config.encoder_options
        ).to(device)
    emulator = Emulator(
        task,
        config.embedding_size,
        config.emulator_hidden,
        normalize_embedding=config.normalize_embedding,
        condition_at_width=config.condition_at_width,
    ).to(device)
    return encoder, emulator


def oracle_features(zoo: Zoo, split: str) -> np.ndarray:
    """The table features the references read, for the checkpoints of ``split``."""
    return zoo.task.oracle_features(zoo.table.iloc[zoo.indices(split)])


class RunData:
    """A split's weights and compact rollouts, held in memory, batched on demand."""

    def __init__(self, zoo: Zoo, split: str, device, features: np.ndarray | None = None):
        self.zoo = zoo
        self.indices = zoo.indices(split)
        if len(self.indices) == 0:
            raise ConfigError(f"the zoo at {zoo.path} has no {split!r} checkpoints to pretrain with")
        self.weights = zoo.weights(self.indices).to(device)
        self.rollouts = zoo.rollout_batch(self.indices, compact=True)
        # what the references read instead of the weights
        self.features = torch.as_tensor(oracle_features(zoo, split) if features is None else features, device=device)
        self.device = device

    def batch(self, rows: torch.Tensor, rollout_index: torch.Tensor):
        """(weights or features of the rows, emulator inputs, targets)."""
        compact = {n: t[rows][:, rollout_index] for n, t in self.rollouts.items()}
        inputs, target = self.zoo.task.emulation_data(self.zoo, self.zoo.decode_rollouts(compact))
        rows = rows.to(self.device)
        subjects = (self.weights.select(rows), self.features[rows])
        return subjects, inputs.to(self.device), target.to(self.device)

    def validation_batches(self, config):
        """The validation loss's batches, as :meth:`batch` gives them: every network of the split,
        ``config.batch_size`` at a time, each with its first ``config.val_rollouts`` stored rollouts."""
        rollouts = torch.arange(min(config.val_rollouts, next(iter(self.rollouts.values())).shape[1]))
        for start in range(0, len(self.indices), config.batch_size):
            yield self.batch(torch.arange(start, min(start + config.batch_size, len(self.indices))), rollouts)


def save_state(path, encoder, emulator, optimizer, metadata: dict) -> None:
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    tensors.update({f"emulator.{k}": v for k, v in emulator.state_dict().items()})
    groups = []
    if optimizer is not None:
        saved, groups = optimizer_tensors(optimizer)
        tensors.update(saved)
    storage.write_tensors(path, tensors, {k: json.dumps(v) for k, v in {**metadata, "param_groups": groups}.items()})


def load_state(path, encoder, emulator, optimizer) -> dict:
    with safe_open(path, "pt") as f:
        metadata = {k: json.loads(v) for k, v in f.metadata().items()}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    encoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
    emulator.load_state_dict({k[9:]: v for k, v in tensors.items() if k.startswith("emulator.")})
    load_optimizer_tensors(optimizer, tensors, metadata["param_groups"])
    return metadata


def best_so_far(run_dir) -> list[tuple[int, float]]:
    """(step, best validation loss up to that step) of a run's evaluations."""
    best, curve = math.inf, []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        best = min(best, record["val_loss"])
        curve.append((record["step"], best))
    return curve


def _at_step(curve: list[tuple[int, float]], step: int) -> float | None:
    """The reference's best validation loss at ``step`` (its last one if it stopped earlier)."""
    values = [loss for s, loss in curve if s <= step]
    return values[-1] if values else None


def run_summary(run_dir) -> dict:
    """Best validation loss of a run and, where it has them, of its references (the lowest they
    reached within the same step budget): ``{"val_loss", "constant", "oracle", "step"}``."""
    lines = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    best = min(lines, key=lambda record: record["val_loss"])
    summary = {"val_loss": best["val_loss"], "step": best["step"]}
    for name in REFERENCES:
        values = [record[f"{name}_val_loss"] for record in lines if record.get(f"{name}_val_loss") is not None]
        if values:
            summary[name] = min(values)
    return summary


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # TensorBoard is optional
        return None
    return SummaryWriter(str(path / "tensorboard"))


def describe_run(zoo: Zoo, zoo_path, config: PretrainConfig, task: TaskIO) -> dict:
    """What a run's config.json records: its settings, the zoo, the task's I/O, the versions."""
    return {
        "pretrain": config.to_json(),
        "zoo": {"path": str(Path(zoo_path).resolve()), "kind": zoo.kind, "seed": zoo.manifest["seed"]},
        "task": task.to_json(),
        "architecture": zoo.manifest["architecture"],
        "created_with": {"weightspace": weightspace_version(), "torch": torch.__version__},
    }


def check_out(out: Path, run_config: dict) -> None:
    """Refuses an ``out`` that holds anything but this run (which then resumes)."""
    if (out / "config.json").exists():
        stored = json.loads((out / "config.json").read_text())
        if stored["pretrain"] != run_config["pretrain"] or stored["zoo"] != run_config["zoo"]:
            raise ConfigError(
                f"{out} holds a run with other settings; rerun with the same settings to resume, "
                "or choose another --out"
            )
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty, but is not a pretraining run; choose another --out")


def write_config(out: Path, run_config: dict, encoder, emulator, train_features: np.ndarray) -> None:
    run_config["encoder_parameters"] = encoder.num_parameters
    run_config["emulator_parameters"] = sum(p.numel() for p in emulator.parameters())
    run_config["oracle_features"] = int(train_features.shape[1])
    if not (out / "config.json").exists():
        storage.write_json(out / "config.json", run_config)


class RunLog:
    """One run's bookkeeping: its step, early stopping, ``metrics.jsonl``, the best and last saves
    and TensorBoard. A run trained alone and a seed trained among others keep it the same way."""

    def __init__(self, out: Path, config: PretrainConfig, reference_curves: dict):
        self.out, self.config, self.reference_curves = out, config, reference_curves
        self.step, self.best, self.since_best = 0, math.inf, 0
        self.running: list[float] = []
        self.started = time.time()
        self.writer = None

    def resume(self, load_last) -> None:
        """Continue from ``last.safetensors`` (``load_last(path)`` loads it and returns its metadata);
        evaluations written after it are dropped."""
        if (self.out / "last.safetensors").exists():
            state = load_last(self.out / "last.safetensors")
            self.step, self.best, self.since_best = (
                state["step"],
                state["best_val_loss"],
                state["evaluations_since_best"],
            )
        metrics_file = self.out / "metrics.jsonl"
        lines = [
            l
            for l in (metrics_file.read_text().splitlines() if metrics_file.exists() else [])
            if json.loads(l)["step"] <= self.step
        ]
        storage.write_text(metrics_file, "".join(l + "\n" for l in lines))
        self.writer = _tensorboard(self.out)

    @property
    def done(self) -> bool:
        return self.step >= self.config.steps or self.since_best >= self.config.patience

    def evaluation_due(self) -> bool:
        return self.step % self.config.eval_every == 0 or self.step == self.config.steps

    def evaluated(self, val_loss: float, save) -> dict:
        """Record an evaluation; ``save(path, with_optimizer, metadata)`` writes the run's state."""
        record = {
            "step": self.step,
            "train_loss": float(np.mean(self.running)),
            "val_loss": val_loss,
            "seconds": round(time.time() - self.started, 2),
        }
        for name, curve in self.reference_curves.items():
            record[f"{name}_val_loss"] = _at_step(curve, self.step)
        self.running = []
        # the metrics line goes first: a kill before the state save drops it again on resume
        storage.append_line(self.out / "metrics.jsonl", json.dumps(record))
        if val_loss < self.best:
            self.best, self.since_best = val_loss, 0
            save(self.out / "best.safetensors", False, {"step": self.step, "val_loss": val_loss})
        else:
            self.since_best += 1
        save(
            self.out / "last.safetensors",
            True,
            {"step": self.step, "best_val_loss": self.best, "evaluations_since_best": self.since_best},
        )
        if self.writer is not None:
            self.writer.add_scalar("loss/train", record["train_loss"], self.step)
            self.writer.add_scalar("loss/val", val_loss, self.step)
        return record

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def batch_for_step(train: "RunData", config: PretrainConfig, step: int, augmenting: bool):
    """The batch a run with ``config`` draws at ``step``: rows, rollouts and augmentation come from
    a generator seeded by the run's seed and the step, so a resumed run draws the same ones."""
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    n_stored = next(iter(train.rollouts.values())).shape[1]
    rows = torch.randint(len(train.indices), (config.batch_size,), generator=generator)
    rollout_index = torch.randperm(n_stored, generator=generator)[: min(config.rollouts_per_network, n_stored)]
    subjects, inputs, target = train.batch(rows, rollout_index)
    if augmenting:
        subjects = (augment(subjects[0], generator), subjects[1])
    return subjects, inputs, target
