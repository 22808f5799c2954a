"""Several seeds of one encoder pretrained as one computation: each seed's run equals the seed
trained alone (up to float rounding), keeps its own directory, early stopping and resume."""

import json
import os
import subprocess
import sys

import pytest
import torch

from weightspace.emulation import PretrainConfig, load_run, pretrain
from weightspace.emulation.seeds import pretrain_seeds
from weightspace.errors import ConfigError
from weightspace.zoo import build_zoo

OPTIONS = {
    "dwsnet": {"channels": 4, "layers": 2},
    "probing": {"probes": 2, "reader_hidden": 16, "mlp_hidden": 16},
    "interactive": {"probes": 2, "reader_hidden": 16, "mlp_hidden": 16},
    "probing-single": {"probes": 2, "reader_hidden": 16, "mlp_hidden": 16, "reader_residual": False},
    "statistics": {"hidden": 32},
}
BUDGET = dict(
    steps=24,
    batch_size=6,
    rollouts_per_network=3,
    val_rollouts=4,
    eval_every=4,
    patience=3,
    emulator_hidden=24,
    learning_rate=3e-3,
)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    config = dict(
        models=8, population=8, steps=40, checkpoints=(0, 20, 40), samples=40, rollouts=8, hidden_size=8, seed=1
    )
    return build_zoo(tmp_path_factory.mktemp("zoo") / "fl", "formal-languages", config, progress=False)


def _configs(encoder, seeds=(0, 1, 2), **changes):
    return [
        PretrainConfig(encoder=encoder.split("-")[0], encoder_options=OPTIONS[encoder], seed=s, **{**BUDGET, **changes})
        for s in seeds
    ]


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_run(together, alone):
    a, b = _metrics(together), _metrics(alone)
    assert [m["step"] for m in a] == [m["step"] for m in b]  # the same evaluations, the same early stop
    for x, y in zip(a, b):
        for key in ("train_loss", "val_loss", "constant_val_loss", "oracle_val_loss"):
            if key in y:
                assert x[key] == pytest.approx(y[key], rel=2e-4, abs=1e-6), (key, x["step"])
    for which in ("best", "last"):
        left, right = load_run(together, which=which), load_run(alone, which=which)
        for part in ("encoder", "emulator"):
            for (name, p), (_, q) in zip(
                getattr(left, part).state_dict().items(), getattr(right, part).state_dict().items()
            ):
                torch.testing.assert_close(p, q, atol=2e-4, rtol=1e-3, msg=f"{which} {part} {name}")


@pytest.mark.parametrize("encoder", ["dwsnet", "probing", "probing-single"])
def test_seeds_together_equal_seeds_alone(zoo_dir, tmp_path, encoder):
    """A mechanistic and a probing encoder, with their references; the seeds stop early at different
    steps (patience 1, a large learning rate) and the others go on without them."""
    configs = _configs(encoder, patience=1, eval_every=2, learning_rate=3e-2)
    together = pretrain_seeds(
        zoo_dir, [tmp_path / "together" / f"seed-{c.seed}" for c in configs], configs, progress=False
    )
    for run, config in zip(together, configs):
        alone = pretrain(zoo_dir, tmp_path / "alone" / f"seed-{config.seed}", config, progress=False)
        _assert_same_run(run, alone)
        for reference in ("constant", "oracle"):
            _assert_same_run(run / "references" / reference, alone / "references" / reference)
    assert len({len(_metrics(run)) for run in together}) > 1  # they did stop at different steps
    assert json.loads((together[1] / "config.json").read_text())["pretrain"]["seed"] == 1


def test_seeds_together_train_with_the_criterion_of_seeds_alone(zoo_dir, tmp_path):
    """Total variation (the authors' released loss) trains the seeds together as alone, and trains
    something else than the reverse KL."""
    configs = _configs("statistics", seeds=(0, 1), steps=8, criterion="total-variation")
    outs = [tmp_path / "tv" / f"seed-{c.seed}" for c in configs]
    together = pretrain_seeds(zoo_dir, outs, configs, progress=False, references=False)
    for run, config in zip(together, configs):
        alone = pretrain(zoo_dir, tmp_path / "alone" / f"seed-{config.seed}", config, progress=False, references=False)
        _assert_same_run(run, alone)
    kl = _configs("statistics", seeds=(0,), steps=8)[0]
    kl = _metrics(pretrain(zoo_dir, tmp_path / "kl", kl, progress=False, references=False))
    assert _metrics(together[0])[-1]["val_loss"] != pytest.approx(kl[-1]["val_loss"], rel=1e-3)


