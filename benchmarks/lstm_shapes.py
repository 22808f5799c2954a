"""The fused LSTM kernel against the pure-PyTorch path on every shape weightspace runs, side by side.

For each use of the population LSTM (zoo training, evaluation, probing encoders, the batched-seed
emulators) it times the 2-layer population forward (and backward where that use trains) with the
compiled kernel and with ``WEIGHTSPACE_FUSED=0``, interleaved, and prints the median times and
their ratio (unfused over fused: above 1 the kernel wins). ``WEIGHTSPACE_KERNEL_ISA`` picks the
kernel's instruction-set level (default: the best the CPU runs); the first line names the path.

    python benchmarks/lstm_shapes.py
    WEIGHTSPACE_KERNEL_ISA=x86-64-v3 python benchmarks/lstm_shapes.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from contextlib import nullcontext

import numpy as np
import torch

from weightspace._allocator import keep_freed_memory
from weightspace.networks import LSTM, fused_cpu
from weightspace.threads import torch_ops_on_one_thread

# (use, K networks, B sequences, T steps, input size, hidden size, output size, what is differentiated)
SHAPES = [
    ("formal-language zoo training", 64, 32, 41, 6, 32, 6, "weights"),
    ("formal-language zoo training, K=8", 8, 32, 41, 6, 32, 6, "weights"),
    ("formal-language zoo training, K=1", 1, 32, 41, 6, 32, 6, "weights"),
    ("digits zoo training (8x8, 2x2 tiles)", 32, 32, 18, 4, 32, 10, "weights"),
    ("digits zoo training (MNIST, 4x4 tiles)", 32, 32, 51, 16, 32, 10, "weights"),
    ("digits evaluation (chunk of 2048)", 32, 2048, 18, 4, 32, 10, None),
    ("probing encoder subjects (64 x 8 probes)", 64, 8, 22, 6, 32, 6, "inputs"),
    ("probing encoder subjects, 4 seeds", 256, 8, 22, 6, 32, 6, "inputs"),
    ("emulators of 4 seeds (hidden 256)", 4, 640, 41, 256, 256, 6, "weights"),
    ("emulator of 1 seed (hidden 256)", 1, 640, 41, 256, 256, 6, "weights"),
    ("reader LSTMs of 4 seeds (probing, 64)", 4, 64, 22, 64, 64, 16, "weights"),
    ("reader LSTM of 1 seed (probing, 64)", 1, 64, 22, 64, 64, 16, "weights"),
    ("emulator of 1 seed (hidden 128)", 1, 640, 41, 128, 128, 6, "weights"),
]


def _case(K, B, T, I, H, O, wrt, seed=0):
    architecture = LSTM(I, H, 2, O)
    weights = architecture.init(np.arange(seed, seed + K))
    x = torch.randn(K, B, T, I, generator=torch.Generator().manual_seed(seed))
    params = {n: t.clone().requires_grad_(wrt == "weights") for n, t in weights.items()}
    x.requires_grad_(wrt == "inputs")
    population = type(weights)(weights.spec, params)

    def run():
        if wrt is None:
            with torch.no_grad():
                architecture.forward(population, x)
            return
        with torch_ops_on_one_thread() if architecture.runs_compiled(population) else nullcontext():
            out = architecture.forward(population, x)[0]
            out.square().mean().backward()

    return run


def _time(run, fused: bool, repeats: int) -> list[float]:
    os.environ["WEIGHTSPACE_FUSED"] = "1" if fused else "0"
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def _only(names: str | None):
    return [s for s in SHAPES if names is None or any(n in s[0] for n in names.split(","))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each path per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of fused and unfused")
    parser.add_argument("--only", default=None, help="comma-separated parts of the uses to time")
    args = parser.parse_args()
    keep_freed_memory()
    os.environ.pop("WEIGHTSPACE_FUSED", None)
    print(
        f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"kernel path: {fused_cpu.kernel_path()}"
    )
    print(f"{'use':<44} {'K':>4} {'B':>5} {'T':>3} {'I':>4} {'H':>4}  {'fused ms':>9} {'unfused ms':>10}  ratio")
    worst = None
    for use, K, B, T, I, H, O, wrt in _only(args.only):
        run = _case(K, B, T, I, H, O, wrt)
        fused, unfused = [], []
        _time(run, True, 1), _time(run, False, 1)  # warm up both
        for _ in range(args.rounds):
            fused += _time(run, True, args.repeats)
            unfused += _time(run, False, args.repeats)
        f, u = statistics.median(fused) * 1e3, statistics.median(unfused) * 1e3
        worst = u / f if worst is None else min(worst, u / f)
        print(f"{use:<44} {K:>4} {B:>5} {T:>3} {I:>4} {H:>4}  {f:9.2f} {u:10.2f}  {u / f:.2f}x")
    os.environ.pop("WEIGHTSPACE_FUSED", None)
    print(f"lowest ratio (unfused / fused): {worst:.2f}x")


if __name__ == "__main__":
    main()
