"""Run an experiment's steps as Ray tasks: in dependency order, as many at once as the cluster's
resources allow (``weightspace run CONFIG --executor ray [--address ADDR]``).

Ray is optional (``pip install 'weightspace[ray]'``). What stays as with the local executor:

* every step writes into its own directory under the experiment directory, which all workers
  must share (one filesystem), under the same cache keys; the driver writes each ``result.json``
  atomically and last, so a step is finished exactly when the local executor would call it so;
* the seeds of one pretraining that the local executor trains together are one task here too,
  so both executors compute the same numbers; a task runs torch on as many threads as it has CPUs;
* a worker that dies mid-step: Ray runs the task again (``max_retries``), and the step resumes
  from what it had written (a pretraining run from its last save, a zoo from its last shard);
* a step that fails for a reason of its own (a config error, bad data) is not retried: the run
  stops with that step's one-line error;
* each step's output (progress bars, messages) goes to ``log.txt`` in its own directory, and the
  driver prints one line per change: steps done, running (by name) and waiting.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

#: system failures (a dead worker, a lost node) are retried this often; errors of the step are not
MAX_RETRIES = 3


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'weightspace[ray]'") from None
    return ray


@dataclass
class RayExecutor:
    """Submits steps to a Ray cluster (``address``), or to a local Ray instance it starts; the
    executor interface is :class:`~weightspace.experiments.steps.LocalExecutor`'s."""

    concurrent = True

    address: str | None = None
    num_cpus: int | None = None  # of a local instance (default: Ray's, the machine's)
    env: dict | None = None  # environment variables of the tasks (their workers start with them)

    def __post_init__(self):
        ray = _ray()
        if not ray.is_initialized():
            kwargs = {"address": self.address} if self.address else {"num_cpus": self.num_cpus}
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        self._run = ray.remote(max_retries=MAX_RETRIES, retry_exceptions=False)(_run_in_worker)

    def submit(self, function, resources: dict | None = None, log: Path | None = None):
        """Start ``function()`` (a step, a group of steps, a zoo shard) as a task with
        ``resources`` ({"cpus": n, "gpus": n}; default one CPU), its output appended to ``log``;
        returns its handle."""
        resources = resources or {}
        options = {"num_cpus": resources.get("cpus", 1), "num_gpus": resources.get("gpus", 0)}
        runtime = {"runtime_env": {"env_vars": dict(self.env)}} if self.env else {}
        return self._run.options(**options, **runtime).remote(
            function, None if log is None else str(log), options["num_cpus"], _user_registered()
        )

    def wait(self, handles: list, timeout: float | None = None) -> list:
        """The handles among ``handles`` that are done: at least one, or with a ``timeout`` all
        that finish within it (maybe none)."""
        done, _ = _ray().wait(handles, num_returns=1 if timeout is None else len(handles), timeout=timeout)
        return done

    def result(self, handle):
        """The task's return value; a step's own error comes back as itself (one line on the CLI)."""
        ray = _ray()
        try:
            return ray.get(handle)
        except ray.exceptions.RayTaskError as error:
            cause = error.cause if isinstance(getattr(error, "cause", None), BaseException) else None
            if cause is not None:
                raise cause from None
            raise


def _registries():
    from ..tasks import _TASKS
    from .family import _FAMILIES

    return _TASKS, _FAMILIES


def _user_registered() -> list:
    """The task and experiment families registered in this process that are not built in (a
    worker process has only the built-in ones and the installed entry points)."""
    return [
        (index, item)
        for index, registry in enumerate(_registries())
        for name, item in registry.loaded.items()
        if name not in registry.built_in
    ]


def _run_in_worker(function, log: str | None, cpus: float, registered: list):
    """In a Ray worker: the driver's own families, torch on the task's CPUs, output to ``log``,
    then the computation."""
    import torch

    registries = _registries()
    for index, item in registered:
        if item.name not in registries[index].loaded:
            registries[index].register(item)
    torch.set_num_threads(max(1, int(cpus)))
    if log is None:
        return function()
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        return function()
