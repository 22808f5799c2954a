"""The tiled sequential digits task family (paper 000, section 5.2): classify a rotated digit shown tile by tile.

Each network gets one rotation angle; all images are rotated once per network (batched, on the
device), cut into tiles in raster order and framed by a BOS and an EOS input. The LSTM predicts
the digit after every input; the loss is the mean cross-entropy over the sequence and accuracy is
read at the last (EOS) step.

Data: the standard MNIST IDX files from a directory the user gives (nothing is downloaded), or by
default scikit-learn's bundled 8x8 digits (1,797 images).
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .. import counter_rng
from ..errors import WeightspaceError
from .base import LSTMTaskConfig, ShardTask, Task

NUM_CLASSES = 10
#: BOS and EOS are whole tiles of a constant outside the pixel range [0, 1], so the 16 inputs of the
#: paper's network (4x4 tiles) carry them without extra input units.
BOS_VALUE, EOS_VALUE = -1.0, 2.0
OOD_ANGLE = 312.0  # angles in [312, 360) are out of distribution
VALIDATION_FRACTION = 0.15  # of the in-distribution runs
SKLEARN_VALIDATION_FRACTION = 0.2  # of the 1,797 bundled images
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "val_images": "t10k-images-idx3-ubyte",
    "val_labels": "t10k-labels-idx1-ubyte",
}
_IDX_TYPES = {0x08: np.uint8}


@dataclass(frozen=True)
class DigitData:
    """Images in [0, 1] as (N, S, S) float32 tensors and integer labels, split into train/val."""

    source: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor

    @property
    def image_size(self) -> int:
        return self.train_images.shape[-1]


# --- loading --------------------------------------------------------------------------------------
def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzipped or not) with checks that name what is wrong."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as error:
        raise WeightspaceError(f"{path}: cannot read ({error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise WeightspaceError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = data[2], data[3]
    if dtype not in _IDX_TYPES:
        raise WeightspaceError(f"{path}: unsupported IDX element type 0x{dtype:02x} (expected unsigned bytes)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise WeightspaceError(f"{path} is truncated: its header is incomplete")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)
    if len(data) - header < expected:
        raise WeightspaceError(
            f"{path} is truncated: expected {expected} bytes of data for shape {shape}, found {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(shape)


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise WeightspaceError(f"{directory}: MNIST file {name} (or {name}.gz) is missing")


def load_mnist(directory) -> DigitData:
    """MNIST from its four IDX files: the 60k training images train, the 10k test images validate."""
    directory = Path(directory)
    if not directory.is_dir():
        raise WeightspaceError(f"--mnist-dir {directory} is not a directory")
    arrays = {key: read_idx(_find(directory, name)) for key, name in MNIST_FILES.items()}
    for split in ("train", "val"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1] != images.shape[2]:
            raise WeightspaceError(f"{directory}: {split} images must be N x S x S, got {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise WeightspaceError(f"{directory}: {len(images)} {split} images but labels of shape {labels.shape}")
        if labels.max(initial=0) >= NUM_CLASSES:
            raise WeightspaceError(f"{directory}: {split} labels must be digits 0-9")
    return DigitData(
        source=f"mnist:{directory.resolve()}",
        train_images=torch.from_numpy(arrays["train_images"].astype(np.float32) / 255.0),
        train_labels=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        val_images=torch.from_numpy(arrays["val_images"].astype(np.float32) / 255.0),
        val_labels=torch.from_numpy(arrays["val_labels"].astype(np.int64)),
    )


def load_sklearn_digits() -> DigitData:
    """scikit-learn's bundled 8x8 digits; a fixed 80/20 split of the 1,797 images."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(images)))
    n_val = round(SKLEARN_VALIDATION_FRACTION * len(images))
    val, train = order[:n_val], order[n_val:]
    return DigitData("sklearn-digits", images[train], labels[train], images[val], labels[val])


def load_digits(mnist_dir=None) -> DigitData:
    return load_mnist(mnist_dir) if mnist_dir else load_sklearn_digits()


