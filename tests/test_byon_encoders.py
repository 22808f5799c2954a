"""Bring your own networks, the encoder part: supervised prediction on an imported zoo (from Python
and from a representations experiment, which runs only what applies to it), module-probing
(invariant to correct permutations by construction, gradients reaching the probes, one vmapped
call for the population), and one-line refusals of what cannot apply."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import weightspace as ws
from test_zoo_import import _mlp, _write_small_cnn_zoo
from weightspace.cli import main
from weightspace.downstream import PredictorConfig, downstream_splits, evaluate_supervised
from weightspace.encoders import build_encoder, build_zoo_encoder, fitting_encoders
from weightspace.errors import ConfigError, WeightspaceError
from weightspace.experiments import load_experiment
from weightspace.experiments.report import write_report
from weightspace.networks import LSTM, MLP
from weightspace.networks.module_architecture import ModuleArchitecture
from weightspace.networks.symmetry import INCORRECT_VARIANTS, applicable_variants, permute, random_permutations
from weightspace.zoo.importers import from_small_cnn_zoo, from_state_dicts

TINY = {
    "statistics": {"hidden": 16, "layers": 1},
    "module-probing": {"probes": 4, "reader_hidden": 16, "mlp_hidden": 16},
}
BUDGET = PredictorConfig(hidden=16, layers=1, steps=6, eval_every=3)
# a module of the user's own (an nn.Sequential of linear layers would import as the built-in MLP)
NETWORK = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


def make():
    return Net()
"""


def _state(seed):
    """An MLP checkpoint of the tests of zoo import, under the keys of ``Net``."""
    names = {"0": "hidden", "2": "out"}
    return {f"{names[k.split('.')[0]]}.{k.split('.')[1]}": v.contiguous() for k, v in _mlp(seed).state_dict().items()}


@pytest.fixture
def mlp_zoo(tmp_path, monkeypatch):
    """12 tiny MLPs imported with their factory and input shape, one run each: a numeric property
    (the mean first-layer weight, so it can be predicted) and a categorical one."""
    (tmp_path / "byon_nets.py").write_text(NETWORK)
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    states = [_state(i) for i in range(12)]
    for i, state in enumerate(states):
        save_file(state, folder / f"net{i:02d}.safetensors")
    properties = pd.DataFrame(
        {
            "file": [f"net{i:02d}.safetensors" for i in range(12)],
            "accuracy": [float(s["hidden.weight"].mean()) for s in states],
            "optimizer": ["adam", "sgd", "sgd"] * 4,
        }
    )
    path = from_state_dicts(
        sorted(folder.iterdir()),
        properties,
        module="byon_nets:make",
        input_shape=(4,),
        out=tmp_path / "zoo",
        progress=False,
        val_fraction=0.25,
        test_fraction=0.25,
    )
    return ws.load_zoo(path)


def _target(zoo, name):
    return next(t for t in zoo.task.targets(zoo) if t.name == name)


# ---- supervised prediction from Python -------------------------------------------------------
@pytest.mark.parametrize("encoder", ["statistics", "module-probing"])
def test_supervised_prediction_on_an_imported_zoo_reports_mse_r2_and_kendalls_tau(mlp_zoo, encoder):
    assert isinstance(mlp_zoo.architecture, ModuleArchitecture) and mlp_zoo.architecture.input_shape == (4,)
    splits = downstream_splits(mlp_zoo)
    assert all(len(rows) >= 2 for rows in splits.values())  # R^2 and tau need two rows
    model = build_zoo_encoder(encoder, mlp_zoo, **TINY[encoder])  # asks for no TaskIO
    result = evaluate_supervised(model, mlp_zoo, splits, _target(mlp_zoo, "accuracy"), BUDGET, seed=0)
    for split in ("train", "val", "ood_test"):
        assert {"loss", "mse", "r2", "kendall_tau"} <= set(result[split])
        assert all(np.isfinite(v) for v in result[split].values()), (split, result[split])
    result = evaluate_supervised(model, mlp_zoo, splits, _target(mlp_zoo, "optimizer"), BUDGET, seed=0)
    assert 0 <= result["val"]["accuracy"] <= 1


