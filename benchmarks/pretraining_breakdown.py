"""Where batching S pretraining seeds gains and where it cannot: the encoder and the emulator apart.

At the demo's sizes (experiments/demo.toml) this times, for one training batch, the encoder's
forward and backward for one seed alone and for S seeds batched (``pretrain_seeds``' vmap path),
then the emulator's LSTM forward and backward: ``nn.LSTM`` (oneDNN) for one seed against the
population engine for S seeds. A part whose per-seed time does not fall when batched is bound by
the work itself (memory traffic or arithmetic), not by per-call overhead, and caps what batching
seeds can gain on this machine. The last line is the encoder's ratio.

    python benchmarks/pretraining_breakdown.py
    python benchmarks/pretraining_breakdown.py --encoder statistics
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from pretraining import DEMO_ENCODERS, configs
from weightspace.emulation.run import batch_for_step
from weightspace.emulation.seeds import _lstm, _SeedPopulation
from weightspace.networks.weights import Population
from weightspace.zoo import build_zoo


def timed(function, repeats: int = 20) -> float:
    """Milliseconds per call, after three warm-up calls."""
    for _ in range(3):
        function()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats * 1e3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--encoder", default="dwsnet", choices=sorted(set(DEMO_ENCODERS) - {"interactive", "transformer"})
    )
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args(argv)
    S = args.seeds
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        zoo = build_zoo(
            tmp / "zoo",
            "formal-languages",
            dict(models=32, population=32, steps=20, checkpoints=[0, 20], samples=40, rollouts=12),
            progress=False,
        )
        seeds = configs(args.encoder, "demo", S, 40)
        population = _SeedPopulation(
            zoo,
            [tmp / f"seed-{i}" for i in range(S)],
            seeds,
            torch.device("cpu"),
            False,
            [False] * S,
            lambda message: None,
        )
        population._stack(list(range(S)))
        samples = [batch_for_step(population.train, seeds[i], 0, population.augmenting) for i in range(S)]
        weights = {name: torch.stack([s[0][0][name] for s in samples]) for name in samples[0][0][0]}
        features = torch.stack([s[0][1] for s in samples])
        encoder, emulator = population.models[0]
        one = Population(encoder.spec, {name: tensor[0] for name, tensor in weights.items()})

        def encoder_alone():
            (encoder(features[0]) if getattr(encoder, "reads_features", False) else encoder(one)).sum().backward()

        def encoder_batched():
            population._embed(weights, features).sum().backward()

        inputs = samples[0][1].reshape(-1, *samples[0][1].shape[-2:])  # (N R, T, I)
        x = torch.randn(len(inputs), inputs.shape[1], emulator.lstm.input_size)

        def lstm_alone():
            emulator.readout(emulator.lstm(x)[0]).sum().backward()

        def lstm_batched():
            _lstm(
                x.expand(S, *x.shape), population.emulator_params, "lstm.", "readout.", emulator.lstm.num_layers
            ).sum().backward()

        rows = [
            ("encoder " + args.encoder, timed(encoder_alone), timed(encoder_batched)),
            ("emulator LSTM", timed(lstm_alone), timed(lstm_batched)),
        ]
    print(f"demo sizes, one training batch, forward + backward, {torch.get_num_threads()} threads, S={S} seeds")
    for name, alone, batched in rows:
        print(
            f"{name:<22} alone {alone:7.2f} ms/seed   batched {batched / S:7.2f} ms/seed   "
            f"ratio {alone / (batched / S):.2f}x"
        )
    print(f"encoder ratio: {rows[0][1] / (rows[0][2] / S):.2f}x")


if __name__ == "__main__":
    main()
