"""weightspace zoo import: checkpoints and the Small CNN Zoo as ordinary zoos, from fixture files
the tests write in each documented layout; resume after a kill; one-line errors for bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file
from torch import nn

import weightspace as ws
from weightspace.cli import main
from weightspace.downstream.targets import Classification, Regression
from weightspace.networks.cnn import small_cnn
from weightspace.networks.module_architecture import ModuleArchitecture
from weightspace.zoo.importers import from_small_cnn_zoo, infer_module


def _mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.fixture
def checkpoints(tmp_path):
    """12 MLP checkpoints (safetensors and .pt) and their properties CSV."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    names, states = [], []
    for i in range(12):
        state = {k: v.clone() for k, v in _mlp(i).state_dict().items()}
        name = f"net{i:02d}.safetensors" if i % 2 else f"net{i:02d}.pt"
        (save_file if i % 2 else torch.save)(state, folder / name)
        names.append(name)
        states.append(state)
    rng = np.random.default_rng(0)
    properties = pd.DataFrame(
        {"file": names, "accuracy": rng.random(12), "optimizer": ["adam", "sgd"] * 6, "step": [0, 10] * 6}
    )
    properties.insert(1, "run_id", np.arange(12) // 2)
    properties.to_csv(tmp_path / "properties.csv", index=False)
    return folder, tmp_path / "properties.csv", states, properties


def _run(*args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result, message):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_state_dicts_import_as_a_zoo_with_properties_as_targets(checkpoints, tmp_path):
    folder, properties, states, table = checkpoints
    out = tmp_path / "zoo"
    result = _run("zoo", "import", "state-dicts", folder, "--properties", properties, "--out", out, "--population", 5)
    assert result.exit_code == 0, result.output
    assert "12 rows" in result.output and "accuracy by training step" in result.output
    zoo = ws.load_zoo(out)
    assert zoo.kind == "imported" and len(zoo) == 12 and zoo.manifest["shards"]["total"] == 3
    assert isinstance(zoo.architecture, ModuleArchitecture)
    assert zoo.spec.permutations == {"h0": 8}  # the hidden layer, derived from the inferred module
    for i, state in enumerate(states):
        row = zoo.table.index[zoo.table["file"] == table["file"][i]][0]
        loaded = zoo.state_dict(int(row))
        assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert zoo.table["run_id"].tolist() == (np.arange(12) // 2).tolist()
    assert zoo.table.groupby("run_id")["split"].nunique().max() == 1  # a run's checkpoints share a split
    targets = zoo.task.targets(zoo)
    assert [type(t) for t in targets] == [Regression, Classification]
    assert targets[1].classes == ("adam", "sgd")


def test_a_module_factory_runs_the_imported_population(checkpoints, tmp_path, monkeypatch):
    folder, properties, states, _ = checkpoints
    (tmp_path / "user_nets.py").write_text(
        "from torch import nn\ndef make():\n    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    zoo_path = ws.zoo.importers.from_state_dicts(
        sorted(folder.iterdir()), properties, module="user_nets:make", out=tmp_path / "zoo", progress=False
    )
    zoo = ws.load_zoo(zoo_path)
    x = torch.randn(len(zoo), 5, 4)
    batched = zoo.architecture.forward(zoo.weights(), x)
    for k in range(len(zoo)):
        one = zoo.architecture.to_torch(zoo.weights(), k)
        torch.testing.assert_close(batched[k], one(x[k]))


def test_an_interrupted_import_resumes_to_the_same_zoo(checkpoints, tmp_path):
    folder, properties, _, _ = checkpoints
    args = ["zoo", "import", "state-dicts", str(folder), "--properties", str(properties), "--population", "4"]
    whole = tmp_path / "whole"
    assert _run(*args, "--out", whole, "--quiet").exit_code == 0
    killed = tmp_path / "killed"
    env = {**os.environ, "WEIGHTSPACE_FAULT_AFTER_WRITES": "5"}  # manifest, then shard 0's 4 writes: dies in shard 1
    run = subprocess.run([sys.executable, "-m", "weightspace.cli", *args, "--out", str(killed), "--quiet"], env=env)
    assert run.returncode == 137
    assert json.loads((killed / "manifest.json").read_text())["shards"]["completed"] == [0]
    assert _run(*args, "--out", killed, "--quiet").exit_code == 0
    a, b = ws.load_zoo(whole), ws.load_zoo(killed)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert all(torch.equal(a.weights()[n], b.weights()[n]) for n in a.spec.names)


def _write_small_cnn_zoo(folder, networks=6, seed=0):
    """The Small CNN Zoo's files for ``networks`` random CNNs: TensorFlow layouts, as published."""
    folder.mkdir()
    torch.manual_seed(seed)
    nets = [small_cnn() for _ in range(networks)]
    rows, layout, start = [], [], 0
    for net in nets:
        flat = []
        for i, conv in enumerate(net.convs):
            flat += [conv.weight.detach().numpy().transpose(2, 3, 1, 0).ravel(), conv.bias.detach().numpy()]
        flat += [net.head.weight.detach().numpy().T.ravel(), net.head.bias.detach().numpy()]
        rows.append(np.concatenate(flat))
    for i, conv in enumerate(nets[0].convs):
        for name, shape in (
            (f"sequential/conv2d_{i}/kernel:0", tuple(conv.weight.shape[j] for j in (2, 3, 1, 0))),
            (f"sequential/conv2d_{i}/bias:0", (conv.weight.shape[0],)),
        ):
            size = int(np.prod(shape))
            layout.append({"varname": name, "start_idx": start, "end_idx": start + size, "shape": str(shape)})
            start += size
    for name, shape in (("sequential/dense/kernel:0", (16, 10)), ("sequential/dense/bias:0", (10,))):
        size = int(np.prod(shape))
        layout.append({"varname": name, "start_idx": start, "end_idx": start + size, "shape": str(shape)})
        start += size
    np.save(folder / "weights.npy", np.stack(rows).astype(np.float32))
    pd.DataFrame(layout).to_csv(folder / "layout.csv", index=False)
    pd.DataFrame(
        {
            "config.optimizer": ["adam", "sgd", "adam", "sgd", "adam", "sgd"][:networks],
            "config.learning_rate": [1e-3, 1e-2, 1e-3, 1e-2, 3e-3, 3e-3][:networks],
            "config.init": ["he", "he", "glorot", "glorot", "he", "he"][:networks],
            "step": [86, 86, 86, 86, 0, 86][:networks],
            "test_accuracy": np.linspace(0.2, 0.5, networks),
            "train_accuracy": np.linspace(0.25, 0.55, networks),
        }
    ).to_csv(folder / "metrics.csv.gz", index=False)
    return nets


def test_small_cnn_zoo_imports_in_pytorch_layout(tmp_path):
    nets = _write_small_cnn_zoo(tmp_path / "cnn")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [0, 1, 2], "val": [3], "test": [4, 5]}))
    result = _run("zoo", "import", "small-cnn-zoo", tmp_path / "cnn", "--out", tmp_path / "zoo", "--split-file", split)
    assert result.exit_code == 0, result.output
    zoo = ws.load_zoo(tmp_path / "zoo")
    assert zoo.spec.num_parameters == 4970 and zoo.spec.permutations == {"h0": 16, "h1": 16, "h2": 16}
    assert zoo.table["split"].tolist() == ["train", "train", "train", "val", "ood", "ood"]
    x = torch.randn(len(zoo), 2, 1, 8, 8)
    outputs = zoo.architecture.forward(zoo.weights(), x)
    for k, net in enumerate(nets):
        torch.testing.assert_close(outputs[k], net.eval()(x[k]), rtol=1e-4, atol=1e-5)
    names = [t.name for t in zoo.task.targets(zoo)]
    assert "test_accuracy" in names and "config_optimizer" in names


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "layout.csv").write_text("nonsense\n1\n"), "layout"),
        (lambda d: np.save(d / "weights.npy", np.zeros((3, 4970), np.float32)), "one per network"),
        (lambda d: (d / "metrics.csv.gz").write_bytes(b"\x1f\x8b broken"), "metrics.csv.gz"),
        (lambda d: (d / "weights.npy").unlink(), "does not exist"),
    ],
)
def test_a_bad_small_cnn_zoo_file_is_one_line(tmp_path, damage, message):
    _write_small_cnn_zoo(tmp_path / "cnn")
    damage(tmp_path / "cnn")
    _one_line_error(_run("zoo", "import", "small-cnn-zoo", tmp_path / "cnn", "--out", tmp_path / "zoo"), message)
    assert not (tmp_path / "zoo" / "manifest.json").exists()


