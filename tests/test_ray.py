"""--executor ray: the same files as a local run, zoo shards on Ray, a killed worker retried to the
identical result, a step's own error one line. A local Ray instance with 2 CPUs (marked slow)."""

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

import toy_task
from weightspace.cli import main
from weightspace.experiments.config import load_experiment
from weightspace.experiments.runner import run_experiment
from weightspace.zoo import build_zoo

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

TESTS = str(Path(__file__).parent)


@pytest.fixture(scope="module")
def local_ray():
    toy_task.register()
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS, previous]))  # the workers import toy_task
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if previous is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = previous


def _executor(**kwargs):
    from weightspace.experiments.ray_executor import RayExecutor

    return RayExecutor(**kwargs)


def _content(file: Path):
    """What a file says: JSON without timings, safetensors as tensors and metadata (its header's
    key order is a hash map's), other files as bytes."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "seconds"}
        return [strip(v) for v in value] if isinstance(value, list) else value

    if file.suffix == ".json":
        return strip(json.loads(file.read_text()))
    if file.suffix == ".jsonl":
        return [strip(json.loads(line)) for line in file.read_text().splitlines()]
    if file.suffix == ".safetensors":
        with safe_open(file, "pt") as f:
            return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    return file.read_bytes()


def _assert_same_files(left: Path, right: Path, skip=("log.txt", "run.json", "report.md", "experiment.json")):
    def files(root):
        return {
            p.relative_to(root)
            for p in root.rglob("*")
            if p.is_file() and p.name not in skip and "tensorboard" not in p.parts
        }

    assert files(left) == files(right)
    for name in sorted(files(left)):
        a, b = _content(left / name), _content(right / name)
        if isinstance(a, tuple):
            assert a[0] == b[0] and a[1].keys() == b[1].keys(), name
            assert all(torch.equal(a[1][k], b[1][k]) for k in a[1]), name
        else:
            assert a == b, name


@pytest.fixture(scope="module")
def toy_zoo(local_ray, tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("toy") / "zoo", "shifted-copy", {"checkpoints": [0, 60]}, progress=False)


def _experiment(tmp_path, name, zoo):
    file = tmp_path / f"{name}.toml"
    file.write_text(toy_task.experiment_toml(tmp_path / name, zoo, seeds=[0, 1]))
    return load_experiment(file)


@pytest.fixture(scope="module")
def local_run(toy_zoo, tmp_path_factory):
    """The toy experiment run locally: what each run on Ray must write."""
    folder = tmp_path_factory.mktemp("local")
    run_experiment(_experiment(folder, "local", toy_zoo), progress=False, threads=1)
    return folder / "local" / "toy"


def test_the_toy_experiment_on_ray_equals_the_local_run(toy_zoo, local_run, tmp_path):
    run_experiment(_experiment(tmp_path, "ray", toy_zoo), progress=False, threads=1, executor=_executor())
    _assert_same_files(local_run, tmp_path / "ray" / "toy")
    logs = list((tmp_path / "ray" / "toy" / "steps").rglob("log.txt"))
    assert logs  # each step's own output, in its directory


def test_a_zoo_built_with_shards_on_ray_equals_one_built_locally(local_ray, tmp_path):
    config = {"models": 12, "population": 4, "checkpoints": [0, 30], "steps": 30}
    build_zoo(tmp_path / "local", "shifted-copy", config, progress=False)
    build_zoo(tmp_path / "ray", "shifted-copy", config, progress=False, executor=_executor())
    _assert_same_files(tmp_path / "local", tmp_path / "ray")


def test_a_worker_killed_mid_step_is_retried_to_the_identical_result(toy_zoo, local_run, tmp_path):
    marker = tmp_path / "killed-once"
    executor = _executor(env={"WEIGHTSPACE_FAULT_AFTER_WRITES": "12", "WEIGHTSPACE_FAULT_ONCE": str(marker)})
    run_experiment(_experiment(tmp_path, "ray", toy_zoo), progress=False, threads=1, executor=executor)
    assert marker.exists()  # a worker did die mid-step
    _assert_same_files(local_run, tmp_path / "ray" / "toy")


def test_a_step_that_fails_for_its_own_reason_stops_the_run_with_one_line(local_ray, tmp_path):
    not_a_zoo = tmp_path / "not-a-zoo"
    not_a_zoo.mkdir()
    (not_a_zoo / "notes.txt").write_text("someone else's files")
    file = tmp_path / "broken.toml"
    file.write_text(toy_task.experiment_toml(tmp_path / "results", not_a_zoo))
    result = CliRunner().invoke(main, ["run", str(file), "--executor", "ray", "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "not-a-zoo" in lines[0], result.output
