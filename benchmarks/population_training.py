"""Population training vs one model at a time, side by side in one run.

Trains the same K 2-layer hidden-32 LSTMs (same initial weights, same batches) for S steps on the
formal-language task or (``--task digits``) the rotated tiled digits task:
  1. one model at a time with nn.LSTM + nn.Linear + torch.optim.AdamW (what the paper's code does);
  2. all K at once with the weightspace population engine.
Prints the CPU and the LSTM kernel path that ran, networks x steps per second for each, the ratio,
the achieved GFLOP/s against a measured matmul peak, and ``speedup: <ratio>x``.

``--zoos demo`` (or ``small``) then times what users run: whole ``weightspace zoo build``
commands for formal languages, digits and CartPole at the demo's (or the small reproductions')
sizes, each with the fused kernel, without it (``WEIGHTSPACE_FUSED=0``), and against training the
same LSTMs one at a time with ``nn.LSTM`` (training alone, no evaluation, so that ratio is a lower
bound; timed on ``--single-sample`` networks and scaled to the zoo's count). Each as a ratio, in one
run. CartPole's subject networks are MLPs: its fused-over-unfused ratio shows the LSTM kernel does
not touch it, and it has no nn.LSTM column.

    python benchmarks/population_training.py --models 64 --steps 40
    python benchmarks/population_training.py --zoos demo
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

import zoo_build
from weightspace._allocator import keep_freed_memory
from weightspace.networks import LSTM, fused_cpu
from weightspace.tasks import digits
from weightspace.tasks import formal_languages as fl
from weightspace.training import PopulationTrainer, piecewise_linear


def formal_language_task(models: int, batch_size: int, steps: int, device, mnist_dir=None):
    architecture = LSTM(fl.VOCAB_SIZE, 32, 2, fl.VOCAB_SIZE)
    languages = fl.all_languages()
    params = torch.tensor([languages[(7 * k) % len(languages)] for k in range(models)])
    seeds = np.arange(models)
    batches = [tuple(t.to(device) for t in fl.training_batch(params, seeds, s, batch_size)) for s in range(steps)]
    return architecture, seeds, batches


def digits_task(models: int, batch_size: int, steps: int, device, mnist_dir=None):
    """Rotated digits shown tile by tile: MNIST 4x4 tiles with --mnist-dir, else the 8x8 digits in 2x2 tiles."""
    data = digits.load_digits(mnist_dir)
    tile = 4 if mnist_dir else 2
    architecture = LSTM(tile * tile, 32, 2, digits.NUM_CLASSES)
    seeds = np.arange(models)
    angles = np.linspace(0, 360, models, endpoint=False)
    task = digits.RotatedDigitsShard(data, angles, seeds, tile, device)
    return architecture, seeds, [task.batch(s, batch_size) for s in range(steps)]


TASKS = {"formal-languages": formal_language_task, "digits": digits_task}


def flops_per_network_step(architecture, batch_size: int, length: int) -> float:
    """Matmul FLOPs of one training step of one network (forward + backward = 3x forward)."""
    H, G = architecture.hidden_size, architecture.gates
    macs = 0
    for layer in range(architecture.num_layers):
        fan_in = architecture.input_size if layer == 0 else H
        macs += G * H * (fan_in + H)
    macs += architecture.output_size * H
    return 3 * 2 * macs * batch_size * length


def matmul_peak_gflops(device) -> float:
    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    for _ in range(2):
        a @ b
    _sync(device)
    start = time.perf_counter()
    repeats = 5
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * 2048**3 * repeats / (time.perf_counter() - start) / 1e9


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def one_at_a_time(architecture, weights, batches, steps, lr, weight_decay, device) -> float:
    """Seconds to train every network alone with torch modules."""
    start = time.perf_counter()
    for k in range(weights.size):
        module = architecture.to_torch(weights, k)
        optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: piecewise_linear(s, steps))
        for step in range(steps):
            x, y = batches[step]
            logits = module(x[k])[0]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[k].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    _sync(device)
    return time.perf_counter() - start


def population(architecture, weights, batches, steps, lr, weight_decay, device) -> float:
    """Seconds to train all networks together with the population engine."""
    trainer = PopulationTrainer(architecture, weights, lambda s: batches[s], steps, lr=lr, weight_decay=weight_decay)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    _sync(device)
    return time.perf_counter() - start


# (task, zoo build arguments, training-batch function for the one-at-a-time timing or None)
ZOOS = {
    "demo": [
        (
            "formal-languages",
            "--models 32 --population 32 --steps 300 --checkpoints 0,100,200,300 --samples 500 --rollouts 50 --seed 0",
            "formal-languages",
        ),
        (
            "digits",
            "--models 16 --population 16 --steps 400 --checkpoints 0,100,200,400 --samples 300 --rollouts 50 --seed 0",
            "digits",
        ),
        ("cartpole", "--models 64 --population 64 --steps 400 --seed 0", None),
    ],
    "small": [
        (
            "formal-languages",
            "--models 216 --population 72 --steps 600 --checkpoints 0,300,600 --samples 500 --rollouts 20 --seed 0",
            "formal-languages",
        ),
        (
            "digits",
            "--models 216 --population 36 --steps 600 --checkpoints 0,300,600 --samples 300 --rollouts 20 --seed 0",
            "digits",
        ),
        ("cartpole", "--models 256 --population 256 --steps 2000 --seed 0", None),
    ],
}


def zoo_section(size: str, single_sample: int, batch_size: int):
    """Whole zoo builds: fused, unfused, and one-at-a-time nn.LSTM training of the same networks."""
    print(
        f"\nzoo builds at {size} size (fresh process each; one-at-a-time: training only, "
        f"{single_sample} networks timed, scaled)"
    )
    for task, arguments, batches_of in ZOOS[size]:
        words = [task, *arguments.split()]
        models, steps = int(words[words.index("--models") + 1]), int(words[words.index("--steps") + 1])
        fused, unfused, path = zoo_build.compare(words, 1)
        line = (
            f"  {task:<17} {models:>4} x {steps:>4}: fused {fused[0]:7.1f} s, unfused {unfused[0]:7.1f} s "
            f"-> {unfused[0] / fused[0]:.2f}x"
        )
        if batches_of is not None:
            architecture, seeds, batches = TASKS[batches_of](single_sample, batch_size, steps, torch.device("cpu"))
            weights = architecture.init(seeds, torch.device("cpu"))
            single = one_at_a_time(architecture, weights, batches, steps, 0.01, 1e-4, torch.device("cpu"))
            single *= models / single_sample
            line += f"; one at a time (nn.LSTM) {single:7.1f} s -> {single / fused[0]:.2f}x"
        print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="formal-languages")
    parser.add_argument("--models", type=int, default=64, help="K networks (default 64)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per network")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of each method first")
    parser.add_argument("--mnist-dir", default=None, help="digits: MNIST IDX directory (default: 8x8 digits)")
    parser.add_argument(
        "--zoos",
        choices=["demo", "small"],
        default=None,
        help="also time whole zoo builds at the demo's or the small reproductions' sizes",
    )
    parser.add_argument(
        "--single-sample",
        type=int,
        default=4,
        help="networks trained one at a time for the zoo section's nn.LSTM column",
    )
    args = parser.parse_args()
    keep_freed_memory()  # as the CLI does
    device = torch.device(args.device)

    architecture, seeds, batches = TASKS[args.task](args.models, args.batch_size, args.steps, device, args.mnist_dir)
    weights = architecture.init(seeds, device)
    length = batches[0][0].shape[2]
    lr, weight_decay = 0.01, 1e-4
    print(
        f"task {args.task}: K={args.models} networks, {args.steps} steps, batch {args.batch_size}, "
        f"sequence length {length}, {architecture.spec.num_parameters:,} parameters each, "
        f"device {device}, {torch.get_num_threads()} threads"
    )
    print(
        f"CPU: {zoo_build.cpu_model()}; LSTM kernel path: "
        f"{fused_cpu.kernel_path() if device.type == 'cpu' else 'cuda (pure PyTorch)'}"
    )

    warm = batches[: args.warmup]
    one_at_a_time(architecture, weights.select(slice(0, 2)), warm, len(warm), lr, weight_decay, device)
    population(architecture, weights, warm, len(warm), lr, weight_decay, device)

    work = args.models * args.steps
    flops = flops_per_network_step(architecture, args.batch_size, length)
    peak = matmul_peak_gflops(device)
    t_single = one_at_a_time(architecture, weights, batches, args.steps, lr, weight_decay, device)
    t_population = population(architecture, weights, batches, args.steps, lr, weight_decay, device)
    print(f"matmul peak (2048x2048 sgemm): {peak:.1f} GFLOP/s")
    for name, seconds in [("one at a time (nn.LSTM)", t_single), ("population engine", t_population)]:
        rate = work / seconds
        print(
            f"{name:<26} {rate:9.1f} networks x steps/s  {rate * flops / 1e9:7.1f} GFLOP/s "
            f"({rate * flops / 1e9 / peak:.0%} of peak)  [{seconds:.2f} s]"
        )
    print(f"speedup: {t_single / t_population:.2f}x")
    if args.zoos:
        zoo_section(args.zoos, args.single_sample, args.batch_size)


if __name__ == "__main__":
    main()
