"""Emulation-based self-supervised pretraining of a weight encoder (paper 000, section 6.1).

The encoder maps a subject network's weights to z; the emulator must reproduce the subject's
stored rollouts from z alone. Train split networks train, validation split networks decide
early stopping. A run directory holds::

    config.json          the run's settings, the zoo it was trained on, encoder parameter count
    metrics.jsonl        one JSON line per evaluation (step, train and validation loss, time, and
                         the references' best validation loss up to that step)
    best.safetensors     encoder and emulator weights with the lowest validation loss
    last.safetensors     encoder, emulator and optimizer state of the last save (for resume)
    references/NAME/     the constant floor and the oracle ceiling, runs of their own (when trained here)
    tensorboard/         the same metrics, if TensorBoard is installed

Losses are in the paper's units: the reverse KL is averaged over the output classes (the
authors' code), ``loss_reduction = "sum"`` gives the textbook sum. A killed run resumes from
``last.safetensors`` with the same batches it would have drawn.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from .. import __version__, storage
from ..encoders import build_encoder
from ..encoders.base import TaskIO
from ..errors import ConfigError
from ..networks import architecture_from_spec
from ..networks.symmetry import augment
from ..zoo.reader import Zoo
from .emulator import LOSS_REDUCTIONS, Emulator, emulation_loss
from .references import REFERENCES, build_reference


#: settings a run saved before they existed had these values (runs of the first version)
_LEGACY_RUN_SETTINGS = {"normalize_embedding": False, "separate_clipping": False, "condition_at_width": False,
                        "loss_reduction": "sum"}


@dataclass(frozen=True)
class PretrainConfig:
    """Paper 000 table 3 defaults: AdamW 1e-4, weight decay 0.01, clip 0.1, batch 64, z of 16;
    and the authors' published choices the paper leaves out (z normalised, encoder and emulator
    clipped separately, the emulator conditioned at its own width, the loss a mean over classes)."""

    encoder: str = field(metadata={"help": "Encoder to train (or a reference: constant, oracle)."})
    steps: int = field(default=100_000, metadata={"help": "Maximum training steps (early stopping may end sooner)."})
    batch_size: int = field(default=64, metadata={"help": "Subject networks per step."})
    rollouts_per_network: int = field(default=10, metadata={
        "help": "Stored rollouts emulated per network and training step."})
    val_rollouts: int = field(default=20, metadata={
        "help": "Stored rollouts per validation network (the first ones) in the validation loss."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay."})
    gradient_clip: float = field(default=0.1, metadata={"help": "Gradient-norm clip."})
    separate_clipping: bool = field(default=True, metadata={
        "help": "Clip the encoder's and the emulator's gradients separately (the authors' code); "
                "false: one joint norm."})
    normalize_embedding: bool = field(default=True, metadata={
        "help": "Divide z by its norm before the emulator (the authors' normalize_embedding)."})
    condition_at_width: bool = field(default=True, metadata={
        "help": "Project the input and z to the emulator's width and add them at BOS (the authors' code); "
                "false: add z projected to the subject's input size."})
    loss_reduction: str = field(default="mean", metadata={
        "help": "Reverse KL over the output classes: mean (the authors' and the paper's units) or sum."})
    eval_every: int = field(default=500, metadata={"help": "Steps between validation evaluations."})
    patience: int = field(default=10, metadata={"help": "Evaluations without improvement before stopping."})
    seed: int = field(default=0, metadata={"help": "Seed of initialisation and batches."})
    embedding_size: int = field(default=16, metadata={"help": "Size of z."})
    emulator_hidden: int = field(default=256, metadata={"help": "Hidden size of the 2-layer LSTM emulator."})
    encoder_options: dict = field(default_factory=dict, metadata={
        "help": "Encoder hyperparameters that replace the paper's."})

    def __post_init__(self):
        problems = [f"{name} must be >= 1" for name in ("steps", "batch_size", "rollouts_per_network",
                                                           "val_rollouts", "eval_every", "patience")
                    if getattr(self, name) < 1]
        if self.loss_reduction not in LOSS_REDUCTIONS:
            problems.append(f"loss_reduction must be one of {list(LOSS_REDUCTIONS)} (got {self.loss_reduction!r})")
        if problems:
            raise ConfigError("; ".join(problems))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class Run:
    """A loaded pretraining run: encoder and emulator (best weights) and what they were built for."""

    path: Path
    config: PretrainConfig
    task: TaskIO
    zoo_kind: str
    encoder: torch.nn.Module
    emulator: Emulator


def _models(config: PretrainConfig, architecture, task: TaskIO, device, num_features: int = 0,
            train_features=None):
    """The encoder (or reference) and the emulator of a run."""
    torch.manual_seed(config.seed)
    if config.encoder in REFERENCES:
        encoder = build_reference(config.encoder, num_features, config.embedding_size, train_features).to(device)
    else:
        encoder = build_encoder(config.encoder, architecture, task, embedding_size=config.embedding_size,
                                **config.encoder_options).to(device)
    emulator = Emulator(task, config.embedding_size, config.emulator_hidden,
                        normalize_embedding=config.normalize_embedding,
                        condition_at_width=config.condition_at_width).to(device)
    return encoder, emulator


def load_run(path, device="cpu", which: str = "best") -> Run:
    """Load a run directory written by :func:`pretrain` (``which``: "best" or "last")."""
    path = Path(path)
    file = path / "config.json"
    if not file.exists():
        raise ConfigError(f"{path} is not a pretraining run: it has no config.json")
    saved = json.loads(file.read_text())
    config = PretrainConfig(**{**_LEGACY_RUN_SETTINGS, **saved["pretrain"]})
    task = TaskIO(**saved["task"])
    encoder, emulator = _models(config, architecture_from_spec(saved["architecture"]), task, device,
                                saved.get("oracle_features", 0))
    weights = path / f"{which}.safetensors"
    if not weights.exists():
        raise ConfigError(f"{path} has no {which}.safetensors yet")
    with safe_open(weights, "pt", device=str(device)) as f:
        encoder.load_state_dict({k[8:]: f.get_tensor(k) for k in f.keys() if k.startswith("encoder.")})
        emulator.load_state_dict({k[9:]: f.get_tensor(k) for k in f.keys() if k.startswith("emulator.")})
    return Run(path, config, task, saved["zoo"]["kind"], encoder.eval(), emulator.eval())


def _features(zoo: Zoo, split: str) -> np.ndarray:
    """The table features the references read, for the checkpoints of ``split``."""
    return zoo.task.oracle_features(zoo.table.iloc[zoo.indices(split)])


class _Data:
    """A split's weights and compact rollouts, held in memory, batched on demand."""

    def __init__(self, zoo: Zoo, split: str, device, features: np.ndarray | None = None):
        self.zoo = zoo
        self.indices = zoo.indices(split)
        if len(self.indices) == 0:
            raise ConfigError(f"the zoo at {zoo.path} has no {split!r} checkpoints to pretrain with")
        self.weights = zoo.weights(self.indices).to(device)
        self.rollouts = zoo.rollout_batch(self.indices, compact=True)
        # what the references read instead of the weights
        self.features = torch.as_tensor(_features(zoo, split) if features is None else features, device=device)
        self.device = device

    def batch(self, rows: torch.Tensor, rollout_index: torch.Tensor):
        """(weights or features of the rows, emulator inputs, targets)."""
        compact = {n: t[rows][:, rollout_index] for n, t in self.rollouts.items()}
        inputs, target = self.zoo.task.emulation_data(self.zoo, self.zoo.decode_rollouts(compact))
        rows = rows.to(self.device)
        subjects = (self.weights.select(rows), self.features[rows])
        return subjects, inputs.to(self.device), target.to(self.device)


