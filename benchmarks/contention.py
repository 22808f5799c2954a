"""The population engine alone, then next to one busy process: how much of its speed it keeps.

Trains K = 64 formal-language LSTMs (2 x 32, batch 32, as benchmarks/population_training.py)
with the population engine for ``--seconds`` seconds alone, then again while a process this script
starts spins on one core (a pure-Python busy loop), and stops it. Prints both speeds in
network-steps/s and, as its last line, ``kept: <percent>%`` of the idle speed.

``--threads`` sets torch's threads (default: the cores this process may use) and
``--omp-wait-policy`` OpenMP's wait policy (``passive``: a thread waiting at the end of a parallel
region sleeps instead of spinning); the script re-executes itself so that OpenMP reads it at start.

    python benchmarks/contention.py
    python benchmarks/contention.py --threads 1
    python benchmarks/contention.py --omp-wait-policy passive
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: available cores)")
    parser.add_argument(
        "--omp-wait-policy",
        choices=["active", "passive"],
        default=None,
        help="OMP_WAIT_POLICY for this run (default: the environment's, or OpenMP's own)",
    )
    parser.add_argument(
        "--gomp-spincount",
        type=int,
        default=None,
        help="GOMP_SPINCOUNT: how long an idle OpenMP thread spins before it sleeps",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per phase")
    parser.add_argument("--models", type=int, default=64)
    args = parser.parse_args(argv)
    wanted = {}
    if args.omp_wait_policy:
        wanted["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    if args.gomp_spincount is not None:
        wanted["GOMP_SPINCOUNT"] = str(args.gomp_spincount)
    if any(os.environ.get(k) != v for k, v in wanted.items()):  # OpenMP reads them once, at load
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **wanted})

    import numpy as np
    import torch

    from weightspace._allocator import keep_freed_memory
    from weightspace.networks import LSTM
    from weightspace.tasks import formal_languages as fl
    from weightspace.threads import set_threads
    from weightspace.training import PopulationTrainer

    keep_freed_memory()  # as the CLI does
    threads = set_threads(args.threads)
    K = args.models
    architecture = LSTM(fl.VOCAB_SIZE, 32, 2, fl.VOCAB_SIZE)
    seeds = np.arange(K)
    languages = torch.tensor([fl.all_languages()[(7 * k) % 216] for k in range(K)])
    inputs, targets = fl.training_batch(languages, seeds, 0, 32)
    trainer = PopulationTrainer(
        architecture, architecture.init(seeds), lambda s: (inputs, targets), 10**9, lr=0.01, weight_decay=1e-4
    )
    for _ in range(3):  # warm-up: first-call costs
        trainer.train_step()

    def speed() -> float:
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            trainer.train_step()
            steps += 1
        return K * steps / (time.perf_counter() - start)

    openmp = {k: os.environ.get(k, "default") for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    print(
        f"K={K} LSTMs (2 x 32, batch 32, length {inputs.shape[2]}), {threads} torch thread(s), "
        f"OpenMP {openmp}, {os.cpu_count()} cores on the machine, torch {torch.__version__}"
    )
    alone = speed()
    print(f"  alone:                {alone:8.1f} network-steps/s")
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        shared = speed()
    finally:
        busy.kill()
        busy.wait()
    print(f"  next to a busy process: {shared:6.1f} network-steps/s")
    print(f"kept: {100 * shared / alone:.0f}%")


if __name__ == "__main__":
    main()