# --- rotation and tiling ---------------------------------------------------------------------------
def rotate(images: torch.Tensor, angles_degrees: torch.Tensor) -> torch.Tensor:
    """Every image rotated by every angle (counter-clockwise, about the centre, zeros outside):
    images (N, S, S), angles (K,) -> (K, N, S, S). One batched ``grid_sample`` per call."""
    K = len(angles_degrees)
    N, S, _ = images.shape
    theta = torch.deg2rad(angles_degrees.to(images.device, torch.float32))
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    # maps output coordinates to input coordinates: rotation by -angle
    affine = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)  # (K, 2, 3)
    grid = F.affine_grid(affine, (K, 1, S, S), align_corners=False)  # (K, S, S, 2)
    source = images.unsqueeze(0).expand(K, N, S, S)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def to_tiles(images: torch.Tensor, tile: int) -> torch.Tensor:
    """(..., S, S) -> (..., (S / tile)^2, tile^2): tiles in raster order, pixels row-major inside."""
    S = images.shape[-1]
    if S % tile:
        raise WeightspaceError(f"tile size {tile} does not divide the image size {S}")
    n = S // tile
    x = images.reshape(*images.shape[:-2], n, tile, n, tile)
    x = x.movedim(-3, -2)  # (..., n_rows, n_cols, tile, tile)
    return x.reshape(*images.shape[:-2], n * n, tile * tile)


def from_tiles(tiles: torch.Tensor, tile: int) -> torch.Tensor:
    """Inverse of :func:`to_tiles`."""
    n = math.isqrt(tiles.shape[-2])
    x = tiles.reshape(*tiles.shape[:-2], n, n, tile, tile).movedim(-2, -3)
    return x.reshape(*tiles.shape[:-2], n * tile, n * tile)


def frame(tiles: torch.Tensor) -> torch.Tensor:
    """Add the BOS and EOS inputs: (..., n, P) -> (..., n + 2, P)."""
    shape = (*tiles.shape[:-2], 1, tiles.shape[-1])
    bos = torch.full(shape, BOS_VALUE, dtype=tiles.dtype, device=tiles.device)
    eos = torch.full(shape, EOS_VALUE, dtype=tiles.dtype, device=tiles.device)
    return torch.cat([bos, tiles, eos], dim=-2)


def sequences(images: torch.Tensor, angles: torch.Tensor, tile: int) -> torch.Tensor:
    """Input sequences of every image for every network: (K, N, n_tiles + 2, tile^2)."""
    return frame(to_tiles(rotate(images, angles), tile))


# --- training and evaluation ------------------------------------------------------------------------
class RotatedDigitsShard:
    """The data of one population: each network's rotated copy of the train and validation sets,
    made once per population and kept on the device in float16 (memory: K x images x inputs)."""

    def __init__(self, data: DigitData, angles, keys, tile: int, device, train_eval_images: int = 1000):
        self.keys = np.asarray(keys)
        self.angles = torch.as_tensor(np.asarray(angles, dtype=np.float32))
        self.tile = tile
        self.device = torch.device(device)
        # float16 halves the memory of K rotated copies; pixels need far less precision than that
        self.train_inputs = sequences(data.train_images.to(device), self.angles, tile).half()
        self.val_inputs = sequences(data.val_images.to(device), self.angles, tile).half()
        self.train_labels = data.train_labels.to(device)
        self.val_labels = data.val_labels.to(device)
        n_eval = min(train_eval_images, len(data.train_labels))
        self.train_eval_index = torch.arange(n_eval, device=device)

    @property
    def sequence_length(self) -> int:
        return self.train_inputs.shape[2]

    def batch(self, step: int, batch_size: int):
        """Inputs (K, B, T, P) and the label repeated at every step (K, B, T)."""
        n = len(self.train_labels)
        index = counter_rng.integers(self.keys, counter_rng.stream_id("batch", step), 0, n, (batch_size,))
        index = index.to(self.device)
        x = torch.gather(self.train_inputs, 1, index[:, :, None, None].expand(-1, -1, *self.train_inputs.shape[2:]))
        y = self.train_labels[index][:, :, None].expand(-1, -1, self.sequence_length)
        return x.float(), y

    @torch.no_grad()
    def _loss_and_accuracy(self, architecture, weights, inputs, labels, chunk: int = 2048):
        losses, correct = [], []
        for start in range(0, inputs.shape[1], chunk):
            x = inputs[:, start : start + chunk].float()
            y = labels[start : start + chunk]
            logits = architecture.forward(weights, x)[0]
            logp = torch.log_softmax(logits, -1)
            target = y[None, :, None, None].expand(logits.shape[0], -1, logits.shape[2], 1)
            losses.append(-logp.gather(-1, target).squeeze(-1).mean(-1))  # (K, n)
            correct.append(logits[:, :, -1].argmax(-1) == y[None])
        return torch.cat(losses, 1).mean(1), torch.cat(correct, 1).float().mean(1)

    def evaluate(self, architecture, weights, rollouts: int):
        """Validation accuracy (last step) and loss, train loss on a fixed subset, rollouts."""
        val_loss, accuracy = self._loss_and_accuracy(architecture, weights, self.val_inputs, self.val_labels)
        train_loss, _ = self._loss_and_accuracy(
            architecture, weights, self.train_inputs[:, self.train_eval_index], self.train_labels[self.train_eval_index]
        )
        inputs = self.val_inputs[:, :rollouts].float()
        with torch.no_grad():
            logprobs = torch.log_softmax(architecture.forward(weights, inputs)[0], -1)
        metrics = {
            "accuracy": accuracy,
            "val_loss": val_loss,
            "train_loss": train_loss,
            "generalization_gap": val_loss - train_loss,
        }
        return metrics, {"inputs": inputs, "logprobs": logprobs}


