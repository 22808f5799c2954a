"""Read a zoo: the table, weights as state dicts or populations, rollouts, and a Dataset view."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from ..errors import ConfigError, WeightspaceError, ZooFormatError
from ..networks import Population, architecture_from_spec
from ..networks.weights import WeightSpec
from ..tasks import Task, TaskConfig, get_task
from .format import TABLE, read_manifest, shard_file

SPLITS = ("train", "val", "ood")


def load_zoo(path) -> Zoo:
    return Zoo(path)


class Zoo:
    """A zoo directory. Row ``i`` of :attr:`table` is checkpoint ``i``: ``state_dict(i)``,
    ``rollouts(i)``. Only shards listed as completed in the manifest are visible.

    :attr:`task` is the zoo's task family (found in the registry by the manifest's ``kind``) and
    :attr:`config` the settings it was built with, rebuilt by that family's config class."""

    def __init__(self, path):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.kind: str = self.manifest["kind"]
        try:
            self.task: Task = get_task(self.kind)
            self.config: TaskConfig = self.task.config_from_manifest(self.manifest["config"])
        except ConfigError as error:
            raise ZooFormatError(f"{self.path}: {error}") from None
        try:
            self.architecture = architecture_from_spec(self.manifest["architecture"])
        except (KeyError, TypeError, ValueError, WeightspaceError) as error:
            raise ZooFormatError(f"{self.path}: manifest has an unreadable architecture ({error})") from None
        self.spec: WeightSpec = self.architecture.spec
        if self.spec.num_parameters != self.manifest["architecture"].get("num_parameters"):
            raise ZooFormatError(f"{self.path}: manifest architecture does not add up to its parameter count")
        self._rollout_info = self.manifest.get("rollouts", {}).get("tensors", {})
        self.table = self._read_table()
        self._check_shards()

    # ------------------------------------------------------------------------------------
    def _read_table(self) -> pd.DataFrame:
        completed = set(self.manifest["shards"]["completed"])
        file = self.path / TABLE
        if not completed:
            return pd.DataFrame(columns=["model_id", "run_id", "step", "split", "shard", "shard_row"])
        if not file.exists():
            raise ZooFormatError(f"{self.path}: manifest lists finished shards but {TABLE} is missing")
        try:
            table = pd.read_parquet(file)
        except Exception as error:  # pyarrow raises several types for corrupt files
            raise ZooFormatError(f"{file} is not a readable Parquet table ({type(error).__name__})") from None
        required = {"model_id", "run_id", "step", "split", "shard", "shard_row"}
        if not required <= set(table.columns):
            raise ZooFormatError(f"{file} lacks the columns {sorted(required - set(table.columns))}")
        table = table[table["shard"].isin(completed)].reset_index(drop=True)
        if not np.array_equal(table["model_id"].to_numpy(), np.arange(len(table))):
            raise ZooFormatError(f"{file}: model_id must be 0..N-1 in row order")
        return table

    def _check_shards(self) -> None:
        for shard, rows in self.table.groupby("shard"):
            for what in ("weights", "rollouts"):
                file = self.path / shard_file(what, int(shard))
                if not file.exists():
                    raise ZooFormatError(f"{self.path}: {shard_file(what, int(shard))} is missing")
            try:
                with safe_open(self.path / shard_file("weights", int(shard)), framework="pt") as f:
                    names = set(f.keys())
                    if names != set(self.spec.names):
                        raise ZooFormatError(
                            f"{self.path}: weights of shard {shard} have tensors {sorted(names)}, "
                            f"expected {self.spec.names}"
                        )
                    for t in self.spec.tensors:
                        shape = tuple(f.get_slice(t.name).get_shape())
                        if shape != (len(rows), *t.shape):
                            raise ZooFormatError(
                                f"{self.path}: shard {shard} tensor {t.name} has shape {shape}, "
                                f"expected {(len(rows), *t.shape)}"
                            )
            except SafetensorError as error:
                raise ZooFormatError(f"{self.path}: shard {shard} weights are unreadable ({error})") from None

    # ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return f"Zoo({str(self.path)!r}, kind={self.kind!r}, checkpoints={len(self)})"

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self.table):
            raise IndexError(f"checkpoint index {i} out of range for a zoo of {len(self.table)}")
        row = self.table.iloc[i]
        return int(row["shard"]), int(row["shard_row"])

    @lru_cache(maxsize=8)
    def _shard(self, what: str, shard: int) -> dict[str, torch.Tensor]:
        return load_file(self.path / shard_file(what, shard))

    def state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Checkpoint ``i`` under torch's names (e.g. ``rnn.weight_ih_l0``, ``readout.bias``)."""
        shard, row = self._locate(i)
        with safe_open(self.path / shard_file("weights", shard), framework="pt") as f:
            return {n: f.get_slice(n)[row : row + 1][0].float() for n in self.spec.names}

    def rollouts(self, i: int) -> dict[str, torch.Tensor]:
        """Stored rollouts of checkpoint ``i`` (see the manifest's ``rollouts`` section)."""
        shard, row = self._locate(i)
        with safe_open(self.path / shard_file("rollouts", shard), framework="pt") as f:
            return {n: self._decode(n, f.get_slice(n)[row : row + 1][0]) for n in f.keys()}

    def _decode(self, name, tensor):
        stored = self._rollout_info.get(name, {}).get("stored_dtype")
        if stored in ("uint8", "int8", "int16", "int32", "int64"):
            return tensor.long()
        return tensor.float()

    def weights(self, indices: Sequence[int] | None = None) -> Population:
        """Checkpoints ``indices`` (default: all) as one population, in the given order (float32,
        also where a zoo stores them as float16)."""
        return Population(self.spec, {n: t.float() for n, t in self._gather("weights", indices).items()})

    def rollout_batch(self, indices: Sequence[int] | None = None, compact: bool = False) -> dict[str, torch.Tensor]:
        """Rollouts of checkpoints ``indices`` stacked; ``compact`` keeps the stored dtypes (e.g.
        float16, uint8) to save memory; :meth:`decode_rollouts` converts them later."""
        raw = self._gather("rollouts", indices)
        return raw if compact else self.decode_rollouts(raw)

    def decode_rollouts(self, rollouts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: self._decode(n, t) for n, t in rollouts.items()}

    def _gather(self, what: str, indices) -> dict[str, torch.Tensor]:
        indices = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"checkpoint indices out of range for a zoo of {len(self)}")
        rows = self.table.iloc[indices]
        parts, order = [], []
        for shard, group in rows.groupby("shard", sort=True):
            tensors = self._shard(what, int(shard))
            local = torch.tensor(group["shard_row"].to_numpy(copy=True))
            parts.append({n: t[local] for n, t in tensors.items()})
            order.append(np.flatnonzero(rows["shard"].to_numpy() == shard))
        if not parts:
            raise IndexError("no checkpoints selected")
        inverse = torch.as_tensor(np.argsort(np.concatenate(order), kind="stable"))
        return {n: torch.cat([p[n] for p in parts])[inverse] for n in parts[0]}

    def indices(self, split: str | Sequence[str] | None = None, steps: Sequence[int] | None = None) -> np.ndarray:
        """Row indices of the given split(s) and training steps."""
        mask = np.ones(len(self), dtype=bool)
        if split is not None:
            splits = [split] if isinstance(split, str) else list(split)
            unknown = set(splits) - set(SPLITS)
            if unknown:
                raise ValueError(f"unknown split(s) {sorted(unknown)}; choose from {SPLITS}")
            mask &= self.table["split"].isin(splits).to_numpy()
        if steps is not None:
            mask &= self.table["step"].isin(list(steps)).to_numpy()
        return np.flatnonzero(mask)

    def trajectory_indices(self, run_id: int) -> np.ndarray:
        """Row indices of run ``run_id``'s checkpoints in training order."""
        rows = self.table[self.table["run_id"] == run_id]
        if not len(rows):
            raise ConfigError(
                f"{self.path} has no run {run_id} (runs {self.table['run_id'].min()}..{self.table['run_id'].max()})"
            )
        return rows.sort_values("step", kind="stable").index.to_numpy()

    def trajectory(self, run_id: int) -> torch.Tensor:
        """Run ``run_id``'s weights at its checkpoints in training order: (T, P), each row the
        network's weights flattened in spec order (``Population.flatten``)."""
        return self.weights(self.trajectory_indices(run_id)).flatten()

    def dataset(self, split=None, steps=None, columns: Sequence[str] = ()) -> ZooDataset:
        return ZooDataset(self, self.indices(split, steps), columns)


