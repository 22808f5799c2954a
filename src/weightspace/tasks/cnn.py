"""A CNN zoo we can build here: the Small CNN Zoo's networks on scikit-learn's bundled 8x8 digits.

Unterthiner et al.'s Small CNN Zoo ("Predicting Neural Network Accuracy from Weights", the
benchmark NFN, NFT and the neural-graph papers report Kendall's tau on) trains 3 conv layers of 16
channels (3x3, stride 2), global average pooling and a dense layer with random hyperparameters
and asks how well a network's test accuracy can be read from its weights. This family trains the
same networks (:func:`~weightspace.networks.cnn.small_cnn`, 4,970 parameters on one input channel)
on the 1,797 bundled 8x8 digits (80/20 train/test split, the same as the ``digits`` family's), each
with its own draw of

* learning rate and weight decay (log-uniform; Adam with decoupled weight decay, constant rate),
* initialisation scale (log-uniform: the conv and dense weights are normal with that standard
  deviation, the biases zero),
* dropout (uniform; inverted dropout on the pooled features before the dense layer),
* activation (ReLU or tanh, uniformly among ``activations``),
* train fraction (uniform: the network trains on the first share of its own permutation of the
  training images).

A population trains as one computation: the networks' images side by side in the channel axis
and one grouped convolution per layer (:func:`~weightspace.networks.cnn.population_forward`).
Every draw comes from :mod:`weightspace.counter_rng` keyed to the network's seed, so a network
does not depend on the others in its population. The zoo stores no rollouts (emulation does not
apply); its targets are the test accuracy (the benchmark's), the test loss and the
generalization gap, each a regression with MSE, R^2 and Kendall's tau.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .. import counter_rng
from ..errors import WeightspaceError
from ..networks.cnn import ACTIVATIONS, FACTORIES, population_forward, small_cnn
from ..networks.weights import Population, WeightSpec
from ..training import PopulationTrainer
from .base import ShardTask, Task, TaskConfig
from .digits import load_sklearn_digits

NUM_CLASSES = 10
INPUT_SHAPE = (1, 8, 8)
VALIDATION_FRACTION = 0.15  # of the runs, by a draw keyed to the zoo seed
TEST_FRACTION = 0.15  # held out as the predictors' test set (split "ood", as imported zoos have it)
CONSTANT = ((0.0, 1.0), (1.0, 1.0))  # the Small CNN Zoo trains at a constant learning rate


def _range(name: str, values, positive: bool) -> list[str]:
    low, high = values
    problems = [] if low <= high else [f"{name} must be [low, high] with low <= high (got {list(values)})"]
    if positive and low <= 0:
        problems.append(f"{name} must be positive (got {list(values)})")
    return problems


@dataclass(frozen=True)
class CNNConfig(TaskConfig):
    """A zoo of small CNNs on the bundled 8x8 digits with random hyperparameters."""

    models: int = field(default=256, metadata={"help": "Number of training runs (networks)."})
    steps: int = field(default=800, metadata={"help": "Training steps per run."})
    checkpoints: tuple[int, ...] | None = field(
        default=None,
        metadata={"help": "Steps to save (0 = the initialisation); default: 0, 1/8, 1/4, 1/2 and all of --steps."},
    )
    population: int = field(default=64, metadata={"help": "Networks trained together in one batched computation."})
    batch_size: int = field(default=32, metadata={"help": "Training images per network and step."})
    channels: int = field(default=16, metadata={"help": "Channels of each of the 3 conv layers (the zoo's 16)."})
    learning_rate: tuple[float, float] = field(
        default=(5e-4, 5e-2), metadata={"help": "Adam learning rate, log-uniform in [low, high]."}
    )
    weight_decay: tuple[float, float] = field(
        default=(1e-8, 1e-2), metadata={"help": "Decoupled weight decay, log-uniform in [low, high]."}
    )
    init_scale: tuple[float, float] = field(
        default=(1e-3, 0.5), metadata={"help": "Standard deviation of the initial weights, log-uniform in [low, high]."}
    )
    dropout: tuple[float, float] = field(
        default=(0.0, 0.7), metadata={"help": "Dropout rate on the pooled features, uniform in [low, high]."}
    )
    train_fraction: tuple[float, float] = field(
        default=(0.1, 1.0), metadata={"help": "Share of the training images a network sees, uniform in [low, high]."}
    )
    activations: tuple[str, ...] = field(
        default=ACTIVATIONS, metadata={"help": "Activations drawn from, uniformly (relu, tanh)."}
    )

    def __post_init__(self):
        if self.checkpoints is None:
            object.__setattr__(
                self, "checkpoints", tuple(sorted({0, self.steps // 8, self.steps // 4, self.steps // 2, self.steps}))
            )
        super().__post_init__()

    def problems(self) -> list[str]:
        problems = [
            f"{name} must be >= 1 (got {getattr(self, name)})"
            for name in ("batch_size", "channels")
            if getattr(self, name) < 1
        ]
        for name in ("learning_rate", "weight_decay", "init_scale"):
            problems += _range(name, getattr(self, name), positive=True)
        for name in ("dropout", "train_fraction"):
            problems += _range(name, getattr(self, name), positive=False)
        if not (0 <= self.dropout[0] and self.dropout[1] < 1):
            problems.append(f"dropout must lie in [0, 1) (got {list(self.dropout)})")
        if not (0 < self.train_fraction[0] and self.train_fraction[1] <= 1):
            problems.append(f"train_fraction must lie in (0, 1] (got {list(self.train_fraction)})")
        unknown = [a for a in self.activations if a not in ACTIVATIONS]
        if unknown or not self.activations:
            problems.append(f"activations must be some of {list(ACTIVATIONS)} (got {list(self.activations)})")
        return problems


def _log_uniform(u: np.ndarray, bounds) -> np.ndarray:
    low, high = (math.log(b) for b in bounds)
    return np.exp(low + u * (high - low))


def _uniform(u: np.ndarray, bounds) -> np.ndarray:
    return bounds[0] + u * (bounds[1] - bounds[0])


class CNNShard:
    """One population's data: the images once on the device, each network's own training subset
    (the first ``train_fraction`` of its permutation of the training images)."""

    def __init__(self, runs: pd.DataFrame, config: CNNConfig, device):
        data = load_sklearn_digits()
        self.device = torch.device(device)
        self.keys = runs["seed"].to_numpy()
        self.train_images = data.train_images[:, None].to(device)  # (N, 1, 8, 8)
        self.train_labels = data.train_labels.to(device)
        self.test_images = data.val_images[:, None].to(device)
        self.test_labels = data.val_labels.to(device)
        n = len(self.train_labels)
        order = counter_rng.uniform(self.keys, counter_rng.stream_id("cnn", "subset"), (n,)).argsort(1)
        self.permutation = order.to(device)  # (K, N)
        self.subset_size = np.maximum(1, np.round(runs["train_fraction"].to_numpy() * n)).astype(np.int64)
        in_subset = torch.arange(n)[None] < torch.as_tensor(self.subset_size)[:, None]
        self.train_mask = torch.zeros(len(runs), n, dtype=torch.bool).scatter(1, order, in_subset).to(device)
        self.tanh = torch.as_tensor(runs["activation"].to_numpy() == "tanh", device=device)
        self.dropout = torch.tensor(runs["dropout"].to_numpy(), dtype=torch.float32, device=device)
        self.batch_size = config.batch_size
        self.channels = config.channels

    def batch(self, step: int):
        """Images (K, B, 1, 8, 8), labels (K, B) and dropout uniforms (K, B, C) of step ``step``."""
        position = counter_rng.integers(
            self.keys, counter_rng.stream_id("cnn", "batch", step), 0, self.subset_size, (self.batch_size,)
        ).to(self.device)
        index = self.permutation.gather(1, position)
        keep = counter_rng.uniform(
            self.keys, counter_rng.stream_id("cnn", "dropout", step), (self.batch_size, self.channels), self.device
        )
        return self.train_images[index], self.train_labels[index], keep

    def logits(self, weights: Population, images: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        """Every network's logits on the same ``images`` (N, 1, 8, 8): (K, N, classes)."""
        out = []
        for start in range(0, len(images), chunk):
            x = images[start : start + chunk]
            out.append(population_forward(weights, x[None].expand(weights.size, *x.shape), self.tanh))
        return torch.cat(out, 1)

    @torch.no_grad()
    def evaluate(self, architecture, weights: Population, step: int):
        test = self.logits(weights, self.test_images)
        train = self.logits(weights, self.train_images)

        def loss_and_accuracy(logits, labels, mask=None):
            losses = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), labels.expand(len(logits), -1), reduction="none"
            )
            correct = (logits.argmax(-1) == labels).float()
            if mask is None:
                return losses.mean(1), correct.mean(1)
            mask = mask.float()
            return (losses * mask).sum(1) / mask.sum(1), (correct * mask).sum(1) / mask.sum(1)

        test_loss, test_accuracy = loss_and_accuracy(test, self.test_labels)
        train_loss, train_accuracy = loss_and_accuracy(train, self.train_labels, self.train_mask)
        metrics = {
            "test_accuracy": test_accuracy,
            "test_loss": test_loss,
            "train_accuracy": train_accuracy,
            "train_loss": train_loss,
            "generalization_gap": test_loss - train_loss,
        }
        return metrics, {}


