"""The table and the manifest of a zoo being built, written shard by shard (the zoo format's
writing side; :mod:`.format` names the files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import storage
from .format import MANIFEST, TABLE


class ZooTable:
    """The table and the manifest of a zoo being built. A finished shard's rows go in once its
    tensor files are written: the table is rewritten (kept in shard order, whichever shard finished
    first, with ``model_id`` its row number), then the manifest lists the shard."""

    def __init__(self, out: Path, manifest: dict):
        self.out, self.manifest = out, manifest
        self.completed = set(manifest["shards"]["completed"])
        table = pd.read_parquet(out / TABLE) if (out / TABLE).exists() else None
        self.table = None if table is None else table[table["shard"].isin(self.completed)]

    def add(self, shard: int, rows: pd.DataFrame) -> None:
        rows = rows.drop(columns="model_id", errors="ignore")
        if self.table is not None:
            rows = pd.concat([self.table.drop(columns="model_id"), rows], ignore_index=True)
        table = rows.sort_values(["shard", "shard_row"], kind="stable").reset_index(drop=True)
        table.insert(0, "model_id", np.arange(len(table)))
        self.table = table
        storage.write_parquet(self.out / TABLE, table)
        self.completed.add(shard)
        self.manifest["shards"]["completed"] = sorted(self.completed)
        self.manifest["table"]["rows"] = len(table)
        storage.write_json(self.out / MANIFEST, self.manifest)