class ZooDataset(torch.utils.data.Dataset):
    """Checkpoints of a zoo as a torch Dataset. Items are dicts with ``index``, ``weights``
    (a state dict), ``rollouts`` and the requested table ``columns``; the default collate
    stacks them, and ``Population(zoo.spec, batch["weights"])`` turns a batch into a population.
    """

    def __init__(self, zoo: Zoo, indices, columns: Sequence[str] = ()):
        self.zoo = zoo
        self.indices = np.asarray(indices, dtype=np.int64)
        missing = [c for c in columns if c not in zoo.table.columns]
        if missing:
            raise ValueError(f"unknown table columns {missing}; the table has {list(zoo.table.columns)}")
        self.columns = list(columns)
        self._weights = zoo.weights(self.indices) if len(self.indices) else None
        # kept in their stored (compact) dtypes and decoded per item
        self._rollouts = zoo.rollout_batch(self.indices, compact=True) if len(self.indices) else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, j: int) -> dict:
        i = int(self.indices[j])
        item = {
            "index": i,
            "weights": self._weights.state_dict(j),
            "rollouts": {n: self.zoo._decode(n, t[j]) for n, t in self._rollouts.items()},
        }
        row = self.zoo.table.iloc[i]
        for c in self.columns:
            item[c] = torch.as_tensor(row[c])
        return item
