"""Experiments as config files: ``weightspace run experiments/NAME.toml``.

An experiment family (:mod:`.family`) turns a typed config (:mod:`.config`) into named steps,
which :mod:`.steps` runs and caches under keys of their settings; :mod:`.report` writes the report.
"""

from .config import config_toml, load_experiment
from .family import Family, family_names, get_family, register_family
from .runner import run_experiment
from .steps import Finished, Step, StepContext, run_steps

__all__ = [
    "Family",
    "Finished",
    "Step",
    "StepContext",
    "config_toml",
    "family_names",
    "get_family",
    "load_experiment",
    "register_family",
    "run_experiment",
    "run_steps",
]
