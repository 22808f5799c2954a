"""Property predictors: an MLP on frozen embeddings, or a fresh encoder trained end to end with
the MLP (the supervised baseline). One training loop with early stopping serves both."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..encoders.base import mlp
from ..errors import ConfigError
from ..networks.symmetry import augment
from ..networks.weights import Population
from .targets import Encoded, Target, loss, metrics


@dataclass(frozen=True)
class PredictorConfig:
    """Paper 000 table 4: MLP hidden 128, 2 layers; AdamW with early stopping on validation loss."""

    hidden: int = 128
    layers: int = 2
    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    eval_every: int = 50
    patience: int = 10

    def __post_init__(self):
        # a value that cannot work is refused where the config is read, not mid-run (issue 27):
        # eval_every = 0 divided by zero, steps = 0 or patience = 0 reported an untrained predictor
        problems = [
            f"{name} must be >= 1 (got {getattr(self, name)})"
            for name in ("hidden", "layers", "steps", "batch_size", "eval_every", "patience")
            if getattr(self, name) < 1
        ]
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be > 0 (got {self.learning_rate})")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if problems:
            raise ConfigError("; ".join(problems))


def predictor(input_size: int, target: Target, config: PredictorConfig) -> nn.Sequential:
    return mlp([input_size] + [config.hidden] * config.layers + [target.output_size])


def _fit(
    model: nn.Module,
    forward: Callable,
    labels: torch.Tensor,
    n_train: int,
    validate: Callable,
    target: Target,
    config: PredictorConfig,
    seed: int,
) -> dict:
    """AdamW on random batches of the training rows; keeps the weights with the best validation
    loss and stops after ``patience`` evaluations without improvement."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    best, best_state, since_best, step = float("inf"), copy.deepcopy(model.state_dict()), 0, 0
    while step < config.steps and since_best < config.patience:
        rows = torch.randint(n_train, (min(config.batch_size, n_train),), generator=generator)
        value = loss(target, forward(rows, generator), labels[rows])
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        step += 1
        if step % config.eval_every == 0 or step == config.steps:
            val_loss = validate()
            if val_loss < best:
                best, best_state, since_best = val_loss, copy.deepcopy(model.state_dict()), 0
            else:
                since_best += 1
    model.load_state_dict(best_state)
    return {"steps": step, "best_val_loss": best}


def _standardise(z_train: np.ndarray, z: np.ndarray) -> torch.Tensor:
    mean, std = z_train.mean(0), z_train.std(0) + 1e-6
    return torch.as_tensor((z - mean) / std, dtype=torch.float32)


def evaluate_frozen(z: np.ndarray, table, splits: dict, target: Target, config: PredictorConfig, seed: int) -> dict:
    """Train an MLP on frozen embeddings ``z`` (rows of ``table``); metrics on every split."""
    torch.manual_seed(seed)
    encoded = Encoded(target, table.iloc[splits["train"]])
    inputs = {name: _standardise(z[splits["train"]], z[rows]) for name, rows in splits.items()}
    labels = {name: encoded.labels(table.iloc[rows]) for name, rows in splits.items()}
    model = predictor(z.shape[1], target, config)

    @torch.no_grad()
    def validate():
        return float(loss(target, model(inputs["val"]), labels["val"]))

    info = _fit(
        model,
        lambda rows, _: model(inputs["train"][rows]),
        labels["train"],
        len(splits["train"]),
        validate,
        target,
        config,
        seed,
    )
    with torch.no_grad():
        return {
            "training": info,
            **{name: metrics(target, model(inputs[name]), labels[name]) for name in splits if len(splits[name])},
        }


class _Supervised(nn.Module):
    def __init__(self, encoder, head):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, weights: Population):
        return self.head(self.encoder(weights))


def evaluate_supervised(
    encoder: nn.Module, zoo, splits: dict, target: Target, config: PredictorConfig, seed: int, device="cpu"
) -> dict:
    """The baseline: ``encoder`` (freshly initialised) and the MLP trained end to end on weights."""
    torch.manual_seed(seed)
    table = zoo.table
    encoded = Encoded(target, table.iloc[splits["train"]])
    weights = {name: zoo.weights(rows).to(device) for name, rows in splits.items() if len(rows)}
    labels = {name: encoded.labels(table.iloc[rows]).to(device) for name, rows in splits.items()}
    model = _Supervised(encoder, predictor(encoder.embedding_size, target, config)).to(device)
    augmenting = getattr(encoder, "augment", False)

    def forward(rows, generator):
        batch = weights["train"].select(rows.to(device))
        return model(augment(batch, generator) if augmenting else batch)

    @torch.no_grad()
    def outputs(name):
        chunks = [model(weights[name].select(slice(i, i + 256))) for i in range(0, weights[name].size, 256)]
        return torch.cat(chunks)

    def validate():
        model.eval()
        value = float(loss(target, outputs("val"), labels["val"]))
        model.train()
        return value

    info = _fit(model, forward, labels["train"], len(splits["train"]), validate, target, config, seed)
    model.eval()
    return {"training": info, **{name: metrics(target, outputs(name), labels[name]) for name in weights}}
