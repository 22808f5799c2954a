"""Run small-tensor work with a given number of torch intra-op threads, then restore the setting.

The population DQN, the batched CartPole rollouts and CartPoleGen's training are many small
operations (a few thousand to a few million elements each). Splitting each across threads buys
little, and when another process holds a core it costs a lot: every parallel region waits for a
descheduled thread. Measured on the 2-core machine with the other core busy, K = 1024 networks:
13.9 ms per DQN step with 1 thread, 432 ms with 2.

The default thread count follows the cores this process may run on (``os.sched_getaffinity``:
a job given 4 cores of a 64-core node by its scheduler uses 4), not the machine's count;
``weightspace --threads N`` sets it for one command.

The population engine's training loop adapts to a shared machine with :class:`AdaptiveThreads`:
every so many steps it times a few steps with all its threads and a few with one, and runs with
the faster. Measured with ``benchmarks/contention.py`` (K = 64 LSTMs, 2 cores): next to one busy
process, 2 threads fall to 27-29% of their idle speed, while 1 thread keeps 96-105% of its own
(about half the 2-thread idle speed). The choice never changes the numbers: the engine gives
bit-identical weights on 1 and on 2 threads (``tests/test_threads.py``).
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import torch


@contextmanager
def intra_op_threads(count: int | None):
    """Use ``count`` torch threads inside the block (None: leave torch's setting alone)."""
    previous = torch.get_num_threads()
    if count is not None and count != previous:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count is not None and torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), or the machine's count where the
    platform cannot say."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(count: int | None = None) -> int:
    """Set torch's intra-op threads to ``count`` (None: :func:`available_cores`); returns it."""
    count = available_cores() if count is None else int(count)
    if count < 1:
        raise ValueError(f"threads must be >= 1 (got {count})")
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


class AdaptiveThreads:
    """Chooses, by timing, between ``threads`` (default: torch's current count) and one thread for
    a loop of similar steps: ``with chooser.step(): ...`` around each.

    A probe runs ``probe`` steps with each candidate and keeps the one whose fastest step was
    fastest. Probes run at the first step, whenever a step takes more than ``slowdown`` times the
    chosen candidate's probe time (another process took a core), and every ``interval`` seconds
    (the other process may have gone)."""

    def __init__(self, threads: int | None = None, probe: int = 2, slowdown: float = 1.5,
                 interval: float = 30.0, clock=time.perf_counter):
        top = threads or torch.get_num_threads()
        if probe < 1 or slowdown <= 1 or interval <= 0:
            raise ValueError("probe must be >= 1, slowdown > 1 and interval > 0")
        self.candidates = [top, 1] if top > 1 else [1]
        self.probe, self.slowdown, self.interval, self.clock = probe, slowdown, interval, clock
        self.choice = top
        self.probes = 0  # how many probes have run (for tests and logs)
        self._queue = self._probe_plan()
        self._timings: dict[int, float] = {}
        self._reference = float("inf")
        self._last_probe = clock()

    def _probe_plan(self) -> list[int]:
        return [c for c in self.candidates for _ in range(self.probe)] if len(self.candidates) > 1 else []

    @contextmanager
    def step(self):
        probing = bool(self._queue)
        count = self._queue.pop(0) if probing else self.choice
        with intra_op_threads(count):
            start = self.clock()
            yield
            elapsed = self.clock() - start
        if probing:
            self._timings[count] = min(elapsed, self._timings.get(count, float("inf")))
            if not self._queue:
                self.choice = min(self.candidates, key=lambda c: self._timings[c])
                self._reference = self._timings[self.choice]
                self._timings = {}
                self.probes += 1
                self._last_probe = self.clock()
        elif elapsed > self.slowdown * self._reference or self.clock() - self._last_probe > self.interval:
            self._queue = self._probe_plan()
