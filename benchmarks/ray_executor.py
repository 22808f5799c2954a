"""An experiment with 4 independent pretraining runs, run locally and with ``--executor ray``.

Builds a small formal-language zoo in a temporary directory, then runs the same experiment twice
in one run: statistics, flattened, DWSNet and probing, one seed each (4 independent pretraining
runs and their 2 references, then embeddings, predictions and analyses), first with the local
executor (steps one after another, torch on ``--threads``), then on a local Ray instance with
``--workers`` CPUs (each task one CPU, torch on one thread). Prints both wall times and, as its
last line, ``speedup: <ratio>x``.

    python benchmarks/ray_executor.py
    python benchmarks/ray_executor.py --workers 2 --steps 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from weightspace.experiments.config import load_experiment
from weightspace.experiments.ray_executor import RayExecutor
from weightspace.experiments.runner import run_experiment
from weightspace.zoo import build_zoo

CONFIG = """
name = "{name}"
seeds = [0]
encoders = ["statistics", "flattened", "dwsnet", "probing"]
results_dir = "{results}"

[[zoos]]
name = "fl"
kind = "formal-languages"
path = "{zoo}"
models = 16
population = 16
steps = 100
checkpoints = [0, 100]
samples = 200
rollouts = 20

[pretrain]
steps = {steps}
batch_size = 16
rollouts_per_network = 4
val_rollouts = 8
eval_every = 50
patience = 100
emulator_hidden = 64
learning_rate = 0.002

[predictor]
steps = 100
eval_every = 50

[supervised]
steps = 10
eval_every = 10
targets = []

[encoder_options]
statistics = {{ hidden = 64 }}
flattened = {{ hidden = 32 }}
dwsnet = {{ channels = 8, layers = 2 }}
probing = {{ probes = 4, reader_hidden = 32, mlp_hidden = 32 }}

[analyses]
invariance = false
embeddings = false
fidelity = false
probes = false
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the local run")
    parser.add_argument("--steps", type=int, default=300, help="pretraining steps of each run")
    parser.add_argument("--steps-table", action="store_true", help="also print each computed step's seconds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        zoo = tmp / "zoo"
        build_zoo(
            zoo,
            "formal-languages",
            dict(models=16, population=16, steps=100, checkpoints=[0, 100], samples=200, rollouts=20),
            progress=False,
        )
        seconds = {}
        for name in ("local", "ray"):
            file = tmp / f"{name}.toml"
            file.write_text(CONFIG.format(name=name, results=tmp / "results", zoo=zoo, steps=args.steps))
            executor = RayExecutor(num_cpus=args.workers) if name == "ray" else None  # Ray's start-up is timed
            start = time.perf_counter()
            run_experiment(load_experiment(file), progress=False, threads=args.threads, executor=executor)
            seconds[name] = time.perf_counter() - start
        print(
            f"4 pretraining runs (+2 references, embeddings, predictions), {args.steps} steps each, "
            f"{torch.get_num_threads()} cores here"
        )
        print(f"  local executor ({args.threads} torch threads):       {seconds['local']:7.1f} s")
        print(f"  --executor ray ({args.workers} workers, 1 thread each): {seconds['ray']:7.1f} s")
        if args.steps_table:
            import json

            for name in ("local", "ray"):
                run = json.loads((tmp / "results" / name / "run.json").read_text())
                print(name, [(r["name"], r["seconds"]) for r in run["steps"] if r["status"] == "computed"])
        print(f"speedup: {seconds['local'] / seconds['ray']:.2f}x")


if __name__ == "__main__":
    main()
