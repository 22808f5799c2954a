"""Downstream property prediction from weights (paper 000, section 6.2)."""

from .bootstrap import bootstrap_interval
from .predictor import PredictorConfig, evaluate_frozen, evaluate_supervised
from .splits import downstream_splits
from .targets import Target, zoo_targets

__all__ = ["PredictorConfig", "Target", "bootstrap_interval", "downstream_splits", "evaluate_frozen",
           "evaluate_supervised", "zoo_targets"]