# ---- module-probing ----------------------------------------------------------------------------
@pytest.fixture
def cnn_zoo(tmp_path):
    """The Small CNN Zoo's networks (6 CNNs), imported with its factory and the default input shape."""
    _write_small_cnn_zoo(tmp_path / "cnn")
    return ws.load_zoo(from_small_cnn_zoo(tmp_path / "cnn", out=tmp_path / "cnn-zoo", progress=False))


def test_module_probing_is_invariant_to_correct_permutations_and_only_to_them(cnn_zoo):
    assert cnn_zoo.architecture.input_shape == (1, 32, 32) and cnn_zoo.config.input_shape == (1, 32, 32)
    torch.manual_seed(0)
    encoder = build_encoder("module-probing", cnn_zoo.architecture, None, probes=4, reader_hidden=32, mlp_hidden=32)
    weights = cnn_zoo.weights()
    perms = random_permutations(weights.spec, weights.size, torch.Generator().manual_seed(1))
    permuted = permute(weights, perms)
    assert not torch.allclose(permuted.flatten(), weights.flatten())
    z = encoder(weights)
    torch.testing.assert_close(encoder(permuted), z, atol=1e-5, rtol=1e-4)
    for variant in applicable_variants(weights.spec):  # a broken permutation changes the function
        assert variant in INCORRECT_VARIANTS
        assert not torch.allclose(encoder(permute(weights, perms, variant)), z, atol=1e-4), variant
    # the population is one computation: a network's embedding is the same alone
    torch.testing.assert_close(encoder(weights.select(torch.tensor([3]))), z[3:4], atol=1e-6, rtol=1e-5)


