"""Zoo building, the on-disk format, reading, resume after a kill, and errors on bad zoos."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from safetensors import safe_open

import weightspace as ws
from killed_builds import killed_builds_fixture
from weightspace.cli import main
from weightspace.errors import ConfigError, ZooFormatError
from weightspace.networks import Population
from weightspace.tasks import formal_languages as fl
from weightspace.tasks import get_task
from weightspace.zoo import build_zoo

TINY = dict(
    models=5,
    population=2,
    steps=12,
    checkpoints=(0, 4, 12),
    samples=40,
    rollouts=6,
    hidden_size=8,
    save_every=5,
    seed=3,
)
CLI_TINY = [
    "--models",
    "5",
    "--population",
    "2",
    "--steps",
    "12",
    "--checkpoints",
    "0,4,12",
    "--samples",
    "40",
    "--rollouts",
    "6",
    "--save-every",
    "5",
    "--seed",
    "3",
    "--quiet",
]


def _build(path, **overrides):
    return build_zoo(path, "formal-languages", {**TINY, **overrides}, progress=False)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("zoo") / "fl")


def _assert_same_zoo(a, b):
    za, zb = ws.load_zoo(a), ws.load_zoo(b)
    assert za.table.equals(zb.table)
    for i in range(len(za)):
        for name, tensor in za.state_dict(i).items():
            assert torch.equal(tensor, zb.state_dict(i)[name]), (i, name)
        for name, tensor in za.rollouts(i).items():
            assert torch.equal(tensor, zb.rollouts(i)[name]), (i, name)


def test_table_and_api(tiny_zoo):
    zoo = ws.load_zoo(tiny_zoo)
    table = zoo.table
    assert len(zoo) == 15  # 5 runs x 3 checkpoints
    for column in [
        "model_id",
        "run_id",
        "step",
        "split",
        "performance",
        "m_b",
        "m_c",
        "m_d",
        "seed",
        "learning_rate",
        "weight_decay",
        "train_loss",
    ]:
        assert column in table.columns
    assert table["step"].tolist() == [0, 4, 12] * 5
    assert set(table["split"]) <= {"train", "val", "ood"}
    # splits by task: every run keeps one split over all its checkpoints
    assert (table.groupby("run_id")["split"].nunique() == 1).all()
    state = zoo.state_dict(4)
    assert sorted(state) == sorted(zoo.spec.names) and state["rnn.weight_hh_l0"].shape == (32, 8)
    rollouts = zoo.rollouts(4)
    assert rollouts["tokens"].shape == (6, 42) and rollouts["tokens"].dtype == torch.int64
    assert rollouts["logprobs"].shape == (6, 41, 6) and rollouts["logprobs"].dtype == torch.float32
    assert zoo.manifest["task"]["vocabulary"] == fl.VOCABULARY


def test_step_zero_is_the_untrained_initialisation(tiny_zoo):
    zoo = ws.load_zoo(tiny_zoo)
    row = zoo.table.iloc[3]
    assert row["step"] == 0
    init = zoo.architecture.init([int(row["seed"])])
    for name, tensor in zoo.state_dict(3).items():
        assert torch.equal(tensor, init[name][0])


def test_rollouts_are_what_the_stored_network_computes(tiny_zoo):
    """logprobs[r, t] is the stored network's log-distribution of tokens[r, t+1] given the prefix."""
    zoo = ws.load_zoo(tiny_zoo)
    for i in [2, 7, 14]:
        module = zoo.architecture.torch_module()
        module.load_state_dict(zoo.state_dict(i))
        rollouts = zoo.rollouts(i)
        x = F.one_hot(rollouts["tokens"][:, :-1], 6).float()
        logprobs = torch.log_softmax(module(x)[0], -1)
        torch.testing.assert_close(logprobs, rollouts["logprobs"], atol=2e-2, rtol=1e-2)  # stored as float16


def test_readable_with_pyarrow_and_safetensors_alone(tiny_zoo):
    manifest = json.loads((tiny_zoo / "manifest.json").read_text())
    table = pq.read_table(tiny_zoo / manifest["table"]["file"]).to_pandas()
    row = table.iloc[8]
    with safe_open(tiny_zoo / f"weights/shard-{row['shard']:05d}.safetensors", "np") as f:
        weights = {name: f.get_tensor(name)[row["shard_row"]] for name in f.keys()}
    expected = ws.load_zoo(tiny_zoo).state_dict(8)
    assert set(weights) == set(expected)
    for name, value in weights.items():
        assert np.array_equal(value, expected[name].numpy())
    assert [t["name"] for t in manifest["architecture"]["tensors"]] == list(expected)


def test_dataset_view_filters_splits(tiny_zoo):
    zoo = ws.load_zoo(tiny_zoo)
    for split in ["train", "val", "ood"]:
        dataset = zoo.dataset(split=split, columns=["performance"])
        assert len(dataset) == int((zoo.table["split"] == split).sum())
    dataset = zoo.dataset(steps=[12], columns=["performance", "m_b"])
    assert len(dataset) == 5
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    population = Population(zoo.spec, batch["weights"])
    assert population.size == 3 and batch["rollouts"]["logprobs"].shape == (3, 6, 41, 6)
    assert torch.equal(population.state_dict(1)["readout.bias"], zoo.state_dict(int(batch["index"][1]))["readout.bias"])
    with pytest.raises(ValueError, match="unknown split"):
        zoo.dataset(split="test")


def test_same_seed_same_zoo_and_other_seed_other_zoo(tiny_zoo, tmp_path):
    _assert_same_zoo(tiny_zoo, _build(tmp_path / "again"))
    other = ws.load_zoo(_build(tmp_path / "other", seed=4))
    assert not other.table["seed"].equals(ws.load_zoo(tiny_zoo).table["seed"])


