"""Results a researcher can trust: a step's key knows its code (an edit of the source behind a step
recomputes that step and what reads it, and the run says why), two runs at once compute each step
once, and a full or read-only disk is one line."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import weightspace
from weightspace.experiments import code
from weightspace.experiments.representations import family as representations
from weightspace.experiments.zoo_step import build_zoo_step

TOML = """
name = "code"
seeds = [0]
encoders = ["statistics"]
supervised_targets = []
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
steps = 4
batch_size = 8
rollouts_per_network = 2
val_rollouts = 2
eval_every = 2
emulator_hidden = 16

[predictor]
steps = 20
eval_every = 10

[encoder_options]
statistics = {{ hidden = 16 }}

[analyses]
invariance = false
embeddings = false
fidelity = false
probes = false
"""


def _start(*args: str, env: dict | None = None) -> subprocess.Popen:
    """``weightspace ARGS`` in a process of its own, its output (progress included) captured."""
    command = [sys.executable, "-c", "from weightspace.cli import main; main()", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(process: subprocess.Popen) -> None:
    """Wait for a started ``weightspace`` process, which must succeed."""
    output = process.communicate()[0]
    assert process.returncode == 0, output[-2000:]


def _ok(*args: str, env: dict | None = None) -> None:
    """``weightspace ARGS`` in a process of its own, as the runs it is compared with (the same
    thread settings), to the end."""
    _finish(_start(*args, env=env))


def _run(package: Path, config: Path, *extra: str) -> dict:
    """``weightspace run`` with the package copy at ``package``; {step: (status, reason)}."""
    _ok("run", str(config), "--quiet", *extra, env={"PYTHONPATH": str(package)})
    return _statuses(config.parent / "results" / "code")


def _prediction(config: Path) -> dict:
    """The last run's result of the performance prediction (a regression: its losses move with the code)."""
    out = config.parent / "results" / "code"
    run = json.loads((out / "run.json").read_text())
    step = next(s for s in run["steps"] if s["name"] == "predict/fl/statistics/seed-0/performance")
    return json.loads((out / step["directory"] / "result.json").read_text())["result"]


class _Uninterrupted:
    """Each family's experiment of :func:`_fault_cases` run once, uninterrupted, in a process of its
    own (started when a test first asks, so that it runs beside that test's own processes): the
    results that the tests here compare theirs with, and the first run that a code change follows.
    Each run has its own folder, which no test writes to."""

    def __init__(self, root: Path):
        self.root, self._processes = root, {}

    def start(self, family: str) -> None:
        if family not in self._processes:
            folder = self.root / family
            folder.mkdir()
            (folder / "x.toml").write_text(_fault_cases()[family][0])
            args = ["run", str(folder / "x.toml"), "--results-dir", str(folder / "results"), "--quiet"]
            self._processes[family] = _start(*args)

    def results(self, family: str) -> Path:
        """The folder of the finished run's results (results.json, run.json, steps/)."""
        self.start(family)
        process = self._processes[family]
        if process.returncode is None:
            _finish(process)
        assert process.returncode == 0
        (out,) = (self.root / family / "results").iterdir()
        return out

    def close(self) -> None:
        for process in self._processes.values():
            if process.returncode is None:
                process.kill()
                process.communicate()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    runs = _Uninterrupted(tmp_path_factory.mktemp("uninterrupted"))
    yield runs
    runs.close()


def _statuses(results: Path) -> dict:
    """{step: (status, reason)} of the run whose results are at ``results``."""
    run = json.loads((results / "run.json").read_text())
    return {s["name"]: (s["status"], s["reason"]) for s in run["steps"]}


