"""The experiment runner: an experiment is a sequence of named steps, each cached under a key of
its own settings and the keys of the steps it reads.

A :class:`Step` has a name (``pretrain/formal-languages/statistics/seed-0``), a kind (what its
compute function does: ``pretrain``), settings (a JSON-able dict of everything its output depends
on besides its inputs), the steps it reads (by role: ``{"zoo": "zoo/digits"}``), and a compute
function ``compute(context, settings)`` that writes files into its own directory and returns a
JSON-able result. Its key is::

    sha256(kind, settings, [key of each input], code)[:16]

where ``code`` fingerprints the source the step's computation can run (:mod:`.code`: its compute
function, the helpers beside it that it uses, and every weightspace module they reach). So
changing one setting, or the code behind a step, changes the key of that step and of every step
that reads it, directly or not, and nothing else. A step whose key directory holds a finished
result is reused and never recomputed; a step killed mid-way has no result and is computed again
by the next run (in the same directory, so a step that resumes its own work, like a pretraining
run or a zoo build, picks up where it stopped). Going back to an earlier setting (or code) reuses
the result computed with it. Each computed step's record says why: "new", "settings changed",
"code changed (FILES)", "an input changed", "unfinished" (a killed run's step), "moved" (a zoo
asked for at another location) or "asked" (``--recompute PATTERN``, which computes the matching
steps afresh in an emptied directory whatever their cache holds).

The compute function receives the settings the key hashes, as they read back from JSON, and
nothing else: the library's families pass module-level functions that close over nothing, so a
setting a step does not hash is a setting it cannot read (``tests/test_step_keys.py`` checks
every step of every family).

Layout of an experiment's results (``RESULTS/NAME``)::

    experiment.json           the resolved config of the last run: family and every setting
    run.json                  the last run: the weightspace version that ran it, each step's key,
                              "computed" or "reused", seconds
    results.json              the numbers the report shows, gathered from step results
    report.md                 the report (``weightspace report RESULTS/NAME`` re-renders it)
    table.csv, table.md       (paper 000) the prediction table
    figures/                  figures drawn by the report from results.json
    steps/STEP/KEY/           one step's output; STEP is its name, so it may be nested
        step.json             kind, settings, input keys and code fingerprint (written before
                              computing)
        result.json           {"result": ..., "seconds": ...}: written atomically and last,
                              its presence is what "finished" means
        ...                   the files the step wrote (a zoo, a pretraining run, embeddings,
                              figures, models)

Two runs on one results directory (two ``weightspace run`` processes on a shared node) compute
each step once: a run locks a step while it computes it (a ``filelock`` file under ``.locks/``),
goes on with other steps while another run holds one, and reuses that run's result once it is
written.

Steps are run in the order given; each step's inputs must come earlier. The sequence may be a
generator that reads the results of the steps run so far (``finished``), for steps whose list
depends on an earlier result (one prediction step per target of a zoo).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import filelock
from tqdm.auto import tqdm

from .. import storage
from .code import digest as code_digest
from .code import step_fingerprint

RESULT_FILE = "result.json"
LOCKS = ".locks"  # a lock file per step being computed (see _step_lock)
LOG_FILE = "log.txt"  # a step's output when it runs as a task (--executor ray)
STEP_FILE = "step.json"


@dataclass(frozen=True)
class Finished:
    """A finished step: where its files are and what it returned."""

    name: str
    key: str
    directory: Path
    result: dict


class Results(dict):
    """Finished steps by name. With an executor that runs steps concurrently, reading a step that
    is still running waits for it (``waiter``), so a step generator reads results as it would
    locally."""

    waiter: Callable[[str], bool] | None = None

    def __missing__(self, name):
        if self.waiter is not None and self.waiter(name):
            return dict.__getitem__(self, name)
        raise KeyError(name)


@dataclass(frozen=True)
class StepContext:
    """What a compute function gets besides its settings: its own directory (created), its inputs
    by role (a step given a tuple of inputs: by step name), and where to compute."""

    directory: Path
    inputs: dict[str, Finished]
    device: str = "cpu"
    progress: bool = False
    #: the step's ``location`` (see :class:`Step`)
    location: str | None = None

    def input(self, role: str) -> Finished:
        return self.inputs[role]


@dataclass(frozen=True)
class Step:
    name: str
    kind: str
    settings: dict
    #: compute(context, settings) -> result; settings: exactly what the key hashes, as JSON
    compute: Callable[[StepContext, dict], dict]
    #: the steps it reads: {role: step name}, or a tuple of step names (each its own role)
    inputs: tuple[str, ...] | dict[str, str] = ()
    #: where the step writes its main output when not in its own directory (a zoo shared between
    #: experiments): not hashed, since the output is the same wherever it is written; a finished
    #: result whose ``path`` is another location is not reused (the output is written again there)
    location: str | None = None
    relocatable: bool = False  # whether ``location`` applies (its result records it as ``path``)
    #: unfinished steps of one ``group`` given one after another are computed in one call,
    #: ``compute_together([(settings, context), ...]) -> [result, ...]`` (the seeds of one
    #: pretraining as one batched computation); each keeps its own key, directory and result.
    #: A step generator that reads a grouped step's result (through a ``Results``) gets it.
    group: str | None = None
    compute_together: Callable[[list], list[dict]] | None = None
    #: what one computation of the step (or of its group) needs on a cluster: {"cpus": n, "gpus": n};
    #: "gpus": "device" asks for one GPU when the run's device is CUDA and none otherwise
    resources: dict | None = None
    #: modules the computation picks by name at run time (its task family, its encoder): their
    #: code counts in the key beside what the compute function imports (see :mod:`.code`)
    code: tuple[str, ...] = ()

    @property
    def code_fingerprint(self) -> dict[str, str]:
        functions = (self.compute,) + ((self.compute_together,) if self.compute_together else ())
        return _fingerprint(functions, tuple(sorted(self.code)))

    @property
    def roles(self) -> dict[str, str]:
        """{role: step name} of the inputs, in the order given (the order their keys are hashed)."""
        return dict(self.inputs) if isinstance(self.inputs, dict) else {name: name for name in self.inputs}

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.roles.values())


def reads_only_its_settings(function) -> bool:
    """Whether ``function`` is a module-level function that closes over nothing: called with a
    step's context and settings, it can read no other setting."""
    import inspect

    function = getattr(function, "__func__", function)
    return (
        inspect.isfunction(function)
        and not function.__closure__
        and "<" not in function.__qualname__
        and "." not in function.__qualname__
    )


