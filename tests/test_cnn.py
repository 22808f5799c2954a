"""The cnn task family: the Small CNN Zoo's networks on the bundled digits, trained as one batched
population. Properties: the batched forward equals each torch module, the batched gradient each
network's own, a network does not depend on its population, the same seed gives the same zoo,
the Small CNN Zoo importer runs a network with its own activation, bad settings are one line."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import weightspace as ws
from weightspace.cli import main
from weightspace.networks.cnn import population_forward, small_cnn, small_cnn_tanh
from weightspace.networks.weights import Population
from weightspace.tasks import get_task
from weightspace.zoo import build_zoo

TASK = get_task("cnn")


def _cli(*args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return CliRunner().invoke(main, [str(a) for a in args])


def _population(nets) -> tuple[Population, object]:
    architecture = TASK.architecture(TASK.config({"models": len(nets)}))
    weights = {n: torch.stack([net.state_dict()[n] for net in nets]) for n in architecture.spec.names}
    return Population(architecture.spec, weights), architecture


def test_the_batched_forward_equals_each_torch_module():
    torch.manual_seed(0)
    nets = [small_cnn(), small_cnn_tanh(), small_cnn_tanh(), small_cnn()]
    population, _ = _population(nets)
    x = torch.randn(len(nets), 5, 1, 8, 8)
    tanh = torch.tensor([net.activation == "tanh" for net in nets])
    out = population_forward(population, x, tanh)
    for k, net in enumerate(nets):
        torch.testing.assert_close(out[k], net(x[k]), rtol=1e-5, atol=1e-6)
    # another activation is another network: the test would notice a mask applied the wrong way
    assert not torch.allclose(population_forward(population, x)[1], out[1], atol=1e-4)


def test_each_network_gets_the_gradient_of_its_own_loss():
    torch.manual_seed(1)
    nets = [small_cnn(), small_cnn_tanh(), small_cnn()]
    population, _ = _population(nets)
    params = {n: t.clone().requires_grad_() for n, t in population.items()}
    x, y = torch.randn(3, 6, 1, 8, 8), torch.randint(0, 10, (3, 6))
    tanh = torch.tensor([False, True, False])
    logits = population_forward(Population(population.spec, params), x, tanh)
    torch.nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1).sum().backward()
    for k, net in enumerate(nets):
        torch.nn.functional.cross_entropy(net(x[k]), y[k]).backward()
        for name, p in net.named_parameters():
            torch.testing.assert_close(params[name].grad[k], p.grad, rtol=1e-4, atol=1e-6)


def test_dropout_drops_the_rate_of_pooled_features_and_rescales_the_rest():
    torch.manual_seed(2)
    population, _ = _population([small_cnn(), small_cnn()])
    x = torch.randn(2, 4, 1, 8, 8)
    keep = torch.rand(2, 4, 16)
    rate = torch.tensor([0.0, 0.5])
    plain = population_forward(population, x)
    dropped = population_forward(population, x, dropout=rate, keep=keep)
    torch.testing.assert_close(dropped[0], plain[0])  # rate 0: nothing dropped
    assert not torch.allclose(dropped[1], plain[1])


def _train(config, runs, steps):
    shard = TASK.shard_task(runs.reset_index(drop=True), config, "cpu")
    architecture = TASK.architecture(config)
    trainer = shard.make_trainer(architecture, runs.reset_index(drop=True), config, "cpu")
    for _ in range(steps):
        trainer.train_step()
    return trainer.weights


def test_a_network_trains_the_same_in_any_population():
    config = TASK.config({"models": 6, "steps": 5, "population": 6})
    runs = TASK.plan(config)
    together = _train(config, runs, 5)
    alone = _train(config, runs.iloc[[3]], 5)
    for name in together.spec.names:
        torch.testing.assert_close(together[name][3], alone[name][0], rtol=1e-4, atol=1e-6)


def test_the_plan_draws_every_hyperparameter_in_its_range():
    config = TASK.config({"models": 400, "learning_rate": [1e-3, 1e-2], "dropout": [0.1, 0.2]})
    plan = TASK.plan(config)
    assert plan["learning_rate"].between(1e-3, 1e-2).all() and plan["dropout"].between(0.1, 0.2).all()
    assert plan["train_fraction"].between(0.1, 1.0).all() and plan["init_scale"].between(1e-3, 0.5).all()
    assert set(plan["activation"]) == {"relu", "tanh"} and set(plan["split"]) == {"train", "val", "ood"}
    # log-uniform: the median learning rate sits near the geometric mean of the bounds
    assert abs(np.log10(plan["learning_rate"].median()) + 2.5) < 0.15


def test_the_same_seed_builds_the_same_zoo_and_it_learns(tmp_path):
    settings = {"models": 8, "steps": 60, "population": 4, "checkpoints": [0, 60], "learning_rate": [3e-3, 1e-2]}
    settings["init_scale"] = [0.05, 0.2]
    a = ws.load_zoo(build_zoo(tmp_path / "a", "cnn", settings, progress=False))
    b = ws.load_zoo(build_zoo(tmp_path / "b", "cnn", settings, progress=False))
    pd.testing.assert_frame_equal(a.table, b.table)
    assert all(torch.equal(a.weights()[n], b.weights()[n]) for n in a.spec.names)
    final = a.table[a.table["step"] == 60]
    assert final["test_accuracy"].mean() > 0.3 > a.table[a.table["step"] == 0]["test_accuracy"].mean()
    assert a.spec.num_parameters == 4970  # one input channel: the Small CNN Zoo's size
    # a zoo of both activations records no module: module-probing cannot run it, the others read it
    assert a.architecture.factory == "" and [t.name for t in a.task.targets(a)][0] == "test_accuracy"


def test_a_zoo_of_one_activation_runs_as_its_module(tmp_path):
    settings = {"models": 2, "steps": 2, "population": 2, "checkpoints": [0, 2], "activations": ["tanh"]}
    zoo = ws.load_zoo(build_zoo(tmp_path / "z", "cnn", settings, progress=False))
    assert zoo.architecture.factory.endswith(":small_cnn_tanh") and zoo.architecture.input_shape == (1, 8, 8)
    x = torch.randn(len(zoo), 3, 1, 8, 8)
    out = zoo.architecture.forward(zoo.weights(), x)
    for k in range(len(zoo)):
        net = small_cnn_tanh()
        net.load_state_dict(zoo.weights().state_dict(k))
        torch.testing.assert_close(out[k], net(x[k]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "option, message",
    [
        (["--learning-rate", "0.1,0.01"], "learning_rate must be [low, high] with low <= high"),
        (["--learning-rate", "0.1"], "learning_rate must be a list of 2 float, got list [0.1]"),
        (["--dropout", "0.2,1.0"], "dropout must lie in [0, 1)"),
        (["--activations", "sigmoid"], "activations must be some of ['relu', 'tanh']"),
        (["--init-scale", "0,0.1"], "init_scale must be positive"),
    ],
)
def test_bad_settings_are_one_line(tmp_path, option, message):
    result = _cli("zoo", "build", "cnn", "--out", tmp_path / "z", "--quiet", *option)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "z" / "manifest.json").exists()


def test_the_small_cnn_zoo_records_the_module_of_its_one_activation(tmp_path):
    from test_zoo_import import _write_small_cnn_zoo

    for activations, factory in ((["tanh"] * 6, "small_cnn_tanh"), (["relu", "tanh"] * 3, None)):
        folder = tmp_path / str(factory)
        _write_small_cnn_zoo(folder)
        metrics = pd.read_csv(folder / "metrics.csv.gz")
        metrics["config.activation"] = activations
        metrics.to_csv(folder / "metrics.csv.gz", index=False)
        result = _cli("zoo", "import", "small-cnn-zoo", folder, "--out", tmp_path / f"zoo-{factory}", "--quiet")
        assert result.exit_code == 0, result.output
        manifest = json.loads((tmp_path / f"zoo-{factory}" / "manifest.json").read_text())
        recorded = manifest["architecture"]["config"].get("factory")
        assert (recorded or None) == (f"weightspace.networks.cnn:{factory}" if factory else None)