class CNNPopulationTrainer(PopulationTrainer):
    """Adam (decoupled weight decay, constant rate) on each network's cross-entropy, with its own
    activation and dropout (:class:`CNNShard`)."""

    def __init__(self, architecture, weights, shard: CNNShard, config: CNNConfig, runs: pd.DataFrame):
        super().__init__(
            architecture,
            weights,
            shard.batch,
            config.steps,
            lr=runs["learning_rate"].to_numpy(),
            weight_decay=runs["weight_decay"].to_numpy(),
            schedule=CONSTANT,
        )
        self.shard = shard

    def train_step(self) -> torch.Tensor:
        images, labels, keep = self.batch_fn(self.step)
        population = Population(self.spec, self.params)
        logits = population_forward(population, images, self.shard.tanh, self.shard.dropout, keep)
        return self._update(torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(1))


def _normal(keys, name: str, shape) -> torch.Tensor:
    """Standard normal draws keyed to each network's seed (Box-Muller of two counter streams)."""
    u1 = counter_rng.uniform(keys, counter_rng.stream_id("cnn", "init", name, 1), shape)
    u2 = counter_rng.uniform(keys, counter_rng.stream_id("cnn", "init", name, 2), shape)
    return torch.sqrt(-2 * torch.log1p(-u1)) * torch.cos(2 * math.pi * u2)