@dataclass(frozen=True)
class StepRecord:
    """What happened to one step in one run."""

    name: str
    kind: str
    key: str
    status: str  # "computed" or "reused"
    seconds: float  # computing it (in the run that computed it, for a reused step)
    directory: str  # relative to the experiment's directory
    reason: str = ""  # why a computed step was computed (see the module's docstring)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def canonical(value):
    """``value`` as plain JSON (tuples become lists), as it reads back from a file."""
    return json.loads(json.dumps(value))


def step_key(kind: str, settings: dict, input_keys: list[str], code: dict[str, str] | None = None) -> str:
    """``code``: the step's code fingerprint (:func:`.code.step_fingerprint`)."""
    text = json.dumps(
        {"kind": kind, "settings": canonical(settings), "inputs": list(input_keys), "code": code_digest(code or {})},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@lru_cache(maxsize=None)
def _fingerprint(functions: tuple, modules: tuple) -> dict[str, str]:
    return step_fingerprint(functions, modules)


def _reason(step: Step, directory: Path, input_keys: dict[str, str], code: dict[str, str]) -> str:
    """Why ``step`` is computed: how it differs from the last finished result of a step of its
    name (another key's directory beside its own)."""
    if (directory / STEP_FILE).exists():
        return "unfinished"
    earlier = []
    for other in directory.parent.glob(f"*/{RESULT_FILE}"):
        try:
            earlier.append((other.stat().st_mtime, json.loads((other.parent / STEP_FILE).read_text())))
        except (OSError, ValueError):
            continue
    if not earlier:
        return "new"
    last = max(earlier, key=lambda item: item[0])[1]
    if last.get("kind") != step.kind or last.get("settings") != canonical(step.settings):
        return "settings changed"
    if last.get("inputs") != input_keys:
        return "an input changed"
    changed = sorted(f for f in set(code) | set(last.get("code", {})) if code.get(f) != last.get("code", {}).get(f))
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return f"code changed ({shown})" if changed else "code changed"


def step_directory(root, name: str, key: str) -> Path:
    return Path(root) / "steps" / name / key


@dataclass
class _Waiting:
    """A step on its way: known (its key and directory), maybe stored, maybe computing."""

    step: Step
    key: str
    directory: Path
    stored: dict | None
    code: dict
    reason: str = ""
    inputs: dict | None = None  # the finished inputs, once it starts


class LocalExecutor:
    """Computes each step here, when it is submitted, one after another (the default executor).
    An executor has ``submit(function, resources, log) -> handle``, ``wait(handles, timeout) ->
    the handles done``, ``result(handle)`` and ``concurrent`` (whether tasks run elsewhere, with
    their output in ``log``)."""

    concurrent = False

    def submit(self, function, resources=None, log=None):
        return _Done(function())

    def wait(self, handles, timeout=None):
        return list(handles)

    def result(self, handle):
        return handle.value


@dataclass(eq=False)
class _Done:
    value: list


def run_steps(
    steps: Iterable[Step],
    root,
    device: str = "cpu",
    progress: bool = True,
    finished: dict[str, Finished] | None = None,
    executor=None,
    recompute: tuple[str, ...] = (),
) -> list[StepRecord]:
    """Run (or reuse) each step under ``root/steps``; returns one record per step, in the order
    given. ``finished`` (filled as steps finish) is the dict a step generator reads earlier
    results from; as a :class:`Results`, reading a step still on its way waits for it.

    ``executor``: the default (:class:`LocalExecutor`) computes each step here as soon as it can;
    a :class:`~weightspace.experiments.ray_executor.RayExecutor` runs each step (or group computed
    together) as a task as soon as the steps it reads have finished, while the generator goes on
    giving the next ones. Either way the results are written and recorded the same way.

    ``recompute``: name patterns (``fnmatch``: ``predict/*``) of steps to compute afresh, in an
    emptied directory, whatever their cache holds."""
    root = Path(root)
    finished = Results() if finished is None else finished
    executor = LocalExecutor() if executor is None else executor
    slots: list[_Waiting] = []  # every step, in the order given
    known: dict[str, _Waiting] = {}
    records: dict[str, StepRecord] = {}
    pending: list[list[_Waiting]] = []  # units (a step, or a group) waiting for their inputs
    running: dict = {}  # task handle -> the unit it computes
    grouping: list[_Waiting] = []
    locks: dict[str, filelock.FileLock] = {}  # step name -> this run's lock on it, while computing
    here = progress and not executor.concurrent  # a step's own progress output: here, or its log

    def finish(w: _Waiting, stored: dict, status: str) -> None:
        finished[w.step.name] = Finished(w.step.name, w.key, w.directory, stored["result"])
        records[w.step.name] = StepRecord(
            w.step.name,
            w.step.kind,
            w.key,
            status,
            stored["seconds"],
            str(w.directory.relative_to(root)),
            w.reason if status == "computed" else "",
        )

    def say_progress():
        if executor.concurrent:
            names = [w.step.name for unit in running.values() for w in unit]
            _say(progress, _progress_line(len(records), names, len(slots) - len(records) - len(names)))

    def submit_ready():
        """Start every unit whose inputs have finished (the local executor computes it now). A
        unit another process is computing waits while this run has other work; with nothing else
        to do, this run waits for that process and then reuses its results."""
        while True:
            ready = [u for u in pending if all(n in finished for w in u for n in w.step.input_names)]
            unit = next((u for u in ready if claim(u)), None)
            if unit is None:
                if not ready or running:
                    return
                _say(progress, f"[{ready[0][0].step.name}] another run is computing it; waiting for it")
                with _step_lock(root, ready[0][0].directory):  # holding no lock while waiting: no deadlock
                    pass
                continue
            pending.remove(unit)
            for w in [w for w in unit if w.stored is not None]:  # finished meanwhile by another run
                finish(w, w.stored, "reused")
                locks.pop(w.step.name).release()
            unit = [w for w in unit if w.stored is None]
            if not unit:
                continue
            for w in unit:
                w.inputs = {role: finished[name] for role, name in w.step.roles.items()}
                if w.reason == "asked" and w.directory.exists():
                    shutil.rmtree(w.directory)  # afresh: nothing of the earlier computation resumes
                storage.remove_temporaries(w.directory)  # a killed run's half-written files (the step is ours)
                _write_step_file(w.step, w.inputs, w.directory, w.code)
                _say(
                    here,
                    f"[{w.step.name}] computing"
                    + (f" (with {len(unit) - 1} more of its group)" if len(unit) > 1 else ""),
                )
            contexts = [StepContext(w.directory, w.inputs, device, here, w.step.location) for w in unit]
            if len(unit) > 1:
                function = _Together(
                    unit[0].step.compute_together,
                    [(canonical(w.step.settings), c) for w, c in zip(unit, contexts)],
                    unit[0].step.kind,
                )
            else:
                function = _Single(
                    unit[0].step.compute, canonical(unit[0].step.settings), contexts[0], unit[0].step.kind
                )
            handle = executor.submit(function, _resources(unit[0].step, device), unit[0].directory / LOG_FILE)
            running[handle] = unit
            say_progress()
            if not executor.concurrent:
                collect(handle)

    def claim(unit) -> bool:
        """Lock every step of ``unit`` for this run, or none if another run holds one; a step
        another run finished meanwhile gets its result."""
        taken = []
        for w in unit:
            lock = _step_lock(root, w.directory)
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                for other in taken:
                    locks.pop(other).release()
                return False
            locks[w.step.name] = lock
            taken.append(w.step.name)
            if w.reason != "asked":
                w.stored = _finished_result(w.directory)
        return True

    def collect(handle) -> None:
        unit = running.pop(handle)
        outcomes = executor.result(handle)  # a step's own error stops the run here
        for w, (result, seconds) in zip(unit, outcomes):
            stored = {"result": result, "seconds": seconds}
            with storage.in_step(w.step.kind):
                storage.write_json(w.directory / RESULT_FILE, stored)
            finish(w, stored, "computed")
            locks.pop(w.step.name).release()
            _say(here, f"[{w.step.name}] computed in {seconds:g} s")
        say_progress()

    def take_in(timeout=None) -> None:
        for handle in executor.wait(list(running), timeout=timeout):
            collect(handle)
        submit_ready()

    def wait_for(name: str) -> bool:
        """Until ``name`` has finished (False: no step of that name is on its way)."""
        if any(w.step.name == name for w in grouping):
            flush()
        while name not in finished and running:
            take_in()
        return name in finished

    def flush():
        """The steps gathered for one group become units: one together, or each alone."""
        due = [w for w in grouping if w.stored is None]
        together = len(due) > 1 and due[0].step.compute_together is not None
        pending.extend([due] if together else [[w] for w in due])
        grouping.clear()
        submit_ready()

    if isinstance(finished, Results):
        finished.waiter = wait_for
    try:
        for step in steps:
            if step.name in known:
                raise ValueError(f"two steps are named {step.name!r}")
            if (
                step.group is None
                or (grouping and grouping[0].step.group != step.group)
                or any(w.step.name in step.input_names for w in grouping)
            ):
                flush()
            missing = [name for name in step.input_names if name not in known]
            if missing:
                raise ValueError(f"step {step.name!r} reads {missing}, which no earlier step produces")
            code = step.code_fingerprint
            key = step_key(step.kind, step.settings, [known[name].key for name in step.input_names], code)
            directory = step_directory(root, step.name, key)
            stored = _finished_result(directory)
            reason = ""
            if any(fnmatch.fnmatchcase(step.name, pattern) for pattern in recompute):
                stored, reason = None, "asked"
            elif stored is not None and step.relocatable and stored["result"].get("path") != step.location:
                stored, reason = None, "moved"
            elif stored is None:
                input_keys = {name: known[name].key for name in step.input_names}
                reason = _reason(step, directory, input_keys, code)
            slot = _Waiting(step, key, directory, stored, code, reason)
            slots.append(slot)
            known[step.name] = slot
            if stored is not None:
                finish(slot, stored, "reused")
            grouping.append(slot)
            if step.group is None:
                flush()
            if running:  # take in what has finished meanwhile
                take_in(timeout=0)
        flush()
        while running:
            take_in()
        if pending:  # cannot happen: every pending unit reads known steps only
            raise RuntimeError(f"steps wait for inputs that never finish: {[w.step.name for u in pending for w in u]}")
    finally:
        if isinstance(finished, Results):
            finished.waiter = None
        for lock in locks.values():
            lock.release()
    return [records[w.step.name] for w in slots]


def _step_lock(root: Path, directory: Path) -> filelock.FileLock:
    """The lock a run holds on a step while it computes it, so that two runs on one results
    directory compute each step once (``RESULTS/NAME/.locks/``; the step's own directory may be
    emptied by ``--recompute``)."""
    name = hashlib.sha256(str(directory.relative_to(root)).encode()).hexdigest()[:24]
    (root / LOCKS).mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(root / LOCKS / f"{name}.lock")


@dataclass
class _Single:
    """A step's computation as a task: returns [(result, seconds)]."""

    compute: Callable
    settings: dict
    context: StepContext

    kind: str = ""

    def __call__(self):
        started = time.perf_counter()
        with storage.in_step(self.kind):
            result = canonical(self.compute(self.context, self.settings))
        return [(result, round(time.perf_counter() - started, 2))]


@dataclass
class _Together:
    """A group's computation as one task: returns [(result, seconds), ...], each its share."""

    compute_together: Callable
    items: list

    kind: str = ""

    def __call__(self):
        started = time.perf_counter()
        with storage.in_step(self.kind):
            results = self.compute_together(self.items)
        seconds = round((time.perf_counter() - started) / len(self.items), 2)
        return [(canonical(result), seconds) for result in results]


def _resources(step: Step, device: str) -> dict:
    resources = dict(step.resources or {})
    if resources.get("gpus") == "device":
        resources["gpus"] = 1 if str(device).startswith("cuda") else 0
    return resources


def _progress_line(done: int, running: list[str], waiting: int) -> str:
    shown = ", ".join(running[:4]) + (f" and {len(running) - 4} more" if len(running) > 4 else "")
    return f"steps: {done} done, {len(running)} running{': ' + shown if running else ''}, {waiting} waiting"


def _write_step_file(step: Step, inputs: dict, directory: Path, code: dict) -> None:
    storage.write_json(
        directory / STEP_FILE,
        {
            "name": step.name,
            "kind": step.kind,
            "settings": canonical(step.settings),
            "inputs": {name: inputs[role].key for role, name in step.roles.items()},
            "code": code,
        },
    )


def _finished_result(directory: Path) -> dict | None:
    file = directory / RESULT_FILE
    return json.loads(file.read_text()) if file.exists() else None


def _say(progress: bool, message: str) -> None:
    if progress:
        tqdm.write(message)
