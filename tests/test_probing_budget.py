"""experiments/probing_budget.py (the budget curves of paper 000's encoders): the step from which a
probing encoder stays below the statistics encoder, read from runs' metrics files, and one line with
exit code 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiment_scripts import experiment_script


@pytest.fixture(scope="module")
def script():
    return experiment_script("probing_budget")


def _curve(values, every=250):
    return {"steps": [every * (i + 1) for i in range(len(values))], "val": list(values), "seconds": 1.0}


def test_the_crossing_is_where_the_probing_encoder_stays_below(script):
    statistics = _curve([0.5, 0.4, 0.3, 0.3, 0.3, 0.3])
    assert script.crossing(_curve([0.6, 0.35, 0.25, 0.2, 0.1, 0.1]), statistics) == 500
    # below at 500 but not at 750 (the statistics encoder improved): it crosses for good at 1000
    assert script.crossing(_curve([0.6, 0.35, 0.35, 0.29, 0.1, 0.1]), statistics) == 1000
    assert script.crossing(_curve([0.6, 0.35, 0.31, 0.31, 0.31, 0.31]), statistics) is None
    # an early-stopped statistics run keeps its best: a longer probing run is compared with it
    assert script.crossing(_curve([0.6, 0.5, 0.4, 0.35, 0.32, 0.29, 0.28]), _curve([0.5, 0.3])) == 1500


def _run(folder: Path, encoder: str, values, lr=1e-4, seed=0):
    folder.mkdir(parents=True)
    pretrain = {"encoder": encoder, "seed": seed, "learning_rate": lr}
    (folder / "config.json").write_text(json.dumps({"pretrain": pretrain}))
    curve = _curve(values)
    lines = [{"step": s, "val_loss": v, "seconds": 60.0 * s / 250} for s, v in zip(curve["steps"], curve["val"])]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"ours={folder}"


def test_the_table_and_the_crossings_of_run_folders(script, tmp_path, capsys):
    runs = [
        _run(tmp_path / "s", "statistics", [0.5, 0.4, 0.3, 0.3]),
        _run(tmp_path / "p", "interactive", [0.6, 0.5, 0.25, 0.2]),
        _run(tmp_path / "c", "constant", [0.7, 0.6, 0.6, 0.6]),
        _run(tmp_path / "other-seed", "probing", [0.1, 0.1], seed=1),
    ]
    args = ["--zoo", "z", "--figure", str(tmp_path / "f.png"), "--marks", "500,1000,2000"]
    assert script.main([a for run in runs for a in ("--run", run)] + args) == 0
    out = capsys.readouterr().out
    assert "| ours | 0.0001 | interactive | 0.5000 (-17%) | 0.2000 (-67%) | - | 1000 | 4 min |" in out
    assert "- ours, lr 0.0001: interactive below statistics from step 750 on" in out
    assert "probing" not in out  # the run of another seed
    assert (tmp_path / "f.png").stat().st_size > 0


@pytest.mark.parametrize("args, words", [(["--marks", "1k"], "--marks"), (["--ours", "{tmp}/nowhere"], "nowhere")])
def test_bad_input_is_one_line_and_exit_code_2(script, tmp_path, capsys, args, words):
    args = [a.format(tmp=tmp_path) for a in args]
    assert script.main(["--zoo", "z", "--figure", str(tmp_path / "f.png"), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and words in err


def test_a_results_folder_still_running_reads_its_steps_settings(script, tmp_path, capsys):
    """A run still going (or killed) has no experiment.json yet: the learning rate comes from its
    pretraining steps' own settings."""
    for name, losses in (("statistics", [0.5, 0.3]), ("reference-constant", [0.7, 0.6])):
        step = tmp_path / "results" / "steps" / "pretrain" / "z" / name / "seed-0" / "abc"
        (step / "run").mkdir(parents=True)
        (step / "step.json").write_text(json.dumps({"settings": {"learning_rate": 0.003}}))
        lines = [{"step": 500 * (i + 1), "val_loss": v, "seconds": 60.0 * (i + 1)} for i, v in enumerate(losses)]
        (step / "run" / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = [
        "--zoo",
        "z",
        "--figure",
        str(tmp_path / "f.png"),
        "--marks",
        "500,1000",
        "--ours",
        str(tmp_path / "results"),
    ]
    assert script.main(args) == 0
    assert "| ours | 0.003 | statistics | 0.5000 (-29%) | 0.3000 (-50%) |" in capsys.readouterr().out
