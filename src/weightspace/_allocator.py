"""Keep freed memory in the process instead of returning it to the OS after every step.

glibc serves allocations above its mmap threshold (at most 32 MiB) with fresh mmap'd pages
and unmaps them on free, so every training step of a large population page-faults its big
sequence tensors in again: measured 17.9 ms instead of 3.2 ms for one 43 MB copy. Turning off
mmap'd chunks and automatic trimming makes those allocations reuse the heap. This changes the
whole process, so it is called by the command-line entry points and benchmarks, not on import.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Configure glibc malloc as described above; returns False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok_mmap = libc.mallopt(_M_MMAP_MAX, 0)
        ok_trim = libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        return bool(ok_mmap and ok_trim)
    except (OSError, AttributeError):
        return False
