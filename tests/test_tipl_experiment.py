"""The TIPL experiment family end to end on a tiny zoo: steps, report, reuse and config errors."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from weightspace.cli import main
from weightspace.errors import ConfigError, ZooFormatError
from weightspace.experiments.config import load_experiment
from weightspace.experiments.tipl.family import _starts, _trajectories
from weightspace.zoo import load_zoo
from weightspace.zoo.format import shard_file

TINY = """
family = "tipl"
name = "tiny"
test_trials = 2
[base]
models = 5
population = 5
num_steps = 128
num_minibatches = 4
update_epochs = 2
snapshots = 48
save_every = 4
evaluate_every = 24
eval_episodes = 2
[environments.InvertedPendulum]
env_steps = 1536
[[svd]]
mode = "per_run"
rank = 6
[[svd]]
mode = "pooled"
rank = 6
anchor = true
reconstruction = "last"
[model]
steps = 20
context = 5
width = 16
layers = 1
[forecast]
horizon = 3
starts = 2
episodes = 2
mlp_steps = 20
trim_rank = 3
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tipl")
    (root / "tiny.toml").write_text(TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = CliRunner().invoke(main, ["run", str(root / "tiny.toml"), "--results-dir", str(root), "--quiet"])
    assert result.exit_code == 0, result.output
    return root / "tiny", root


def test_report_has_figure_2_and_every_forecaster(finished_run):
    out, _ = finished_run
    report = (out / "report.md").read_text()
    assert "figures/tipl-InvertedPendulum.png" in report and (out / "figures" / "tipl-InvertedPendulum.png").exists()
    assert (out / "figures" / "learning-curves-InvertedPendulum.png").exists()
    for label in (
        "TIPL (per-run-d6)",
        "TIPL (pooled-d6-anchored-from-last)",
        "copy-last",
        "linear extrapolation",
        "per-parameter MLP",
        "SVD-trimmed last policy",
        "noise floor",
    ):
        assert label in report
    results = json.loads((out / "results.json").read_text())["environments"]["InvertedPendulum"]
    assert results["methods"] == [
        "tipl-per-run-d6",
        "tipl-pooled-d6-anchored-from-last",
        "copy_last",
        "linear",
        "mlp",
        "svd_trimmed",
    ]
    assert len(results["wpe"]["copy_last"]["mean"]) == 3
    assert results["test_trials"] == [3, 4]
    # the per-run basis fits each test trajectory itself: it keeps (nearly) all of it
    assert results["variants"]["tipl-per-run-d6"]["energy_test"] > 0.99
    assert (out / "figures" / "tipl-training-InvertedPendulum.png").exists()
    for shares in results["movement_kept"].values():
        assert 0 <= shares["train"] <= 1 and 0 <= shares["test"] <= 1


def test_paired_differences_against_copy_last_match_the_per_method_means(finished_run):
    """Per-h paired differences are means over test trials of a difference of per-trial means, so
    they equal the difference of the table's means; only the table's horizons within the forecast's
    are reported, each with an interval around its mean and a p-value in [0, 1]."""
    out, _ = finished_run
    results = json.loads((out / "results.json").read_text())["environments"]["InvertedPendulum"]
    for method, paired in results["minus_copy_last_at"].items():
        for metric in ("wpe", "repw"):
            assert list(paired[metric]) == ["1"]  # the tiny run forecasts h = 1..3
            d = paired[metric]["1"]
            expected = results[metric][method]["mean"][0] - results[metric]["copy_last"]["mean"][0]
            assert d["mean"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
            assert d["low"] <= d["mean"] <= d["high"]
            assert d["p"] is None or 0 <= d["p"] <= 1
    assert "Wilcoxon" in (out / "report.md").read_text()


def test_forecast_numbers_are_consistent(finished_run):
    out, _ = finished_run
    forecast = next((out / "steps" / "forecast").rglob("result.json"))
    result = json.loads(forecast.read_text())["result"]
    wpe, repw = result["wpe"], result["repw"]
    j_true = np.asarray(result["j_true"])
    for method, values in result["j_predicted"].items():
        np.testing.assert_allclose(np.abs(np.asarray(values) - j_true), repw[method], rtol=1e-6)
    # copy-last predicts phi_t for every h: its error can only come from the true policy moving on
    assert all(np.asarray(wpe["copy_last"]).ravel() >= 0)
    assert np.asarray(wpe["linear"]).shape == (len(result["pairs"]), 3)


def test_a_second_run_reuses_every_step(finished_run):
    out, root = finished_run
    result = CliRunner().invoke(main, ["run", str(root / "tiny.toml"), "--results-dir", str(root), "--quiet"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert {step["status"] for step in run["steps"]} == {"reused"}


def test_more_transformer_steps_continue_the_shorter_run_and_end_where_a_fresh_run_ends(finished_run, tmp_path):
    out, root = finished_run
    shutil.copytree(root, tmp_path / "copy")
    root, out = tmp_path / "copy", tmp_path / "copy" / "tiny"
    run = ["run", str(root / "tiny.toml"), "--results-dir", str(root), "--quiet", "--set", "model.steps=30"]

    def trained(label):
        (directory,) = [
            d
            for d in (out / "steps" / "tipl" / "InvertedPendulum" / label / "seed-0").iterdir()
            if json.loads((d / "step.json").read_text())["settings"]["model"]["steps"] == 30
        ]
        return directory, json.loads((directory / "result.json").read_text())["result"]

    assert CliRunner().invoke(main, run).exit_code == 0
    directory, result = trained("per-run-d6")
    shorter = [d.name for d in directory.parent.iterdir() if d != directory]
    assert result["continued_from"] in shorter and len(result["losses"]) == 30
    continued = load_file(directory / "model.safetensors")
    # the same 30 steps from scratch: without the shorter run's checkpoint to continue from
    shutil.rmtree(directory)
    for name in shorter:
        (directory.parent / name / "training.safetensors").unlink()
    assert CliRunner().invoke(main, run).exit_code == 0
    directory, again = trained("per-run-d6")
    assert again["continued_from"] is None and again["losses"] == result["losses"]
    fresh = load_file(directory / "model.safetensors")
    assert all(torch.equal(continued[k], fresh[k]) for k in fresh)


def test_start_points_leave_room_for_context_and_horizon():
    assert _starts(20, 4, 3, 3) == [4, 10, 16]
    with pytest.raises(ConfigError, match="no start point"):
        _starts(6, 4, 3, 2)


@pytest.mark.parametrize(
    "change, message",
    [
        (("test_trials = 2", "test_trials = 5"), "leave none to train on"),
        (('mode = "per_run"', 'mode = "both"'), "mode must be pooled or per_run"),
        (("rank = 6\n[[svd]]", "rank = 6\nunknown = 1\n[[svd]]"), "unknown"),
        (("env_steps = 1536", "env_steps = 100"), "at least one rollout"),
    ],
)
def test_config_errors_are_one_line(tmp_path, change, message):
    file = tmp_path / "bad.toml"
    file.write_text(TINY.replace(*change, 1))
    with pytest.raises(ConfigError, match=message):
        load_experiment(file)
    result = CliRunner().invoke(main, ["run", str(file)])
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_trial_with_non_finite_weights_is_a_clear_error(finished_run, tmp_path):
    """A diverged PPO trial stores NaN weights from then on: forecasting it is an error that names
    the trial and the step it diverged at, not a NaN in the tables."""
    out, _ = finished_run
    source = next(p.parent for p in (out / "steps" / "zoo").rglob("manifest.json"))
    zoo_dir = shutil.copytree(source, tmp_path / "zoo")
    zoo = load_zoo(zoo_dir)
    run = int(zoo.table["run_id"].max())
    assert torch.isfinite(_trajectories(zoo, [run])[0]).all()
    rows = zoo.table.loc[zoo.trajectory_indices(run)]
    first = rows.iloc[len(rows) // 2]  # diverged in the middle of the trial
    shard = int(first["shard"])
    later = rows[(rows["shard"] == shard) & (rows["step"] >= first["step"])]["shard_row"].to_numpy()
    file = zoo_dir / shard_file("weights", shard)
    tensors = load_file(file)
    tensors[sorted(tensors)[0]][torch.tensor(later)] = float("nan")
    save_file(tensors, file)
    message = rf"1 trial\(s\) hold non-finite weights \(trial {run} from step {int(first['step'])}\)"
    with pytest.raises(ZooFormatError, match=message):
        _trajectories(load_zoo(zoo_dir), [run - 1, run])
