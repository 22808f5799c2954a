"""Fused pointwise steps of the LSTM recurrence for float32 CPU tensors, in a small C library.

Each step's elementwise work (gate activations, cell update and the gate factors saved for the
backward pass; in the backward pass the gate gradients and the cell gradient) is one call of a
compiled loop instead of ~15 (forward) or ~5 (backward) torch kernels. ``_lstm_pointwise.c`` is
compiled on first use with the system C compiler into ``$XDG_CACHE_HOME/weightspace`` (default
``~/.cache/weightspace``), under a name that hashes the source, the compiler and its flags, and
loaded with ctypes. Without a working compiler, or with ``WEIGHTSPACE_FUSED=0``,
:func:`available` is False and callers use their pure-PyTorch code.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
import threading
import warnings
from pathlib import Path

import torch

_SOURCE = Path(__file__).with_name("_lstm_pointwise.c")
# -fno-trapping-math lets the exp clamps vectorise; neither flag changes any result. A compiler
# without OpenMP support gets a second try without -fopenmp (the steps then run on one thread).
_FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC")
_OPENMP = "-fopenmp"

_c_long = ctypes.c_long
_c_ptr = ctypes.c_void_p


class _ForwardArgs(ctypes.Structure):
    _fields_ = [("K", _c_long), ("B", _c_long), ("H", _c_long), ("act", _c_ptr),
                ("proj", _c_ptr), ("p_sk", _c_long), ("p_sb", _c_long), ("p_st", _c_long),
                ("c0", _c_ptr), ("c_sk", _c_long), ("c_sb", _c_long), ("cells", _c_ptr * 2),
                ("h", _c_ptr), ("h_sk", _c_long), ("h_sb", _c_long), ("h_st", _c_long),
                ("factors", _c_ptr), ("cell_from_hidden", _c_ptr), ("forget", _c_ptr)]


class _BackwardArgs(ctypes.Structure):
    _fields_ = [("K", _c_long), ("B", _c_long), ("H", _c_long), ("dh", _c_ptr),
                ("grad_h", _c_ptr), ("g_sk", _c_long), ("g_sb", _c_long), ("g_st", _c_long),
                ("dc", _c_ptr), ("factors", _c_ptr), ("cell_from_hidden", _c_ptr),
                ("forget", _c_ptr), ("grad_gates", _c_ptr), ("gp_sk", _c_long),
                ("gp_sb", _c_long), ("gp_st", _c_long)]


_library = None
_loaded = False
_lock = threading.Lock()


def available() -> bool:
    """Whether the fused steps can be used (compiles the library on the first call)."""
    if os.environ.get("WEIGHTSPACE_FUSED", "1") == "0":
        return False
    global _library, _loaded
    if not _loaded:
        with _lock:
            if not _loaded:
                try:
                    _library = _load()
                except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                    warnings.warn(f"weightspace: could not build the fused LSTM kernel ({error}); "
                                  "using the slower pure-PyTorch path", RuntimeWarning,
                                  stacklevel=2)
                _loaded = True
    return _library is not None


def _compilers():
    candidates = [os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc"]
    seen = []
    for command in candidates:
        words = shlex.split(command) if command else []
        path = shutil.which(words[0]) if words else None
        if path and os.path.realpath(path) not in seen:
            seen.append(os.path.realpath(path))
            yield path


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "weightspace"


def _load():
    source = _SOURCE.read_bytes()
    errors = []
    for compiler in _compilers():
        for flags in ((*_FLAGS, _OPENMP), _FLAGS):
            key = hashlib.sha256(b"\0".join([source, compiler.encode(), " ".join(flags).encode(),
                                             platform.machine().encode()])).hexdigest()[:16]
            target = _cache_dir() / f"lstm_pointwise-{key}.so"
            if not target.exists():
                error = _compile(compiler, flags, target)
                if error:
                    errors.append(error)
                    continue
            library = ctypes.CDLL(str(target))
            for name, args in (("lstm_forward_step", _ForwardArgs),
                               ("lstm_backward_step", _BackwardArgs)):
                function = getattr(library, name)
                function.argtypes = [ctypes.POINTER(args), ctypes.c_long, ctypes.c_int]
                function.restype = None
            return library
    raise RuntimeError("; ".join(errors) or "no C compiler found (cc, gcc or $CC)")


def _compile(compiler: str, flags, target: Path) -> str | None:
    """Compile to a temporary name and rename it into place; returns an error message or None."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.stem, suffix=".tmp")
    os.close(handle)
    try:
        result = subprocess.run([compiler, *flags, "-o", temporary, str(_SOURCE)],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            return f"{compiler} exited with {result.returncode}: {result.stderr.strip()[-500:]}"
        os.replace(temporary, target)
        return None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _check(name, tensor, shape, contiguous=True):
    if tensor.dtype != torch.float32 or not tensor.is_cpu:
        raise TypeError(f"{name} must be float32 on the CPU, got {tensor.dtype} on {tensor.device}")
    if tensor.shape != shape:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
    if not (tensor.is_contiguous() if contiguous else tensor.stride(-1) == 1):
        layout = "contiguous" if contiguous else "contiguous in its last dim"
        raise ValueError(f"{name} must be {layout}")
    return tensor.data_ptr()


class ForwardSteps:
    """The pointwise forward work of one sequence, one call per step; see ``LSTMRecurrence``.

    Validated and set up once, so that a step costs one ctypes call. Step ``t`` reads the
    pre-activations ``act + projected[:, :, t]`` (``act`` (K, B, 4H): the recurrent part, which
    the caller writes before each step) and the previous cell state (``c0`` at t = 0, else the
    one written by step t - 1), and writes the new cell state into ``cells[t % 2]``,
    ``hs[:, :, t]``, ``factors[t]``, ``cell_from_hidden[t]`` and ``forget[t]``. ``projected``
    (K, B, T, 4H), ``c0`` (K, B, H) and ``hs`` (K, B, T, H) may be strided (unit stride in the
    last dim); ``act``, the two ``cells`` (K, B, H) and the time-major ``factors`` (T, K, B, 4, H),
    ``cell_from_hidden`` and ``forget`` (T, K, B, H) must be contiguous, and ``c0`` must not
    overlap the cells. The tensors must stay alive and in place while steps are run.
    """

    def __init__(self, act, projected, c0, cells, hs, factors, cell_from_hidden, forget):
        K, B, T, G = projected.shape
        H = G // 4
        rows = (K, B, H)
        self._args = _ForwardArgs(
            K, B, H, _check("act", act, (K, B, G)),
            _check("projected", projected, (K, B, T, G), False), *_strides(projected),
            _check("c0", c0, rows, False), *c0.stride()[:2],
            (_c_ptr * 2)(*(_check("cells", cell, rows) for cell in cells)),
            _check("hs", hs, (K, B, T, H), False), *_strides(hs),
            _check("factors", factors, (T, K, B, 4, H)),
            _check("cell_from_hidden", cell_from_hidden, (T, *rows)),
            _check("forget", forget, (T, *rows)))
        self._pointer = ctypes.byref(self._args)
        self._tensors = (act, projected, c0, *cells, hs, factors, cell_from_hidden, forget)
        self._steps = T
        self._threads = torch.get_num_threads()

    def step(self, t: int) -> None:
        if not 0 <= t < self._steps:
            raise IndexError(f"step {t} of a sequence of {self._steps}")
        _library.lstm_forward_step(self._pointer, t, self._threads)


class BackwardSteps:
    """The pointwise backward work of one sequence, one call per step.

    Step ``t``, with ``dh`` (K, B, H) the gradient from step t + 1 plus ``grad_hs[:, :, t]``
    (``grad_hs`` (K, B, T, H) optional, may be strided), writes the gate gradients into
    ``grad_gates[:, :, t]`` (``grad_gates`` (K, B, T, 4H), may be strided) and turns ``dc``
    (contiguous) in place into the gradient of the previous cell state. ``factors``,
    ``cell_from_hidden`` and ``forget`` are the forward's time-major tensors. The tensors must stay
    alive and in place while steps are run; the caller updates ``dh`` in place between steps.
    """

    def __init__(self, dh, grad_hs, dc, factors, cell_from_hidden, forget, grad_gates):
        K, B, T, G = grad_gates.shape
        H = G // 4
        rows = (K, B, H)
        if grad_hs is None:
            grad_h = (0, 0, 0, 0)
        else:
            grad_h = (_check("grad_hs", grad_hs, (K, B, T, H), False), *_strides(grad_hs))
        self._args = _BackwardArgs(
            K, B, H, _check("dh", dh, rows), *grad_h, _check("dc", dc, rows),
            _check("factors", factors, (T, K, B, 4, H)),
            _check("cell_from_hidden", cell_from_hidden, (T, *rows)),
            _check("forget", forget, (T, *rows)),
            _check("grad_gates", grad_gates, (K, B, T, G), False), *_strides(grad_gates))
        self._pointer = ctypes.byref(self._args)
        self._tensors = (dh, grad_hs, dc, factors, cell_from_hidden, forget, grad_gates)
        self._steps = T
        self._threads = torch.get_num_threads()

    def step(self, t: int) -> None:
        if not 0 <= t < self._steps:
            raise IndexError(f"step {t} of a sequence of {self._steps}")
        _library.lstm_backward_step(self._pointer, t, self._threads)


def _strides(tensor):
    """The (K, B, T) strides of a (K, B, T, n) tensor."""
    return tensor.stride()[:3]
