"""TIPL (paper 003): policy weight trajectories as temporal-SVD tokens, forecast by a causal
transformer, and the forecasters it should beat."""

from .baselines import FORECASTERS, ParameterMLPForecaster, copy_last, linear_extrapolation, svd_trimmed
from .model import CausalTransformer, TIPLConfig, rollout, train_tipl, weight_space_mse
from .svd import Basis, fit_basis, per_run_bases, pooled_basis, tokens

__all__ = [
    "Basis",
    "CausalTransformer",
    "FORECASTERS",
    "ParameterMLPForecaster",
    "TIPLConfig",
    "copy_last",
    "fit_basis",
    "linear_extrapolation",
    "per_run_bases",
    "pooled_basis",
    "rollout",
    "svd_trimmed",
    "tokens",
    "train_tipl",
    "weight_space_mse",
]
