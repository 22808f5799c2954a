"""Embeddings of every checkpoint of a zoo under a pretrained encoder, written to Parquet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import storage
from ..zoo.reader import Zoo
from .pretrain import Run

#: table columns copied next to the embedding when the zoo has them
CONTEXT_COLUMNS = ("model_id", "run_id", "step", "split")


@torch.no_grad()
def embeddings(run: Run, zoo: Zoo, indices=None, batch_size: int = 256, device="cpu", progress=False) -> np.ndarray:
    """(len(indices), Z) embeddings of checkpoints ``indices`` (default: all)."""
    if zoo.spec != run.encoder.spec:
        raise ValueError(
            f"the run's encoder was built for {dict(run.encoder.spec.config)}, the zoo holds {dict(zoo.spec.config)}"
        )
    indices = np.arange(len(zoo)) if indices is None else np.asarray(indices)
    out = []
    for start in tqdm(range(0, len(indices), batch_size), disable=not progress, desc="embed", unit="batch"):
        weights = zoo.weights(indices[start : start + batch_size]).to(device)
        out.append(run.encoder(weights).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, run.config.embedding_size), np.float32)


def embed_zoo(run: Run, zoo: Zoo, out_file, device="cpu", progress=True) -> pd.DataFrame:
    """Write ``model_id, run_id, step, split, z_0 .. z_{Z-1}`` for every checkpoint to ``out_file``."""
    z = embeddings(run, zoo, device=device, progress=progress)
    table = zoo.table[[c for c in CONTEXT_COLUMNS if c in zoo.table.columns]].copy()
    for i in range(z.shape[1]):
        table[f"z_{i}"] = z[:, i]
    storage.write_parquet(out_file, table)
    return table
