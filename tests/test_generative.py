"""CartPoleGen (the VAE over weights), latent walks, weight repair and their commands (the paper-004
experiment is tested in test_experiments.py)."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from weightspace.cli import main
from weightspace.errors import ConfigError, WeightspaceError
from weightspace.generative import (
    RepairConfig,
    VAEConfig,
    VAETraining,
    WeightVAE,
    latent_walk,
    load_networks,
    repair_experiment,
    save_networks,
    train_vae,
    weight_walk,
)
from weightspace.generative.repair import criterion_distance, degrade, missing_mask, repaired_networks
from weightspace.rl import CARTPOLE_NET, survival_time
from weightspace.zoo import build_zoo

SMALL = VAEConfig(latent_size=4, hidden_size=32)


def low_rank_weights(count=240, seed=0):
    """Weight vectors near a 3-dimensional subspace: something a VAE can learn quickly."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(3, 212, generator=g)
    return torch.randn(count, 3, generator=g) @ basis * 0.3 + 0.05 * torch.randn(count, 212, generator=g)


@pytest.fixture(scope="module")
def trained():
    model = WeightVAE(SMALL, CARTPOLE_NET.spec)
    history = train_vae(model, low_rank_weights(), training=VAETraining(epochs=6, batch_size=16, seed=3))
    return model, history


def test_vae_loss_decreases(trained):
    _, history = trained
    assert len(history) == 6
    assert history[-1] < 0.8 * history[0]
    assert all(np.isfinite(history))


def test_samples_are_cartpolenets(trained):
    model, _ = trained
    flat = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert flat.shape == (7, 212)
    population = model.population(flat)
    assert population.size == 7 and population["0.weight"].shape == (7, 30, 4)
    assert survival_time(CARTPOLE_NET, population, episodes=3).shape == (7,)


def test_paper_defaults_and_concatenating_skip_connections():
    model = WeightVAE(VAEConfig(), CARTPOLE_NET.spec)
    assert model.config.latent_size == 32 and VAETraining() == VAETraining(epochs=20, batch_size=10, learning_rate=1e-3)
    assert [layer.in_features for layer in model.decoder.hidden] == [32, 32 + 256]
    assert model.decoder.out.in_features == 32 + 2 * 256  # the output sees the latent and every hidden layer
    assert model.encoder.out.out_features == 64  # mean and log-variance
    assert isinstance(model.decoder, torch.nn.Module) and not any(isinstance(m, torch.nn.ReLU) for m in model.modules())


def test_training_is_deterministic_and_saving_round_trips(trained, tmp_path):
    model, history = trained
    again = WeightVAE(SMALL, CARTPOLE_NET.spec)
    assert train_vae(again, low_rank_weights(), training=VAETraining(epochs=6, batch_size=16, seed=3)) == history
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])
    model.save(tmp_path / "m", {"note": "test"})
    loaded = WeightVAE.load(tmp_path / "m")
    assert loaded.info == {"note": "test"} and loaded.spec.to_json() == CARTPOLE_NET.spec.to_json()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(model.sample(4, generator=g1), loaded.sample(4, generator=g2))
    with pytest.raises(WeightspaceError, match="not a saved VAE"):
        WeightVAE.load(tmp_path)


def test_conditional_vae_samples_each_class():
    model = WeightVAE(VAEConfig(latent_size=4, hidden_size=16, num_classes=4), CARTPOLE_NET.spec)
    data = low_rank_weights(80)
    labels = torch.arange(80) % 4
    history = train_vae(model, data, labels, VAETraining(epochs=2, batch_size=20))
    assert len(history) == 2
    for group in range(4):
        assert model.sample(3, group).shape == (3, 212)
    with pytest.raises(WeightspaceError, match="conditional"):
        model.sample(3)
    with pytest.raises(WeightspaceError, match="classes must lie"):
        model.sample(3, 4)


def test_conditional_vae_samples_follow_their_class():
    """The weights tell the class here (a class-specific shift), the case where a decoder that only
    reads the class among its inputs learns to ignore it: with a head per class, each class's
    samples lie nearest to that class's training networks."""
    data, labels = low_rank_weights(400), torch.arange(400) % 4
    direction = torch.randn(212, generator=torch.Generator().manual_seed(1))
    data = data + 0.5 * (labels[:, None] - 1.5) * direction
    class_means = torch.stack([data[labels == c].mean(0) for c in range(4)])
    model = WeightVAE(VAEConfig(latent_size=4, hidden_size=32, num_classes=4), CARTPOLE_NET.spec)
    train_vae(model, data, labels, VAETraining(epochs=15, batch_size=20))
    for group in range(4):
        samples = model.sample(200, group, torch.Generator().manual_seed(group)).mean(0)
        assert torch.cdist(samples[None], class_means)[0].argmin() == group
    assert not torch.allclose(model.prior_mean[0], model.prior_mean[3])  # each class its own prior