def test_bad_checkpoints_and_properties_are_one_line(checkpoints, tmp_path):
    folder, properties, _, table = checkpoints
    base = ["zoo", "import", "state-dicts", folder, "--out", tmp_path / "zoo"]
    _one_line_error(_run(*base), "--properties")
    save_file({**_mlp(0).state_dict(), "extra.weight": torch.zeros(2, 2)}, folder / "net05.safetensors")
    _one_line_error(_run(*base, "--properties", properties, "--quiet"), "net05.safetensors: weights do not match")
    (folder / "net03.safetensors").write_bytes(b"not a checkpoint")
    _one_line_error(_run(*base, "--properties", properties), "net03.safetensors is not a readable checkpoint")
    table.assign(file=["missing.pt"] + table["file"].tolist()[1:]).to_csv(tmp_path / "bad.csv", index=False)
    _one_line_error(_run(*base, "--properties", tmp_path / "bad.csv"), "missing.pt")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [0, 99], "test": [1]}))
    _write_small_cnn_zoo(tmp_path / "cnn")
    result = _run("zoo", "import", "small-cnn-zoo", tmp_path / "cnn", "--out", tmp_path / "z2", "--split-file", split)
    _one_line_error(result, "outside")


def test_an_unknown_layer_asks_for_a_module():
    with pytest.raises(ws.errors.WeightspaceError, match="--module"):
        infer_module({"attn.in_proj_weight": torch.zeros(6, 2), "attn.out_proj.weight": torch.zeros(2, 2)})