KILL_POINTS = [1, 2, 3, 5, 6, 8, 9, 11]


killed_builds = killed_builds_fixture("formal-languages", TINY, KILL_POINTS)


@pytest.mark.parametrize("fail_after", KILL_POINTS)
def test_resume_after_kill_gives_the_same_zoo(tiny_zoo, killed_builds, fail_after):
    """The build process dies right after its n-th atomic write (every point of a build is
    covered by some n); rerunning the same command completes the identical zoo."""
    out = killed_builds.killed(fail_after)
    if (out / "manifest.json").exists():
        completed = json.loads((out / "manifest.json").read_text())["shards"]["completed"]
        assert len(completed) < 3
    _build(out)
    _assert_same_zoo(tiny_zoo, out)
    assert not (out / "progress").exists()


def test_a_build_killed_inside_a_write_leaves_no_temporary_file_after_its_resume(tiny_zoo, tmp_path):
    """A process killed outright (SIGKILL, out of memory) cannot remove the temporary file of the
    atomic write it was in; the resumed build does (issue 27: a leftover made progress/ stay)."""
    out = tmp_path / "copy"
    shutil.copytree(tiny_zoo, out)
    stale = [out / "progress" / ".shard-00001.safetensors.x1y2.tmp", out / "weights" / ".shard-00002.safetensors.a.tmp"]
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half a file")
    _build(out)
    assert not any(path.exists() for path in stale) and not (out / "progress").exists()
    _assert_same_zoo(tiny_zoo, out)


def test_cli_build_info_and_resume(tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(main, ["zoo", "build", "formal-languages", "--out", str(out), *CLI_TINY])
    assert result.exit_code == 0, result.output
    assert "performance by training step" in result.output
    info = runner.invoke(main, ["zoo", "info", str(out)])
    assert info.exit_code == 0 and "5 of 5" in info.output and "15 rows" in info.output
    # rerunning a finished build changes nothing; other settings are refused in one line
    again = runner.invoke(main, ["zoo", "build", "formal-languages", "--out", str(out), *CLI_TINY])
    assert again.exit_code == 0
    clash = runner.invoke(main, ["zoo", "build", "formal-languages", "--out", str(out), *CLI_TINY[:-1], "--seed", "9"])
    assert clash.exit_code == 2 and "other settings" in clash.output and "Traceback" not in clash.output


def test_help_reads_well():
    runner = CliRunner()
    assert "model zoos" in runner.invoke(main, ["--help"]).output
    listing = runner.invoke(main, ["zoo", "build", "--help"]).output
    assert all(name in listing for name in ("formal-languages", "digits", "cartpole"))
    text = runner.invoke(main, ["zoo", "build", "formal-languages", "--help"]).output
    for option in ["--models", "--steps", "--checkpoints", "--seed", "--device", "--population", "--hidden-size"]:
        assert option in text
    assert "[default: 64]" in text  # each task's own defaults
    cartpole = runner.invoke(main, ["zoo", "build", "cartpole", "--help"]).output
    assert "--test-episodes" in cartpole and "--hidden-size" not in cartpole and "[default: 8000]" in cartpole


@pytest.mark.parametrize(
    "damage, message",
    [
        ("no_manifest", "has no manifest.json"),
        ("bad_json", "not valid JSON"),
        ("foreign_json", "format field"),
        ("future_version", "format version"),
        ("missing_table", "checkpoints.parquet is missing"),
        ("missing_weights", "is missing"),
        ("corrupt_weights", "unreadable"),
        ("corrupt_table", "not a readable Parquet"),
    ],
)
def test_malformed_zoos_get_one_clear_error_line(tiny_zoo, tmp_path, damage, message):
    zoo = tmp_path / "damaged"
    shutil.copytree(tiny_zoo, zoo)
    manifest = json.loads((zoo / "manifest.json").read_text())
    if damage == "no_manifest":
        (zoo / "manifest.json").unlink()
    elif damage == "bad_json":
        (zoo / "manifest.json").write_text("{not json")
    elif damage == "foreign_json":
        (zoo / "manifest.json").write_text(json.dumps({"name": "something else"}))
    elif damage == "future_version":
        manifest["format_version"] = 99
        (zoo / "manifest.json").write_text(json.dumps(manifest))
    elif damage == "missing_table":
        (zoo / "checkpoints.parquet").unlink()
    elif damage == "missing_weights":
        (zoo / "weights/shard-00001.safetensors").unlink()
    elif damage == "corrupt_weights":
        (zoo / "weights/shard-00001.safetensors").write_bytes(b"\x00" * 40)
    elif damage == "corrupt_table":
        (zoo / "checkpoints.parquet").write_bytes(b"PAR1 broken")
    with pytest.raises(ZooFormatError, match=message):
        ws.load_zoo(zoo)
    result = CliRunner().invoke(main, ["zoo", "info", str(zoo)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message.split()[0] in lines[0]


def test_bad_build_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="checkpoints must lie in"):
        get_task("formal-languages").config({"steps": 10, "checkpoints": [0, 20]})
    with pytest.raises(ConfigError, match="models must be >= 1"):
        get_task("formal-languages").config({"models": 0})
    with pytest.raises(ConfigError, match="unknown key.*hidden_sise"):
        get_task("formal-languages").config({"hidden_sise": 8})
    with pytest.raises(ConfigError, match="steps must be int"):
        get_task("formal-languages").config({"steps": "many"})
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        _build(tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"  # nothing lost
    result = CliRunner().invoke(
        main, ["zoo", "build", "formal-languages", "--out", str(tmp_path / "x"), "--checkpoints", "0,a"]
    )
    assert result.exit_code == 2 and "comma-separated integers" in result.output
