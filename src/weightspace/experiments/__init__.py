"""Experiments as config files: ``weightspace run experiments/NAME.toml``."""

from .config import ExperimentConfig, load_experiment

__all__ = ["ExperimentConfig", "load_experiment"]