def _embed(encoder, subjects) -> torch.Tensor:
    weights, features = subjects
    return encoder(features) if getattr(encoder, "reads_features", False) else encoder(weights)


def _loss(encoder, emulator, task, subjects, inputs, target, reduction: str) -> torch.Tensor:
    return emulation_loss(emulator(_embed(encoder, subjects), inputs), target, task.output_kind, reduction)


@torch.no_grad()
def _validation_loss(encoder, emulator, task, data: _Data, config: PretrainConfig) -> float:
    encoder.eval()
    emulator.eval()
    n_rollouts = min(config.val_rollouts, next(iter(data.rollouts.values())).shape[1])
    losses = []
    for start in range(0, len(data.indices), config.batch_size):
        rows = torch.arange(start, min(start + config.batch_size, len(data.indices)))
        subjects, inputs, target = data.batch(rows, torch.arange(n_rollouts))
        losses.append(_loss(encoder, emulator, task, subjects, inputs, target, config.loss_reduction))
    encoder.train()
    emulator.train()
    return torch.cat(losses).mean().item()


def _save_state(path, encoder, emulator, optimizer, metadata: dict) -> None:
    tensors = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    tensors.update({f"emulator.{k}": v for k, v in emulator.state_dict().items()})
    groups = []
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            tensors.update({f"optimizer.{index}.{k}": torch.as_tensor(v) for k, v in values.items()})
        groups = state["param_groups"]
    storage.write_tensors(path, tensors, {k: json.dumps(v) for k, v in {**metadata, "param_groups": groups}.items()})


