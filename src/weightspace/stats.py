"""Statistics shared by the reports: bootstrapped intervals over seeds and Pearson correlation,
both from scipy.stats, with the edge cases (one seed, constant input) answered without warnings."""

from __future__ import annotations

import numpy as np
from scipy import stats

#: fewer pairs than this give no meaningful correlation
MIN_PAIRS = 3


def bootstrap_interval(values, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0):
    """(mean, low, high): the mean of ``values`` and a percentile-bootstrap interval of it
    (``scipy.stats.bootstrap``, fixed resampling seed). NaNs are dropped; one value, or values
    that are all equal, have no spread."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if len(values) == 1 or np.ptp(values) == 0:
        return mean, mean, mean
    result = stats.bootstrap((values,), np.mean, confidence_level=confidence, n_resamples=resamples,
                             method="percentile", rng=np.random.default_rng(seed))
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high)


def pearson(a, b) -> float:
    """Pearson correlation of paired values (``scipy.stats.pearsonr``); NaN (undefined) when
    fewer than :data:`MIN_PAIRS` pairs or when either side is constant. Never warns."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < MIN_PAIRS or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.pearsonr(a, b).statistic)
