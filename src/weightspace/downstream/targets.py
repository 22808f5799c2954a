"""What the downstream predictors predict (paper 000, section 6.2), with losses and metrics.

A task family lists its targets (:meth:`weightspace.tasks.Task.targets`); a target is a
three-hot vector over several categorical columns (binary cross-entropy; exact and
per-column accuracy), a classification (cross-entropy; accuracy) or a regression (MSE).
Regression targets are standardised with the predictor's training rows; their MSE is reported
in those standardised units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "three_hot", "regression" or "classification"
    columns: tuple[str, ...]
    classes: tuple = ()  # class values (classification) or per-column values (three-hot)
    chance: dict = field(default_factory=dict)  # metric -> its value for a predictor that guesses

    @property
    def output_size(self) -> int:
        if self.kind == "three_hot":
            return len(self.columns) * len(self.classes)
        if self.kind == "classification":
            return len(self.classes)
        return 1

    @property
    def main_metric(self) -> str:
        return {"three_hot": "exact_accuracy", "classification": "accuracy", "regression": "mse"}[self.kind]

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "regression"


class Encoded:
    """A target's labels for some table rows as a tensor, with the train rows' scaling."""

    def __init__(self, target: Target, train_table: pd.DataFrame):
        self.target = target
        if target.kind == "regression":
            values = train_table[target.columns[0]].to_numpy(dtype=np.float64)
            self.mean = float(values.mean())
            self.std = float(values.std()) or 1.0

    def labels(self, table: pd.DataFrame) -> torch.Tensor:
        t = self.target
        if t.kind == "three_hot":
            index = np.stack([table[c].map({v: i for i, v in enumerate(t.classes)}).to_numpy() for c in t.columns], 1)
            return torch.tensor(index, dtype=torch.long)
        if t.kind == "classification":
            return torch.tensor(table[t.columns[0]].map({v: i for i, v in enumerate(t.classes)}).to_numpy(copy=True),
                                dtype=torch.long)
        values = (table[t.columns[0]].to_numpy(dtype=np.float64) - self.mean) / self.std
        return torch.tensor(values, dtype=torch.float32)


def loss(target: Target, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Training loss: BCE on the three-hot vector, cross-entropy, or MSE."""
    if target.kind == "three_hot":
        k = len(target.classes)
        three_hot = F.one_hot(labels, k).float().reshape(len(labels), -1)
        return F.binary_cross_entropy_with_logits(outputs, three_hot)
    if target.kind == "classification":
        return F.cross_entropy(outputs, labels)
    return F.mse_loss(outputs[:, 0], labels)


def metrics(target: Target, outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The reported numbers: the loss, plus accuracies for categorical targets."""
    out = {"loss": float(loss(target, outputs, labels))}
    if target.kind == "three_hot":
        k = len(target.classes)
        predicted = outputs.reshape(len(outputs), len(target.columns), k).argmax(-1)
        correct = predicted == labels
        out["exact_accuracy"] = float(correct.all(1).float().mean())
        out["parameter_accuracy"] = float(correct.float().mean())
    elif target.kind == "classification":
        out["accuracy"] = float((outputs.argmax(-1) == labels).float().mean())
    else:
        out["mse"] = out["loss"]
    return out


def perfect_outputs(target: Target, labels: torch.Tensor) -> torch.Tensor:
    """Outputs that encode ``labels`` exactly (large logits), for checking the metrics."""
    if target.kind == "three_hot":
        return (F.one_hot(labels, len(target.classes)).float() * 40 - 20).reshape(len(labels), -1)
    if target.kind == "classification":
        return F.one_hot(labels, len(target.classes)).float() * 40 - 20
    return labels[:, None].clone()
