"""What the downstream predictors predict (paper 000, section 6.2), with losses and metrics.

A task family lists its targets (:meth:`weightspace.tasks.Task.targets`); a target is a
:class:`ThreeHot` vector over several categorical columns (binary cross-entropy; exact and
per-column accuracy), a :class:`Classification` (cross-entropy; accuracy) or a
:class:`Regression` (MSE); each kind is a class that owns its labels, loss and metrics.
Regression targets are standardised with the predictor's training rows; their MSE is reported
in those standardised units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import scipy.stats
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Target:
    """A property to predict from a network's weights or embedding: one of the kinds below."""

    name: str
    columns: tuple[str, ...]
    classes: tuple = ()  # class values (classification) or per-column values (three-hot)
    chance: dict = field(default_factory=dict)  # metric -> its value for a predictor that guesses

    kind: ClassVar[str]
    main_metric: ClassVar[str]
    higher_is_better: ClassVar[bool] = True

    @property
    def output_size(self) -> int:
        raise NotImplementedError

    def scaling(self, train_table: pd.DataFrame) -> tuple[float, float]:
        """(mean, std) the labels are standardised with; only regression targets scale."""
        return 0.0, 1.0

    def labels(self, table: pd.DataFrame, mean: float, std: float) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, outputs: torch.Tensor, labels: torch.Tensor, loss: float) -> dict[str, float]:
        """The kind's own metrics beside the loss."""
        raise NotImplementedError

    def _class_index(self, column: pd.Series) -> np.ndarray:
        return column.map({v: i for i, v in enumerate(self.classes)}).to_numpy(copy=True)


@dataclass(frozen=True)
class ThreeHot(Target):
    """Several categorical columns over the same values, as one three-hot vector: binary
    cross-entropy; exact and per-column accuracy."""

    kind: ClassVar[str] = "three_hot"
    main_metric: ClassVar[str] = "exact_accuracy"

    @property
    def output_size(self) -> int:
        return len(self.columns) * len(self.classes)

    def labels(self, table, mean, std):
        return torch.tensor(np.stack([self._class_index(table[c]) for c in self.columns], 1), dtype=torch.long)

    def loss(self, outputs, labels):
        three_hot = F.one_hot(labels, len(self.classes)).float().reshape(len(labels), -1)
        return F.binary_cross_entropy_with_logits(outputs, three_hot)

    def scores(self, outputs, labels, loss):
        predicted = outputs.reshape(len(outputs), len(self.columns), len(self.classes)).argmax(-1)
        correct = predicted == labels
        return {
            "exact_accuracy": float(correct.all(1).float().mean()),
            "parameter_accuracy": float(correct.float().mean()),
        }


@dataclass(frozen=True)
class Classification(Target):
    """One categorical column: cross-entropy; accuracy."""

    kind: ClassVar[str] = "classification"
    main_metric: ClassVar[str] = "accuracy"

    @property
    def output_size(self) -> int:
        return len(self.classes)

    def labels(self, table, mean, std):
        return torch.tensor(self._class_index(table[self.columns[0]]), dtype=torch.long)

    def loss(self, outputs, labels):
        return F.cross_entropy(outputs, labels)

    def scores(self, outputs, labels, loss):
        return {"accuracy": float((outputs.argmax(-1) == labels).float().mean())}


@dataclass(frozen=True)
class Regression(Target):
    """One numeric column, standardised with the training rows: MSE in those units."""

    kind: ClassVar[str] = "regression"
    main_metric: ClassVar[str] = "mse"
    higher_is_better: ClassVar[bool] = False

    @property
    def output_size(self) -> int:
        return 1

    def scaling(self, train_table):
        values = train_table[self.columns[0]].to_numpy(dtype=np.float64)
        return float(values.mean()), float(values.std()) or 1.0

    def labels(self, table, mean, std):
        values = (table[self.columns[0]].to_numpy(dtype=np.float64) - mean) / std
        return torch.tensor(values, dtype=torch.float32)

    def loss(self, outputs, labels):
        return F.mse_loss(outputs[:, 0], labels)

    def scores(self, outputs, labels, loss):
        """MSE (in units of the training rows' variance), R^2 on these rows, and Kendall's tau (the
        rank agreement weight-space accuracy prediction reports: NFN, NFT, neural graphs)."""
        predicted, true = outputs[:, 0].detach().double().cpu().numpy(), labels.double().cpu().numpy()
        variance = float(true.var())
        tau = scipy.stats.kendalltau(predicted, true).statistic if len(true) > 1 else float("nan")
        return {
            "mse": loss,
            "r2": 1 - float(((predicted - true) ** 2).mean()) / variance if variance > 0 else float("nan"),
            "kendall_tau": float(tau),
        }


class Encoded:
    """A target's labels for some table rows as a tensor, with the train rows' scaling."""

    def __init__(self, target: Target, train_table: pd.DataFrame):
        self.target = target
        self.mean, self.std = target.scaling(train_table)

    def labels(self, table: pd.DataFrame) -> torch.Tensor:
        return self.target.labels(table, self.mean, self.std)


def loss(target: Target, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Training loss: BCE on the three-hot vector, cross-entropy, or MSE."""
    return target.loss(outputs, labels)


def metrics(target: Target, outputs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The reported numbers: the loss, plus accuracies for categorical targets."""
    value = float(loss(target, outputs, labels))
    return {"loss": value, **target.scores(outputs, labels, value)}
