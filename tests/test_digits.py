"""The tiled sequential digits task and zoo: IDX loading, rotation, tiling, splits, zoo round trip."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import weightspace as ws
from weightspace.cli import main
from weightspace.errors import WeightspaceError
from weightspace.tasks import digits, get_task, task_names
from weightspace.zoo import build_zoo


def write_idx(path, array: np.ndarray, compress=False, truncate=0):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    data = data[: len(data) - truncate]
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.fixture
def mnist_dir(tmp_path):
    """A small MNIST-format directory: 40 train and 12 test images of 8x8 pixels (two gzipped)."""
    rng = np.random.default_rng(0)
    names = digits.MNIST_FILES
    write_idx(tmp_path / f"{names['train_images']}.gz", rng.integers(0, 256, (40, 8, 8)), compress=True)
    write_idx(tmp_path / names["train_labels"], rng.integers(0, 10, 40))
    write_idx(tmp_path / names["val_images"], rng.integers(0, 256, (12, 8, 8)))
    write_idx(tmp_path / f"{names['val_labels']}.gz", rng.integers(0, 10, 12), compress=True)
    return tmp_path


def test_mnist_loader_reads_plain_and_gzipped_idx(mnist_dir):
    data = digits.load_mnist(mnist_dir)
    assert data.train_images.shape == (40, 8, 8) and data.val_images.shape == (12, 8, 8)
    raw = digits.read_idx(mnist_dir / f"{digits.MNIST_FILES['train_images']}.gz")
    assert torch.equal(data.train_images, torch.from_numpy(raw.astype(np.float32) / 255))
    assert data.train_labels.dtype == torch.int64 and data.train_labels.max() < 10


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncated", "is truncated: expected"),
        ("missing", "is missing"),
        ("bad_magic", "bad magic number"),
        ("label_count", "40 train images but labels of shape"),
    ],
)
def test_mnist_loader_errors_name_the_problem(mnist_dir, damage, message):
    labels = mnist_dir / digits.MNIST_FILES["train_labels"]
    if damage == "truncated":
        write_idx(labels, np.zeros(40), truncate=3)
    elif damage == "missing":
        labels.unlink()
    elif damage == "bad_magic":
        labels.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 50)
    elif damage == "label_count":
        write_idx(labels, np.zeros(39))
    with pytest.raises(WeightspaceError, match=message):
        digits.load_mnist(mnist_dir)


def test_sklearn_default_split_is_fixed_and_disjoint():
    a, b = digits.load_sklearn_digits(), digits.load_sklearn_digits()
    assert len(a.train_labels) + len(a.val_labels) == 1797 and len(a.val_labels) == 359
    assert torch.equal(a.val_images, b.val_images)
    train = {tuple(x.flatten().tolist()) for x in a.train_images}
    assert sum(tuple(x.flatten().tolist()) in train for x in a.val_images) < 5  # (a few duplicate images exist)


def test_tiling_roundtrips_a_known_image():
    image = torch.arange(64, dtype=torch.float32).reshape(8, 8)
    tiles = digits.to_tiles(image, 2)
    assert tiles.shape == (16, 4)
    assert (
        tiles[0].tolist() == [0, 1, 8, 9]
        and tiles[1].tolist() == [2, 3, 10, 11]
        and tiles[4].tolist() == [16, 17, 24, 25]
    )
    assert torch.equal(digits.from_tiles(tiles, 2), image)
    mnist_like = torch.rand(3, 28, 28)
    assert digits.to_tiles(mnist_like, 4).shape == (3, 49, 16)
    framed = digits.frame(digits.to_tiles(mnist_like, 4))
    assert framed.shape == (3, 51, 16)  # 49 tiles + BOS + EOS
    assert (framed[:, 0] == digits.BOS_VALUE).all() and (framed[:, -1] == digits.EOS_VALUE).all()
    with pytest.raises(WeightspaceError, match="does not divide"):
        digits.to_tiles(mnist_like, 3)


def test_rotation_matches_exact_quarter_turns_and_is_batched_per_network():
    images = torch.rand(5, 8, 8)
    rotated = digits.rotate(images, torch.tensor([0.0, 90.0, 180.0, 270.0]))
    assert rotated.shape == (4, 5, 8, 8)
    torch.testing.assert_close(rotated[0], images, atol=1e-5, rtol=0)
    torch.testing.assert_close(rotated[1], torch.rot90(images, 1, dims=(1, 2)), atol=1e-5, rtol=0)
    torch.testing.assert_close(rotated[2], torch.rot90(images, 2, dims=(1, 2)), atol=1e-5, rtol=0)
    torch.testing.assert_close(rotated[3], torch.rot90(images, 3, dims=(1, 2)), atol=1e-5, rtol=0)
    assert not torch.allclose(digits.rotate(images, torch.tensor([45.0]))[0], images)


TINY = dict(
    models=6, population=4, steps=10, checkpoints=(0, 10), samples=30, rollouts=4, hidden_size=8, seed=1, save_every=4
)


def test_digits_zoo_roundtrip_and_splits(tmp_path):
    out = build_zoo(tmp_path / "d", "digits", TINY, progress=False)
    zoo = ws.load_zoo(out)
    table = zoo.table
    for column in [
        "run_id",
        "step",
        "split",
        "angle",
        "accuracy",
        "train_loss",
        "val_loss",
        "generalization_gap",
        "weight_decay",
        "seed",
    ]:
        assert column in table.columns
    np.testing.assert_allclose(table["generalization_gap"], table["val_loss"] - table["train_loss"], atol=1e-6)
    assert ((table["angle"] >= 312) == (table["split"] == "ood")).all()
    assert (table.groupby("run_id")["split"].nunique() == 1).all()
    rollouts = zoo.rollouts(1)
    assert rollouts["inputs"].shape == (4, 18, 4) and rollouts["logprobs"].shape == (4, 18, 10)
    module = zoo.architecture.torch_module()
    module.load_state_dict(zoo.state_dict(1))  # nn.LSTM + nn.Linear reproduce the stored outputs
    expected = torch.log_softmax(module(rollouts["inputs"])[0], -1)
    torch.testing.assert_close(expected, rollouts["logprobs"], atol=2e-2, rtol=1e-2)
    # the same Dataset view as the formal-language zoo
    item = zoo.dataset(split=table["split"].iloc[0], columns=["angle"])[0]
    assert set(item) == {"index", "weights", "rollouts", "angle"}


def test_digits_split_rule_over_many_runs():
    plan = get_task("digits").plan(get_task("digits").config({"models": 2000, "seed": 5}))
    ood = plan["split"] == "ood"
    assert ((plan["angle"] >= 312) == ood).all() and plan["angle"].between(0, 360).all()
    val_share = (plan["split"] == "val").sum() / (~ood).sum()
    assert 0.12 < val_share < 0.18
    assert plan.equals(get_task("digits").plan(get_task("digits").config({"models": 2000, "seed": 5})))


def test_digits_zoo_resumes_after_kill(tmp_path, mnist_dir):
    config = dict(TINY, data_dir=str(mnist_dir), tile_size=4)
    reference = build_zoo(tmp_path / "ref", "digits", config, progress=False)
    out = tmp_path / "killed"
    code = (
        "import sys; from weightspace.zoo import build_zoo; "
        f"build_zoo(sys.argv[1], 'digits', {config!r}, progress=False)"
    )
    env = {**os.environ, "WEIGHTSPACE_FAULT_AFTER_WRITES": "4"}
    assert subprocess.run([sys.executable, "-c", code, str(out)], env=env).returncode == 137
    build_zoo(out, "digits", config, progress=False)
    a, b = ws.load_zoo(reference), ws.load_zoo(out)
    assert a.table.equals(b.table)
    assert a.manifest["task"]["tile_size"] == 4 and a.manifest["task"]["sequence"].startswith("BOS + 4 tiles")
    for i in range(len(a)):
        for name, value in a.state_dict(i).items():
            assert torch.equal(value, b.state_dict(i)[name])


def test_cli_digits_options(tmp_path, mnist_dir):
    assert {"formal-languages", "digits", "cartpole"} <= set(task_names())
    runner = CliRunner()
    bad = runner.invoke(
        main, ["zoo", "build", "digits", "--out", str(tmp_path / "x"), "--mnist-dir", str(tmp_path / "nope")]
    )
    assert bad.exit_code == 2 and "is not a directory" in bad.output and "Traceback" not in bad.output
    wrong_kind = runner.invoke(
        main, ["zoo", "build", "formal-languages", "--out", str(tmp_path / "y"), "--mnist-dir", str(mnist_dir)]
    )
    assert wrong_kind.exit_code == 2 and "No such option '--mnist-dir'" in wrong_kind.output
    ok = runner.invoke(
        main,
        [
            "zoo",
            "build",
            "digits",
            "--out",
            str(tmp_path / "z"),
            "--models",
            "2",
            "--steps",
            "2",
            "--checkpoints",
            "0,2",
            "--samples",
            "10",
            "--rollouts",
            "2",
            "--quiet",
        ],
    )
    assert ok.exit_code == 0, ok.output
    manifest = json.loads((tmp_path / "z" / "manifest.json").read_text())
    assert "scikit-learn" in manifest["task"]["note"] and manifest["config"]["population"] == 32
