"""Pretraining S seeds of one encoder one after another, then as one batched computation.

Builds a small formal-language zoo (32 LSTMs 2 x 32, as the demo's) in a temporary directory and
pretrains seeds 0..S-1 of ``--encoder`` twice, in one run: with ``pretrain`` one seed after the
other, then with ``pretrain_seeds`` all at once (no references, one validation at the end). It
does so at the demo's sizes (experiments/demo.toml: batch 16, 4 rollouts, emulator 64, the demo's
encoder options) and at the paper's (batch 64, 10 rollouts, emulator 256, the paper's encoder),
prints seed-steps per second for each, checks that both ways gave the same losses, and as its
last line ``speedup: <ratio>x`` at the demo's sizes.

    python benchmarks/pretraining.py
    python benchmarks/pretraining.py --encoder probing --sizes demo
    python benchmarks/pretraining.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from weightspace._allocator import keep_freed_memory
from weightspace.emulation import PretrainConfig, pretrain
from weightspace.emulation.seeds import batching_problem, pretrain_seeds
from weightspace.zoo import build_zoo

#: experiments/demo.toml's [pretrain] and [encoder_options]
DEMO = dict(batch_size=16, rollouts_per_network=4, val_rollouts=8, emulator_hidden=64, learning_rate=0.002)
DEMO_ENCODERS = {
    "statistics": {"hidden": 64},
    "flattened": {"hidden": 32},
    "transformer": {"width": 32, "layers": 2, "heads": 2, "mlp_hidden": 64},
    "dwsnet": {"channels": 8, "layers": 2},
    "probing": {"probes": 4, "reader_hidden": 32, "mlp_hidden": 32},
    "interactive": {"probes": 4, "reader_hidden": 32, "mlp_hidden": 32},
}
PAPER = dict(batch_size=64, rollouts_per_network=10, val_rollouts=10, emulator_hidden=256, learning_rate=1e-4)


def configs(encoder: str, size: str, seeds: int, steps: int) -> list[PretrainConfig]:
    settings = dict(DEMO, encoder_options=DEMO_ENCODERS[encoder]) if size == "demo" else dict(PAPER)
    return [
        PretrainConfig(encoder=encoder, steps=steps, eval_every=steps, patience=10, seed=s, **settings)
        for s in range(seeds)
    ]


def last_losses(runs) -> list[float]:
    return [json.loads((Path(r) / "metrics.jsonl").read_text().splitlines()[-1])["train_loss"] for r in runs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="dwsnet", choices=sorted(DEMO_ENCODERS))
    parser.add_argument("--seeds", type=int, default=4, help="S seeds (default 4)")
    parser.add_argument(
        "--sizes", default="paper,demo", help="comma-separated: demo, paper (demo last: its ratio ends the output)"
    )
    parser.add_argument("--demo-steps", type=int, default=40)
    parser.add_argument("--paper-steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as the CLI does
    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # its first use imports torch._dynamo (~1.4 s): not timed
    if batching_problem(args.encoder):
        print(f"note: {args.encoder} seeds train one at a time ({batching_problem(args.encoder)})")
    print(f"encoder {args.encoder}, S={args.seeds} seeds, device {args.device}, {torch.get_num_threads()} threads")
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        zoo = build_zoo(
            tmp / "zoo",
            "formal-languages",
            dict(models=32, population=32, steps=20, checkpoints=[0, 20], samples=40, rollouts=12),
            progress=False,
        )
        for size in args.sizes.split(","):
            steps = args.demo_steps if size == "demo" else args.paper_steps
            seeds = configs(args.encoder, size, args.seeds, steps)
            start = time.perf_counter()
            alone = [
                pretrain(zoo, tmp / size / "alone" / f"seed-{c.seed}", c, args.device, progress=False, references=False)
                for c in seeds
            ]
            t_alone = time.perf_counter() - start
            start = time.perf_counter()
            together = pretrain_seeds(
                zoo,
                [tmp / size / "together" / f"seed-{c.seed}" for c in seeds],
                seeds,
                args.device,
                progress=False,
                references=False,
                log=lambda m: None,
            )
            t_together = time.perf_counter() - start
            work = args.seeds * steps
            difference = max(abs(a - b) / abs(a) for a, b in zip(last_losses(alone), last_losses(together)))
            print(f"{size} sizes ({steps} steps per seed, one validation):")
            print(f"  one after another   {work / t_alone:8.2f} seed-steps/s  [{t_alone:.1f} s]")
            print(f"  as one population   {work / t_together:8.2f} seed-steps/s  [{t_together:.1f} s]")
            print(f"  largest relative difference of the seeds' losses: {difference:.1e}")
            ratios[size] = t_alone / t_together
            print(f"  {size} speedup: {ratios[size]:.2f}x")
    if "demo" in ratios:
        print(f"speedup: {ratios['demo']:.2f}x")


if __name__ == "__main__":
    main()