def test_imported_zoos_are_not_offered_by_zoo_build():
    result = _run("zoo", "build", "--help")
    assert result.exit_code == 0 and "imported" not in result.output


def test_weight_encoders_read_an_imported_cnn_zoo(tmp_path):
    from weightspace.encoders import build_encoder

    _write_small_cnn_zoo(tmp_path / "cnn")
    zoo = ws.load_zoo(from_small_cnn_zoo(tmp_path / "cnn", out=tmp_path / "zoo", progress=False))
    weights = zoo.weights()
    for name in ("statistics", "flattened", "transformer"):
        torch.manual_seed(0)
        z = build_encoder(name, zoo.architecture, None)(weights)
        assert z.shape == (len(zoo), 16) and torch.isfinite(z).all()
    with pytest.raises(ws.errors.WeightspaceError, match="not the kernel convs.0.weight"):
        build_encoder("dwsnet", zoo.architecture, None)
    with pytest.raises(ws.errors.WeightspaceError, match="statistics, flattened and transformer"):
        zoo.task.task_io(zoo)


class _ZooCNN(nn.Module):
    """A Model Zoos network: layers in ``module_list``, as Schürholt et al.'s checkpoints name them."""

    def __init__(self):
        super().__init__()
        self.module_list = nn.ModuleList(
            [
                nn.Conv2d(1, 4, 3),
                nn.ReLU(),
                nn.Conv2d(4, 4, 3),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(16, 8),
                nn.ReLU(),
                nn.Linear(8, 10),
            ]
        )


def _write_model_zoos(folder, trials=3, epochs=(1, 3)):
    states = {}
    for t in range(trials):
        trial = folder / f"NN_tune_trainable_{t:05d}_seed={t}"
        trial.mkdir(parents=True)
        lines = [
            {
                "training_iteration": e,
                "test_acc": 0.1 * e + 0.01 * t,
                "train_acc": 0.12 * e,
                "config": {
                    "seed": t,
                    "optim::lr": [1e-3, 3e-3, 1e-2][t % 3],
                    "activation": ["relu", "tanh", "relu"][t % 3],
                },
            }
            for e in range(1, 4)
        ]
        (trial / "result.json").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
        for e in epochs:
            torch.manual_seed(10 * t + e)
            state = _ZooCNN().state_dict()
            (trial / f"checkpoint_{e:06d}").mkdir()
            torch.save(state, trial / f"checkpoint_{e:06d}" / "checkpoints")
            states[(t, e)] = state
    return states


def test_model_zoos_import_one_row_per_trial_and_checkpoint(tmp_path):
    states = _write_model_zoos(tmp_path / "zoos")
    result = _run("zoo", "import", "model-zoos", tmp_path / "zoos", "--out", tmp_path / "zoo")
    assert result.exit_code == 0, result.output
    zoo = ws.load_zoo(tmp_path / "zoo")
    assert len(zoo) == 6 and zoo.table["step"].tolist() == [1, 3] * 3
    assert sorted(zoo.spec.permutations.values()) == [4, 8]  # conv channels and the hidden Linear; not the flatten
    for i, row in zoo.table.iterrows():
        stored = zoo.state_dict(i)
        assert all(torch.equal(stored[k], v) for k, v in states[(row["run_id"], row["step"])].items())
    assert zoo.table.loc[1, "test_acc"] == pytest.approx(0.3)
    names = {t.name for t in zoo.task.targets(zoo)}
    assert {"test_acc", "train_acc", "config_optim_lr", "config_activation"} <= names
    (tmp_path / "zoos" / "NN_tune_trainable_00001_seed=1" / "result.json").write_text("{not json\n")
    result = _run("zoo", "import", "model-zoos", tmp_path / "zoos", "--out", tmp_path / "z2", "--quiet")
    _one_line_error(result, "result.json")