def test_module_probing_reads_a_plain_mlp_stack():
    architecture = MLP((4, 8, 8, 3), "relu")  # what an imported nn.Sequential of Linear layers is
    torch.manual_seed(0)
    encoder = build_encoder("module-probing", architecture, None, probes=4, reader_hidden=32, mlp_hidden=32)
    weights = architecture.init(range(5))
    permuted = permute(weights, random_permutations(weights.spec, 5, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(encoder(permuted), encoder(weights), atol=1e-5, rtol=1e-4)


def test_gradients_reach_the_probes_through_the_networks(cnn_zoo):
    torch.manual_seed(0)
    encoder = build_encoder("module-probing", cnn_zoo.architecture, None, **TINY["module-probing"])
    probes = encoder.probe_inputs().detach().requires_grad_()
    assert probes.shape == (4, 1, 32 * 32)
    encoder.read(encoder.run_subjects(cnn_zoo.weights(), probes)).sum().backward()
    assert probes.grad.abs().sum() > 0
    encoder(cnn_zoo.weights()).sum().backward()  # and on to the probe generator and its code
    assert encoder.codes.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.probe_generator.parameters())


def test_module_probing_reads_probes_from_an_inputs_file(cnn_zoo, tmp_path):
    examples = np.random.default_rng(0).random((5, 1, 32, 32)).astype(np.float32)
    np.save(tmp_path / "inputs.npy", examples)
    encoder = build_encoder("module-probing", cnn_zoo.architecture, None, probes=3, inputs=tmp_path / "inputs.npy")
    torch.testing.assert_close(encoder.probe_inputs().reshape(3, 1, 32, 32), torch.from_numpy(examples[:3]))
    assert not hasattr(encoder, "probe_generator")
    assert encoder(cnn_zoo.weights()).shape == (len(cnn_zoo), 16)
    np.save(tmp_path / "bad.npy", examples[:, :, :8])
    with pytest.raises(WeightspaceError, match=r"expected at least 3 inputs of shape \(1, 32, 32\)"):
        build_encoder("module-probing", cnn_zoo.architecture, None, probes=3, inputs=tmp_path / "bad.npy")


# ---- one-line refusals -------------------------------------------------------------------------
def _one_line(error_info, *fragments):
    message = str(error_info.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_encoders_that_cannot_read_a_zoo_say_which_can(checkpoints_zoo, mlp_zoo, cnn_zoo):
    assert fitting_encoders(checkpoints_zoo.architecture, has_task=False) == [
        "statistics",
        "flattened",
        "transformer",
        "dwsnet",
    ]
    with pytest.raises(WeightspaceError) as error:  # inferred module: no factory, nothing to run
        build_zoo_encoder("module-probing", checkpoints_zoo)
    _one_line(error, "without a module factory", "statistics, flattened, transformer")
    no_shape = ModuleArchitecture(mlp_zoo.spec, mlp_zoo.architecture.factory)
    with pytest.raises(WeightspaceError) as error:
        build_encoder("module-probing", no_shape, None)
    _one_line(error, "without an input shape", "--input-shape")
    wrong_shape = ModuleArchitecture(cnn_zoo.spec, cnn_zoo.architecture.factory, (3, 32, 32))
    with pytest.raises(WeightspaceError) as error:
        build_encoder("module-probing", wrong_shape, None)
    _one_line(error, "rejects inputs of shape (3, 32, 32)", "statistics, flattened, transformer")
    with pytest.raises(WeightspaceError) as error:
        build_encoder("module-probing", LSTM(6, 8, 1, 6), None)
    _one_line(error, "probing, interactive")
    with pytest.raises(WeightspaceError) as error:  # sequence probing asks the imported zoo for its TaskIO
        build_zoo_encoder("probing", mlp_zoo)
    _one_line(error, "module-probing", "statistics, flattened and transformer")
    with pytest.raises(WeightspaceError) as error:
        build_encoder("interactive", LSTM(6, 8, 1, 6), None)
    _one_line(error, "needs the zoo's TaskIO")


def test_encoders_list_shows_what_reads_an_imported_zoo(cnn_zoo):
    result = _cli("encoders", "list", "--zoo", cnn_zoo.path)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split()[1] for line in result.output.splitlines()[1:]}
    assert rows["dwsnet"] == rows["probing"] == rows["interactive"] == "-"
    assert all(rows[e] != "-" for e in ("statistics", "flattened", "transformer", "module-probing"))


@pytest.fixture
def checkpoints_zoo(tmp_path):
    """4 MLPs imported without a factory (the module inferred from the keys)."""
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(4):
        save_file(dict(_mlp(i).state_dict()), folder / f"n{i}.safetensors")
    table = pd.DataFrame({"file": [f"n{i}.safetensors" for i in range(4)], "accuracy": [0.1, 0.2, 0.3, 0.4]})
    return ws.load_zoo(from_state_dicts(sorted(folder.iterdir()), table, out=tmp_path / "plain-zoo", progress=False))


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_an_input_shape_the_module_cannot_read_is_refused_at_import_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "byon_nets.py").write_text(NETWORK)
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    save_file(_state(0), folder / "a.safetensors")
    pd.DataFrame({"file": ["a.safetensors"], "accuracy": [0.5]}).to_csv(tmp_path / "p.csv", index=False)
    base = ["zoo", "import", "state-dicts", folder, "--properties", tmp_path / "p.csv", "--quiet"]
    for extra, message in (
        (["--module", "byon_nets:make", "--input-shape", "5"], "rejects inputs of shape (5,)"),
        (["--input-shape", "4"], "give --module"),
    ):
        result = _cli(*base, *extra, "--out", tmp_path / "zoo")
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.stderr
        assert not (tmp_path / "zoo" / "manifest.json").exists()
    result = _cli(*base, "--module", "byon_nets:make", "--input-shape", "4", "--out", tmp_path / "zoo")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "zoo" / "manifest.json").read_text())["architecture"]["config"]["input_shape"] == [4]


