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
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from .. import config as typed
from ..encoders.base import TaskIO
from ..errors import ConfigError
from ..networks import architecture_from_spec
from ..zoo.reader import Zoo
from .config import PretrainConfig
from .emulator import Emulator, emulation_loss
from .references import REFERENCES
from .run import (
    RunData,
    RunLog,
    batch_for_step,
    best_so_far,
    build_models,
    check_out,
    describe_run,
    load_state,
    oracle_features,
    save_state,
    write_config,
)

#: settings a run saved before they existed had these values (runs of the first version)
_LEGACY_RUN_SETTINGS = {
    "normalize_embedding": False,
    "separate_clipping": False,
    "condition_at_width": False,
    "loss_reduction": "sum",
}


@dataclass
class Run:
    """A loaded pretraining run: encoder and emulator (best weights) and what they were built for."""

    path: Path
    config: PretrainConfig
    task: TaskIO
    zoo_kind: str
    encoder: torch.nn.Module
    emulator: Emulator


def load_run(path, device="cpu", which: str = "best") -> Run:
    """Load a run directory written by :func:`pretrain` (``which``: "best" or "last")."""
    path = Path(path)
    file = path / "config.json"
    if not file.exists():
        raise ConfigError(f"{path} is not a pretraining run: it has no config.json")
    saved = json.loads(file.read_text())
    try:  # a run of another version may hold settings this one does not know (was a TypeError traceback)
        config = typed.from_dict(PretrainConfig, {**_LEGACY_RUN_SETTINGS, **saved["pretrain"]}, "settings")
    except ConfigError as error:
        version = saved.get("created_with", {}).get("weightspace", "an unknown version")
        raise ConfigError(
            f"{path} was written by weightspace {version} with settings this version cannot read "
            f"({error}); pretrain it again with this version"
        ) from None
    task = TaskIO(**saved["task"])
    encoder, emulator = build_models(
        config, architecture_from_spec(saved["architecture"]), task, device, saved.get("oracle_features", 0)
    )
    weights = path / f"{which}.safetensors"
    if not weights.exists():
        raise ConfigError(f"{path} has no {which}.safetensors yet")
    with safe_open(weights, "pt", device=str(device)) as f:
        encoder.load_state_dict({k[8:]: f.get_tensor(k) for k in f.keys() if k.startswith("encoder.")})
        emulator.load_state_dict({k[9:]: f.get_tensor(k) for k in f.keys() if k.startswith("emulator.")})
    return Run(path, config, task, saved["zoo"]["kind"], encoder.eval(), emulator.eval())


def _embed(encoder, subjects) -> torch.Tensor:
    weights, features = subjects
    return encoder(features) if getattr(encoder, "reads_features", False) else encoder(weights)


def _loss(encoder, emulator, task, subjects, inputs, target, reduction: str, criterion="reverse-kl") -> torch.Tensor:
    emulated = emulator(_embed(encoder, subjects), inputs)
    return emulation_loss(emulated, target, task.output_kind, reduction, criterion)


@torch.no_grad()
def _validation_loss(encoder, emulator, task, data: RunData, config: PretrainConfig) -> float:
    encoder.eval()
    emulator.eval()
    losses = [
        _loss(encoder, emulator, task, subjects, inputs, target, config.loss_reduction)
        for subjects, inputs, target in data.validation_batches(config)
    ]
    encoder.train()
    emulator.train()
    return torch.cat(losses).mean().item()


def _references(zoo_path, out: Path, config: PretrainConfig, references, device, progress) -> dict:
    """Reference name -> run directory of the references a run compares itself with (trained here
    first when ``references`` is True)."""
    if references is True and config.encoder not in REFERENCES:
        references = {name: out / "references" / name for name in REFERENCES}
        for name, directory in references.items():
            pretrain(
                zoo_path,
                directory,
                dataclasses.replace(config, encoder=name, encoder_options={}),
                device,
                progress,
                references=False,
            )
    return references if isinstance(references, dict) else {}


def pretrain(
    zoo_path, out, config: PretrainConfig, device="cpu", progress: bool = True, references: bool | dict = True
) -> Path:
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
    run_config = describe_run(zoo, zoo_path, config, task)
    check_out(out, run_config)

    train_features = oracle_features(zoo, "train")
    encoder, emulator = build_models(config, zoo.architecture, task, device, train_features.shape[1], train_features)
    write_config(out, run_config, encoder, emulator, train_features)
    reference_curves = {
        name: best_so_far(directory)
        for name, directory in _references(zoo_path, out, config, references, device, progress).items()
    }
    # loaded after the references ran: they load their own, and two copies need not be held at once
    train, val = RunData(zoo, "train", device, train_features), RunData(zoo, "val", device)

    groups = [list(encoder.parameters()), list(emulator.parameters())]
    parameters = groups[0] + groups[1]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    log = RunLog(out, config, reference_curves)
    log.resume(lambda path: load_state(path, encoder, emulator, optimizer))

    def save(path, with_optimizer, metadata):
        save_state(path, encoder, emulator, optimizer if with_optimizer else None, metadata)

    augmenting = getattr(encoder, "augment", False)
    bar = tqdm(
        total=config.steps,
        initial=log.step,
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
        desc=f"pretrain {config.encoder}",
    )
    while not log.done:
        subjects, inputs, target = batch_for_step(train, config, log.step, augmenting)
        loss = _loss(encoder, emulator, task, subjects, inputs, target, config.loss_reduction, config.criterion)
        loss = loss.mean()
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
            bar.set_postfix(
                train=f"{record['train_loss']:.4f}", val=f"{record['val_loss']:.4f}", best=f"{log.best:.4f}"
            )
    bar.close()
    log.close()
    return out