def _load_state(path, encoder, emulator, optimizer) -> dict:
    with safe_open(path, "pt") as f:
        metadata = {k: json.loads(v) for k, v in f.metadata().items()}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    encoder.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("encoder.")})
    emulator.load_state_dict({k[9:]: v for k, v in tensors.items() if k.startswith("emulator.")})
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": metadata["param_groups"]})
    return metadata


def best_validation_loss(run_dir) -> float:
    """The lowest validation loss a run's metrics.jsonl records."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return min(json.loads(line)["val_loss"] for line in lines)


def _best_so_far(run_dir) -> list[tuple[int, float]]:
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


def _run_config(zoo: Zoo, zoo_path, config: PretrainConfig, task: TaskIO) -> dict:
    return {
        "pretrain": config.to_json(),
        "zoo": {"path": str(Path(zoo_path).resolve()), "kind": zoo.kind, "seed": zoo.manifest["seed"]},
        "task": task.to_json(),
        "architecture": zoo.manifest["architecture"],
        "created_with": {"weightspace": __version__, "torch": torch.__version__},
    }


def _check_out(out: Path, run_config: dict) -> None:
    """Refuses an ``out`` that holds anything but this run (which then resumes)."""
    if (out / "config.json").exists():
        stored = json.loads((out / "config.json").read_text())
        if stored["pretrain"] != run_config["pretrain"] or stored["zoo"] != run_config["zoo"]:
            raise ConfigError(f"{out} holds a run with other settings; rerun with the same settings to resume, "
                              "or choose another --out")
    elif out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty, but is not a pretraining run; choose another --out")


def _write_config(out: Path, run_config: dict, encoder, emulator, train_features: np.ndarray) -> None:
    run_config["encoder_parameters"] = encoder.num_parameters
    run_config["emulator_parameters"] = sum(p.numel() for p in emulator.parameters())
    run_config["oracle_features"] = int(train_features.shape[1])
    if not (out / "config.json").exists():
        storage.write_json(out / "config.json", run_config)


class _RunLog:
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
            self.step, self.best, self.since_best = state["step"], state["best_val_loss"], state["evaluations_since_best"]
        metrics_file = self.out / "metrics.jsonl"
        lines = [l for l in (metrics_file.read_text().splitlines() if metrics_file.exists() else [])
                 if json.loads(l)["step"] <= self.step]
        storage.write_text(metrics_file, "".join(l + "\n" for l in lines))
        self.writer = _tensorboard(self.out)

    @property
    def done(self) -> bool:
        return self.step >= self.config.steps or self.since_best >= self.config.patience

    def evaluation_due(self) -> bool:
        return self.step % self.config.eval_every == 0 or self.step == self.config.steps

    def evaluated(self, val_loss: float, save) -> dict:
        """Record an evaluation; ``save(path, with_optimizer, metadata)`` writes the run's state."""
        record = {"step": self.step, "train_loss": float(np.mean(self.running)), "val_loss": val_loss,
                  "seconds": round(time.time() - self.started, 2)}
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
        save(self.out / "last.safetensors", True,
             {"step": self.step, "best_val_loss": self.best, "evaluations_since_best": self.since_best})
        if self.writer is not None:
            self.writer.add_scalar("loss/train", record["train_loss"], self.step)
            self.writer.add_scalar("loss/val", val_loss, self.step)
        return record

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _batch_for_step(train: "_Data", config: PretrainConfig, step: int, augmenting: bool):
    """The batch a run with ``config`` draws at ``step``: rows, rollouts and augmentation come from
    a generator seeded by the run's seed and the step, so a resumed run draws the same ones."""
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    n_stored = next(iter(train.rollouts.values())).shape[1]
    rows = torch.randint(len(train.indices), (config.batch_size,), generator=generator)
    rollout_index = torch.randperm(n_stored, generator=generator)[:min(config.rollouts_per_network, n_stored)]
    subjects, inputs, target = train.batch(rows, rollout_index)
    if augmenting:
        subjects = (augment(subjects[0], generator), subjects[1])
    return subjects, inputs, target


