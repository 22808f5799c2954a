"""TIPL (paper 003): temporal SVD, the causal transformer and its loss, training, rollout, and the
weight-space forecasters it is compared with."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from weightspace.errors import ConfigError
from weightspace.threads import intra_op_threads
from weightspace.tipl import (
    FORECASTERS,
    Basis,
    CausalTransformer,
    ParameterMLPForecaster,
    TIPLConfig,
    copy_last,
    fit_basis,
    linear_extrapolation,
    per_run_bases,
    pooled_basis,
    rollout,
    svd,
    svd_trimmed,
    tokens,
    train_tipl,
    weight_space_mse,
)

TINY = TIPLConfig(width=16, layers=1, heads=2, context=6, batch_size=16, steps=20, warmup=5)


def random_trajectories(count, length, parameters, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(length, parameters, generator=g) for _ in range(count)]


def linear_trajectories(count, length, parameters, seed=0):
    """phi_t = a + b t, a different a and b for each trajectory and parameter."""
    g = torch.Generator().manual_seed(seed)
    time = torch.arange(length, dtype=torch.float32)[:, None]
    return [
        torch.randn(parameters, generator=g) + 0.1 * torch.randn(parameters, generator=g) * time for _ in range(count)
    ]


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


# Temporal SVD -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(12, 8), (6, 10)])
def test_full_rank_basis_reconstructs_exactly_and_tokens_are_rows_of_u(shape):
    rows = random_trajectories(1, *shape)[0]
    basis = fit_basis(rows, min(shape))
    assert relative_error(basis.decode(basis.encode(rows)), rows) < 1e-5
    assert basis.energy == pytest.approx(1.0, abs=1e-12)
    u = torch.linalg.svd(rows.double(), full_matrices=False)[0].float()
    assert torch.allclose(basis.encode(rows).abs(), u.abs(), atol=1e-5)  # rows of U, up to SVD's sign
    assert (basis.encode(rows).sum(0) > 0).all()  # the sign convention


def test_energy_falls_with_fewer_components():
    rows = random_trajectories(1, 12, 8)[0]
    energies = [fit_basis(rows, d).energy for d in range(8, 0, -1)]
    assert energies[0] == pytest.approx(1.0) and all(e < 1 for e in energies[1:])
    assert all(later < earlier for earlier, later in zip(energies, energies[1:]))


def test_per_run_tokens_at_full_rank_reconstruct_each_trajectory():
    trajectories = random_trajectories(3, 6, 10)
    bases = per_run_bases(trajectories, 6)
    for trajectory, basis, sequence in zip(trajectories, bases, tokens(trajectories, bases)):
        assert sequence.shape == (6, 6)
        assert relative_error(basis.decode(sequence), trajectory) < 1e-5


def test_pooled_basis_is_fitted_on_training_trials_only():
    trials = random_trajectories(3, 8, 10)
    train, test = trials[:2], trials[2]
    basis = pooled_basis(train, 4)
    reference = fit_basis(torch.cat(train), 4)
    assert torch.equal(basis.components, reference.components) and basis.energy == reference.energy
    trials[2] = test + 5.0 * torch.randn(10)  # a different test trial leaves the basis and training tokens alone
    again = pooled_basis(trials[:2], 4)
    assert torch.equal(again.components, basis.components) and torch.equal(
        tokens(train, again)[0], tokens(train, basis)[0]
    )
    # a test trial is encoded by projection: what decoding loses is orthogonal to the kept subspace
    for trajectory in (test, trials[2]):
        residual = trajectory - basis.decode(basis.encode(trajectory))
        assert float((residual @ basis.components).abs().max()) < 1e-4


def test_randomized_svd_agrees_with_the_exact_one(monkeypatch):
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(60, 3, generator=g) @ torch.randn(3, 50, generator=g) + 1e-3 * torch.randn(60, 50, generator=g)
    exact = fit_basis(rows, 3)
    monkeypatch.setattr(svd, "EXACT_SVD_LIMIT", 10)
    randomized = fit_basis(rows, 3)
    assert torch.allclose(randomized.singular_values, exact.singular_values, rtol=1e-4)
    assert torch.allclose(randomized.components, exact.components, atol=1e-3)
    assert randomized.energy == pytest.approx(exact.energy, rel=1e-6)


def test_basis_round_trips_through_safetensors(tmp_path):
    basis = fit_basis(random_trajectories(1, 9, 7)[0], 3)
    save_file(basis.to_tensors(), tmp_path / "basis.safetensors")
    loaded = Basis.from_tensors(load_file(tmp_path / "basis.safetensors"))
    assert torch.equal(loaded.components, basis.components) and loaded.energy == basis.energy


# The loss ------------------------------------------------------------------------------------------


def test_weight_space_mse_is_the_mse_of_the_decoded_weights():
    trajectories = random_trajectories(2, 20, 30)
    g = torch.Generator().manual_seed(1)
    basis = pooled_basis(trajectories, 5)
    predicted, true = torch.randn(4, 7, 5, generator=g), torch.randn(4, 7, 5, generator=g)
    decoded = ((basis.decode(predicted) - basis.decode(true)) ** 2).mean()
    loss = weight_space_mse(predicted, true, basis.singular_values, 30)
    assert float(loss) == pytest.approx(float(decoded), rel=1e-4)
    # one basis per sequence: singular values broadcast as (B, 1, d)
    bases = per_run_bases(trajectories, 5)
    predicted, true = predicted[:2], true[:2]
    decoded = torch.stack([(b.decode(p) - b.decode(t)) ** 2 for b, p, t in zip(bases, predicted, true)]).mean()
    scales = torch.stack([b.singular_values for b in bases])[:, None]
    assert float(weight_space_mse(predicted, true, scales, 30)) == pytest.approx(float(decoded), rel=1e-4)


# The transformer -----------------------------------------------------------------------------------


def test_prediction_at_t_sees_tokens_up_to_t_only():
    model = CausalTransformer(3, TINY).eval()
    with torch.no_grad():  # larger than GPT-2's initialisation, so that every token visibly matters
        for parameter in model.parameters():
            parameter.normal_(std=0.3)
    x = torch.randn(2, 6, 3)
    out = model(x)
    later_changed = x.clone()
    later_changed[:, 4:] += torch.randn(2, 2, 3)
    assert torch.allclose(model(later_changed)[:, :4], out[:, :4], atol=1e-6)
    earlier_changed = x.clone()
    earlier_changed[:, 1] += 1.0
    changed = model(earlier_changed)
    assert torch.allclose(changed[:, 0], out[:, 0], atol=1e-6)
    assert (changed[:, 1:] - out[:, 1:]).abs().amax(-1).min() > 1e-4


def test_batched_rollout_equals_one_history_at_a_time():
    model = CausalTransformer(3, TINY)
    histories = torch.randn(4, 9, 3)  # longer than the context: the rollout reads the last 6
    batched = rollout(model, histories, horizon=5)
    assert batched.shape == (4, 5, 3)
    for history, expected in zip(histories, batched):
        assert torch.allclose(rollout(model, history, 5), expected, atol=1e-5)
    assert model.training  # rollout restores the mode
    with torch.no_grad():
        last = model.eval()(histories[:, -TINY.context :])[:, -1]
    assert torch.allclose(rollout(model, histories, 1)[:, 0], last, atol=1e-6)


def test_training_is_deterministic_and_leaves_the_global_rng_alone():
    sequences = [torch.randn(10, 3) for _ in range(3)]
    scales = [torch.tensor([3.0, 2.0, 1.0])] * 3
    state = torch.get_rng_state()
    first, losses = train_tipl(sequences, scales, 50, TINY, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    second, again = train_tipl(sequences, scales, 50, TINY, progress=False)
    assert losses == again and len(losses) == TINY.steps
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    different, _ = train_tipl(sequences, scales, 50, dataclasses.replace(TINY, seed=1), progress=False)
    assert not torch.equal(different.head.weight, first.head.weight)


def test_loss_falls_on_tokens_that_move_linearly_in_time():
    g = torch.Generator().manual_seed(0)
    time = torch.linspace(0, 1, 40)[:, None]
    sequences = [torch.randn(2, generator=g) + torch.randn(2, generator=g) * time for _ in range(8)]
    scales = [torch.tensor([10.0, 5.0])] * 8
    config = TIPLConfig(
        width=16, layers=1, context=8, dropout=0.0, learning_rate=3e-3, batch_size=32, steps=200, warmup=20
    )
    _, losses = train_tipl(sequences, scales, 20, config, progress=False)
    assert sum(losses[-20:]) < 0.1 * sum(losses[:20])


def _checkpoint_data():
    g = torch.Generator().manual_seed(3)
    return [torch.randn(12, 3, generator=g) for _ in range(3)], [torch.tensor([3.0, 2.0, 1.0])] * 3


def _same_training(a, b):
    (model_a, losses_a), (model_b, losses_b) = a, b
    assert losses_a == losses_b
    assert all(torch.equal(x, y) for x, y in zip(model_a.state_dict().values(), model_b.state_dict().values()))


def test_training_continued_from_a_checkpoint_equals_training_that_never_stopped(tmp_path):
    sequences, scales = _checkpoint_data()
    longer = dataclasses.replace(TINY, steps=35)
    checkpoint = tmp_path / "training.safetensors"
    first = train_tipl(sequences, scales, 50, TINY, progress=False, checkpoint=checkpoint, checkpoint_every=7)
    _same_training(first, train_tipl(sequences, scales, 50, TINY, progress=False))
    continued = train_tipl(sequences, scales, 50, longer, progress=False, checkpoint=checkpoint, checkpoint_every=7)
    _same_training(continued, train_tipl(sequences, scales, 50, longer, progress=False))
    # a finished checkpoint is read back, not retrained
    _same_training(continued, train_tipl(sequences, scales, 50, longer, progress=False, checkpoint=checkpoint))


def test_training_killed_mid_way_resumes_to_the_uninterrupted_result(tmp_path):
    checkpoint = tmp_path / "training.safetensors"
    script = (
        "import sys, torch; sys.path.insert(0, %r)\n"
        "torch.set_num_threads(1)\n"
        "from test_tipl_model import TINY, _checkpoint_data\n"
        "from weightspace.tipl import train_tipl\n"
        "train_tipl(*_checkpoint_data(), 50, TINY, progress=False, checkpoint=%r, checkpoint_every=5)\n"
    ) % (str(Path(__file__).parent), str(checkpoint))
    env = {**os.environ, "WEIGHTSPACE_FAULT_AFTER_WRITES": "2"}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr
    with safe_open(checkpoint, "pt") as f:
        assert len(f.get_tensor("losses")) == 10  # the second checkpoint, half-way
    sequences, scales = _checkpoint_data()
    with intra_op_threads(1):  # as the killed process: bit-equality needs the same reduction order
        resumed = train_tipl(sequences, scales, 50, TINY, progress=False, checkpoint=checkpoint, checkpoint_every=5)
        _same_training(resumed, train_tipl(sequences, scales, 50, TINY, progress=False))


def test_a_checkpoint_of_other_settings_data_or_more_steps_is_refused(tmp_path):
    sequences, scales = _checkpoint_data()
    checkpoint = tmp_path / "training.safetensors"
    train_tipl(sequences, scales, 50, TINY, progress=False, checkpoint=checkpoint)
    other = dataclasses.replace(TINY, learning_rate=1e-3)
    with pytest.raises(ConfigError, match="other settings or other data"):
        train_tipl(sequences, scales, 50, other, progress=False, checkpoint=checkpoint)
    with pytest.raises(ConfigError, match="other settings or other data"):
        train_tipl([s + 1 for s in sequences], scales, 50, TINY, progress=False, checkpoint=checkpoint)
    with pytest.raises(ConfigError, match="past the 10 steps"):
        train_tipl(sequences, scales, 50, dataclasses.replace(TINY, steps=10), progress=False, checkpoint=checkpoint)


# Weight-space forecasters --------------------------------------------------------------------------

TRAJECTORY = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, -1.0], [2.0, 2.0, 0.0], [4.0, 1.0, 0.0], [5.0, 3.0, 2.0]])


def test_weight_prediction_error_of_copy_last_and_linear_by_hand():
    history, future = TRAJECTORY[:2], TRAJECTORY[2:]
    copy_errors = ((copy_last(history, 3) - future) ** 2).mean(-1)
    assert copy_errors.tolist() == pytest.approx([2 / 3, 11 / 3, 26 / 3])
    linear_errors = ((linear_extrapolation(history, 3) - future) ** 2).mean(-1)
    assert linear_errors.tolist() == pytest.approx([8 / 3, 35 / 3, 62 / 3])
    assert set(FORECASTERS) == {"copy_last", "linear"}


def test_training_free_forecasters_are_batched():
    histories = torch.randn(3, 4, 5)
    for forecast in FORECASTERS.values():
        batched = forecast(histories, 2)
        assert batched.shape == (3, 2, 5)
        assert all(torch.equal(forecast(h, 2), b) for h, b in zip(histories, batched))


def test_linear_extrapolation_is_exact_on_a_linear_trajectory():
    trajectory = linear_trajectories(1, 12, 6)[0]
    assert torch.allclose(linear_extrapolation(trajectory[:7], 5), trajectory[7:], atol=1e-5)


def test_svd_trimmed_is_the_projection_on_the_history_s_top_directions_and_reads_no_future():
    trajectory = random_trajectories(1, 30, 12, seed=4)[0]
    starts, rank = [5, 11, 20], 3
    trimmed = svd_trimmed(trajectory, starts, horizon=2, rank=rank)
    assert trimmed.shape == (3, 2, 12) and torch.equal(trimmed[:, 0], trimmed[:, 1])
    for i, t in enumerate(starts):
        history = (trajectory[1 : t + 1] - trajectory[0]).double()
        v = torch.linalg.svd(history, full_matrices=False)[2][:rank].T
        expected = trajectory[0].double() + history[-1] @ v @ v.T
        assert torch.allclose(trimmed[i, 0].double(), expected, atol=1e-5)
    future = trajectory.clone()
    future[21:] += 100.0
    assert torch.equal(svd_trimmed(future, starts, 2, rank), trimmed)


def test_svd_trimmed_computes_the_same_on_either_side_and_keeps_a_low_rank_path():
    from weightspace.tipl.baselines import _trimmed_parameter_side, _trimmed_time_side

    rows = torch.randn(40, 9, dtype=torch.float64)
    for starts in ([3, 8], [12, 40]):
        assert torch.allclose(_trimmed_parameter_side(rows, starts, 4), _trimmed_time_side(rows, starts, 4))
    # a path inside a 2-dimensional subspace through phi_0 loses nothing at rank 2; rank >= t is copy-last
    path = torch.randn(25, 2) @ torch.randn(2, 50) + torch.randn(50)
    path[0] = path[0] * 0 + torch.randn(50)
    path[1:] = path[0] + torch.randn(24, 2) @ torch.randn(2, 50)
    assert torch.allclose(svd_trimmed(path, [6, 24], 1, 2)[:, 0], path[[6, 24]], atol=1e-4)
    assert torch.equal(svd_trimmed(path, [3], 2, 3)[0], copy_last(path[:4], 2))
    with pytest.raises(ConfigError, match="start points"):
        svd_trimmed(path, [25], 1, 2)


def test_parameter_mlp_learns_linear_trajectories_and_round_trips(tmp_path):
    forecaster = ParameterMLPForecaster()
    losses = forecaster.fit(linear_trajectories(6, 20, 40), steps=300, batch_size=1024, seed=0)
    assert losses[-1] < 0.05 * losses[0]
    test = linear_trajectories(2, 14, 40, seed=1)
    histories, future = torch.stack([t[:8] for t in test]), torch.stack([t[8:] for t in test])
    forecast = forecaster.forecast(histories, 6)
    assert forecast.shape == (2, 6, 40)
    mlp_error = ((forecast - future) ** 2).mean()
    copy_error = ((copy_last(histories, 6) - future) ** 2).mean()
    assert mlp_error < 0.01 * copy_error
    save_file(forecaster.to_tensors(), tmp_path / "forecaster.safetensors")
    loaded = ParameterMLPForecaster.from_tensors(load_file(tmp_path / "forecaster.safetensors"))
    assert torch.equal(loaded.forecast(histories, 6), forecast)
    assert torch.equal(loaded.forecast(histories[0], 6), forecast[0])


# One-line errors -----------------------------------------------------------------------------------


def one_line_config_error(call):
    with pytest.raises(ConfigError) as error:
        call()
    assert "\n" not in str(error.value)
    return str(error.value)


def test_one_line_errors():
    rows = random_trajectories(1, 5, 8)[0]
    assert "min(snapshots, parameters) = 5" in one_line_config_error(lambda: fit_basis(rows, 6))
    one_line_config_error(lambda: fit_basis(rows, 0))
    rank_two = torch.randn(5, 2) @ torch.randn(2, 8)
    assert "span only 2" in one_line_config_error(lambda: fit_basis(rank_two, 3))
    short = [torch.randn(TINY.context, 3)]
    assert "context + 1 = 7" in one_line_config_error(lambda: train_tipl(short, [torch.ones(3)], 8, TINY))
    one_line_config_error(lambda: linear_extrapolation(rows[:1], 2))
    one_line_config_error(lambda: ParameterMLPForecaster().fit([rows]))
    one_line_config_error(lambda: TIPLConfig(width=10, heads=3))


def test_defaults_are_decision_transformers():
    config = TIPLConfig()
    assert (config.width, config.layers, config.heads, config.context, config.dropout) == (128, 3, 1, 20, 0.1)
    assert (config.learning_rate, config.weight_decay, config.batch_size) == (1e-4, 1e-4, 64)
    assert config.gradient_clip == 0.25
    assert config.activation == "relu"


def test_change_target_adds_the_prediction_to_the_current_token_and_stays_causal():
    from weightspace.tipl import CausalTransformer, TIPLConfig

    config = TIPLConfig(width=16, layers=1, context=6, dropout=0.0, target="change")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = CausalTransformer(3, config).eval()
    tokens = torch.randn(2, 6, 3)
    with torch.no_grad():
        out = model(tokens)
        # the head starts small (GPT-2 init): the forecast starts near copy-last
        assert (out - tokens).abs().max() < 0.2 * tokens.abs().max()
        changed = tokens.clone()
        changed[:, 4:] += 1.0
        torch.testing.assert_close(model(changed)[:, :4], out[:, :4])
        assert not torch.allclose(model(changed)[:, 4:], out[:, 4:])