class SmallCNNDigits(Task):
    """Small CNNs with random hyperparameters on the bundled 8x8 digits (the Small CNN Zoo's protocol)."""

    name = "cnn"
    summary = "small CNNs (the Small CNN Zoo's) with random hyperparameters on the bundled 8x8 digits"
    config_class = CNNConfig
    plot_columns = ("learning_rate", "test_accuracy")
    emulation = False  # no rollouts: the encoders train end to end on the targets

    def architecture(self, config):
        from ..networks.module_architecture import ModuleArchitecture

        spec = WeightSpec.from_module(small_cnn((INPUT_SHAPE[0], config.channels, config.channels, config.channels)))
        # a zoo of one activation can be run (module-probing); one of both cannot, as one module
        if len(set(config.activations)) == 1:
            return ModuleArchitecture.recording(spec, FACTORIES[config.activations[0]], INPUT_SHAPE)
        return ModuleArchitecture.recording(spec)

    def plan(self, config) -> pd.DataFrame:
        n = config.models
        key = [config.seed]

        def draw(name):
            return counter_rng.uniform(key, counter_rng.stream_id("cnn", name), (n,))[0].double().numpy()

        activation = np.asarray(config.activations)[
            np.minimum((draw("activation") * len(config.activations)).astype(int), len(config.activations) - 1)
        ]
        split_draw = draw("split")
        split = np.where(
            split_draw < TEST_FRACTION,
            "ood",
            np.where(split_draw < TEST_FRACTION + VALIDATION_FRACTION, "val", "train"),
        )
        return pd.DataFrame(
            {
                "run_id": np.arange(n),
                "split": split,
                "seed": counter_rng.derive_seeds(config.seed, n),
                "learning_rate": _log_uniform(draw("learning_rate"), config.learning_rate),
                "weight_decay": _log_uniform(draw("weight_decay"), config.weight_decay),
                "init_scale": _log_uniform(draw("init_scale"), config.init_scale),
                "dropout": _uniform(draw("dropout"), config.dropout),
                "train_fraction": _uniform(draw("train_fraction"), config.train_fraction),
                "activation": activation,
            }
        )

    def initial_weights(self, architecture, runs: pd.DataFrame, device) -> Population:
        keys = runs["seed"].to_numpy()
        scale = torch.tensor(runs["init_scale"].to_numpy(), dtype=torch.float32)
        tensors = {}
        for tensor in architecture.spec.tensors:
            if tensor.name.endswith(".bias"):
                tensors[tensor.name] = torch.zeros(len(keys), *tensor.shape)
            else:
                draws = _normal(keys, tensor.name, tensor.shape)
                tensors[tensor.name] = draws * scale.view(-1, *[1] * len(tensor.shape))
        return Population(architecture.spec, {n: t.to(device) for n, t in tensors.items()})

    def shard_task(self, runs, config, device) -> ShardTask:
        shard = CNNShard(runs, config, device)

        def trainer(architecture, runs, config, device):
            return CNNPopulationTrainer(
                architecture, self.initial_weights(architecture, runs, device), shard, config, runs
            )

        return ShardTask(batch=None, evaluate=shard.evaluate, trainer=trainer)

    def describe(self, config) -> dict:
        return {
            "task": {
                "family": "the Small CNN Zoo's networks trained on scikit-learn's bundled 8x8 digits",
                "data": "sklearn-digits: 1,438 training and 359 test images (the digits family's fixed 80/20 split)",
                "network": f"3 conv layers of {config.channels} channels (3x3, stride 2, padding 1), global average "
                "pooling, a dense layer to 10 classes",
                "hyperparameters": {
                    "learning_rate": f"log-uniform in {list(config.learning_rate)} (Adam, constant)",
                    "weight_decay": f"log-uniform in {list(config.weight_decay)} (decoupled)",
                    "init_scale": f"log-uniform in {list(config.init_scale)} (weights ~ N(0, scale^2), biases 0)",
                    "dropout": f"uniform in {list(config.dropout)} (on the pooled features)",
                    "train_fraction": f"uniform in {list(config.train_fraction)} (of the training images)",
                    "activation": f"uniform among {list(config.activations)}",
                },
                "metrics": "test accuracy and loss on the 359 test images; train accuracy and loss on the "
                "network's own training images; generalization_gap = test_loss - train_loss",
            },
            "splits": {
                "rule": f"by run: {TEST_FRACTION:.0%} held out as the predictors' test set ('ood'), "
                f"{VALIDATION_FRACTION:.0%} val (a draw keyed to the zoo seed), others train"
            },
            "rollouts": {"count": 0, "tensors": {}},
        }

    def notices(self, config) -> list[str]:
        return ["cnn: scikit-learn's bundled 8x8 digits (1,797 images)"]

    def task_io(self, zoo):
        raise WeightspaceError(
            f"{zoo.path} holds CNNs, not sequence models: the statistics, flattened and transformer encoders "
            "read them, and module-probing a zoo of one activation"
        )

    def targets(self, zoo) -> list:
        """Test accuracy (the Small CNN Zoo benchmark's target), test loss and generalization gap."""
        from ..downstream.targets import Regression

        return [Regression(name, (name,)) for name in ("test_accuracy", "test_loss", "generalization_gap")]
