"""Thread settings: the default follows the process's CPU affinity, --threads sets it, and an
explicit count overrides an experiment family's own."""

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
from click.testing import CliRunner

import weightspace as ws
from weightspace.cli import main
from weightspace.experiments import Family, Step, register_family


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity")
def test_the_default_follows_the_cores_this_process_may_use():
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); import weightspace as ws; "
        "print(ws.available_cores(), ws.set_threads())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["1", "1"]
    assert ws.available_cores() == len(os.sched_getaffinity(0))


def test_set_threads_sets_torch_and_refuses_nonsense():
    before = torch.get_num_threads()
    try:
        assert ws.set_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        ws.set_threads(0)


def test_cli_threads_option_sets_the_count_and_rejects_zero(tmp_path):
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(main, ["--threads", "1", "report", str(tmp_path)])
        assert torch.get_num_threads() == 1
        assert result.exit_code == 2 and "no experiment.json" in result.output  # the command ran, on 1 thread
    finally:
        torch.set_num_threads(before)
    bad = subprocess.run(
        [sys.executable, "-m", "weightspace.cli", "--threads", "0", "report", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--threads" in bad.stderr


@dataclass(frozen=True, kw_only=True)
class ThreadsConfig:
    family: str = "threads-probe"
    name: str
    seeds: tuple[int, ...] = (0,)
    results_dir: str = "results"


class ThreadsProbe(Family):
    """One step that records how many torch threads it ran with; its family prefers one."""

    name = "threads-probe"
    cpu_threads = 1

    def config(self, data, where):
        from weightspace.config import from_dict

        return from_dict(ThreadsConfig, data, where)

    def steps(self, config, finished):
        yield Step("probe", "probe", {}, lambda c, settings: {"threads": torch.get_num_threads()})

    def results(self, config, finished, out):
        return {"threads": finished["probe"].result["threads"]}

    def report(self, config, results, out):
        return [f"threads: {results['threads']}", ""]


@pytest.mark.parametrize("given, expected", [([], 1), (["--threads", "2"], 2)])
def test_an_explicit_thread_count_overrides_the_family(tmp_path, given, expected):
    register_family(ThreadsProbe(), replace=True)
    (tmp_path / "probe.toml").write_text('family = "threads-probe"\nname = "probe"\n')
    results = tmp_path / f"results-{expected}"
    before = torch.get_num_threads()
    try:
        outcome = CliRunner().invoke(
            main, given + ["run", str(tmp_path / "probe.toml"), "--results-dir", str(results), "--quiet"]
        )
    finally:
        torch.set_num_threads(before)
    assert outcome.exit_code == 0, outcome.output
    assert f"threads: {expected}" in (results / "probe" / "report.md").read_text()


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_a_compiled_lstm_step_runs_torch_on_one_thread_and_the_kernel_on_all(monkeypatch, kind):
    """Population LSTM training: the compiled layers split networks over all threads, the torch ops
    around them run on one (they stall when a core is taken); other architectures keep torch's count."""
    import numpy as np

    from weightspace import networks
    from weightspace.networks import fused_cpu
    from weightspace.threads import kernel_threads
    from weightspace.training import PopulationTrainer

    monkeypatch.delenv("WEIGHTSPACE_FUSED", raising=False)
    compiled = kind == "LSTM" and fused_cpu.available()
    architecture = getattr(networks, kind)(3, 4, 1, 3)
    seen = []

    def batch(step):
        seen.append((torch.get_num_threads(), kernel_threads()))
        return torch.randn(2, 5, 6, 3), torch.randint(0, 3, (2, 5, 6))

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        trainer = PopulationTrainer(architecture, architecture.init(np.arange(2)), batch, 3, lr=0.01, weight_decay=0.0)
        trainer.train_step()
        assert seen == [(1, 2)] if compiled else [(2, 2)]
        assert torch.get_num_threads() == 2 and kernel_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads, expected", [(1, 1), (None, 2)])
def test_the_threshold_trainer_of_paper_002_trains_on_one_thread(threads, expected, monkeypatch):
    """The RNN populations' training is many small torch products, like the DQN's: torch on one
    thread by default (the compiled RNN layers on torch's count from outside), torch's count on
    request, and torch's setting back afterwards."""
    import numpy as np

    from weightspace.networks import fused_cpu
    from weightspace.tasks import trials
    from weightspace.threads import kernel_threads
    from weightspace.training.threshold import StoppingRule, ThresholdTrainer

    monkeypatch.delenv("WEIGHTSPACE_FUSED", raising=False)
    seen = []

    def batch(step, networks):
        seen.append(torch.get_num_threads())
        assert kernel_threads() == (2 if threads == 1 and fused_cpu.available() else expected)
        t = trials.flip_flop(np.arange(2)[networks.numpy()], step, 4, steps=5, channels=1)
        return t.inputs, t.targets, t.mask

    architecture = ws.RNN(1, 4, 1, 1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        rule = StoppingRule(threshold=1e-9, patience_epochs=1, steps_per_epoch=2, max_epochs=1)
        trainer = ThresholdTrainer(
            architecture, architecture.init(np.arange(2)), batch, rule, [0.01] * 2, threads=threads
        )
        trainer.run([2], lambda step, weights: seen.append(torch.get_num_threads()))
        assert seen == [expected] * 3 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
