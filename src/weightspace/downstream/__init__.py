"""Downstream property prediction from weights (paper 000, section 6.2)."""

from .predictor import PredictorConfig, evaluate_frozen, evaluate_supervised
from .splits import downstream_splits
from .targets import Target

__all__ = ["PredictorConfig", "Target", "downstream_splits", "evaluate_frozen", "evaluate_supervised"]
