"""Sets of networks: the ones a generative model learns from (one row per run of a zoo, at one
training step), and network files (a population in one safetensors file) for generated ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open

from ..errors import WeightspaceError
from ..networks.weights import Population
from ..zoo.reader import Zoo


@dataclass
class NetworkSet:
    """Networks selected from a zoo: their weights, table rows and (if the zoo has it) groups 1..4."""

    weights: Population
    table: pd.DataFrame

    @property
    def flat(self) -> torch.Tensor:
        return self.weights.flatten()

    @property
    def groups(self) -> np.ndarray:
        return self.table["group"].to_numpy().astype(np.int64)

    def __len__(self) -> int:
        return len(self.table)


def final_networks(zoo: Zoo, step: int | None = None, split: str | None = None, groups=None) -> NetworkSet:
    """The zoo's networks at ``step`` (default: its last checkpoint step, where every run has
    finished training), optionally only of ``split`` and survival-time ``groups``."""
    table = zoo.table
    if len(table) == 0:
        raise WeightspaceError(f"{zoo.path} has no finished networks yet")
    steps = sorted(table["step"].unique().tolist())
    step = steps[-1] if step is None else int(step)
    if step not in steps:
        raise WeightspaceError(f"{zoo.path} has no checkpoints at step {step}; it has steps {steps}")
    mask = table["step"] == step
    if split is not None:
        mask &= table["split"] == split
    if groups is not None:
        if "group" not in table.columns:
            raise WeightspaceError(f"{zoo.path} is a {zoo.kind} zoo without survival-time groups")
        mask &= table["group"].isin([int(g) for g in groups])
    indices = np.flatnonzero(mask.to_numpy())
    if len(indices) == 0:
        raise WeightspaceError(f"no networks of {zoo.path} match step={step}, split={split}, groups={groups}")
    return NetworkSet(zoo.weights(indices), table.iloc[indices].reset_index(drop=True))


# Network files -----------------------------------------------------------------------------
#: safetensors metadata key holding the weight layout of a network file
ARCHITECTURE_KEY = "weightspace.architecture"


def save_networks(
    path, weights: Population, extra: dict[str, torch.Tensor] | None = None, metadata: dict[str, str] | None = None
) -> Path:
    """Write a population as one safetensors file: a tensor per weight (leading network axis,
    torch's names), optional per-network ``extra`` tensors (e.g. ``survival_time``), and the
    weight layout as JSON in the metadata."""
    from .. import storage

    path = Path(path)
    tensors = {name: t.detach().float() for name, t in weights.items()}
    for name, t in (extra or {}).items():
        if name in tensors:
            raise ValueError(f"extra tensor {name!r} clashes with a weight name")
        tensors[name] = torch.as_tensor(t)
    storage.write_tensors(path, tensors, {**(metadata or {}), ARCHITECTURE_KEY: json.dumps(weights.spec.to_json())})
    return path


def load_networks(source, indices=None) -> tuple[Population, pd.DataFrame]:
    """Networks from a zoo directory (``indices`` = table rows) or a file written by
    :func:`save_networks` (``indices`` = positions); default all. Returns the weights and a
    table (the zoo's rows, or the file's per-network extra tensors)."""
    from ..networks.architectures import architecture_from_spec
    from ..zoo.format import MANIFEST
    from ..zoo.reader import load_zoo

    source = Path(source)
    if source.is_dir():
        if not (source / MANIFEST).exists():
            raise WeightspaceError(f"{source} is neither a zoo (no {MANIFEST}) nor a network file")
        zoo = load_zoo(source)
        rows = np.arange(len(zoo)) if indices is None else np.asarray(list(indices), dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(zoo)):
            raise WeightspaceError(f"network indices must lie in 0..{len(zoo) - 1} for {source}")
        return zoo.weights(rows), zoo.table.iloc[rows].reset_index(drop=True)
    if not source.is_file():
        raise WeightspaceError(f"{source} does not exist")
    try:
        with safe_open(source, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as error:  # safetensors raises several types for foreign files
        raise WeightspaceError(f"{source} is not a readable safetensors file ({type(error).__name__})") from None
    if ARCHITECTURE_KEY not in metadata:
        raise WeightspaceError(f"{source} has no weight layout in its metadata; write it with save_networks")
    spec = architecture_from_spec(json.loads(metadata[ARCHITECTURE_KEY])).spec
    missing = [n for n in spec.names if n not in tensors]
    if missing:
        raise WeightspaceError(f"{source} lacks the weight tensors {missing}")
    weights = Population(spec, {n: tensors[n] for n in spec.names})
    table = pd.DataFrame({n: t.numpy() for n, t in tensors.items() if n not in spec.names and t.ndim == 1})
    if indices is not None:
        rows = np.asarray(list(indices), dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= weights.size):
            raise WeightspaceError(f"network indices must lie in 0..{weights.size - 1} for {source}")
        weights = weights.select(torch.as_tensor(rows))
        table = table.iloc[rows].reset_index(drop=True) if len(table.columns) else table
    return weights, table
