"""Build a model zoo: train runs in populations (shards), write them atomically, resume after a kill.

A zoo of N runs is trained as ceil(N / population) shards of at most ``population`` networks,
each shard one batched computation. A finished shard is written as a weights file and a
rollouts file, then the table and then the manifest (which lists finished shards) are
rewritten; a reader trusts only shards the manifest lists. While a shard trains, its trainer
state and the checkpoints recorded so far are saved to ``progress/`` at every checkpoint and
every ``save_every`` steps, so a killed build resumes mid-shard. All randomness is
counter-based (:mod:`weightspace.counter_rng`), so a resumed build writes exactly the numbers
an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from pathlib import Path

import filelock
import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from tqdm.auto import tqdm

from .. import storage
from ..errors import ConfigError
from ..tasks import Task, TaskConfig, get_task
from ..training import PopulationTrainer
from ..versions import runtime_versions
from .format import MANIFEST, new_manifest, read_manifest, shard_file
from .segmented import build_segmented
from .table import ZooTable

#: set to 1 to resume a zoo with another recurrent kernel path (LSTM, tanh RNN) than it was started with
ALLOW_KERNEL_CHANGE = "WEIGHTSPACE_ALLOW_KERNEL_CHANGE"
#: set to 1 to resume a zoo with another environment version (Task.resume_must_match) than it was started with
ALLOW_ENVIRONMENT_CHANGE = "WEIGHTSPACE_ALLOW_ENVIRONMENT_CHANGE"


def _kernel_path(architecture, device) -> str | None:
    """The recurrent kernel path a build of ``architecture`` takes on ``device``: the compiled
    kernels' build and the pure-PyTorch path can differ in the last bits of a number, so a zoo
    records it and a resume refuses to switch (None: the architecture has no compiled kernel)."""
    if not getattr(architecture, "uses_compiled_kernel", False):
        return None
    if torch.device(device).type != "cpu":
        return f"pytorch ({torch.device(device).type})"
    from ..networks import fused_cpu

    return fused_cpu.kernel_path()


def _check_kernel(out: Path, manifest: dict, kernel: str | None) -> None:
    started = manifest.get("created_with", {}).get("lstm_kernel")
    if kernel is None or started is None or started == kernel or os.environ.get(ALLOW_KERNEL_CHANGE) == "1":
        return
    raise ConfigError(
        f"{out} was started with the recurrent kernel path '{started}' and would resume with '{kernel}', "
        "which can change its numbers midway; resume where it started (WEIGHTSPACE_KERNEL_ISA or "
        f"WEIGHTSPACE_FUSED=0 choose the path), or set {ALLOW_KERNEL_CHANGE}=1 to resume anyway"
    )


def _check_environment(out: Path, manifest: dict, task: Task, config: TaskConfig) -> None:
    if not task.resume_must_match or os.environ.get(ALLOW_ENVIRONMENT_CHANGE) == "1":
        return
    diffs = _differences(manifest.get("task", {}), task.describe(config)["task"], task.resume_must_match)
    if diffs:
        raise ConfigError(
            f"{out} was started with another environment ({'; '.join(diffs)}), which would change its numbers midway; "
            f"resume where it started, or set {ALLOW_ENVIRONMENT_CHANGE}=1 to resume anyway"
        )


def _differences(there: dict, now: dict, keys) -> list[str]:
    """``key: A there vs B now`` for each of ``keys`` whose values differ between a zoo being
    resumed and this build."""
    return [f"{k}: {there.get(k)} there vs {now.get(k)} now" for k in keys if there.get(k) != now.get(k)]


def _prepare(out: Path, task: Task, config: TaskConfig, device) -> dict:
    """Create a new manifest or check that ``out`` holds a build of the same zoo."""
    architecture = task.architecture(config)
    kernel = _kernel_path(architecture, device)
    if (out / MANIFEST).exists():
        manifest = read_manifest(out)
        if manifest["kind"] != task.name:
            raise ConfigError(f"{out} holds a {manifest['kind']!r} zoo, not {task.name!r}; choose another --out")
        # rebuilt by the task's config class: a field added later takes its default
        wanted = config.to_json()
        diffs = _differences(task.config_from_manifest(manifest["config"]).to_json(), wanted, wanted)
        if diffs:
            raise ConfigError(
                f"{out} holds a zoo built with other settings ({'; '.join(diffs)}); "
                "rerun with the same settings to resume, or choose another --out"
            )
        _check_kernel(out, manifest, kernel)
        _check_environment(out, manifest, task, config)
        return manifest
    if out.exists() and any(p.name != "progress" for p in out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty, but has no {MANIFEST}; choose another --out")
    manifest = new_manifest(
        task.name,
        config,
        architecture.spec.to_json(),
        task.describe(config),
        task.shard_count(config),
        {**runtime_versions(), **({"lstm_kernel": kernel} if kernel else {})},
    )
    storage.write_json(out / MANIFEST, manifest)
    return manifest


def build_zoo(
    out,
    task: Task | str,
    config: TaskConfig | dict | None = None,
    device: str = "cpu",
    progress: bool = True,
    executor=None,
    processes: int | None = None,
) -> Path:
    """Build (or resume building) a zoo of ``task`` (a Task or its registered name) with ``config``
    (the task's config, or a dict of its settings; default: the task's defaults) in ``out``.
    ``executor`` (:class:`~weightspace.experiments.ray_executor.RayExecutor`) trains the shards as
    parallel tasks; the table and the manifest still grow shard by shard, in order, so the zoo's
    files are those a local build writes. ``processes``: worker processes of a family that builds
    trained in segments (PPO trajectories; default one per available core)."""
    out = Path(out)
    device = torch.device(device)
    task = get_task(task) if isinstance(task, str) else task
    if config is None or isinstance(config, dict):
        config = task.config(config)
    elif not isinstance(config, task.config_class):
        raise ConfigError(
            f"a {task.name} zoo is built from a {task.config_class.__name__}, not a {type(config).__name__}"
        )
    if task.segmented and executor is not None:
        raise ConfigError(f"{task.name} zoos train in local worker processes; --executor ray does not apply to them")
    with _build_lock(out, progress):  # two builds of one zoo: the second waits, then resumes (or finds it done)
        _build(out, task, config, device, progress, executor, processes)
    return out


@contextlib.contextmanager
def _build_lock(out: Path, progress: bool):
    """The lock of a zoo's build, beside it (``.NAME.lock`` in its parent directory, so that the
    zoo's own directory holds only the zoo); a second process waits for the first, saying so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(out.parent / f".{out.name}.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if progress:
            tqdm.write(f"another process is building {out}; waiting for it")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _build(out: Path, task: Task, config: TaskConfig, device, progress: bool, executor, processes) -> None:
    manifest = _prepare(out, task, config, device)
    storage.remove_temporaries(out)  # left by atomic writes of a build killed outright
    bar = functools.partial(_progress_bar, task, config, progress)
    if task.segmented:  # a family with its own training loop, one shard per segment (PPO trajectories)
        build_segmented(out, task, config, manifest, device, bar, processes)
    else:
        _build_shards(out, task, config, manifest, device, bar, executor)
    if (out / "progress").is_dir() and not any((out / "progress").iterdir()):
        (out / "progress").rmdir()


