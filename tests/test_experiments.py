"""Experiments as configs: end to end on a tiny zoo, skip on rerun, report rebuild, config errors."""

import json

import pytest
from click.testing import CliRunner

from weightspace.cli import main
from weightspace.errors import ConfigError
from weightspace.experiments import load_experiment
from weightspace.experiments.runner import run_experiment

TINY = """
name = "tiny"
seeds = [0, 1]
encoders = ["statistics", "probing"]
results_dir = "{results}"

[[zoos]]
name = "fl"
kind = "formal-languages"
models = 8
population = 8
steps = 20
checkpoints = [0, 20]
samples = 40
rollouts = 8
hidden_size = 8
seed = 1

[pretrain]
steps = 8
batch_size = 8
rollouts_per_network = 2
val_rollouts = 2
eval_every = 4
emulator_hidden = 16

[predictor]
steps = 40
eval_every = 10

[supervised]
steps = 6
eval_every = 3
targets = ["task"]

[encoder_options]
statistics = {{ hidden = 16 }}
probing = {{ probes = 2, reader_hidden = 8, mlp_hidden = 8 }}

[analyses]
fidelity_samples = 5
probing_ablation = {{ encoder = "probing", probes = [1, 2], lengths = [], steps = 4, eval_every = 2 }}
"""


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    config_file = root / "tiny.toml"
    config_file.write_text(TINY.format(results=root / "results"))
    out = run_experiment(load_experiment(config_file), progress=False)
    return config_file, out


def test_report_has_the_task_table_with_intervals_and_figures(experiment):
    _, out = experiment
    report = (out / "report.md").read_text()
    assert "### task: exact accuracy (higher is better)" in report
    assert "| statistics |" in report and "| probing |" in report
    assert "[" in report.split("### task")[1].split("\n\n")[1]  # intervals over the two seeds
    for figure in ["prediction-task.png", "invariance-untrained.png", "invariance-trained.png",
                   "embedding-statistics.png", "fidelity-probing.png", "probes-probing.png", "ablation-probes.png"]:
        assert (out / "figures" / "fl" / figure).stat().st_size > 1000, figure
        assert figure in report
    results = json.loads((out / "results.json").read_text())
    rows = [r for r in results["rows"] if r["target"] == "task" and r["metric"] == "exact_accuracy"]
    assert {(r["encoder"], r["mode"]) for r in rows} == {(e, m) for e in ("statistics", "probing")
                                                          for m in ("pretrained", "supervised")}
    assert all(r["low"] <= r["mean"] <= r["high"] and r["seeds"] == 2 for r in rows)
    assert "table 11" in report and (out / "table.csv").exists()
    matrix = results["zoos"]["fl"]["analyses"]["invariance"]["untrained"]["matrix"]
    assert matrix["statistics"]["rows_only"] < 1e-4 and matrix["subject network"]["rows_only"] > 1e-2


def test_rerun_skips_finished_steps_and_report_rebuilds(experiment):
    config_file, out = experiment
    predictions = sorted((out / "predictions").rglob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in predictions}
    run_experiment(load_experiment(config_file), progress=False)
    assert {p: p.stat().st_mtime_ns for p in predictions} == stamps
    (out / "report.md").unlink()
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0 and (out / "report.md").exists()


def test_command_line_wins_over_the_file(experiment, tmp_path):
    config_file, _ = experiment
    config = load_experiment(config_file, {"seeds": [7], "results_dir": str(tmp_path)})
    assert config.seeds == (7,) and config.output == tmp_path / "tiny"


@pytest.mark.parametrize("text, message", [
    ('name = "x"\n[[zoos]]\nkind = "formal-languages"\nmodelz = 3\n', "unknown keys \\['modelz'\\]"),
    ('name = "x"\nencoders = ["magic"]\n[[zoos]]\nkind = "digits"\n', "unknown encoders"),
    ('name = "x"\n', "at least one \\[\\[zoos\\]\\]"),
    ('name = "x"\n[[zoos]]\nkind = "formal-languages"\n[pretrain]\nstepz = 1\n', "pretrain"),
    ("name = [", "not valid TOML"),
])
def test_config_errors_are_clear(tmp_path, text, message):
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_experiment(file)
    result = CliRunner().invoke(main, ["run", str(file)])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


def test_shipped_configs_load():
    for name in ["demo", "paper-formal-languages", "paper-digits"]:
        config = load_experiment(f"experiments/{name}.toml")
        assert len(config.encoders) == 6
    assert len(load_experiment("experiments/paper-formal-languages.toml").seeds) == 15
