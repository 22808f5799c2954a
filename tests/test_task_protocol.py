"""The task protocol: a family defined outside the library (tests/toy_task.py) gets a zoo,
pretraining and a whole experiment without any library change; no library code outside a task
module dispatches on a zoo kind; old manifests still read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import toy_task
from weightspace.cli import main
from weightspace.emulation import PretrainConfig, pretrain
from weightspace.errors import ConfigError
from weightspace.tasks import get_task, task_names
from weightspace.zoo import build_zoo, load_zoo

SOURCE = Path(__file__).parents[1] / "src" / "weightspace"


@pytest.fixture(scope="module")
def toy_zoo(tmp_path_factory):
    toy_task.register()
    return build_zoo(tmp_path_factory.mktemp("toy") / "zoo", "shifted-copy", {"checkpoints": [0, 60]}, progress=False)


def best_validation_loss(run_dir) -> float:
    """The lowest validation loss a run's metrics.jsonl records."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return min(json.loads(line)["val_loss"] for line in lines)


def test_a_family_defined_outside_the_library_builds_a_zoo(toy_zoo):
    zoo = load_zoo(toy_zoo)
    assert "shifted-copy" in task_names()
    assert isinstance(zoo.task, toy_task.ShiftedCopy) and isinstance(zoo.config, toy_task.ShiftedCopyConfig)
    assert zoo.config == get_task("shifted-copy").config({"checkpoints": [0, 60]})
    assert zoo.manifest["config"] == zoo.config.to_json()
    trained = zoo.table[zoo.table["step"] == 60]["accuracy"].to_numpy()
    untrained = zoo.table[zoo.table["step"] == 0]["accuracy"].to_numpy()
    assert trained.mean() > untrained.mean() + 0.2  # the toy networks learn their task
    assert set(zoo.table["split"]) == {"train", "val", "ood"}


def test_a_family_defined_outside_the_library_pretrains(toy_zoo, tmp_path):
    config = PretrainConfig(
        encoder="statistics",
        steps=20,
        batch_size=4,
        rollouts_per_network=4,
        val_rollouts=4,
        eval_every=10,
        patience=5,
        emulator_hidden=16,
        learning_rate=1e-3,
        encoder_options={"hidden": 16},
    )
    pretrain(toy_zoo, tmp_path / "run", config, progress=False)
    assert np.isfinite(best_validation_loss(tmp_path / "run"))


def test_a_family_defined_outside_the_library_runs_an_experiment(toy_zoo, tmp_path):
    from weightspace.experiments.config import load_experiment
    from weightspace.experiments.runner import run_experiment

    file = tmp_path / "toy.toml"
    file.write_text(toy_task.experiment_toml(tmp_path / "results", toy_zoo, seeds=[0]))
    report = Path(run_experiment(load_experiment(file), progress=False)).read_text()
    assert "shift" in report and "statistics" in report and "probing" in report


def test_no_library_code_outside_a_task_module_compares_a_zoo_kind_to_a_string():
    pattern = re.compile(
        r"""kind\s*[!=]=\s*["'](formal-languages|digits|cartpole)|["'](formal-languages|digits|cartpole)["']\s*[!=]="""
    )
    offenders = [
        f"{path.relative_to(SOURCE)}:{n}"
        for path in SOURCE.rglob("*.py")
        if path.parent.name != "tasks"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_unknown_task_settings_and_families_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown key.*hidden_size"):
        get_task("cartpole").config({"hidden_size": 32})  # CartPoleNet is 4-30-2: no silent ignoring
    with pytest.raises(ConfigError, match="unknown task family 'nope'"):
        get_task("nope")
    runner = CliRunner()
    result = runner.invoke(main, ["zoo", "build", "cartpole", "--out", "x", "--hidden-size", "8"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


def test_each_family_has_its_own_defaults():
    assert get_task("cartpole").config().steps == 8000 and get_task("formal-languages").config().steps == 20000
    assert get_task("digits").config().population == 32 and get_task("cartpole").config().population == 1024


def test_manifests_of_merged_configs_still_read(toy_zoo, tmp_path):
    """Zoos built before configs were per task stored every family's settings in the manifest."""
    import shutil

    zoo_dir = tmp_path / "old"
    built = build_zoo(
        zoo_dir,
        "formal-languages",
        dict(models=2, population=2, steps=4, checkpoints=(0, 4), samples=8, rollouts=2),
        progress=False,
    )
    manifest = json.loads((built / "manifest.json").read_text())
    manifest["config"].update(data_dir=None, tile_size=None, max_episode_steps=200)
    (built / "manifest.json").write_text(json.dumps(manifest))
    zoo = load_zoo(built)
    assert zoo.config.models == 2 and not hasattr(zoo.config, "max_episode_steps")
    # and a rerun of the same build resumes (finds nothing to do) instead of refusing
    build_zoo(
        zoo_dir,
        "formal-languages",
        dict(models=2, population=2, steps=4, checkpoints=(0, 4), samples=8, rollouts=2),
        progress=False,
    )
    shutil.rmtree(zoo_dir)


def test_encoders_list_on_a_zoo_without_sequence_networks_is_one_line(tmp_path):
    zoo_dir = build_zoo(
        tmp_path / "cp",
        "cartpole",
        dict(models=2, population=2, steps=20, checkpoints=(0, 20), test_episodes=2, stored_episodes=1),
        progress=False,
    )
    result = CliRunner().invoke(main, ["encoders", "list", "--zoo", str(zoo_dir)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "not sequence models" in lines[0]
