"""Segmented zoo builds: runs trained in groups by a family's own trainer, one shard per segment.

A family whose runs train in a loop of its own (PPO trajectories: a population of PPO trials)
sets :attr:`~weightspace.tasks.Task.segmented` and supplies only its segment: a trainer for one
group of ``population`` runs (:meth:`~weightspace.tasks.Task.segment_trainer`) whose
``train_segment`` returns that segment's weights, rollouts and table rows. This module does the
rest, for every such family:

* shard ``group * segments + j`` is segment ``j`` of ``group``; groups train in this process or in
  worker processes (``concurrent.futures.ProcessPoolExecutor`` with the spawn start method, one
  torch thread each), and only this process writes the table and the manifest;
* a segment is written in the order rows (``progress/rows-SHARD.parquet``), weights and rollouts,
  then the group's trainer state (``progress/group-GROUP.safetensors``, which names the segment):
  the state is the commit point. Once it is written the shard is listed in the table and the
  manifest, and its rows file removed;
* a resumed build lists the shards whose state was committed but which a kill left unlisted,
  discards what a kill left of an uncommitted segment, and trains each group on from its state,
  so a killed build resumes with nothing lost or repeated.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import queue
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from safetensors import safe_open

from .. import storage
from ..errors import WeightspaceError, ZooFormatError
from ..threads import available_cores
from .format import shard_file
from .table import ZooTable

#: seconds a worker gets to stop after SIGTERM (its atomic writes clean up) before SIGKILL
STOP_GRACE = 10.0


def _state_file(group: int) -> str:
    return f"progress/group-{group:05d}.safetensors"


def _rows_file(shard: int) -> str:
    return f"progress/rows-{shard:05d}.parquet"


def _committed_segment(out: Path, group: int) -> int:
    """The last segment of ``group`` whose state was written (-1: none)."""
    path = out / _state_file(group)
    if not path.exists():
        return -1
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    if "committed" not in metadata:
        raise ZooFormatError(f"{path} was written by an older weightspace build; rebuild the zoo in a new directory")
    return int(metadata["committed"])


def build_segmented(
    out: Path, task, config, manifest: dict, device, progress_bar, processes: int | None = None
) -> None:
    """Build (or resume) the zoo in ``out`` of a segmented ``task``, in up to ``processes``
    worker processes (None: one per available core, at most one per unfinished group; 1: here).
    ``progress_bar(finished_runs)`` gives the build's bar."""
    groups, segments = task.groups(config), task.segments(config)
    table = ZooTable(out, manifest)
    pending = []
    for group in range(groups):
        shards = range(group * segments, (group + 1) * segments)
        committed = _committed_segment(out, group)
        for j, shard in enumerate(shards):
            rows = out / _rows_file(shard)
            if rows.exists() and shard not in table.completed and j <= committed:
                table.add(shard, pd.read_parquet(rows))  # committed, then killed before it was listed
            rows.unlink(missing_ok=True)  # listed, or an uncommitted segment's
        if all(shard in table.completed for shard in shards):
            (out / _state_file(group)).unlink(missing_ok=True)
        elif committed < 0 and any(shard in table.completed for shard in shards):
            raise ZooFormatError(
                f"{out}: group {group} has finished segments but no saved trainer state; rebuild it in a new directory"
            )
        else:
            pending.append(group)
    pending_runs = sum(min((g + 1) * config.population, config.models) - g * config.population for g in pending)
    bar = progress_bar(config.models - pending_runs)  # a resumed group adds its updates done when it loads its state

    def publish(shard: int) -> None:
        table.add(shard, pd.read_parquet(out / _rows_file(shard)))
        (out / _rows_file(shard)).unlink()

    processes = min(len(pending), available_cores() if processes is None else processes)
    if processes > 1:
        _in_processes(out, task, config, pending, device, processes, publish, bar)
    else:
        for group in pending:
            train_group(out, task, config, group, device, publish, bar.update)
    bar.close()
    for group in range(groups):
        (out / _state_file(group)).unlink(missing_ok=True)


