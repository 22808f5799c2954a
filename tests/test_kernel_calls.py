"""What a population LSTM training step costs, counted rather than timed (issue 28).

The fused kernel runs a whole layer, all time steps, in one call: a training step makes a fixed
number of kernel calls and torch ops whatever the sequence length. A change that puts a per-time-
step or per-network cost back (a Python loop, a fallback to the pure path on the demo's shapes)
changes these counts and fails here, on any machine, busy or not.
"""

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from weightspace.networks import LSTM, fused_cpu
from weightspace.networks.lstm_kernel import fused_wins
from weightspace.training import PopulationTrainer
from weightspace.zoo.builder import build_zoo


class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the calls of each fused_cpu entry point."""
    monkeypatch.delenv("WEIGHTSPACE_FUSED", raising=False)
    if not fused_cpu.available():
        pytest.skip("the fused kernel does not run here")
    calls = {}
    for name in ("forward_layer", "backward_layer", "readout_cross_entropy_forward", "readout_cross_entropy_backward"):
        original = getattr(fused_cpu, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(fused_cpu, name, counted)
    return calls


def _ops_per_step(length, monkeypatch, layers=2, models=3, fused=True):
    monkeypatch.setenv("WEIGHTSPACE_FUSED", "1" if fused else "0")
    architecture = LSTM(6, 8, layers, 6)
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(models, 4, length, 6, generator=g), torch.randint(0, 6, (models, 4, length), generator=g))
    trainer = PopulationTrainer(
        architecture, architecture.init(np.arange(models)), lambda step: batch, 5, lr=0.01, weight_decay=0.0
    )
    trainer.train_step()  # warm: the library is built and the optimizer's state exists
    with _CountOps() as ops:
        trainer.train_step()
    return ops.count


def test_a_fused_training_step_costs_the_same_ops_at_any_sequence_length(kernel_calls, monkeypatch):
    short, long = (_ops_per_step(T, monkeypatch=monkeypatch) for T in (3, 24))
    assert short == long
    # the pure path loops over time steps: the count would have caught a fallback to it
    assert _ops_per_step(24, fused=False, monkeypatch=monkeypatch) > _ops_per_step(
        3, fused=False, monkeypatch=monkeypatch
    )


def test_a_fused_training_step_costs_the_same_ops_for_any_population_size(kernel_calls, monkeypatch):
    assert _ops_per_step(5, models=2, monkeypatch=monkeypatch) == _ops_per_step(5, models=9, monkeypatch=monkeypatch)


def test_a_zoo_build_calls_the_kernel_once_per_layer_and_step(kernel_calls, tmp_path):
    """Two layers, 6 steps: 12 forward and 12 backward layer calls and one fused readout each way
    per step; evaluation samples step by step with torch ops and never calls the layer kernel."""
    steps = 6
    build_zoo(
        tmp_path / "zoo",
        "formal-languages",
        dict(models=4, steps=steps, population=4, checkpoints=[0, steps], samples=10, rollouts=2, seed=1),
        progress=False,
    )
    assert kernel_calls == {
        "forward_layer": 2 * steps,
        "backward_layer": 2 * steps,
        "readout_cross_entropy_forward": steps,
        "readout_cross_entropy_backward": steps,
    }


def test_the_demo_shapes_take_the_fused_path(kernel_calls):
    """The subject networks (hidden 32) always take the kernel; large LSTMs only where measured faster."""
    assert fused_wins(1, 32) and fused_wins(64, 32) and fused_wins(1, 64)
    assert not fused_wins(1, 256)
