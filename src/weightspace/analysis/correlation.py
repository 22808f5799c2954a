"""How well pretraining predicts downstream success (paper 000, table 11): the Pearson
correlation between the pretraining validation (emulation) loss and each downstream prediction
loss, pooled over all encoders and seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..stats import pearson

PRETRAIN_COLUMN = "pretrain_val_loss"
#: columns that identify a row rather than measure something
ID_COLUMNS = ("encoder", "seed")


def loss_correlations(
    rows: pd.DataFrame,
    targets: Sequence[str] | None = None,
    pretrain_column: str = PRETRAIN_COLUMN,
) -> pd.DataFrame:
    """One row per downstream target: ``pearson`` (correlation with ``pretrain_column``) and
    ``pairs`` (rows where both losses are finite; the others are left out).

    ``rows`` has one row per (encoder, seed) with the pretraining validation loss and one column
    per downstream target loss (e.g. ``task_val``, ``task_ood``). ``targets`` defaults to every
    numeric column other than ``encoder``, ``seed`` and ``pretrain_column``.
    """
    if pretrain_column not in rows.columns:
        raise ValueError(f"no column {pretrain_column!r}; the rows have {list(rows.columns)}")
    if targets is None:
        targets = [
            c
            for c in rows.columns
            if c not in (*ID_COLUMNS, pretrain_column)
            and pd.api.types.is_numeric_dtype(rows[c])
            and not pd.api.types.is_bool_dtype(rows[c])
        ]
    else:
        missing = [t for t in targets if t not in rows.columns]
        if missing:
            raise ValueError(f"unknown target columns {missing}; the rows have {list(rows.columns)}")
    pretrain = rows[pretrain_column].to_numpy(dtype=np.float64)
    records = []
    for target in targets:
        downstream = rows[target].to_numpy(dtype=np.float64)
        both = np.isfinite(pretrain) & np.isfinite(downstream)
        records.append(
            {"target": target, "pearson": pearson(pretrain[both], downstream[both]), "pairs": int(both.sum())}
        )
    return pd.DataFrame(records, columns=["target", "pearson", "pairs"]).set_index("target")