def test_a_changed_constant_behind_the_predictor_recomputes_the_predictions(tmp_path, uninterrupted):
    package = tmp_path / "src"
    # with its compiled bytecode: Python recompiles a module whose source's size or time differs
    shutil.copytree(Path(weightspace.__file__).parent, package / "weightspace")
    config = tmp_path / "code.toml"
    config.write_text(TOML.format(results=tmp_path / "results"))

    # the first run: the uninterrupted run of this experiment (the same code), in a copy of its folder
    reference = uninterrupted.results("representations")
    first = _statuses(reference)
    assert {status for status, _ in first.values()} == {"computed"} and first["zoo/fl"][1] == "new"
    shutil.copytree(reference, tmp_path / "results" / "code")
    before = _prediction(config)

    predictor = package / "weightspace" / "downstream" / "predictor.py"
    text = predictor.read_text()
    assert "z_train.std(0) + 1e-6" in text
    predictor.write_text(text.replace("z_train.std(0) + 1e-6", "z_train.std(0) + 1e3"))  # embeddings squashed
    second = _run(package, config)
    predictions = {name for name in second if name.startswith("predict/")}
    assert predictions == {"predict/fl/statistics/seed-0/task", "predict/fl/statistics/seed-0/performance"}
    for name, (status, reason) in second.items():
        if name in predictions:
            assert status == "computed" and reason == "code changed (downstream/predictor.py)", (name, reason)
        else:
            assert status == "reused", name  # the zoo, the pretraining runs and the embeddings
    assert _prediction(config) != before  # the new number


def test_the_code_behind_a_step_is_what_it_runs():
    zoo = code.step_fingerprint([build_zoo_step], ["weightspace.tasks.formal_languages"])
    pretrain = code.step_fingerprint([representations.compute_pretrain], ["weightspace.encoders.statistics"])
    predict = code.step_fingerprint([representations.compute_predict])
    assert "tasks/formal_languages.py" in zoo and "networks/_lstm_pointwise.c" in zoo
    # a zoo runs its task's code (targets, TaskIO) but no encoder, emulation or predictor
    assert "downstream/targets.py" in zoo and "encoders/base.py" in zoo
    assert not any(
        f.startswith(("encoders/statistics", "encoders/dwsnet", "emulation/", "downstream/pre")) for f in zoo
    )
    assert "encoders/statistics.py" in pretrain and "emulation/pretrain.py" in pretrain
    assert "encoders/dwsnet.py" not in pretrain and "downstream/predictor.py" not in pretrain
    assert "downstream/predictor.py" in predict and "emulation/pretrain.py" not in predict
    # a family module counts only by what the step uses of it (its report helpers do not)
    assert "experiments/representations/family.py::compute_predict" in predict
    assert "experiments/representations/family.py" not in predict
    assert "experiments/steps.py" not in predict and "experiments/code.py" not in predict  # they compute nothing