def test_latent_and_weight_walks(trained):
    model, _ = trained
    a, b = low_rank_weights(2, seed=9)
    walk = latent_walk(model, a, b, [0.0, 0.5, 1.0, 1.5])
    means, _ = model.encode(torch.stack([a, b]))
    ends = model.decode(means)
    torch.testing.assert_close(walk[0], ends[0])
    torch.testing.assert_close(walk[2], ends[1])
    torch.testing.assert_close(walk[1], model.decode(means.mean(0, keepdim=True))[0])
    straight = weight_walk(a, b, [0.0, 1.0, 1.5])
    torch.testing.assert_close(straight[1], b)
    torch.testing.assert_close(straight[2], b + 0.5 * (b - a))


def test_degradation_and_the_two_criteria():
    mask = missing_mask(212, 0.3, seed=1)
    assert mask.sum() == round(0.3 * 212) and torch.equal(mask, missing_mask(212, 0.3, seed=1))
    assert missing_mask(212, 0.0, 1).sum() == 0 and missing_mask(212, 1.0, 1).all()
    network = torch.randn(212)
    damaged = degrade(network, mask)
    assert (damaged[mask] == 0).all() and torch.equal(damaged[~mask], network[~mask])
    # candidate 0 equals the network but has large weights where it is missing; candidate 1 is
    # the damaged network itself plus a little noise everywhere
    candidates = torch.stack([torch.where(mask, torch.full_like(network, 5.0), network), damaged + 0.01])
    missing = criterion_distance(damaged, mask, candidates, "missing")
    whole = criterion_distance(damaged, mask, candidates, "whole")
    assert missing[0] == 0 and missing[0] < missing[1]  # only existing weights count
    assert whole[1] < whole[0]  # small weights in the missing places win
    assert torch.equal(repaired_networks(damaged, mask, candidates, RepairConfig()), candidates)  # algorithm 1
    repaired = repaired_networks(damaged, mask, candidates, RepairConfig(fill_missing=True))
    assert torch.equal(repaired[:, ~mask], damaged[~mask].expand(2, -1))
    assert torch.equal(repaired[0], torch.where(mask, torch.full_like(network, 5.0), network))
    with pytest.raises(ConfigError):
        RepairConfig(candidates=5, keep=10)


def test_repair_experiment_rows(trained):
    model, _ = trained
    config = RepairConfig(candidates=12, keep=3, threshold=5.0, fill_missing=True)
    table = repair_experiment(model, low_rank_weights(1, seed=4)[0], [0.0, 1.0], config=config, episodes=5)
    assert len(table) == 2 * 2 * 3 and set(table["criterion"]) == {"missing", "whole"}
    nothing_missing = table[table["level"] == 0.0]
    assert (nothing_missing["difference"] == 0).all() and nothing_missing["success"].all()


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    config = dict(
        models=12, population=12, steps=600, checkpoints=(0, 600), test_episodes=10, stored_episodes=3, seed=1
    )
    return build_zoo(tmp_path_factory.mktemp("zoo") / "cp", "cartpole", config, progress=False)


def test_commands_train_sample_walk_repair_compare(tiny_zoo, tmp_path):
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output

    model = tmp_path / "vae"
    assert "trained on 12 networks" in run(
        "generative", "train", tiny_zoo, "--out", model, "--epochs", "2", "--hidden-size", "32", "--quiet"
    )
    out = run("generative", "sample", model, "--count", "5", "--episodes", "5", "--out", tmp_path / "s.safetensors")
    assert "survival time mean" in out
    weights, info = load_networks(tmp_path / "s.safetensors")
    assert weights.size == 5 and list(info.columns) == ["survival_time"]
    assert "latent" in run(
        "generative",
        "interpolate",
        model,
        tiny_zoo,
        "--pair",
        "1",
        "3",
        "--points",
        "3",
        "--episodes",
        "5",
        "--plot",
        tmp_path / "f7.png",
    )
    assert "original survival time" in run(
        "generative",
        "repair",
        model,
        tiny_zoo,
        "--network",
        "1",
        "--levels",
        "0,1",
        "--candidates",
        "6",
        "--keep",
        "2",
        "--episodes",
        "5",
    )
    assert "hidden  CD over 3 pairs" in run(
        "convergence", tmp_path / "s.safetensors", "--networks", "0,1,2", "--states", "300"
    )
    assert (tmp_path / "f7.png").stat().st_size > 1000
    # mistakes get one line each
    again = runner.invoke(main, ["generative", "train", str(tiny_zoo), "--out", str(model), "--quiet"])
    assert again.exit_code == 2 and again.output.strip().startswith("error:") and "--overwrite" in again.output
    missing = runner.invoke(main, ["generative", "sample", str(tiny_zoo)])
    assert missing.exit_code == 2 and "not a saved VAE" in missing.output and "Traceback" not in missing.output
    for command in (["generative", "--help"], ["generative", "train", "--help"], ["convergence", "--help"]):
        assert runner.invoke(main, command).exit_code == 0


def test_network_files_round_trip(tmp_path):
    weights = CARTPOLE_NET.init([1, 2, 3])
    save_networks(tmp_path / "n.safetensors", weights, {"survival_time": torch.tensor([1.0, 2.0, 3.0])})
    loaded, table = load_networks(tmp_path / "n.safetensors", [2, 0])
    assert torch.equal(loaded.flatten(), weights.select([2, 0]).flatten())
    assert table["survival_time"].tolist() == [3.0, 1.0]
