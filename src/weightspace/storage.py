"""Atomic file writes: a file is either absent or complete, never half-written."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import save_file

from .errors import StorageError

#: Test hooks: after this many atomic writes the process kills itself (simulates a crash at every
#: possible point of a build). With ``_FAULT_ONCE`` set to a file path, only the first process to
#: get there dies (it leaves that file behind): a worker killed once mid-step, then its retry.
#: Never set in normal use.
_FAULT_ENV = "WEIGHTSPACE_FAULT_AFTER_WRITES"
_FAULT_ONCE = "WEIGHTSPACE_FAULT_ONCE"
_writes = 0
#: Test hook: ``KIND:N`` kills the process at the N-th atomic write made while an experiment step
#: of kind KIND computes (or stores its result), after the temporary file is written and before it
#: takes its name, as a kill mid-write would leave it. Never set in normal use.
_FAULT_IN_STEP = "WEIGHTSPACE_FAULT_IN_STEP"
_step_kind: str | None = None
_step_writes = 0


@contextlib.contextmanager
def in_step(kind: str):
    """Mark the writes inside the block as a step of ``kind``'s (for the ``_FAULT_IN_STEP`` hook)."""
    global _step_kind
    previous, _step_kind = _step_kind, kind
    try:
        yield
    finally:
        _step_kind = previous


def _before_rename() -> None:
    global _step_writes
    target = os.environ.get(_FAULT_IN_STEP)
    if target is None or _step_kind is None or target.rpartition(":")[0] != _step_kind:
        return
    _step_writes += 1
    if _step_writes >= int(target.rpartition(":")[2]):
        os._exit(137)


def _after_write() -> None:
    global _writes
    _writes += 1
    limit = os.environ.get(_FAULT_ENV)
    if limit is not None and _writes >= int(limit):
        once = os.environ.get(_FAULT_ONCE)
        if once is None:
            os._exit(137)
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return
        os._exit(137)


#: an atomic write's temporary file: ``.NAME.RANDOM.tmp`` beside its target
_TEMPORARY_SUFFIX = ".tmp"


def remove_temporaries(directory) -> list[Path]:
    """Delete the temporary files that atomic writes of a killed process left under ``directory``
    (a process killed outright cannot remove its own); returns them. Call it only where no other
    process writes, e.g. when a build resumes."""
    directory = Path(directory)
    found = [p for p in directory.rglob(f".*{_TEMPORARY_SUFFIX}") if p.is_file()] if directory.is_dir() else []
    for path in found:
        path.unlink(missing_ok=True)
    return found


#: what a full, read-only or unwritable place raises: a user's problem, said in one line
DISK_ERRORS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def _atomic(path: Path, write) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMPORARY_SUFFIX)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _before_rename()
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno in DISK_ERRORS:
            raise StorageError(
                f"cannot write {path}: {os.strerror(error.errno)}; nothing finished was lost, "
                "so free space (or choose a writable place) and rerun to resume"
            ) from None
        raise
    _after_write()


def write_json(path, data) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")

    _atomic(path, write)


def write_tensors(path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _atomic(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def write_parquet(path, table: pd.DataFrame) -> None:
    _atomic(path, lambda tmp: table.to_parquet(tmp, index=False))


def write_text(path, text: str) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    _atomic(path, write)


def append_line(path, line: str) -> None:
    """Append one line by rewriting the (small) file atomically: a kill never leaves half a line."""
    path = Path(path)
    existing = path.read_text() if path.exists() else ""
    write_text(path, existing + line.rstrip("\n") + "\n")