def train_group(out: Path, task, config, group: int, device, committed, on_update) -> None:
    """Train ``group`` from its last committed segment to its last, writing each segment;
    ``committed(shard)`` is called once a segment's shard may be listed."""
    segments = task.segments(config)
    runs = task.plan(config).iloc[group * config.population : (group + 1) * config.population].reset_index(drop=True)
    trainer = task.segment_trainer(config, runs, device)
    state_path = out / _state_file(group)
    start = _committed_segment(out, group) + 1
    if start > 0:
        with safe_open(state_path, framework="pt") as f:
            trainer.load_state_tensors({k: f.get_tensor(k) for k in f.keys()})
        on_update(len(runs) * trainer.updates_done)
    for j in range(start, segments):
        shard = group * segments + j
        segment = trainer.train_segment(j, shard, on_update)
        storage.write_parquet(out / _rows_file(shard), segment.rows)
        storage.write_tensors(out / shard_file("weights", shard), segment.weights)
        storage.write_tensors(out / shard_file("rollouts", shard), segment.rollouts)
        storage.write_tensors(state_path, trainer.state_tensors(), {"committed": str(j)})
        committed(shard)


# ---- groups in worker processes ----------------------------------------------------------------
_events = None  # a worker's queue to the building process


def _start_worker(events) -> None:
    global _events
    _events = events
    torch.set_num_threads(1)  # one process per core

    def stop(signum, frame):  # the builder stops its workers: unwind, so atomic writes clean up
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stop)


def _worker_group(out: Path, task, config, group: int, device) -> int:
    relay = _Relay(_events)
    train_group(out, task, config, group, device, lambda shard: _events.put(("shard", shard)), relay.update)
    relay.close()
    return group


class _Relay:
    """A worker's progress: its updates go to the builder's bar about twice a second."""

    def __init__(self, events):
        self.events, self.count, self.sent = events, 0, time.monotonic()

    def update(self, count: int) -> None:
        self.count += count
        if time.monotonic() - self.sent > 0.5:
            self.close()

    def close(self) -> None:
        if self.count:
            self.events.put(("updates", self.count))
        self.count, self.sent = 0, time.monotonic()


def _in_processes(out: Path, task, config, groups: list[int], device, processes: int, publish, bar) -> None:
    """Each group in a worker process; this process lists the shards the workers commit."""
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    pool = concurrent.futures.ProcessPoolExecutor(
        processes, mp_context=context, initializer=_start_worker, initargs=(events,)
    )
    workers, finished = [], False
    try:
        with _main_not_rerun(task):  # the workers start at submit
            futures = {pool.submit(_worker_group, out, task, config, group, device): group for group in groups}
        workers = list(pool._processes.values())  # stopped by hand below if need be
        running = set(futures)
        while running or not events.empty():
            _drain(events, publish, bar, timeout=0.2)
            done = {f for f in running if f.done()}
            for future in done:
                _raise_for(future, futures[future], out, workers)
            running -= done
        _drain(events, publish, bar, timeout=0)
        finished = True
    finally:
        if finished:
            pool.shutdown()
        else:  # an error here or in a worker, or an interrupt: stop the others too
            pool.shutdown(wait=False, cancel_futures=True)
            _stop(workers)
        events.close()


@contextlib.contextmanager
def _main_not_rerun(task):
    """Spawned workers re-run the calling script's top level (as ``__mp_main__``) unless it is
    guarded by ``if __name__ == "__main__"``; the workers need nothing from it unless the task's
    class is defined there, so hide it from them while they start."""
    main = sys.modules.get("__main__")
    if main is None or type(task).__module__ == "__main__":
        yield
        return
    hidden = {name: main.__dict__.pop(name) for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(hidden)


def _drain(events, publish, bar, timeout: float) -> None:
    try:
        while True:
            kind, value = events.get(timeout=timeout) if timeout else events.get_nowait()
            if kind == "shard":
                publish(value)
            else:
                bar.update(value)
            timeout = 0
    except queue.Empty:
        return


def _raise_for(future, group: int, out: Path, workers) -> None:
    try:
        future.result()
    except concurrent.futures.process.BrokenProcessPool:
        codes = sorted({w.exitcode for w in workers if w.exitcode not in (None, 0)})
        raise WeightspaceError(
            f"a worker process training group {group} of {out} stopped (exit code "
            f"{', '.join(map(str, codes)) or 'unknown'}); rerun the build to resume it"
        ) from None


def _stop(workers) -> None:
    """Stop the workers still running: SIGTERM first, which a worker turns into an exception so
    that an atomic write in progress removes its temporary file; SIGKILL after :data:`STOP_GRACE`."""
    alive = [w for w in workers if w.is_alive()]
    for worker in alive:
        worker.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for worker in alive:
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            worker.kill()
            worker.join()