def _progress_bar(task: Task, config: TaskConfig, progress: bool, finished_runs: int) -> tqdm:
    """The build's progress bar, in networks x training steps, ``finished_runs`` already done."""
    return tqdm(
        total=config.models * config.steps,
        initial=finished_runs * config.steps,
        unit="net·step",
        unit_scale=True,
        disable=not progress,
        dynamic_ncols=True,
        desc=f"{task.name} zoo",
    )


def _build_shards(out: Path, task: Task, config: TaskConfig, manifest: dict, device, progress_bar, executor) -> None:
    """The builder's own shards of ``population`` runs, each trained to its ``checkpoints``."""
    plan = task.plan(config)
    plan["shard"] = plan["run_id"] // config.population
    zoo_table = ZooTable(out, manifest)
    completed = zoo_table.completed
    bar = progress_bar(int(plan["shard"].isin(completed).sum()))
    shards = [shard for shard in range(manifest["shards"]["total"]) if shard not in completed]
    runs_of = {shard: plan[plan["shard"] == shard].reset_index(drop=True) for shard in shards}

    def add(shard, rows):
        zoo_table.add(shard, rows)
        (out / _progress_file(shard)).unlink(missing_ok=True)

    if executor is None:
        for shard in shards:
            bar.set_postfix_str(f"shard {shard + 1}/{manifest['shards']['total']}")
            add(shard, _ShardJob(out, shard, runs_of[shard], task, config, device, bar)())
    else:
        running = {
            executor.submit(_ShardJob(out, shard, runs_of[shard], task, config, device)): shard for shard in shards
        }
        done = {}
        while running:
            for handle in executor.wait(list(running)):
                shard = running.pop(handle)
                done[shard] = executor.result(handle)
                bar.update(len(runs_of[shard]) * config.steps)
            while shards and shards[0] in done:  # in shard order, as a local build
                shard = shards.pop(0)
                add(shard, done.pop(shard))
    bar.close()


