"""CNN zoo training: one batched population against one model at a time, side by side in one run.

Trains the same K small CNNs of the ``cnn`` family (the Small CNN Zoo's networks on the bundled
8x8 digits; same initial weights, same batches, same activations, dropout off) for S steps:
  1. one model at a time: ``small_cnn()`` modules with ``torch.optim.AdamW``, as a zoo's own
     training script trains them;
  2. all K at once: the family's trainer (one grouped convolution per layer, ``PopulationAdamW``).
Prints networks x steps per second of each, the ratio as ``speedup: <ratio>x``, and checks that
both take the same first steps (later steps drift apart by float reassociation, which Adam
amplifies where a gradient is near zero: networks initialised at scale 1e-3 have many).

    python benchmarks/cnn_zoo.py --models 64 --steps 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from weightspace.networks.cnn import small_cnn, small_cnn_tanh
from weightspace.tasks import get_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task("cnn")
    config = task.config({"models": args.models, "steps": args.steps, "population": args.models, "dropout": [0, 0]})
    runs = task.plan(config)
    shard = task.shard_task(runs, config, args.device)
    architecture = task.architecture(config)
    trainer = shard.make_trainer(architecture, runs, config, args.device)
    initial = {n: t.detach().clone() for n, t in trainer.params.items()}
    batches = [trainer.batch_fn(step) for step in range(args.steps)]  # the same data for both

    def one_at_a_time(steps):
        singles = []
        for k in range(args.models):
            net = (small_cnn_tanh if runs["activation"][k] == "tanh" else small_cnn)().to(args.device)
            net.load_state_dict({n: t[k] for n, t in initial.items()})
            optimizer = torch.optim.AdamW(
                net.parameters(), lr=float(runs["learning_rate"][k]), weight_decay=float(runs["weight_decay"][k])
            )
            for images, labels, _ in batches[:steps]:
                loss = torch.nn.functional.cross_entropy(net(images[k]), labels[k])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            singles.append(net)
        return singles

    # the same first steps
    check = min(2, args.steps)
    singles = one_at_a_time(check)
    for _ in range(check):
        trainer.train_step()
    difference = max(
        float((trainer.params[name][k] - dict(net.named_parameters())[name]).detach().abs().max())
        for k, net in enumerate(singles)
        for name in trainer.params
    )

    start = time.perf_counter()
    one_at_a_time(args.steps)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    single_seconds = time.perf_counter() - start

    # the population, afresh
    trainer = shard.make_trainer(architecture, runs, config, args.device)
    trainer.batch_fn = lambda step: batches[step]
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    population_seconds = time.perf_counter() - start

    work = args.models * args.steps
    print(f"cnn zoo: {args.models} networks x {args.steps} steps, batch {config.batch_size}, {args.device}")
    print(f"  one model at a time (nn.Module + AdamW): {work / single_seconds:8.0f} network-steps/s")
    print(f"  population (grouped convolutions):       {work / population_seconds:8.0f} network-steps/s")
    print(f"  largest weight difference after {check} steps: {difference:.2e}")
    print(f"speedup: {single_seconds / population_seconds:.1f}x")
    if not np.isfinite(difference) or difference > 1e-4:
        raise SystemExit("the two trainings disagree")


if __name__ == "__main__":
    main()
