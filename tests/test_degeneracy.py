"""Paper 002's measures (weights, behaviour, diagnostics) and its experiment family end to end."""

import json

import numpy as np
import pytest
import torch

from weightspace.analysis import degeneracy as measures
from weightspace.errors import ConfigError
from weightspace.experiments import load_experiment, run_experiment
from weightspace.networks import RNN, permute, random_permutations


def test_weight_distance_is_zero_for_a_permuted_copy_and_positive_for_another_network():
    architecture = RNN(2, 12, 1, 2)
    weights = architecture.init([1, 2])
    shuffled = permute(weights, random_permutations(weights.spec, 2, torch.Generator().manual_seed(0)))
    recurrent = torch.stack(
        [weights["rnn.weight_hh_l0"][0], shuffled["rnn.weight_hh_l0"][0], weights["rnn.weight_hh_l0"][1]]
    )
    distances = measures.pairwise_weight_distances(recurrent)
    assert distances[0, 1] == pytest.approx(0.0, abs=1e-12)
    assert distances[0, 2] > 0.01 and np.allclose(distances, distances.T) and np.all(np.diag(distances) == 0)
    # the minimum over permutations is at most the distance without one
    unpermuted = np.linalg.norm((recurrent[0] - recurrent[2]).numpy()) / 12**2
    assert distances[0, 2] <= unpermuted + 1e-12


def test_kernel_alignment_is_one_for_the_same_network_and_below_for_another():
    architecture = RNN(2, 6, 1, 2)
    weights = architecture.init([1, 2])
    probe = torch.randn(2, 3, 10, 2)
    kernels = measures.tangent_kernels(architecture, weights, probe, every=5)
    assert kernels.shape == (2, 3 * 2 * 2, 3 * 2 * 2)
    assert measures.kernel_alignment(kernels, kernels) == pytest.approx(torch.ones(2))
    swapped = measures.tangent_kernels(architecture, weights.select([1, 0]), probe, every=5)
    assert torch.all(measures.kernel_alignment(kernels, swapped) < 1)


def test_behaviour_degeneracy_is_the_spread_of_ood_errors_with_an_interval():
    values = np.array([0.1, 0.2, 0.4, 0.3, 0.25])
    summary = measures.interval(values, measures.LEVEL_STATISTICS["behaviour"], 0)  # sigma_OOD and its interval
    assert summary["value"] == pytest.approx(np.std(values, ddof=1))
    assert summary["low"] <= summary["value"] <= summary["high"] and summary["n"] == 5


TINY_EXPERIMENT = """
family = "degeneracy"
name = "tiny"
seeds = [0]
[base]
models = 3
hidden_size = 8
batch_size = 8
learning_rate = 0.02
steps = 64
steps_per_epoch = 8
evaluation_trials = 16
[tasks.flip-flop]
trial_steps = 20
threshold = 0.5
[analysis]
trials = 8
n_delays = 2
rank = 4
ntk_trials = 2
weight_restarts = 1
restarts = 1
tasks = { flip-flop = { iterations = 200 } }
grid = [{ rank = 2 }, { variance = 0.9 }]
[[sweeps]]
name = "channels"
knob = "complexity"
task = "flip-flop"
vary = "channels"
values = [1, 2]
[[sweeps]]
name = "width"
knob = "width"
task = "flip-flop"
vary = "hidden_size"
values = [4, 8]
settings = { channels = 2 }
"""


