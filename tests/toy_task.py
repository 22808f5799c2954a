"""A toy task family written outside the library, as a user would: "copy the input, shifted".

Each network reads random tokens and must output, at every step, the token it just read plus the
run's shift (mod the vocabulary). The shift is the run's task. Shift 3 is out of distribution.
The whole family is this one module plus :func:`register`; no library code knows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from weightspace import counter_rng
from weightspace.downstream.targets import Classification, Regression
from weightspace.encoders.base import TaskIO
from weightspace.errors import ConfigError
from weightspace.networks import LSTM
from weightspace.tasks import get_task, register_task
from weightspace.tasks.base import LSTMTaskConfig, ShardTask, Task

VOCAB = 4
LENGTH = 8
SHIFTS = (0, 1, 2, 3)
OOD_SHIFT = 3


@dataclass(frozen=True)
class ShiftedCopyConfig(LSTMTaskConfig):  # the library's LSTM settings, with the toy's own defaults
    models: int = 8
    steps: int = 60
    population: int = 8
    batch_size: int = 16
    learning_rate: float = 0.02
    weight_decay: float = 0.0
    hidden_size: int = 8
    num_layers: int = 1
    samples: int = 64
    rollouts: int = 8


def _tokens(keys, stream: int, count: int) -> torch.Tensor:
    return counter_rng.integers(keys, stream, 0, VOCAB, (count, LENGTH))  # (K, count, LENGTH)


class ShiftedCopy(Task):
    name = "shifted-copy"
    summary = "copy the input token plus the run's shift (a toy family defined in the tests)"
    config_class = ShiftedCopyConfig
    split_key = "shift"
    plot_columns = ("shift", "accuracy")

    def architecture(self, config):
        return LSTM(VOCAB, config.hidden_size, config.num_layers, VOCAB)

    def plan(self, config) -> pd.DataFrame:
        shifts = np.arange(config.models) % len(SHIFTS)  # every shift equally often
        draw = counter_rng.uniform([config.seed], counter_rng.stream_id("split"), (config.models,))[0].numpy()
        return pd.DataFrame(
            {
                "run_id": np.arange(config.models),
                "split": np.where(shifts == OOD_SHIFT, "ood", np.where(draw < 0.25, "val", "train")),
                "seed": counter_rng.derive_seeds(config.seed, config.models),
                "learning_rate": np.full(config.models, config.learning_rate),
                "weight_decay": np.full(config.models, config.weight_decay),
                "shift": shifts,
            }
        )

    def shard_task(self, runs, config, device) -> ShardTask:
        keys = runs["seed"].to_numpy()
        shift = torch.as_tensor(runs["shift"].to_numpy(copy=True))[:, None, None]

        def batch(step):
            tokens = _tokens(keys, counter_rng.stream_id("batch", step), config.batch_size)
            return F.one_hot(tokens, VOCAB).float().to(device), ((tokens + shift) % VOCAB).to(device)

        @torch.no_grad()
        def evaluate(architecture, weights, step):
            tokens = _tokens(keys, counter_rng.stream_id("evaluate"), config.samples).to(device)
            logits = architecture.forward(weights, F.one_hot(tokens, VOCAB).float())[0]
            accuracy = (logits.argmax(-1) == (tokens + shift.to(device)) % VOCAB).float().mean((1, 2))
            logprobs = torch.log_softmax(logits[:, : config.rollouts], -1)
            return {"accuracy": accuracy}, {"tokens": tokens[:, : config.rollouts], "logprobs": logprobs}

        return ShardTask(batch, evaluate)

    def store_rollout(self, name, tensor):
        return tensor.to(torch.uint8) if name == "tokens" else tensor.to(torch.float16)

    def describe(self, config) -> dict:
        return {
            "task": {"family": "output (input token + shift) mod 4"},
            "splits": {"rule": f"ood = shift {OOD_SHIFT}; a quarter of the rest val"},
            "rollouts": {
                "count": config.rollouts,
                "tensors": {
                    "tokens": {"shape": [config.rollouts, LENGTH], "stored_dtype": "uint8"},
                    "logprobs": {"shape": [config.rollouts, LENGTH, VOCAB], "stored_dtype": "float16"},
                },
            },
        }

    def task_io(self, zoo) -> TaskIO:
        return TaskIO("categorical", VOCAB, "categorical", VOCAB, probe_length=LENGTH)

    def emulation_data(self, zoo, rollouts):
        return F.one_hot(rollouts["tokens"], VOCAB).float(), rollouts["logprobs"]

    def emulated_performance(self, run, zoo, indices, z, samples, seed):
        rollouts = zoo.rollout_batch(indices)
        shift = torch.as_tensor(zoo.table["shift"].to_numpy()[indices])[:, None, None]
        target = (rollouts["tokens"] + shift) % VOCAB
        emulated = run.emulator(z, F.one_hot(rollouts["tokens"], VOCAB).float())
        return (zoo.table["accuracy"].to_numpy()[indices], (emulated.argmax(-1) == target).float().mean((1, 2)).numpy())

    def targets(self, zoo) -> list:
        return [
            Classification("shift", ("shift",), SHIFTS, chance={"accuracy": 1 / len(SHIFTS)}),
            Regression("accuracy", ("accuracy",)),
        ]


def register() -> Task:
    """Register the toy family once per process (tests may import this module many times)."""
    try:
        return get_task(ShiftedCopy.name)
    except ConfigError:
        return register_task(ShiftedCopy())


def experiment_toml(results, zoo, seeds=(0,)) -> str:
    """A small paper-000 experiment on a toy zoo: two encoders, short budgets."""
    seeds = list(seeds)
    return f"""
name = "toy"
seeds = {seeds}
encoders = ["statistics", "probing"]
supervised_targets = ["shift"]
results_dir = "{results}"

[[zoos]]
name = "toy"
kind = "shifted-copy"
path = "{zoo}"
checkpoints = [0, 60]

[pretrain]
steps = 10
batch_size = 4
rollouts_per_network = 2
val_rollouts = 2
eval_every = 5
emulator_hidden = 16

[predictor]
steps = 20
eval_every = 10

[supervised]
steps = 5
eval_every = 5

[encoder_options]
statistics = {{ hidden = 16 }}
probing = {{ probes = 2, reader_hidden = 8, mlp_hidden = 8 }}

[analyses]
fidelity_samples = 4
"""
