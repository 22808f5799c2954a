"""Which checkpoints the downstream predictors train and are tested on (paper 000, section 6.2).

As in the paper, half of the OOD tasks (chosen with a fixed seed) join the predictor's training
data and the other half is the OOD test set; the zoo's validation split is the validation set.
What counts as one task is the task family's ``split_key`` column (formal languages: the language,
``task_id``; digits: the run, each with its own angle).
"""

from __future__ import annotations

import numpy as np

OOD_SPLIT_SEED = 0


def downstream_splits(zoo, seed: int = OOD_SPLIT_SEED) -> dict[str, np.ndarray]:
    """Row indices: ``train`` (zoo train + half of the OOD tasks), ``val``, ``ood_test``."""
    table = zoo.table
    key = zoo.task.split_key
    ood_tasks = np.sort(table.loc[table["split"] == "ood", key].unique())
    order = np.random.default_rng(seed).permutation(len(ood_tasks))
    to_train = set(ood_tasks[order[: len(ood_tasks) // 2]].tolist())
    is_ood = (table["split"] == "ood").to_numpy()
    ood_in_train = is_ood & table[key].isin(to_train).to_numpy()
    return {
        "train": np.flatnonzero((table["split"] == "train").to_numpy() | ood_in_train),
        "val": np.flatnonzero((table["split"] == "val").to_numpy()),
        "ood_test": np.flatnonzero(is_ood & ~ood_in_train),
    }
