"""Downstream prediction: metrics, bootstrap intervals, the OOD half-split rule, predictors."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from weightspace.downstream import PredictorConfig, downstream_splits, evaluate_frozen
from weightspace.downstream.targets import Encoded, Target, metrics
from weightspace.stats import bootstrap_interval
from weightspace.tasks import get_task


def perfect_outputs(target: Target, labels: torch.Tensor) -> torch.Tensor:
    """Outputs that encode ``labels`` exactly (large logits), for checking the metrics."""
    if target.kind == "three_hot":
        return (F.one_hot(labels, len(target.classes)).float() * 40 - 20).reshape(len(labels), -1)
    if target.kind == "classification":
        return F.one_hot(labels, len(target.classes)).float() * 40 - 20
    return labels[:, None].clone()


def _fl_table(n=60, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.integers(-3, 3, (n, 3))
    return pd.DataFrame(
        {
            "m_b": m[:, 0],
            "m_c": m[:, 1],
            "m_d": m[:, 2],
            "performance": rng.random(n),
            "step": np.tile([0, 10, 20], n // 3),
            "task_id": rng.integers(0, 216, n),
        }
    )


def _digits_table(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "angle": rng.random(n) * 360,
            "accuracy": rng.random(n),
            "generalization_gap": rng.normal(size=n),
            "step": np.tile([0, 100, 200, 400], n // 4),
        }
    )


@pytest.mark.parametrize("kind,table", [("formal-languages", _fl_table()), ("digits", _digits_table())])
def test_true_labels_score_perfectly(kind, table):
    for target in get_task(kind).targets(SimpleNamespace(table=table)):
        labels = Encoded(target, table).labels(table)
        result = metrics(target, perfect_outputs(target, labels), labels)
        if target.kind == "three_hot":
            assert result["exact_accuracy"] == 1.0 and result["parameter_accuracy"] == 1.0
        elif target.kind == "classification":
            assert result["accuracy"] == 1.0 and target.classes == tuple(sorted(table["step"].unique()))
        else:
            assert result["mse"] == 0.0
        assert result["loss"] < 1e-6


def test_wrong_predictions_score_badly():
    table = _fl_table()
    task = get_task("formal-languages").targets(SimpleNamespace(table=table))[0]
    labels = Encoded(task, table).labels(table)
    wrong = perfect_outputs(task, (labels + 1) % 6)
    result = metrics(task, wrong, labels)
    assert result["exact_accuracy"] == 0.0 and result["parameter_accuracy"] == 0.0


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(0)
    few, many = rng.normal(size=4), rng.normal(size=64)
    for values in (few, many):
        mean, low, high = bootstrap_interval(values)
        assert low <= mean <= high and mean == pytest.approx(values.mean())
    width_few = np.subtract(*bootstrap_interval(few)[2:0:-1])
    width_many = np.subtract(*bootstrap_interval(many)[2:0:-1])
    assert width_many < width_few
    assert bootstrap_interval([0.7]) == (0.7, 0.7, 0.7)
    assert bootstrap_interval(few) == bootstrap_interval(few)  # fixed resampling seed


class _FakeZoo:
    def __init__(self, table, kind):
        self.table, self.kind, self.task = table, kind, get_task(kind)


def test_half_of_the_ood_tasks_join_training():
    tasks = np.repeat(np.arange(10), 3)
    split = np.where(tasks < 6, "ood", np.where(tasks < 8, "train", "val"))
    table = pd.DataFrame({"task_id": tasks, "run_id": np.arange(30), "split": split})
    splits = downstream_splits(_FakeZoo(table, "formal-languages"))
    ood_train = set(table.iloc[splits["train"]].query("split == 'ood'")["task_id"])
    ood_test = set(table.iloc[splits["ood_test"]]["task_id"])
    assert len(ood_train) == 3 and len(ood_test) == 3 and not ood_train & ood_test
    assert ood_train | ood_test == {0, 1, 2, 3, 4, 5}
    assert set(table.iloc[splits["val"]]["split"]) == {"val"}
    # all rows of a task stay together, and the choice is fixed
    assert len(splits["ood_test"]) == 9
    assert all(
        np.array_equal(a, b)
        for a, b in zip(splits.values(), downstream_splits(_FakeZoo(table, "formal-languages")).values())
    )
    # digits: the tasks are runs (each run has its own angle)
    digits = downstream_splits(_FakeZoo(table, "digits"))
    assert len(digits["ood_test"]) == 9 and len(set(table.iloc[digits["ood_test"]]["run_id"])) == 9


def test_frozen_predictor_learns_from_informative_embeddings():
    table = _fl_table(n=300, seed=1)
    task = get_task("formal-languages").targets(SimpleNamespace(table=table))[0]
    labels = Encoded(task, table).labels(table).numpy()
    z = np.concatenate([np.eye(6)[labels[:, j]] for j in range(3)], 1) + np.random.default_rng(0).normal(
        0, 0.05, (300, 18)
    )
    splits = {"train": np.arange(200), "val": np.arange(200, 250), "ood_test": np.arange(250, 300)}
    result = evaluate_frozen(z, table, splits, task, PredictorConfig(steps=800, eval_every=50, patience=20), seed=0)
    assert result["val"]["exact_accuracy"] > 0.9 and result["ood_test"]["exact_accuracy"] > 0.9
    noise = np.random.default_rng(1).normal(size=(300, 18))
    chance = evaluate_frozen(noise, table, splits, task, PredictorConfig(steps=300, eval_every=50), seed=0)
    assert chance["ood_test"]["exact_accuracy"] < 0.2


@pytest.mark.parametrize("setting", ["eval_every=0", "steps=0", "patience=0", "batch_size=0", "learning_rate=0"])
def test_a_predictor_setting_that_cannot_work_is_refused_at_load(setting):
    """Issue 27: eval_every = 0 divided by zero mid-run; steps or patience 0 reported an untrained
    predictor's metrics without a word. Now the config is refused when it is read."""
    from pathlib import Path

    from weightspace.errors import ConfigError
    from weightspace.experiments import load_experiment
    from weightspace.experiments.config import parse_assignment

    demo = Path(__file__).resolve().parent.parent / "experiments" / "demo.toml"
    for section in ("predictor", "supervised"):
        with pytest.raises(ConfigError, match=setting.split("=")[0]) as error:
            load_experiment(demo, assignments=[parse_assignment(f"{section}.{setting}")])
        assert "\n" not in str(error.value)


