"""Run small-tensor work with a given number of torch intra-op threads, then restore the setting.

The population DQN, the batched CartPole rollouts and CartPoleGen's training are many small
operations (a few thousand to a few million elements each). Splitting each across threads buys
little, and when another process holds a core it costs a lot: every parallel region waits for a
descheduled thread. Measured on the 2-core machine with the other core busy, K = 1024 networks:
13.9 ms per DQN step with 1 thread, 432 ms with 2.
"""

from __future__ import annotations

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
