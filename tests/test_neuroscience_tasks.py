"""Paper 002's tasks: each generator's definition, the threshold trainer (a network stops on its
own, exactly as it would alone), and a condition's zoo (deterministic, resumes after a kill)."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import weightspace as ws
from weightspace import counter_rng
from weightspace.networks.mean_field import MeanFieldRNN
from weightspace.tasks import get_task, trials
from weightspace.training.threshold import StoppingRule, ThresholdTrainer
from weightspace.zoo import build_zoo, load_zoo

KEYS = np.array([3, 17, 101])


def test_flip_flop_outputs_hold_the_last_nonzero_input():
    t = trials.flip_flop(KEYS, 7, batch=4, steps=60, channels=3, p_switch=0.1)
    assert t.inputs.shape == t.targets.shape == (3, 4, 60, 3)
    assert set(t.inputs.unique().tolist()) == {-1.0, 0.0, 1.0}
    held = torch.zeros(3, 4, 3)
    for step in range(60):
        x = t.inputs[:, :, step]
        held = torch.where(x != 0, x, held)
        assert torch.equal(t.targets[:, :, step], held)


def test_delayed_discrimination_answers_the_sign_of_f2_minus_f1_after_the_second_pulse():
    t = trials.delayed_discrimination(KEYS, 7, batch=16, delay_range=(5, 20), auxiliary=True)
    assert t.targets.shape[-1] == 2
    for k in range(3):
        for b in range(16):
            x = t.inputs[k, b, :, 0]
            pulses = (x > 0).nonzero().squeeze(1)
            first, second = pulses[: trials.PULSE], pulses[trials.PULSE :]
            assert len(pulses) == 2 * trials.PULSE
            delay = int(second[0] - first[-1] - 1)
            assert 5 <= delay <= 20
            f1, f2 = x[first[0]].item() * 10, x[second[0]].item() * 10
            response = t.mask[k, b].nonzero().squeeze(1)
            assert len(response) == trials.RESPONSE and response[0] == second[-1] + 1
            assert torch.all(t.targets[k, b, response, 0] == math.copysign(1, f2 - f1))
            assert t.targets[k, b, response, 1] == pytest.approx(torch.full((10,), abs(f2 - f1) / 8), abs=1e-5)
            assert torch.all(t.targets[k, b, t.mask[k, b] == 0] == 0)
    ood = trials.delayed_discrimination(KEYS, 7, batch=4, delay_range=(10, 40))
    assert ood.inputs.shape[2] == t.inputs.shape[2] + 20


def test_sine_targets_follow_the_frequency_the_input_selects():
    t = trials.sine_generation(KEYS, 7, batch=8, steps=50, frequencies=4, dt=0.004)
    f = t.inputs[..., 0, 0] * 30
    chosen = (f.reshape(-1, 1) - torch.linspace(1, 30, 4)).abs().min(1).values
    assert chosen.max() < 1e-4  # one of the 4 evenly spaced frequencies
    assert torch.all(t.inputs == t.inputs[:, :, :1])  # static
    time = 0.004 * torch.arange(1, 51)
    assert t.targets[..., 0] == pytest.approx(torch.sin(2 * math.pi * f[..., None] * time), abs=1e-4)


@pytest.mark.parametrize("dimensions", [2, 3])
def test_path_integration_is_the_cumulative_sum_of_the_velocities(dimensions):
    t = trials.path_integration(KEYS, 7, batch=8, steps=200, dimensions=dimensions)
    heading, speed = t.inputs[..., :dimensions], t.inputs[..., dimensions:]
    assert heading.norm(dim=-1) == pytest.approx(torch.ones(3, 8, 200), abs=1e-5)
    assert t.targets == pytest.approx((heading * speed).cumsum(2), abs=1e-4)
    assert t.targets.abs().max() <= trials.ARENA and speed.max() <= trials.MAX_SPEED


def test_trials_depend_on_the_network_key_only():
    for make in (
        lambda k: trials.flip_flop(k, 5, 4),
        lambda k: trials.path_integration(k, 5, 4, steps=30),
        lambda k: trials.delayed_discrimination(k, 5, 4),
        lambda k: trials.sine_generation(k, 5, 4, 20),
    ):
        together, alone = make(KEYS), make(KEYS[1:2])
        assert torch.equal(together.inputs[1:2], alone.inputs) and torch.equal(together.targets[1:2], alone.targets)


# ---- the threshold trainer ------------------------------------------------------------------------
def _trainer(keys, lr, architecture=None, **rule):
    architecture = architecture or ws.RNN(2, 8, 1, 2)

    def batch(step, networks):
        t = trials.flip_flop(
            keys[networks.numpy()], counter_rng.stream_id("test", step), 8, steps=20, channels=2, p_switch=0.2
        )
        return t.inputs, t.targets, t.mask

    settings = dict(threshold=0.3, patience_epochs=2, steps_per_epoch=4, max_epochs=15) | rule
    return ThresholdTrainer(architecture, architecture.init(keys), batch, StoppingRule(**settings), lr)


def test_a_network_stops_in_a_population_exactly_as_it_would_alone():
    keys = np.array([1, 2, 3, 4])
    lr = np.array([0.05, 0.02, 0.005, 0.0001])  # fast to never: they stop at different epochs
    together = _trainer(keys, lr)
    together.run([0, together.total_steps], lambda step, weights: None)
    stops = together.stop_step.tolist()
    assert len(set(stops)) > 1 and together.converged[0] and not together.converged[3]
    assert stops[3] == together.total_steps  # never converged: trained to the end, flagged
    for k in range(4):
        alone = _trainer(keys[k : k + 1], lr[k : k + 1])
        alone.run([0, alone.total_steps], lambda step, weights: None)
        assert alone.stop_step.item() == stops[k] and alone.converged_epoch.item() == together.converged_epoch[k]
        for name, tensor in alone.weights.items():
            torch.testing.assert_close(tensor[0], together.weights[name][k], rtol=1e-5, atol=1e-6)


def test_stopped_networks_keep_their_weights_and_converge_at_the_threshold():
    trainer = _trainer(np.array([1, 2]), [0.05, 0.05])
    weights = {}
    trainer.run([0, trainer.total_steps], lambda step, w: weights.setdefault(step, w))
    rule = trainer.rule
    for k in range(2):
        epoch = trainer.converged_epoch[k].item()
        assert epoch > 0 and trainer.stop_step[k] == (epoch + rule.patience_epochs) * rule.steps_per_epoch


def test_reduce_on_plateau_halves_a_stalled_learning_rate():
    trainer = _trainer(np.array([1]), [1e-6], threshold=1e-9, plateau_patience=1, max_epochs=6)
    trainer.run([trainer.total_steps], lambda step, w: None)
    assert trainer.lr.item() < 1e-6  # no progress at this rate: halved at least once


def test_nuclear_and_l1_penalties_shrink_the_recurrent_matrix():
    keys = np.array([1, 2, 3])
    norms = {}
    for regulariser, strength in (("none", 0.0), ("nuclear", 0.05), ("l1", 0.01)):
        trainer = _trainer(keys, [0.01] * 3, threshold=1e-9, max_epochs=10)
        trainer.regularizer, trainer.strength[:] = regulariser, strength
        trainer.run([trainer.total_steps], lambda step, w: None)
        norms[regulariser] = trainer.weights["rnn.weight_hh_l0"]
    assert torch.linalg.svdvals(norms["nuclear"]).sum() < torch.linalg.svdvals(norms["none"]).sum()
    assert norms["l1"].abs().sum() < norms["none"].abs().sum()


def test_mean_field_rnn_is_the_leaky_update_with_a_scaled_readout():
    architecture = MeanFieldRNN(2, 6, 3, gamma=2.0, tau=0.1)
    weights = architecture.init([4, 5])
    x = torch.randn(2, 3, 7, 2)
    outputs, _, hidden = architecture.forward(weights, x, return_hidden=True)
    J, U, W = weights["rnn.weight_hh_l0"], weights["rnn.weight_ih_l0"], weights["readout.weight"]
    h = torch.zeros(2, 3, 6)
    for t in range(7):
        h = h + 0.1 * (
            -h + torch.einsum("kij,kbj->kbi", J, torch.tanh(h)) / 6 + torch.einsum("kij,kbj->kbi", U, x[:, :, t])
        )
        torch.testing.assert_close(hidden[:, :, t], h)
        torch.testing.assert_close(outputs[:, :, t], torch.einsum("kij,kbj->kbi", W, torch.tanh(h)) / (2.0 * 6))
    assert weights["rnn.weight_hh_l0"].var().item() == pytest.approx(1.0, abs=0.25)  # O(1) entries


# ---- a condition's zoo ----------------------------------------------------------------------------
TINY = {
    "models": 3,
    "population": 3,
    "hidden_size": 8,
    "steps": 48,
    "steps_per_epoch": 8,
    "threshold": 0.3,
    "channels": 2,
    "trial_steps": 20,
    "batch_size": 8,
    "evaluation_trials": 16,
    "save_every": 8,
}


def _build(out, **changes):
    return build_zoo(out, "flip-flop", {**TINY, **changes}, progress=False)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("flip-flop") / "zoo")


def test_a_condition_zoo_has_the_initial_and_the_trained_network_and_its_knobs(tiny_zoo):
    zoo = load_zoo(tiny_zoo)
    table = zoo.table
    assert list(table["step"]) == [0, 48] * 3
    for column in ("channels", "hidden_size", "gamma", "regularizer", "converged", "stop_step", "test_mse", "ood_mse"):
        assert column in table
    final = table[table["step"] == 48]
    assert (final["test_mse"] < table[table["step"] == 0]["test_mse"].to_numpy()).all()
    assert (final["stop_step"] > 0).all() and (final["stop_step"] <= 48).all()


def test_condition_zoo_is_deterministic_and_resumes_after_a_kill(tiny_zoo, tmp_path):
    out = tmp_path / "killed"
    code = (
        "import sys; from weightspace.zoo import build_zoo; "
        f"build_zoo(sys.argv[1], 'flip-flop', {TINY!r}, progress=False)"
    )
    env = {**os.environ, "WEIGHTSPACE_FAULT_AFTER_WRITES": "3", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True)
    assert result.returncode == 137, result.stderr
    assert (out / "progress").exists()
    _build(out)
    zoo, resumed = load_zoo(tiny_zoo), load_zoo(out)
    assert zoo.table.equals(resumed.table)
    assert torch.equal(zoo.weights().flatten(), resumed.weights().flatten())


def test_mean_field_condition_scales_the_learning_rate_by_gamma():
    task = get_task("delayed-discrimination")
    config = task.config({"parametrisation": "mean-field", "gamma": 10.0, "learning_rate": 1e-3, "auxiliary": True})
    assert task.plan(config)["learning_rate"].iloc[0] == pytest.approx(1e-2)
    architecture = task.architecture(config)
    assert isinstance(architecture, MeanFieldRNN) and architecture.output_size == 2
    assert ws.networks.architecture_from_spec(architecture.spec.to_json()) == architecture


@pytest.mark.parametrize(
    "values, message",
    [
        ({"steps": 100, "steps_per_epoch": 8}, "multiple of steps_per_epoch"),
        ({"parametrisation": "muP"}, "parametrisation must be one of"),
        ({"regularizer": "l2"}, "regularizer must be one of"),
    ],
)
def test_bad_settings_are_one_clear_error(values, message):
    with pytest.raises(ws.errors.ConfigError, match=message):
        get_task("flip-flop").config(values)


def test_a_network_counts_as_converged_only_if_its_stored_weights_meet_the_threshold(tmp_path, monkeypatch):
    final = load_zoo(_build(tmp_path / "zoo", threshold=0.5)).table.query("step == 48")
    trained, held_out = final["converged_in_training"] > 0.5, final["test_mse"] <= 0.5
    assert trained.all() and (final["converged"] > 0.5).equals(trained & held_out)
    # the same networks, whose stored weights miss the threshold on the held-out trials
    from weightspace.tasks.neuroscience import NeuroscienceTask

    monkeypatch.setattr(NeuroscienceTask, "evaluation_mse", lambda self, a, w, c, keys, *rest: torch.ones(len(keys)))
    missed = load_zoo(_build(tmp_path / "missed", threshold=0.5)).table.query("step == 48")
    assert missed["converged_in_training"].equals(final["converged_in_training"])
    assert (missed["converged"] == 0).all()