# --- the task family ------------------------------------------------------------------------------
@lru_cache(maxsize=2)
def _cached_data(data_dir):
    return load_digits(data_dir)


@dataclass(frozen=True)
class DigitsConfig(LSTMTaskConfig):
    """A rotated-digits zoo; without ``data_dir`` the built-in 8x8 digits stand in for MNIST."""

    population: int = field(
        default=32, metadata={"help": "Networks trained together (each holds its own rotated copy of the images)."}
    )
    samples: int = field(default=1000, metadata={"help": "Training images scored for train_loss at each checkpoint."})
    rollouts: int = field(default=100, metadata={"help": "Validation images stored as rollouts per checkpoint."})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "Directory with the MNIST IDX files (train-images-idx3-ubyte[.gz], ...); "
            "default: scikit-learn's bundled 8x8 digits.",
            "flag": "--mnist-dir",
        },
    )
    tile_size: int | None = field(
        default=None, metadata={"help": "Tile side in pixels; default: 4 for MNIST, 2 for the 8x8 digits."}
    )

    def __post_init__(self):
        if self.data_dir is not None:  # one spelling of the path, so a resume from elsewhere matches
            object.__setattr__(self, "data_dir", str(Path(self.data_dir).expanduser().resolve()))
        super().__post_init__()

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.tile_size is not None and self.tile_size < 1:
            problems.append(f"tile_size must be >= 1 (got {self.tile_size})")
        return problems

    @property
    def tile(self) -> int:
        return self.tile_size or (4 if self.data_dir else 2)