def _references(zoo_path, out: Path, config: PretrainConfig, references, device, progress) -> dict:
    """Reference name -> run directory of the references a run compares itself with (trained here
    first when ``references`` is True)."""
    if references is True and config.encoder not in REFERENCES:
        references = {name: out / "references" / name for name in REFERENCES}
        for name, directory in references.items():
            pretrain(zoo_path, directory, dataclasses.replace(config, encoder=name, encoder_options={}), device,
                     progress, references=False)
    return references if isinstance(references, dict) else {}


def pretrain(zoo_path, out, config: PretrainConfig, device="cpu", progress: bool = True,
             references: bool | dict = True) -> Path:
    """Pretrain ``config.encoder`` on the zoo at ``zoo_path`` by emulation; write the run to ``out``.

    ``references``: True trains the constant floor and the oracle ceiling first, with the same
    settings, into ``out/references/NAME``; a dict ``{name: run directory}`` uses runs trained
    already (an experiment shares them between encoders); False trains none. Each evaluation line
    of ``metrics.jsonl`` then carries the references' best validation loss up to that step.
    Several seeds of one encoder train faster together: :func:`~weightspace.emulation.seeds.pretrain_seeds`."""
    out = Path(out)
    device = torch.device(device)
    zoo = Zoo(zoo_path)
    task = zoo.task.task_io(zoo)
    run_config = _run_config(zoo, zoo_path, config, task)
    _check_out(out, run_config)

    train_features = _features(zoo, "train")
    encoder, emulator = _models(config, zoo.architecture, task, device, train_features.shape[1], train_features)
    _write_config(out, run_config, encoder, emulator, train_features)
    reference_curves = {name: _best_so_far(directory)
                        for name, directory in _references(zoo_path, out, config, references, device, progress).items()}
    # loaded after the references ran: they load their own, and two copies need not be held at once
    train, val = _Data(zoo, "train", device, train_features), _Data(zoo, "val", device)

    groups = [list(encoder.parameters()), list(emulator.parameters())]
    parameters = groups[0] + groups[1]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    log = _RunLog(out, config, reference_curves)
    log.resume(lambda path: _load_state(path, encoder, emulator, optimizer))

    def save(path, with_optimizer, metadata):
        _save_state(path, encoder, emulator, optimizer if with_optimizer else None, metadata)

    augmenting = getattr(encoder, "augment", False)
    bar = tqdm(total=config.steps, initial=log.step, unit="step", disable=not progress, dynamic_ncols=True,
               desc=f"pretrain {config.encoder}")
    while not log.done:
        subjects, inputs, target = _batch_for_step(train, config, log.step, augmenting)
        loss = _loss(encoder, emulator, task, subjects, inputs, target, config.loss_reduction).mean()
        optimizer.zero_grad()
        loss.backward()
        if config.separate_clipping:  # a large encoder gradient no longer shrinks the emulator's step
            for group in groups:
                torch.nn.utils.clip_grad_norm_(group, config.gradient_clip)
        else:
            torch.nn.utils.clip_grad_norm_(parameters, config.gradient_clip)
        optimizer.step()
        log.step += 1
        log.running.append(loss.item())
        bar.update(1)
        if log.evaluation_due():
            record = log.evaluated(_validation_loss(encoder, emulator, task, val, config), save)
            bar.set_postfix(train=f"{record['train_loss']:.4f}", val=f"{record['val_loss']:.4f}", best=f"{log.best:.4f}")
    bar.close()
    log.close()
    return out
