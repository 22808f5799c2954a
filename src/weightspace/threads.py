"""Run small-tensor work with a given number of torch intra-op threads, then restore the setting.

The population DQN, the batched CartPole rollouts and CartPoleGen's training are many small
operations (a few thousand to a few million elements each). Splitting each across threads buys
little, and when another process holds a core it costs a lot: every parallel region waits for a
descheduled thread. Measured on the 2-core machine with the other core busy, K = 1024 networks:
13.9 ms per DQN step with 1 thread, 432 ms with 2.

The population LSTM's compiled kernel is the exception that proves the rule: it hands whole
networks to threads one at a time, so a thread that loses its core just takes fewer. A
population LSTM training step therefore runs its compiled layers on all threads and the torch
ops around them (readout, loss, optimizer) on one (:func:`torch_ops_on_one_thread`): K=64 demo
LSTMs on the 2-core machine kept 40% of their idle speed next to a busy process with torch on
both threads, 59% this way, for 5% less alone (``benchmarks/contention.py``).

The default thread count follows the cores this process may run on (``os.sched_getaffinity``:
a job given 4 cores of a 64-core node by its scheduler uses 4), not the machine's count;
``weightspace --threads N`` sets it for one command.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

_kernel_threads: int | None = None


def kernel_threads() -> int:
    """Threads for weightspace's compiled kernels: torch's count, or the one it had when
    :func:`torch_ops_on_one_thread` was entered."""
    return _kernel_threads or torch.get_num_threads()


@contextmanager
def torch_ops_on_one_thread():
    """Inside the block torch runs on one thread and the compiled kernels on torch's count from
    outside it."""
    global _kernel_threads
    saved = _kernel_threads
    _kernel_threads = kernel_threads()
    try:
        with intra_op_threads(1):
            yield
    finally:
        _kernel_threads = saved


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
