"""Where the population engine's training step spends its time: ``torch.profiler`` over
``--steps`` steps of K = 64 formal-language LSTMs (2 x 32, batch 32, as
benchmarks/population_training.py), the ops sorted by their own CPU time. With
``--compare-threads`` it also trains the same networks with 1 and with 2 threads and says whether
the weights are bit-identical.

    python benchmarks/profile_engine.py --threads 1
    python benchmarks/profile_engine.py --threads 2 --compare-threads
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from weightspace._allocator import keep_freed_memory
from weightspace.networks import LSTM
from weightspace.tasks import formal_languages as fl
from weightspace.training import PopulationTrainer


def trainer(models: int, steps: int) -> PopulationTrainer:
    architecture = LSTM(fl.VOCAB_SIZE, 32, 2, fl.VOCAB_SIZE)
    seeds = np.arange(models)
    languages = torch.tensor([fl.all_languages()[(7 * k) % 216] for k in range(models)])
    batches = [fl.training_batch(languages, seeds, s, 32) for s in range(steps)]
    return PopulationTrainer(
        architecture, architecture.init(seeds), lambda s: batches[s], steps, lr=0.01, weight_decay=1e-4
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="profiled steps (after 5 untimed)")
    parser.add_argument("--rows", type=int, default=14, help="ops shown")
    parser.add_argument("--compare-threads", action="store_true")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as the CLI does
    torch.set_num_threads(args.threads)
    engine = trainer(args.models, args.steps + 5)
    for _ in range(5):
        engine.train_step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(args.steps):
            engine.train_step()
    print(f"K={args.models} LSTMs, {args.steps} steps, {args.threads} thread(s)")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=40))
    if args.compare_threads:
        weights = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            engine = trainer(args.models, 5)
            for _ in range(5):
                engine.train_step()
            weights.append(engine.weights.flatten())
        print(f"1 and 2 threads, 5 steps: bit-identical weights {torch.equal(*weights)}")


if __name__ == "__main__":
    main()