class RotatedDigits(Task):
    """One LSTM per run classifies the digits rotated by the run's own angle, tile by tile."""

    name = "digits"
    summary = "LSTM classifiers of rotated digits shown tile by tile (paper 000)"
    config_class = DigitsConfig
    split_key = "run_id"  # each run is its own task (its angle)
    plot_columns = ("angle", "accuracy")
    legacy_config_keys = {"max_episode_steps": None}

    @staticmethod
    def data(config) -> DigitData:
        return _cached_data(config.data_dir)

    def architecture(self, config):
        from ..networks import LSTM

        return LSTM(config.tile * config.tile, config.hidden_size, config.num_layers, NUM_CLASSES)

    def plan(self, config) -> pd.DataFrame:
        """One row per run: a rotation angle uniform in [0, 360); OOD = [312, 360); of the other
        runs a fixed 15% (by a draw keyed to the zoo seed) is validation."""
        self.data(config)  # fail early on missing or malformed files
        key = [config.seed]
        angles = counter_rng.uniform(key, counter_rng.stream_id("angle"), (config.models,))[0].double().numpy() * 360
        draw = counter_rng.uniform(key, counter_rng.stream_id("split"), (config.models,))[0].numpy()
        split = np.where(angles >= OOD_ANGLE, "ood", np.where(draw < VALIDATION_FRACTION, "val", "train"))
        return pd.DataFrame(
            {
                "run_id": np.arange(config.models),
                "split": split,
                "seed": counter_rng.derive_seeds(config.seed, config.models),
                "learning_rate": np.full(config.models, config.learning_rate),
                "weight_decay": np.full(config.models, config.weight_decay),
                "angle": angles,
            }
        )

    def shard_task(self, runs, config, device) -> ShardTask:
        shard = RotatedDigitsShard(
            self.data(config),
            runs["angle"].to_numpy(),
            runs["seed"].to_numpy(),
            config.tile,
            device,
            train_eval_images=config.samples,
        )
        return ShardTask(
            lambda step: shard.batch(step, config.batch_size),
            lambda architecture, weights, step: shard.evaluate(architecture, weights, config.rollouts),
        )

    def store_rollout(self, name, tensor):
        return tensor.to(torch.float16)

    def oracle_features(self, table) -> np.ndarray:
        """The angle as (cos, sin), so that 359 degrees sits next to 0, and accuracy."""
        angle = np.deg2rad(table["angle"].to_numpy(dtype=np.float64))
        return np.stack([np.cos(angle), np.sin(angle), table["accuracy"].to_numpy(dtype=np.float64)], 1).astype(
            np.float32
        )

    def notices(self, config) -> list[str]:
        if config.data_dir is None:
            return ["digits: no --mnist-dir given, using scikit-learn's bundled 8x8 digits (1,797 images)"]
        return []

    def describe(self, config) -> dict:
        data = self.data(config)
        tile = config.tile
        n_tiles = (data.image_size // tile) ** 2
        length = n_tiles + 2
        return {
            "task": {
                "family": "classify digits rotated by the run's angle, shown as a sequence of tiles",
                "data": data.source,
                "note": None if config.data_dir else "built-in scikit-learn 8x8 digits (no --mnist-dir given)",
                "train_images": len(data.train_labels),
                "val_images": len(data.val_labels),
                "image_size": data.image_size,
                "tile_size": tile,
                "sequence": f"BOS + {n_tiles} tiles in raster order + EOS = {length} inputs of {tile * tile} values",
                "bos_value": BOS_VALUE,
                "eos_value": EOS_VALUE,
                "loss": "mean cross-entropy of the predictions after every input",
                "accuracy": "validation accuracy of the prediction after EOS",
                "rotation": "counter-clockwise about the image centre, bilinear, zeros outside",
            },
            "splits": {
                "rule": f"by run angle: ood = [{OOD_ANGLE:g}, 360); of the rest {VALIDATION_FRACTION:.0%} "
                "val (fixed draw keyed to the zoo seed), others train"
            },
            "rollouts": {
                "count": config.rollouts,
                "tensors": {
                    "inputs": {
                        "shape": [config.rollouts, length, tile * tile],
                        "stored_dtype": "float16",
                        "meaning": "the first validation images, rotated by the run's angle, framed by BOS/EOS",
                    },
                    "logprobs": {
                        "shape": [config.rollouts, length, NUM_CLASSES],
                        "stored_dtype": "float16",
                        "meaning": "logprobs[r, t] = the network's log-distribution over digits after input t",
                    },
                },
            },
        }

    # ---- reading -------------------------------------------------------------------------
    def task_io(self, zoo):
        from ..encoders.base import TaskIO

        config = zoo.spec.config
        length = zoo.manifest["rollouts"]["tensors"]["inputs"]["shape"][1]
        return TaskIO("continuous", config["input_size"], "categorical", config["output_size"], probe_length=length)

    def emulation_data(self, zoo, rollouts):
        """The subject read the stored ``inputs`` and produced ``logprobs`` after each."""
        return rollouts["inputs"], rollouts["logprobs"]

    def emulated_performance(self, run, zoo, indices, z, samples, seed):
        """Accuracy on the stored validation images of the emulator's prediction after EOS."""
        labels = self.data(zoo.config).val_labels
        rollouts = zoo.rollout_batch(indices)
        labels = labels[: rollouts["inputs"].shape[1]]
        emulated_logp = run.emulator(z, rollouts["inputs"])
        emulated = (emulated_logp[:, :, -1].argmax(-1) == labels).float().mean(1).numpy()
        original = (rollouts["logprobs"][:, :, -1].argmax(-1) == labels).float().mean(1).numpy()
        return original, emulated

    def targets(self, zoo) -> list:
        """Rotation angle, accuracy and generalization gap (MSE) and the training step (classes)."""
        from ..downstream.targets import Classification, Regression

        steps = tuple(sorted(int(s) for s in zoo.table["step"].unique()))
        return [
            Regression("angle", ("angle",)),
            Regression("accuracy", ("accuracy",)),
            Regression("generalization_gap", ("generalization_gap",)),
            Classification("step", ("step",), steps, chance={"accuracy": 1 / max(1, len(steps))}),
        ]
