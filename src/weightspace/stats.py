"""Statistics shared by the reports: bootstrapped intervals over seeds and Pearson correlation,
both from scipy.stats, with the edge cases (one seed, constant input) answered without warnings."""

from __future__ import annotations

import numpy as np
from scipy import stats

#: fewer pairs than this give no meaningful correlation
MIN_PAIRS = 3


def bootstrap_interval(values, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0, statistic=np.mean):
    """(statistic, low, high): ``statistic`` of ``values`` (default the mean; it takes an ``axis``
    argument, as numpy's reductions do) and a percentile-bootstrap interval of it
    (``scipy.stats.bootstrap``, fixed resampling seed). NaNs are dropped; one value, or values
    that are all equal, have no spread."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    value = float(statistic(values))
    if len(values) == 1 or np.ptp(values) == 0:
        return value, value, value
    result = stats.bootstrap(
        (values,),
        statistic,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return value, float(result.confidence_interval.low), float(result.confidence_interval.high)


def bootstrap_difference(
    first, second, statistic=np.mean, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
):
    """(statistic(second) - statistic(first), low, high): the difference between two independent
    samples and a percentile-bootstrap interval of it, both samples resampled. Fewer than two
    values on either side: (nan, nan, nan)."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    if len(first) < 2 or len(second) < 2:
        return float("nan"), float("nan"), float("nan")
    result = stats.bootstrap(
        (first, second),
        lambda a, b, axis=-1: statistic(b, axis=axis) - statistic(a, axis=axis),
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return (
        float(statistic(second) - statistic(first)),
        float(result.confidence_interval.low),
        float(result.confidence_interval.high),
    )


def pearson(a, b) -> float:
    """Pearson correlation of paired values (``scipy.stats.pearsonr``); NaN (undefined) when
    fewer than :data:`MIN_PAIRS` pairs or when either side is constant. Never warns."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < MIN_PAIRS or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.pearsonr(a, b).statistic)