def test_seeds_resume_after_a_kill(zoo_dir, tmp_path):
    configs = _configs("statistics", seeds=(0, 1), patience=100)
    outs = [tmp_path / "killed" / f"seed-{c.seed}" for c in configs]
    code = (
        "import sys; from weightspace.emulation import PretrainConfig; "
        "from weightspace.emulation.seeds import pretrain_seeds; "
        f"configs = [PretrainConfig(**c) for c in {[c.to_json() for c in configs]!r}]; "
        f"pretrain_seeds(sys.argv[1], {[str(o) for o in outs]!r}, configs, progress=False, references=False)"
    )
    env = {**os.environ, "WEIGHTSPACE_FAULT_AFTER_WRITES": "13"}
    killed = subprocess.run([sys.executable, "-c", code, str(zoo_dir)], env=env, capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr
    assert 0 < len(_metrics(outs[0])) < 6
    pretrain_seeds(zoo_dir, outs, configs, progress=False, references=False)
    whole = pretrain_seeds(
        zoo_dir, [tmp_path / "whole" / f"seed-{c.seed}" for c in configs], configs, progress=False, references=False
    )
    for resumed, reference in zip(outs, whole):
        _assert_same_run(resumed, reference)  # nothing lost or duplicated


def test_an_encoder_that_cannot_be_batched_says_so_and_trains_alone(zoo_dir, tmp_path):
    said = []
    configs = _configs("interactive", seeds=(0, 1), steps=4)
    runs = pretrain_seeds(
        zoo_dir,
        [tmp_path / f"seed-{c.seed}" for c in configs],
        configs,
        progress=False,
        references=False,
        log=said.append,
    )
    assert len(said) == 1 and "one at a time" in said[0] and "nn.LSTMCell" in said[0]
    assert all(_metrics(run) for run in runs)


def test_seeds_must_differ_in_the_seed_alone(zoo_dir, tmp_path):
    configs = _configs("statistics", seeds=(0, 1))
    with pytest.raises(ConfigError, match="but for the seed"):
        pretrain_seeds(
            zoo_dir,
            [tmp_path / "a", tmp_path / "b"],
            [configs[0], PretrainConfig(**{**configs[1].to_json(), "steps": 8})],
        )
    with pytest.raises(ConfigError, match="its own seed"):
        pretrain_seeds(zoo_dir, [tmp_path / "a", tmp_path / "b"], [configs[0], configs[0]])


def test_cli_trains_seeds_together_and_refuses_seed_with_seeds(zoo_dir, tmp_path):
    from click.testing import CliRunner

    from weightspace.cli import main

    common = [
        "pretrain",
        "--zoo",
        str(zoo_dir),
        "--encoder",
        "statistics",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--batch-size",
        "4",
        "--emulator-hidden",
        "16",
        "--no-references",
        "--quiet",
    ]
    result = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "runs"), "--seeds", "3,5"])
    assert result.exit_code == 0, result.output
    assert [m["step"] for m in _metrics(tmp_path / "runs" / "seed-5")] == [2, 4]
    assert result.output.count("pretraining run written to") == 2
    refused = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "other"), "--seeds", "0,1", "--seed", "2"])
    assert refused.exit_code == 2 and "--seed or --seeds" in refused.output
    assert len(refused.output.strip().splitlines()) == 1


def test_an_experiment_groups_only_the_seeds_it_can_batch():
    """Seeds of a batchable encoder are one group (one computation); the seeds of one that cannot be
    batched are steps of their own, which an executor with two workers runs side by side."""
    from weightspace.emulation.seeds import batching_problem
    from weightspace.experiments.representations.family import pretrain_step

    for encoder in ("statistics", "probing", "transformer", "interactive"):
        steps = [
            pretrain_step(f"pretrain/z/{encoder}/seed-{s}", "zoo/z", PretrainConfig(encoder=encoder, seed=s))
            for s in (0, 1)
        ]
        batchable = batching_problem(encoder) is None
        assert (steps[0].group is not None and steps[0].group == steps[1].group) == batchable, encoder
        assert (steps[0].compute_together is not None) == batchable
    assert batching_problem("transformer") and batching_problem("interactive") and not batching_problem("statistics")
