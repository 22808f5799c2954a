"""How well pretraining predicts downstream success (paper 000, table 11): the Pearson
correlation between the pretraining validation (emulation) loss and each downstream prediction
loss, pooled over all encoders and seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PRETRAIN_COLUMN = "pretrain_val_loss"
#: columns that identify a row rather than measure something
ID_COLUMNS = ("encoder", "seed")
#: fewer pairs than this give no meaningful correlation
MIN_PAIRS = 3


def pearson(a, b) -> float:
    """Pearson correlation of paired values; NaN (undefined) when fewer than
    :data:`MIN_PAIRS` pairs or when either side is constant. Never warns."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < MIN_PAIRS or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    a = a - a.mean()
    b = b - b.mean()
    scale = np.sqrt((a * a).sum() * (b * b).sum())
    if not scale > 0:
        return float("nan")
    return float(np.clip((a * b).sum() / scale, -1.0, 1.0))


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
        targets = [c for c in rows.columns if c not in (*ID_COLUMNS, pretrain_column)
                   and pd.api.types.is_numeric_dtype(rows[c]) and not pd.api.types.is_bool_dtype(rows[c])]
    else:
        missing = [t for t in targets if t not in rows.columns]
        if missing:
            raise ValueError(f"unknown target columns {missing}; the rows have {list(rows.columns)}")
    pretrain = rows[pretrain_column].to_numpy(dtype=np.float64)
    records = []
    for target in targets:
        downstream = rows[target].to_numpy(dtype=np.float64)
        both = np.isfinite(pretrain) & np.isfinite(downstream)
        records.append({"target": target, "pearson": pearson(pretrain[both], downstream[both]),
                        "pairs": int(both.sum())})
    return pd.DataFrame(records, columns=["target", "pearson", "pairs"]).set_index("target")
