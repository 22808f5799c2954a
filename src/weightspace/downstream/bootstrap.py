"""Bootstrapped means with confidence intervals over seeds (paper 000 reports 95% intervals)."""

from __future__ import annotations

import numpy as np


def bootstrap_interval(values, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0):
    """(mean, low, high) of the mean of ``values`` by the percentile bootstrap. One value: no spread."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if len(values) == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high)