def _write_rnn_zoo_npy(folder, runs=4, steps=(0, 100, 200), rollouts=5, seed=0):
    """Paper 000's released zoo layout: what the authors' dataset_creation_formal_language.py stores."""
    from weightspace.networks import LSTM

    folder.mkdir()
    g = torch.Generator().manual_seed(seed)
    architecture = LSTM(6, 32, 2, 6)
    parameters, sequences, logits, tasks, records = [], [], [], [], []
    for run in range(runs):
        task = [0] + torch.randint(-3, 3, (3,), generator=g).tolist()
        for step in steps:
            torch.manual_seed(100 * run + step)
            module = architecture.torch_module()
            parameters.append(torch.cat([p.detach().flatten() for p in module.parameters()]).numpy())
            tokens = torch.randint(0, 6, (rollouts, 42), generator=g)
            tokens[:, 0] = 4
            sequences.append(tokens.numpy().astype(np.int16))
            logits.append(torch.log_softmax(torch.randn(rollouts, 41, 6, generator=g), -1).numpy().astype(np.float16))
            tasks.append(task)
            records.append([run, step, int(torch.randint(0, 1001, (1,), generator=g))])
    for name, values in (("parameters", parameters), ("sequences", sequences), ("logits", logits)):
        np.save(folder / f"{name}.npy", np.stack(values))
    np.save(folder / "tasks.npy", np.array(tasks))
    np.save(folder / "num_step_correct.npy", np.array(records))
    (folder / "args.json").write_text(
        json.dumps(
            {
                "num_tokens": 4,
                "sequence_length": 42,
                "max_n": 10,
                "rnn_hidden_size": 32,
                "rnn_num_layers": 2,
                "seed": seed,
            }
        )
    )
    return np.stack(parameters), np.stack(sequences), np.stack(logits), np.array(tasks), np.array(records)


def test_paper_000s_released_zoo_imports_as_a_formal_languages_zoo(tmp_path):
    from weightspace.tasks.formal_languages import all_languages, language_splits

    parameters, sequences, logits, tasks, records = _write_rnn_zoo_npy(tmp_path / "fl")
    result = _run("zoo", "import", "rnn-zoo-npy", tmp_path / "fl", "--out", tmp_path / "zoo", "--population", 5)
    assert result.exit_code == 0, result.output
    zoo = ws.load_zoo(tmp_path / "zoo")
    assert zoo.kind == "formal-languages" and len(zoo) == 12 and zoo.config.checkpoints == (0, 100, 200)
    np.testing.assert_array_equal(zoo.weights().flatten().numpy(), parameters)  # their parameters() order is ours
    batch = zoo.rollout_batch()
    np.testing.assert_array_equal(batch["tokens"].numpy(), sequences)
    np.testing.assert_array_equal(batch["logprobs"].numpy(), logits.astype(np.float32))
    assert zoo.table["step"].tolist() == records[:, 1].tolist()
    np.testing.assert_allclose(zoo.table["performance"], records[:, 2] / 1000)
    languages = all_languages()
    assert [languages[t] for t in zoo.table["task_id"]] == [tuple(t[1:]) for t in tasks]
    assert zoo.table["split"].tolist() == [language_splits()[tuple(t[1:])] for t in tasks]
    # the family reads it as its own: emulation data and the stored network's outputs
    inputs, targets = zoo.task.emulation_data(zoo, zoo.rollouts(3))
    assert inputs.shape == (5, 41, 6) and targets.shape == (5, 41, 6)
    module = zoo.architecture.to_torch(zoo.weights(), 3)
    assert torch.isfinite(module(inputs)[0]).all()


def test_a_bad_released_zoo_is_one_line(tmp_path):
    _write_rnn_zoo_npy(tmp_path / "fl")
    np.save(tmp_path / "fl" / "tasks.npy", np.zeros((3, 4), dtype=np.int64))
    result = _run("zoo", "import", "rnn-zoo-npy", tmp_path / "fl", "--out", tmp_path / "zoo", "--quiet")
    _one_line_error(result, "disagree on the number of rows")
    (tmp_path / "fl" / "args.json").write_text(json.dumps({"pixels": 16}))
    _one_line_error(_run("zoo", "import", "rnn-zoo-npy", tmp_path / "fl", "--out", tmp_path / "zoo"), "num_tokens")