def test_a_refused_predictor_setting_is_one_line_and_exit_code_2_on_the_command_line():
    import subprocess
    import sys
    from pathlib import Path

    demo = Path(__file__).resolve().parent.parent / "experiments" / "demo.toml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "weightspace.cli",
            "run",
            str(demo),
            "--print-config",
            "--set",
            "predictor.eval_every=0",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "eval_every must be >= 1" in result.stderr


def test_regression_reports_r2_and_kendalls_tau_beside_mse():
    from weightspace.downstream.targets import Regression, metrics

    target = Regression("accuracy", ("accuracy",))
    labels = torch.linspace(-1, 1, 9)
    perfect = metrics(target, labels[:, None], labels)
    assert perfect["r2"] == pytest.approx(1.0) and perfect["kendall_tau"] == pytest.approx(1.0)
    reversed_ = metrics(target, -labels[:, None], labels)
    assert reversed_["kendall_tau"] == pytest.approx(-1.0) and reversed_["r2"] < 0
    noisy = labels + torch.tensor([0.3, -0.2, 0.5, 0.0, -0.4, 0.1, 0.2, -0.3, 0.05])
    scores = metrics(target, noisy[:, None], labels)
    assert scores["mse"] == pytest.approx(float(((noisy - labels) ** 2).mean()), rel=1e-6)
    assert scores["r2"] == pytest.approx(1 - scores["mse"] / float(labels.double().var(unbiased=False)), rel=1e-5)
    assert 0 < scores["kendall_tau"] < 1