def test_the_experiment_runs_reports_table1_and_reuses_its_steps(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_EXPERIMENT)
    config = load_experiment(path, results_dir=tmp_path / "results")
    report = run_experiment(config, progress=False)
    text = report.read_text()
    assert "## Table 1" in text and "complexity" in text and "width" in text
    results = json.loads((report.parent / "results.json").read_text())
    run = json.loads((report.parent / "run.json").read_text())
    assert len(run["steps"]) == 6  # channels=2 and hidden_size=8 are one condition: built once
    sweep = results["sweeps"][0]
    assert sweep["paper"] == {"behaviour": "mixed", "dynamics": "down", "shape": "down", "weights": "up"}
    assert all(c["converged"] == 3 for c in sweep["conditions"])
    condition = sweep["conditions"][0]  # the search's noise, beside each value
    assert (
        condition["dsa"]["restarts"] == 1 and 0 <= condition["dsa_spread"]["median"] <= condition["dsa_spread"]["max"]
    )
    assert "DSA spread over starts" in text
    rank_two, explained = sweep["dsa_grid"]  # the dynamics under other DSA settings, each with its null
    assert rank_two["ranks"] == [2, 2] and rank_two["effect"]["direction"] and 0 <= rank_two["clears_null"] <= 2
    assert all(1 <= r <= 4 for r in explained["ranks"]) and "under other DSA settings" in text
    # every condition's distance and null under every setting, the settings as used beside them
    assert "(rank 4, delays 2, 1 starts)" in text and "(rank 2, delays 2, 1 starts)" in text
    for level in ("behaviour", "dynamics", "shape", "weights"):
        assert sweep["effects"][level]["value"] is not None
    assert (report.parent / "figures" / "sweep-0.png").exists() and (report.parent / "figures" / "mds.png").exists()
    again = run_experiment(config, progress=False)
    assert {s["status"] for s in json.loads((again.parent / "run.json").read_text())["steps"]} == {"reused"}


@pytest.mark.parametrize(
    "change, message",
    [
        ('knob = "complexity"', "knob must be one of"),
        ('vary = "channels"', "give either vary and values or conditions"),
        ("values = [1, 2]", "unknown key"),
    ],
)
def test_bad_sweeps_are_one_clear_error(tmp_path, change, message):
    text = (
        TINY_EXPERIMENT.replace('knob = "complexity"', 'knob = "speed"')
        if change.startswith("knob")
        else TINY_EXPERIMENT.replace('vary = "channels"\n', "")
        if change.startswith("vary")
        else TINY_EXPERIMENT.replace("[base]\n", "[base]\nchanels = 2\n")
    )
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_experiment(path)


def test_the_cka_distance_is_zero_for_a_rotated_copy_and_equals_its_definition():
    from weightspace.analysis.degeneracy import cka_distances

    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 4, 20, 6, generator=g, dtype=torch.float64)
    rotation = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))[0]
    hidden[1] = 2.5 * hidden[0] @ rotation + 0.3  # rotated, scaled and shifted: the same representation
    distances = cka_distances(hidden, every=2)
    assert distances.shape == (3, 3) and torch.equal(distances, distances.T)
    assert distances[0, 1] < 1e-6 and (distances.diagonal() == 0).all()
    x, y = (h[:, 1::2].reshape(-1, 6) for h in (hidden[0], hidden[2]))  # the definition, one pair
    x, y = x - x.mean(0), y - y.mean(0)
    cka = (x.T @ y).square().sum() / ((x.T @ x).norm() * (y.T @ y).norm())
    assert distances[0, 2].item() == pytest.approx(1 - cka.item(), abs=1e-6)


@pytest.mark.parametrize("grid, message", [("[{ rnak = 2 }]", "grid entries"), ("[{ variance = 1.5 }]", "variance")])
def test_a_bad_dsa_grid_is_one_clear_error(tmp_path, grid, message):
    path = tmp_path / "bad.toml"
    path.write_text(TINY_EXPERIMENT.replace("grid = [{ rank = 2 }, { variance = 0.9 }]", f"grid = {grid}"))
    with pytest.raises(ConfigError, match=message):
        load_experiment(path)


def test_the_rank_for_a_share_of_variance_counts_the_modes():
    from weightspace.analysis.dsa import rank_for_variance

    g = torch.Generator().manual_seed(0)
    planar = torch.randn(3, 4, 30, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 5, generator=g).double()
    rank, shares = rank_for_variance(planar, 1, 0.999)  # states in a plane: two modes explain it all
    assert rank == 2 and all(share > 0.999 for share in shares)
    assert rank_for_variance(planar, 1, 0.3)[0] == 1