# ---- two runs at once -----------------------------------------------------------------------
def test_two_runs_at_once_compute_each_step_once(tmp_path, uninterrupted):
    together = tmp_path / "together"
    together.mkdir()
    (together / "code.toml").write_text(TOML.format(results=together / "results"))
    runs = [_start("run", str(together / "code.toml")) for _ in range(2)]
    uninterrupted.start("representations")  # its own folder: it shares nothing
    outputs = [run.communicate()[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    alone = uninterrupted.results("representations")
    run = json.loads((together / "results" / "code" / "run.json").read_text())
    names = [s["name"] for s in run["steps"]]
    computed = [line.split("]")[0][1:] for out in outputs for line in out.splitlines() if "] computed in " in line]
    assert sorted(computed) == sorted(names)  # every step computed, once, by one of the two runs
    same = [alone / "results.json", together / "results" / "code" / "results.json"]
    assert json.loads(same[0].read_text()) == json.loads(same[1].read_text())
    metrics = next((together / "results" / "code" / "steps" / "pretrain").rglob("metrics.jsonl")).read_text()
    assert len(set(metrics.splitlines())) == len(metrics.splitlines())  # no step logged twice


def test_two_zoo_builds_at_once_build_one_zoo(tmp_path):
    args = ["zoo", "build", "formal-languages", "--out", str(tmp_path / "zoo")]
    args += "--models 8 --population 4 --steps 20 --checkpoints 0,20 --samples 40 --rollouts 8 --hidden-size 8".split()
    builds = [_start(*args) for _ in range(2)]
    outputs = [build.communicate()[0] for build in builds]
    assert [build.returncode for build in builds] == [0, 0], outputs
    _ok(*args[:3], "--out", str(tmp_path / "alone"), *args[5:])
    for name in ("checkpoints.parquet", "weights/shard-00000.safetensors", "weights/shard-00001.safetensors"):
        assert (tmp_path / "zoo" / name).read_bytes() == (tmp_path / "alone" / name).read_bytes(), name
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == sorted(
        p.name for p in (tmp_path / "alone").iterdir()
    )


# ---- a full or read-only disk -------------------------------------------------------------
@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only")])
def test_a_full_or_read_only_disk_is_one_line(tmp_path, monkeypatch, code, words):
    from click.testing import CliRunner

    from weightspace import storage
    from weightspace.cli import main

    config = tmp_path / "code.toml"
    config.write_text(TOML.format(results=tmp_path / "results"))

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(storage.tempfile, "mkstemp", refuse)
    for args in (["run", str(config), "--quiet"], ["zoo", "build", "formal-languages", "--out", str(tmp_path / "z")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
    assert not [p for p in tmp_path.rglob("*.tmp")]


# ---- a run killed inside each kind of step, then rerun ----------------------------------
def _fault_cases():
    from test_degeneracy import TINY_EXPERIMENT
    from test_tipl_experiment import TINY as TIPL

    # the tiny experiments of the families' own tests, one sweep or variant each
    one_sweep = TINY_EXPERIMENT.split('[[sweeps]]\nname = "width"')[0]
    one_variant = TIPL.replace('[[svd]]\nmode = "pooled"\nrank = 6\nanchor = true\nreconstruction = "last"\n', "")
    assert one_sweep != TINY_EXPERIMENT and one_variant != TIPL
    return {  # family: (experiment, the steps to die in, one run each, in the order they run)
        "representations": (TOML.format(results="results"), ["pretrain:2", "predict:1"]),
        "tipl": (one_variant, ["zoo:3", "tipl-forecast:1"]),  # a PPO trajectory segment, a TIPL forecast
        "degeneracy": (one_sweep, ["degeneracy-measure:1"]),  # a DSA measurement
    }


@pytest.mark.parametrize("family", list(_fault_cases()))
def test_a_run_killed_inside_a_step_resumes_to_the_same_results(tmp_path, family, uninterrupted):
    """Each run dies inside one kind of step (mid-write: its temporary file left behind) and the
    next resumes it; the last finishes with the results of an uninterrupted run, nothing left over."""
    text, faults = _fault_cases()[family]
    folder = tmp_path / "killed"
    folder.mkdir()
    (folder / "x.toml").write_text(text)
    args = ["run", str(folder / "x.toml"), "--results-dir", str(folder / "results"), "--quiet"]
    uninterrupted.start(family)  # the uninterrupted run, beside the others (one thread each)
    for fault in faults:
        killed = _start(*args, env={"WEIGHTSPACE_FAULT_IN_STEP": fault})
        output = killed.communicate()[0]
        assert killed.returncode == 137, (fault, output[-2000:])  # died inside the step
    _ok(*args)  # the last run resumes
    whole = uninterrupted.results(family)
    results = {"whole": json.loads((whole / "results.json").read_text())}
    assert not list(whole.parent.parent.rglob("*.tmp")), family
    (out,) = (folder / "results").iterdir()
    results["killed"] = json.loads((out / "results.json").read_text())
    assert not list(folder.rglob("*.tmp")), family  # nothing half-written left, zoo included
    run = json.loads((out / "run.json").read_text())
    kind = faults[-1].split(":")[0]
    assert any(s["kind"] == kind and s["reason"] == "unfinished" for s in run["steps"]), run["steps"]
    assert results["killed"] == results["whole"]
