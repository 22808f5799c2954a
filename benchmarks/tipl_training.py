"""TIPL's causal transformer: training steps/s, and what checkpointing costs, side by side in one run.

Trains the paper's model (Decision Transformer's gym settings: width 128, 3 layers, 1 head,
context 20, batch 64) on synthetic token trajectories of the paper's InvertedPendulum shape
(``--trials`` training trials of ``--snapshots`` tokens of size ``--rank``) twice, with the same
seed: once without a checkpoint, once writing the whole training state every ``--every`` steps
(``train_tipl(checkpoint=...)``, as the experiment's TIPL step does). Prints steps/s of each, the
ratio, and the projected time of 50k steps (issue's minimum) and of the paper's 500k steps
(50 iterations of 10k batches) at the faster rate.

    python benchmarks/tipl_training.py
    python benchmarks/tipl_training.py --device cuda --steps 2000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from weightspace.threads import intra_op_threads
from weightspace.tipl import TIPLConfig, train_tipl

PAPER_STEPS, MINIMUM_STEPS = 500_000, 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed training steps per side")
    parser.add_argument("--every", type=int, default=100, help="checkpoint interval of the checkpointed side")
    parser.add_argument("--trials", type=int, default=40, help="training trials (paper: 50, 10 held out)")
    parser.add_argument("--snapshots", type=int, default=2000, help="tokens per trial (paper IP: 2,000)")
    parser.add_argument("--rank", type=int, default=64, help="token size d")
    parser.add_argument("--parameters", type=int, default=122, help="P, for the loss's units (IP 2x8 actor)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()

    g = torch.Generator().manual_seed(0)
    sequences = [
        torch.cumsum(0.01 * torch.randn(args.snapshots, args.rank, generator=g), 0) for _ in range(args.trials)
    ]
    scales = [torch.linspace(10.0, 0.1, args.rank)] * args.trials
    config = TIPLConfig(steps=args.steps)
    warm = TIPLConfig(steps=5)
    seconds = {}
    with intra_op_threads(args.threads or torch.get_num_threads()), tempfile.TemporaryDirectory() as folder:
        train_tipl(sequences, scales, args.parameters, warm, progress=False, device=args.device)  # warm-up
        for name, checkpoint in (("no checkpoint", None), ("checkpointed", Path(folder) / "training.safetensors")):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            _, losses = train_tipl(
                sequences,
                scales,
                args.parameters,
                config,
                progress=False,
                device=args.device,
                checkpoint=checkpoint,
                checkpoint_every=args.every,
            )
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[name] = time.perf_counter() - start
            size = checkpoint.stat().st_size / 2**20 if checkpoint else 0.0
            print(
                f"{name:14s}: {args.steps / seconds[name]:7.1f} steps/s ({seconds[name]:.1f} s, "
                f"final loss {losses[-1]:.3g}{f', checkpoint {size:.1f} MiB' if checkpoint else ''})"
            )
    rate = args.steps / min(seconds.values())
    print(f"device: {args.device}, threads: {args.threads or torch.get_num_threads()}")
    print(
        f"projected: {MINIMUM_STEPS:,} steps {MINIMUM_STEPS / rate / 3600:.2f} h, "
        f"{PAPER_STEPS:,} steps {PAPER_STEPS / rate / 3600:.2f} h"
    )
    print(f"checkpoint overhead: {seconds['checkpointed'] / seconds['no checkpoint']:.3f}x")


if __name__ == "__main__":
    main()
