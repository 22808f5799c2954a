"""The scripts under ``experiments/`` (not a package) as modules, for their tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXPERIMENTS = Path(__file__).parents[1] / "experiments"


def experiment_script(name: str):
    """``experiments/NAME.py``, imported."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