# ---- the representations experiment on an imported zoo -------------------------------------------
EXPERIMENT = """
name = "byon"
seeds = [0]
encoders = ["statistics", "module-probing"]
supervised_targets = ["accuracy"]

[[zoos]]
name = "mine"
kind = "imported"
path = "{path}"
{extra}

[supervised]
steps = 6
eval_every = 3
hidden = 16
layers = 1

[encoder_options]
statistics = {{ hidden = 16, layers = 1 }}
module-probing = {{ probes = 4, reader_hidden = 16, mlp_hidden = 16 }}
{tail}
"""


def test_an_experiment_on_an_imported_zoo_runs_only_the_supervised_steps(mlp_zoo, tmp_path):
    config = tmp_path / "byon.toml"
    config.write_text(EXPERIMENT.format(path=mlp_zoo.path, extra="", tail=""))
    result = _cli("run", config, "--quiet", "--results-dir", tmp_path / "results")
    assert result.exit_code == 0, result.output
    out = tmp_path / "results" / "byon"
    steps = {s["name"]: s["status"] for s in json.loads((out / "run.json").read_text())["steps"]}
    assert sorted(steps) == [
        "supervised/mine/module-probing/seed-0/accuracy",
        "supervised/mine/statistics/seed-0/accuracy",
        "zoo/mine",
    ]
    record = json.loads((out / "results.json").read_text())["zoos"]["mine"]
    assert record["emulation"] is False and record["references"] == {}
    for encoder in ("statistics", "module-probing"):
        metrics = record["encoders"][encoder][0]["predictions"]["supervised/accuracy"]["ood_test"]
        assert {"mse", "r2", "kendall_tau"} <= set(metrics)
    report = (out / "report.md").read_text()
    assert "emulation pretraining does not apply" in report and "R^2 (higher is better)" in report
    assert "| module-probing |" in report and "table 11" not in report
    write_report(out)  # the report rebuilds from experiment.json, which holds the zoo's whole config
    result = _cli("run", config, "--quiet", "--results-dir", tmp_path / "results")
    assert result.exit_code == 0, result.output
    assert {s["status"] for s in json.loads((out / "run.json").read_text())["steps"]} == {"reused"}


FITTING = "set encoders to those that fit: ['statistics', 'flattened', 'transformer', 'dwsnet', 'module-probing']"


@pytest.mark.parametrize(
    "encoders, extra, tail, message",
    [
        (None, "", "", FITTING),  # the paper's six by default: sequence probing cannot apply
        ('["dwsnet", "probing"]', "", "", "encoders ['probing'] cannot read its networks (probing: needs the inputs"),
        ('["statistics"]', "models = 3", "", "was written with models = 12, not 3"),
        ('["statistics"]', "", "[analyses]\nprobing_ablation = true", "no zoo here has"),
    ],
    ids=["the-paper-six", "sequence-probing", "a-changed-setting", "probing-ablation"],
)
def test_what_cannot_apply_to_an_imported_zoo_is_refused_in_one_line(mlp_zoo, tmp_path, encoders, extra, tail, message):
    text = EXPERIMENT.format(path=mlp_zoo.path, extra=extra, tail=tail)
    text = text.replace('encoders = ["statistics", "module-probing"]', f"encoders = {encoders}" if encoders else "")
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_experiment(config)
    _one_line(error, message)
    result = _cli("run", config)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "path, message", [(None, "give the directory"), ("nowhere", "is not a directory")], ids=["no-path", "no-zoo"]
)
def test_an_imported_zoo_is_read_from_an_existing_path(tmp_path, path, message):
    config = tmp_path / "bad.toml"
    line = f'path = "{tmp_path / path}"' if path else ""
    config.write_text(f'name = "x"\nencoders = ["statistics"]\n[[zoos]]\nkind = "imported"\n{line}\n')
    with pytest.raises(ConfigError) as error:
        load_experiment(config)
    _one_line(error, message)