class _ShardJob:
    """Train one shard and write its weights and rollouts; returns its table rows."""

    def __init__(self, out: Path, shard: int, runs: pd.DataFrame, task: Task, config: TaskConfig, device, bar=None):
        self.out, self.shard, self.runs, self.task, self.config, self.device, self.bar = (
            out,
            shard,
            runs,
            task,
            config,
            device,
            bar,
        )

    def __call__(self) -> pd.DataFrame:
        bar = self.bar if self.bar is not None else tqdm(disable=True)
        rows, weights, rollouts = _train_shard(
            self.out, self.shard, self.runs, self.task, self.config, self.device, bar
        )
        storage.write_tensors(self.out / shard_file("weights", self.shard), weights)
        storage.write_tensors(self.out / shard_file("rollouts", self.shard), rollouts)
        return rows


def _progress_file(shard: int) -> str:
    return f"progress/shard-{shard:05d}.safetensors"


def _train_shard(out: Path, shard: int, runs: pd.DataFrame, task: Task, config: TaskConfig, device, bar):
    """Train one shard's population; returns its table rows, weights and rollouts."""
    architecture = task.architecture(config)
    shard_task = task.shard_task(runs, config, device)
    trainer = shard_task.make_trainer(architecture, runs, config, device)
    records: dict[int, dict[str, torch.Tensor]] = {}
    progress_path = out / _progress_file(shard)
    if progress_path.exists():
        step = _load_progress(progress_path, trainer, records)
        bar.update(len(runs) * step)

    def save_progress():
        tensors = dict(trainer.state_tensors())
        tensors["last_loss"] = trainer.last_loss
        for step, record in records.items():
            tensors.update({f"checkpoint.{step}.{name}": t for name, t in record.items()})
        storage.write_tensors(
            progress_path, tensors, {"step": str(trainer.step), "recorded": json.dumps(sorted(records))}
        )

    def on_checkpoint(step, weights):
        metrics, rollouts = shard_task.evaluate(architecture, weights, step)
        metrics.setdefault("train_loss", trainer.last_loss)  # the last training batch's loss
        # copies: the trainer updates its parameters in place after this step
        record = {f"weights.{n}": t.to("cpu", copy=True) for n, t in weights.items()}
        record.update({f"metric.{n}": t.to("cpu", torch.float32, copy=True) for n, t in metrics.items()})
        record.update({f"rollout.{n}": t.to("cpu", copy=True) for n, t in rollouts.items()})
        records[step] = record
        save_progress()

    def on_step(step):
        bar.update(len(runs))
        if step % config.save_every == 0 and step not in config.checkpoints:
            save_progress()

    trainer.run([c for c in config.checkpoints if c not in records], on_checkpoint, on_step)
    return _assemble(runs, records, task)


def _load_progress(path: Path, trainer: PopulationTrainer, records: dict) -> int:
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    step = int(metadata["step"])
    trainer.load_state_tensors(tensors, step)
    trainer.last_loss = tensors["last_loss"]
    for recorded in json.loads(metadata["recorded"]):
        prefix = f"checkpoint.{recorded}."
        records[recorded] = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return step


def _assemble(runs: pd.DataFrame, records: dict, task: Task):
    """Rows ordered run-major then by step; tensors get a leading axis in that row order."""
    steps = sorted(records)
    K, C = len(runs), len(steps)

    def stack(name):  # (C, K, ...) -> (K * C, ...)
        stacked = torch.stack([records[s][name] for s in steps], dim=1)
        return stacked.reshape(K * C, *stacked.shape[2:])

    names = records[steps[0]].keys()
    weights = {n[len("weights.") :]: stack(n) for n in names if n.startswith("weights.")}
    rollouts = {
        n[len("rollout.") :]: task.store_rollout(n[len("rollout.") :], stack(n))
        for n in names
        if n.startswith("rollout.")
    }
    rows = runs.loc[np.repeat(np.arange(K), C)].reset_index(drop=True)
    rows.insert(1, "step", np.tile(np.array(steps, dtype=np.int64), K))
    rows.insert(rows.columns.get_loc("shard") + 1, "shard_row", np.arange(K * C))
    for n in sorted(names):  # sorted: a resumed build reads records back in sorted key order
        if n.startswith("metric."):
            rows[n[len("metric.") :]] = stack(n).numpy().astype(np.float64)
    return rows, weights, rollouts
