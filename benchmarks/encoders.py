"""Training throughput of the six weight encoders, and batched vs per-network probing, in one run.

For each encoder (paper sizes, formal-language subject LSTM(6, 32, 2, 6), batch of 64 networks):
  - encoder only: forward + backward of the encoder, subject networks per second;
  - pretraining step: encoder + emulator (2-layer LSTM, hidden 256, 10 rollouts per network)
    forward + backward + AdamW step, subject networks per second.
Then the probing encoders' subject-network evaluation, batched through the population engine vs
a per-network ``torch.func.functional_call`` loop (from benchmarks/probing_evaluation.py).

    python benchmarks/encoders.py --batch 64 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch

from weightspace._allocator import keep_freed_memory
from weightspace.emulation import Emulator, emulation_loss
from weightspace.encoders import ENCODER_NAMES, TaskIO, build_encoder
from weightspace.networks import LSTM


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64, help="subject networks per step")
    parser.add_argument("--rollouts", type=int, default=10, help="rollouts per network in the pretraining step")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)
    architecture = LSTM(6, 32, 2, 6)
    task = TaskIO("categorical", 6, "categorical", 6, probe_length=22)
    weights = architecture.init(list(range(args.batch)))
    inputs = torch.nn.functional.one_hot(torch.randint(0, 6, (args.batch, args.rollouts, 41)), 6).float()
    target = torch.log_softmax(torch.randn(args.batch, args.rollouts, 41, 6), -1)
    print(
        f"batch {args.batch} networks of {architecture.spec.num_parameters:,} parameters, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"{'encoder':<12} {'parameters':>11} {'encoder nets/s':>15} {'pretrain nets/s':>16}")
    for name in ENCODER_NAMES:
        encoder = build_encoder(name, architecture, task)
        emulator = Emulator(task)
        optimizer = torch.optim.AdamW(list(encoder.parameters()) + list(emulator.parameters()), lr=1e-4)

        def encoder_only():
            encoder(weights).sum().backward()

        def pretrain_step():
            loss = emulation_loss(emulator(encoder(weights), inputs), target, "categorical").mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        t_encoder = timed(encoder_only, args.repeats)
        t_step = timed(pretrain_step, args.repeats)
        print(f"{name:<12} {encoder.num_parameters:>11,} {args.batch / t_encoder:>15.1f} {args.batch / t_step:>16.1f}")

    probing = Path(__file__).with_name("probing_evaluation.py")
    spec = importlib.util.spec_from_file_location("probing_evaluation", probing)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print("\nprobing: subject-network evaluation, batched vs per-network functional_call loop")
    module.main([f"--networks={args.batch}", f"--repeats={args.repeats}"])


if __name__ == "__main__":
    main()
