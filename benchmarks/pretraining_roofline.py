"""How close emulation pretraining comes to this CPU's matrix-product peak, per encoder and size.

For each encoder, at the reproduction's sizes (``experiments/small-digits.toml``: its encoder
options, batch 32, 4 rollouts per network, emulator 128) and at the paper's (the defaults: batch
64, 10 rollouts, emulator 256, the paper's encoder sizes), this times training steps of one run
(forward, backward, AdamW) on a rotated-digits zoo of the small-digits architecture, counts the
floating-point operations of one step with ``torch.utils.flop_counter`` (on the pure-PyTorch path,
which does the same arithmetic as the compiled kernels), split into the encoder (for the probing
encoders: the subject networks they run on the probes, counted apart) and the emulator, and prints
the achieved GFLOP/s as a share of the measured peak of a 1024 x 1024 float32 matrix product with
the same threads. A low share says where a step spends its time outside the matrix products.

    python benchmarks/pretraining_roofline.py                 # every encoder, both sizes
    python benchmarks/pretraining_roofline.py --encoders probing,interactive --sizes paper
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from weightspace.emulation.config import PretrainConfig
from weightspace.emulation.pretrain import _embed, _loss
from weightspace.emulation.run import RunData, batch_for_step, build_models, oracle_features
from weightspace.encoders import ENCODER_NAMES
from weightspace.networks import fused_cpu
from weightspace.zoo import build_zoo, load_zoo

REPRODUCTION_OPTIONS = {  # experiments/small-digits.toml's [encoder_options]
    "statistics": {"hidden": 128},
    "flattened": {"hidden": 64},
    "transformer": {"width": 64, "layers": 2, "heads": 4, "mlp_hidden": 128},
    "dwsnet": {"channels": 16, "layers": 2},
    "probing": {"probes": 8},
    "interactive": {"probes": 8},
}
SIZES = {
    "reproduction": lambda encoder: PretrainConfig(
        encoder=encoder,
        batch_size=32,
        rollouts_per_network=4,
        emulator_hidden=128,
        learning_rate=1e-3,
        encoder_options=REPRODUCTION_OPTIONS[encoder],
    ),
    "paper": lambda encoder: PretrainConfig(encoder=encoder),
}


def matmul_peak(size: int = 1024, seconds: float = 2.0) -> float:
    """GFLOP/s of repeated float32 ``size`` x ``size`` matrix products (the best of 5 rounds)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            a @ b
            count += 1
        best = max(best, 2 * size**3 * count / (time.perf_counter() - start) / 1e9)
    return best


@contextlib.contextmanager
def pure_pytorch():
    """The pure-PyTorch LSTM paths (the compiled kernels' and oneDNN's arithmetic as matrix
    products the FLOP counter sees)."""
    previous = os.environ.get("WEIGHTSPACE_FUSED")
    os.environ["WEIGHTSPACE_FUSED"] = "0"
    try:  # oneDNN's fused RNN kernels are one opaque call: without them nn.LSTM is matrix products
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a note on Intel GPUs' TF32
            with torch.backends.mkldnn.flags(enabled=False):
                yield
    finally:
        if previous is None:
            del os.environ["WEIGHTSPACE_FUSED"]
        else:
            os.environ["WEIGHTSPACE_FUSED"] = previous


class Run:
    """One pretraining run's models, optimizer and training batches, stepped by hand."""

    def __init__(self, zoo_path: Path, config: PretrainConfig):
        zoo = load_zoo(zoo_path)
        self.task = zoo.task.task_io(zoo)
        features = oracle_features(zoo, "train")
        self.config = config
        self.encoder, self.emulator = build_models(
            config, zoo.architecture, self.task, torch.device("cpu"), features.shape[1], features
        )
        self.train = RunData(zoo, "train", torch.device("cpu"), features)
        parameters = list(self.encoder.parameters()) + list(self.emulator.parameters())
        self.optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
        self.index = 0

    def batch(self):
        self.index += 1
        return batch_for_step(self.train, self.config, self.index, getattr(self.encoder, "augment", False))

    def step(self) -> None:
        subjects, inputs, target = self.batch()
        loss = _loss(self.encoder, self.emulator, self.task, subjects, inputs, target, self.config.loss_reduction)
        self.optimizer.zero_grad()
        loss.mean().backward()
        self.optimizer.step()

    def flops(self) -> dict[str, float]:
        """GFLOP of one step (forward and backward): encoder, its probing subjects, emulator."""
        subjects, inputs, target = self.batch()
        with pure_pytorch():
            with FlopCounterMode(display=False) as whole:
                _loss(self.encoder, self.emulator, self.task, subjects, inputs, target, "mean").mean().backward()
            with FlopCounterMode(display=False) as encoder:
                _embed(self.encoder, subjects).sum().backward()
            probing = None  # the interactive encoder's subjects run inside its loop: not counted apart
            if hasattr(self.encoder, "run_subjects"):  # non-interactive probing: the subjects alone
                probes = self.encoder.probe_inputs().detach().requires_grad_()
                with FlopCounterMode(display=False) as counted:
                    self.encoder.run_subjects(subjects[0], probes).sum().backward()
                probing = counted.get_total_flops() / 1e9
        if not getattr(self.encoder, "probing", False):
            probing = 0.0
        total, encoder_flops = whole.get_total_flops() / 1e9, encoder.get_total_flops() / 1e9
        self.optimizer.zero_grad()
        return {"total": total, "encoder": encoder_flops, "subjects": probing, "emulator": total - encoder_flops}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", default=",".join(ENCODER_NAMES))
    parser.add_argument("--sizes", default="reproduction,paper")
    parser.add_argument("--steps", type=int, default=5, help="Timed training steps per encoder and size.")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    peak = matmul_peak()
    print(f"CPU threads {threads}; LSTM kernel path: {fused_cpu.kernel_path()}")
    print(f"measured peak: {peak:.1f} GFLOP/s (1024 x 1024 float32 matrix products)")
    with tempfile.TemporaryDirectory() as tmp:
        zoo_path = build_zoo(
            Path(tmp) / "zoo",
            "digits",
            dict(models=72, population=36, steps=20, checkpoints=[0, 20], samples=40, rollouts=20),
            progress=False,
        )
        print(
            f"\n{'encoder':<12} {'size':<12} {'steps/s':>8} {'GFLOP/step':>11} {'encoder':>8} {'subjects':>9} "
            f"{'emulator':>9} {'GFLOP/s':>8} {'of peak':>8}"
        )
        for size in args.sizes.split(","):
            for encoder in args.encoders.split(","):
                config = SIZES[size](encoder)
                run = Run(zoo_path, dataclasses.replace(config, steps=args.steps + 2))
                for _ in range(2):  # warm-up (kernels built, buffers allocated)
                    run.step()
                start = time.perf_counter()
                for _ in range(args.steps):
                    run.step()
                per_step = (time.perf_counter() - start) / args.steps
                flops = run.flops()
                rate = flops["total"] / per_step
                print(
                    f"{encoder:<12} {size:<12} {1 / per_step:>8.2f} {flops['total']:>11.3f} {flops['encoder']:>8.3f} "
                    f"{'-' if flops['subjects'] is None else format(flops['subjects'], '.3f'):>9} "
                    f"{flops['emulator']:>9.3f} {rate:>8.1f} {rate / peak:>8.1%}"
                )


if __name__ == "__main__":
    main()
