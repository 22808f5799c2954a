"""Emulation pretraining: it learns, it resumes exactly after a kill, embed and fidelity work."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import weightspace as ws
from weightspace.cli import main
from weightspace.emulation import PretrainConfig, load_run, pretrain
from weightspace.emulation.pretrain import _validation_loss
from weightspace.emulation.run import RunData, build_models
from weightspace.errors import ConfigError
from weightspace.zoo import build_zoo

SMALL = dict(
    encoder="statistics",
    steps=40,
    batch_size=8,
    rollouts_per_network=4,
    val_rollouts=4,
    eval_every=10,
    patience=100,
    emulator_hidden=32,
    encoder_options={"hidden": 64},
    learning_rate=3e-3,
)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    config = dict(
        models=8, population=8, steps=40, checkpoints=(0, 20, 40), samples=40, rollouts=8, hidden_size=8, seed=1
    )
    return build_zoo(tmp_path_factory.mktemp("zoo") / "fl", "formal-languages", config, progress=False)


@pytest.fixture(scope="module")
def small_run(zoo_dir, tmp_path_factory):
    """A run with the SMALL settings, which no test changes (one that would, changes a copy)."""
    return pretrain(zoo_dir, tmp_path_factory.mktemp("small") / "run", PretrainConfig(**SMALL), progress=False)


def test_pretraining_reduces_the_validation_emulation_loss(zoo_dir, small_run, tmp_path):
    config = PretrainConfig(**SMALL)
    zoo = ws.load_zoo(zoo_dir)
    encoder, emulator = build_models(config, zoo.architecture, zoo.task.task_io(zoo), "cpu")
    untrained = _validation_loss(encoder, emulator, zoo.task.task_io(zoo), RunData(zoo, "val", "cpu"), config)
    run = shutil.copytree(small_run, tmp_path / "run")  # its config.json is changed below
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [10, 20, 30, 40]
    assert min(m["val_loss"] for m in metrics) < 0.7 * untrained
    loaded = load_run(run)
    assert loaded.config == config and loaded.zoo_kind == "formal-languages"
    # a run written by another version with a setting this one does not know: one line, no traceback
    saved = json.loads((run / "config.json").read_text())
    saved["pretrain"]["a_later_setting"] = 1
    saved["created_with"]["weightspace"] = "9.9"
    (run / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="written by weightspace 9.9 .*a_later_setting"):
        load_run(run)


def test_resume_after_kill_gives_the_same_run(zoo_dir, small_run, tmp_path):
    reference = small_run
    out = tmp_path / "killed"
    code = (
        "import sys; from weightspace.emulation import PretrainConfig, pretrain; "
        f"pretrain(sys.argv[1], sys.argv[2], PretrainConfig(**{SMALL!r}), progress=False)"
    )
    # writes: config, metrics (truncation), then per evaluation metrics + best + last
    env = {**os.environ, "WEIGHTSPACE_FAULT_AFTER_WRITES": "6"}
    killed = subprocess.run(
        [sys.executable, "-c", code, str(zoo_dir), str(out)], env=env, capture_output=True, text=True
    )
    assert killed.returncode == 137, killed.stderr
    pretrain(zoo_dir, out, PretrainConfig(**SMALL), progress=False)
    expected = [
        {k: v for k, v in json.loads(l).items() if k != "seconds"}
        for l in (reference / "metrics.jsonl").read_text().splitlines()
    ]
    got = [
        {k: v for k, v in json.loads(l).items() if k != "seconds"}
        for l in (out / "metrics.jsonl").read_text().splitlines()
    ]
    assert got == expected
    a, b = load_run(reference), load_run(out)
    for (name, x), (_, y) in zip(a.encoder.state_dict().items(), b.encoder.state_dict().items()):
        assert torch.equal(x, y), name


def test_other_settings_in_the_same_directory_are_refused(zoo_dir, tmp_path):
    pretrain(zoo_dir, tmp_path / "run", PretrainConfig(**{**SMALL, "steps": 10}), progress=False)
    with pytest.raises(ConfigError, match="other settings"):
        pretrain(zoo_dir, tmp_path / "run", PretrainConfig(**{**SMALL, "steps": 10, "seed": 3}), progress=False)


def test_cli_pretrain_embed_fidelity(zoo_dir, tmp_path):
    runner = CliRunner()
    run = tmp_path / "cli-run"
    result = runner.invoke(
        main,
        [
            "pretrain",
            "--zoo",
            str(zoo_dir),
            "--encoder",
            "flattened",
            "--out",
            str(run),
            "--steps",
            "6",
            "--batch-size",
            "4",
            "--eval-every",
            "3",
            "--emulator-hidden",
            "16",
            "--rollouts-per-network",
            "2",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    embedded = runner.invoke(
        main, ["embed", "--run", str(run), "--zoo", str(zoo_dir), "--out", str(tmp_path / "z.parquet")]
    )
    assert embedded.exit_code == 0, embedded.output
    table = pd.read_parquet(tmp_path / "z.parquet")
    assert len(table) == 24 and [f"z_{i}" for i in range(16)] == list(table.columns[-16:])
    assert {"model_id", "run_id", "step", "split"} <= set(table.columns)
    fidelity = runner.invoke(
        main,
        [
            "fidelity",
            "--run",
            str(run),
            "--zoo",
            str(zoo_dir),
            "--split",
            "train",
            "--samples",
            "10",
            "--out",
            str(tmp_path / "fid"),
        ],
    )
    assert fidelity.exit_code == 0, fidelity.output
    assert (tmp_path / "fid" / "fidelity.png").stat().st_size > 1000
    scores = pd.read_csv(tmp_path / "fid" / "fidelity.csv")
    assert len(scores) == 15 and scores["emulated"].between(0, 1).all()
    missing = runner.invoke(
        main, ["embed", "--run", str(tmp_path / "nothing"), "--zoo", str(zoo_dir), "--out", "x.parquet"]
    )
    assert missing.exit_code == 2 and "not a pretraining run" in missing.output
