"""Run an experiment: its family's steps (cached, see :mod:`weightspace.experiments.steps` for
the results layout), then the numbers gathered from their results, then the report."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .. import storage
from ..threads import intra_op_threads
from ..versions import weightspace_version
from .config import toml_data
from .family import get_family
from .report import EXPERIMENT_FILE, RESULTS_FILE, RUN_FILE, write_report
from .steps import Results, run_steps


def experiment_directory(config) -> Path:
    return Path(config.results_dir) / config.name


def run_experiment(
    config, device: str = "cpu", progress: bool = True, threads: int | None = None, executor=None, recompute=()
) -> Path:
    """Run (or resume) the experiment ``config``; returns the path of its report.md. ``threads``
    (CPU only) overrides the family's own thread count (:attr:`Family.cpu_threads`). ``executor``
    (:class:`~weightspace.experiments.ray_executor.RayExecutor`) runs the steps as Ray tasks.
    ``recompute``: patterns of step names to compute afresh (:func:`.steps.run_steps`)."""
    family = get_family(config.family)
    out = experiment_directory(config)
    finished = Results()
    started = time.perf_counter()
    cpu = torch.device(device).type == "cpu"
    with intra_op_threads((threads or family.cpu_threads) if cpu else None):
        records = run_steps(family.steps(config, finished), out, device, progress, finished, executor, tuple(recompute))
        results = family.results(config, finished, out)
    storage.write_json(out / EXPERIMENT_FILE, toml_data(config))
    storage.write_json(
        out / RUN_FILE,
        {
            "weightspace": weightspace_version(),  # the version that wrote the results
            "seconds": round(time.perf_counter() - started, 1),
            "steps": [record.to_json() for record in records],
        },
    )
    storage.write_json(out / RESULTS_FILE, results)
    return write_report(out)
