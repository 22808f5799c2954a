"""Encoders learn: on a zoo whose networks differ only in their task, a mechanistic and a probing
encoder beat the constant-embedding floor by a clear margin; z reaches the emulator normalised."""

from __future__ import annotations

import json

import pytest
import torch

import toy_task
from weightspace.emulation import Emulator, PretrainConfig, pretrain, run_summary
from weightspace.encoders.base import TaskIO
from weightspace.zoo import build_zoo

BUDGET = dict(
    steps=400,
    batch_size=8,
    rollouts_per_network=4,
    val_rollouts=8,
    eval_every=50,
    patience=100,
    emulator_hidden=32,
    learning_rate=3e-3,
)


@pytest.fixture(scope="module")
def task_only_zoo(tmp_path_factory):
    """256 shifted-copy networks, all trained to perfection: only their task (the shift) differs."""
    toy_task.register()
    return build_zoo(
        tmp_path_factory.mktemp("zoo") / "toy",
        "shifted-copy",
        {"models": 256, "population": 64, "steps": 100, "checkpoints": [100], "rollouts": 8},
        progress=False,
    )


def test_mechanistic_and_probing_encoders_beat_the_constant_floor(task_only_zoo, tmp_path):
    # DWSNet sits on a plateau near 0.25 before it drops below 0.01, and where it leaves the plateau
    # (step 250 or 550 here) turns on the zoo's last float bits: the budget covers both
    budget = {**BUDGET, "steps": 800, "patience": 400}
    first = pretrain(
        task_only_zoo,
        tmp_path / "dwsnet",
        PretrainConfig(encoder="dwsnet", encoder_options={"channels": 4, "layers": 2}, **budget),
        progress=False,
    )
    shared = {name: first / "references" / name for name in ("constant", "oracle")}
    pretrain(
        task_only_zoo,
        tmp_path / "probing",
        PretrainConfig(
            encoder="probing", encoder_options={"probes": 2, "reader_hidden": 16, "mlp_hidden": 16}, **budget
        ),
        progress=False,
        references=shared,
    )
    for encoder in ("dwsnet", "probing"):
        summary = run_summary(tmp_path / encoder)
        assert summary["oracle"] < summary["constant"] / 5  # the task is what the emulator needs to know
        assert summary["val_loss"] < summary["constant"] / 3, (encoder, summary)
    lines = [json.loads(line) for line in (tmp_path / "probing" / "metrics.jsonl").read_text().splitlines()]
    assert all("constant_val_loss" in line and "oracle_val_loss" in line for line in lines)


@pytest.mark.parametrize("condition_at_width", [True, False])
def test_z_reaches_the_emulator_normalised_whatever_its_scale(condition_at_width):
    task = TaskIO("categorical", 6, "categorical", 6, probe_length=5)
    emulator = Emulator(task, embedding_size=16, hidden=8, condition_at_width=condition_at_width)
    z = torch.randn(3, 16)
    inputs = torch.nn.functional.one_hot(torch.randint(6, (3, 2, 5)), 6).float()
    reference = emulator(z, inputs)
    for scale in (1e-4, 1e3, 1e8):
        assert torch.allclose(emulator.condition(scale * z), emulator.condition(z), atol=1e-5)
        assert torch.allclose(emulator(scale * z, inputs), reference, atol=1e-5)
    raw = Emulator(task, embedding_size=16, hidden=8, normalize_embedding=False, condition_at_width=condition_at_width)
    assert not torch.allclose(raw(1e3 * z, inputs), raw(z, inputs), atol=1e-3)  # the setting really switches it off
