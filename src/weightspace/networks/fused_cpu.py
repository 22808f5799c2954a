"""A whole LSTM layer of a population for float32 CPU tensors, in a small C library; also the
tanh RNN layers of paper 002 (``nn.RNN``'s cell and the mean-field leaky RNN, :mod:`.rnn_kernel`).

One call runs one layer over its whole sequence for all K networks, each network on one thread:
forward from the input sequence to the outputs, the last cell state and the factors saved for
the backward pass; backward to the gradients of the input, both weight matrices, the bias and
the initial state. ``_lstm_pointwise.c`` is compiled on first use with the system C compiler into
``$XDG_CACHE_HOME/weightspace`` (default ``~/.cache/weightspace``), under a name that hashes the
source, the compiler and its flags, and loaded with ctypes.

On x86-64 the library is built for one instruction-set level, the best the CPU runs: ``x86-64-v4``
(AVX-512: 16-float vectors), ``x86-64-v3`` (AVX2 + FMA: 8-float vectors) or the ``x86-64``
baseline (SSE2: 4-float vectors); the C source picks its vector width and register tiles from
the level. ``WEIGHTSPACE_KERNEL_ISA=x86-64-v3`` (or ``v4``, ``x86-64``) forces one level, for
tests and benchmarks; a level the CPU cannot run is an error. :func:`kernel_path` names the path
that runs. Without a working compiler, or with ``WEIGHTSPACE_FUSED=0``, :func:`available` is False
and callers use their pure-PyTorch code.
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
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import WeightspaceError
from ..threads import kernel_threads

_SOURCE = Path(__file__).with_name("_lstm_pointwise.c")
# -fno-trapping-math lets the exp clamps vectorise; neither flag changes any result. A compiler
# without OpenMP support gets a second try without -fopenmp (the kernel then runs on one thread).
_FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC")
_OPENMP = "-fopenmp"

_c_long = ctypes.c_long
_c_ptr = ctypes.c_void_p


class _ForwardArgs(ctypes.Structure):
    _fields_ = [
        ("K", _c_long),
        ("B", _c_long),
        ("T", _c_long),
        ("I", _c_long),
        ("H", _c_long),
        ("x", _c_ptr),
        ("x_sk", _c_long),
        ("x_sb", _c_long),
        ("x_st", _c_long),
        ("w_ih", _c_ptr),
        ("w_hh", _c_ptr),
        ("bias", _c_ptr),
        ("h0", _c_ptr),
        ("c0", _c_ptr),
        ("c_sk", _c_long),
        ("c_sb", _c_long),
        ("h", _c_ptr),
        ("h_sk", _c_long),
        ("h_sb", _c_long),
        ("h_st", _c_long),
        ("c_last", _c_ptr),
        ("factors", _c_ptr),
        ("cell_from_hidden", _c_ptr),
        ("forget", _c_ptr),
    ]


class _BackwardArgs(ctypes.Structure):
    _fields_ = [
        ("K", _c_long),
        ("B", _c_long),
        ("T", _c_long),
        ("I", _c_long),
        ("H", _c_long),
        ("x", _c_ptr),
        ("x_sk", _c_long),
        ("x_sb", _c_long),
        ("x_st", _c_long),
        ("w_ih", _c_ptr),
        ("w_hh", _c_ptr),
        ("h0", _c_ptr),
        ("h", _c_ptr),
        ("h_sk", _c_long),
        ("h_sb", _c_long),
        ("h_st", _c_long),
        ("factors", _c_ptr),
        ("cell_from_hidden", _c_ptr),
        ("forget", _c_ptr),
        ("grad_h", _c_ptr),
        ("g_sk", _c_long),
        ("g_sb", _c_long),
        ("g_st", _c_long),
        ("dh", _c_ptr),
        ("dc", _c_ptr),
        ("dx", _c_ptr),
        ("dx_sk", _c_long),
        ("dx_sb", _c_long),
        ("dx_st", _c_long),
        ("dw_ih", _c_ptr),
        ("dw_hh", _c_ptr),
        ("dbias", _c_ptr),
    ]


class _LeakyArgs(ctypes.Structure):
    _fields_ = [
        ("K", _c_long),
        ("B", _c_long),
        ("T", _c_long),
        ("I", _c_long),
        ("H", _c_long),
        ("tau", ctypes.c_float),
        ("scale", ctypes.c_float),
        ("x", _c_ptr),
        ("x_sk", _c_long),
        ("x_sb", _c_long),
        ("x_st", _c_long),
        ("w_ih", _c_ptr),
        ("w_hh", _c_ptr),
        ("h0", _c_ptr),
        ("h", _c_ptr),
        ("h_sk", _c_long),
        ("h_sb", _c_long),
        ("h_st", _c_long),
        ("rates", _c_ptr),
        ("grad_h", _c_ptr),
        ("g_sk", _c_long),
        ("g_sb", _c_long),
        ("g_st", _c_long),
        ("dh", _c_ptr),
        ("dx", _c_ptr),
        ("dx_sk", _c_long),
        ("dx_sb", _c_long),
        ("dx_st", _c_long),
        ("dw_ih", _c_ptr),
        ("dw_hh", _c_ptr),
    ]


class _ReadoutArgs(ctypes.Structure):
    _fields_ = [
        ("K", _c_long),
        ("B", _c_long),
        ("T", _c_long),
        ("H", _c_long),
        ("O", _c_long),
        ("h", _c_ptr),
        ("h_sk", _c_long),
        ("h_sb", _c_long),
        ("h_st", _c_long),
        ("w", _c_ptr),
        ("bias", _c_ptr),
        ("targets", _c_ptr),
        ("loss", _c_ptr),
        ("probs", _c_ptr),
        ("grad_loss", _c_ptr),
        ("dh", _c_ptr),
        ("dh_sk", _c_long),
        ("dh_sb", _c_long),
        ("dh_st", _c_long),
        ("dw", _c_ptr),
        ("dbias", _c_ptr),
    ]


# Instruction-set levels, best first: name -> compiler flags. Elsewhere than x86-64 one build
# with the compiler's default target. Unforced, only the levels in _AUTO are taken: measured
# against the pure-PyTorch path on training steps of the demo LSTMs (benchmarks/zoo_build.py,
# benchmarks/population_training.py), the x86-64 baseline build lost (380 against 414 networks x
# steps/s at K=64 on a 2-core AMD EPYC) and other machines' builds have not been measured.
_X86_LEVELS = {level: (f"-march={level}", "-mtune=generic") for level in ("x86-64-v4", "x86-64-v3", "x86-64")}
_ALIASES = {"v4": "x86-64-v4", "v3": "x86-64-v3", "baseline": "x86-64", "v1": "x86-64"}
_AUTO = ("x86-64-v4", "x86-64-v3")
ISA_VARIABLE = "WEIGHTSPACE_KERNEL_ISA"

_builds: dict[str | None, tuple] = {}  # requested level -> (library or None, level, error or None)
_lock = threading.Lock()


class KernelISAError(WeightspaceError):
    """``WEIGHTSPACE_KERNEL_ISA`` names a level that is unknown or that this CPU cannot run."""


class _SlowerHere(RuntimeError):
    """No build that this CPU runs is measured faster than the pure-PyTorch path."""


def available() -> bool:
    """Whether the fused steps can be used (compiles the library on the first call); False
    inside :func:`disabled`."""
    return not getattr(_switched_off, "value", False) and _current()[0] is not None


_switched_off = threading.local()


@contextmanager
def disabled():
    """Inside the block this thread's layers take their pure-PyTorch paths: for transforms that
    the compiled backward passes cannot follow (``vmap`` over a backward, as
    ``torch.autograd.functional.jacobian(vectorize=True)`` runs it)."""
    before = getattr(_switched_off, "value", False)
    _switched_off.value = True
    try:
        yield
    finally:
        _switched_off.value = before


def _current():
    """(library or None, level or None) for the level ``WEIGHTSPACE_KERNEL_ISA`` asks for; raises
    :class:`KernelISAError` for a level this machine cannot run."""
    if os.environ.get("WEIGHTSPACE_FUSED", "1") == "0":
        return None, None
    requested = requested_level()
    if requested not in _builds:
        with _lock:
            if requested not in _builds:
                try:
                    _builds[requested] = (*_load(requested), None)
                except KernelISAError as error:
                    _builds[requested] = (None, None, error)
                except _SlowerHere:
                    _builds[requested] = (None, None, None)
                except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                    warnings.warn(
                        f"weightspace: could not build the fused LSTM and RNN kernel ({error}); "
                        "using the slower pure-PyTorch path",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    _builds[requested] = (None, None, None)
    library, level, error = _builds[requested]
    if error is not None:
        raise error
    return library, level


def levels() -> tuple[str, ...]:
    """The instruction-set levels this machine's kernel can be built for, best first."""
    return tuple(_X86_LEVELS) if platform.machine() in ("x86_64", "AMD64") else ("default",)


def requested_level() -> str | None:
    """The level ``WEIGHTSPACE_KERNEL_ISA`` forces (None: the best the CPU runs)."""
    value = os.environ.get(ISA_VARIABLE, "").strip().lower()
    if value in ("", "auto"):
        return None
    value = _ALIASES.get(value, value)
    if value not in levels():
        raise KernelISAError(
            f"{ISA_VARIABLE}={value!r} is not one of {', '.join(levels())} on this "
            f"{platform.machine()} machine (or 'auto')"
        )
    return value


def kernel_path() -> str:
    """The LSTM (and tanh RNN) path that float32 CPU populations take here: ``fused x86-64-v3 (8-float vectors)``,
    say, or ``pytorch`` when the fused kernel is off or could not be built."""
    library, level = _current()
    if library is None:
        return "pytorch"
    return f"fused {level} ({library.weightspace_vector_floats()}-float vectors)"


def vector_floats() -> int:
    """The vector width of the kernel that runs, in floats (0 when none runs)."""
    library, _ = _current()
    return library.weightspace_vector_floats() if library is not None else 0


def build(level: str):
    """The library built for ``level`` (one of :func:`levels`), whether or not this CPU runs it:
    for tests that inspect a build's layout."""
    library = _build(level, errors := [])
    if library is None:
        raise RuntimeError("; ".join(errors) or "no C compiler found (cc, gcc or $CC)")
    return library


def supported_levels() -> tuple[str, ...]:
    """The levels this CPU can run, best first (builds each one that is not cached yet)."""
    supported = []
    for level in levels():
        library = _build(level, [])
        if library is not None and library.weightspace_cpu_supports_build():
            supported.append(level)
    return tuple(supported)


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


def _load(level: str | None):
    """The library and its level: ``level``'s build, or with None the best level this CPU runs."""
    wanted = [name for name in levels() if name in _AUTO] if level is None else (level,)
    errors = []
    for name in wanted:
        library = _build(name, errors)
        if library is None:
            continue
        if library.weightspace_cpu_supports_build():
            return library, name
        if level is not None:
            raise KernelISAError(
                f"{ISA_VARIABLE}={level}: this CPU cannot run {level} instructions "
                f"(it runs {', '.join(supported_levels()) or 'none of them'})"
            )
    if not errors:
        raise _SlowerHere(f"the fused kernel is measured faster only on {' or '.join(_AUTO)} CPUs")
    raise RuntimeError("; ".join(errors) or "no C compiler found (cc, gcc or $CC)")


def _build(level: str, errors: list):
    """The library built for ``level`` by the first compiler that can (cached), or None (the
    compilers' errors go to ``errors``)."""
    target_flags = _X86_LEVELS.get(level, ())
    source = _SOURCE.read_bytes()
    for compiler in _compilers():
        for flags in ((*_FLAGS, *target_flags, _OPENMP), (*_FLAGS, *target_flags)):
            key = hashlib.sha256(
                b"\0".join([source, compiler.encode(), " ".join(flags).encode(), platform.machine().encode()])
            ).hexdigest()[:16]
            target = _cache_dir() / f"lstm_pointwise-{key}.so"
            if not target.exists():
                error = _compile(compiler, flags, target)
                if error:
                    errors.append(error)
                    continue
            library = ctypes.CDLL(str(target))
            for name, args in (
                ("lstm_forward_layer", _ForwardArgs),
                ("lstm_backward_layer", _BackwardArgs),
                ("rnn_forward_layer", _ForwardArgs),
                ("rnn_backward_layer", _BackwardArgs),
                ("leaky_forward_layer", _LeakyArgs),
                ("leaky_backward_layer", _LeakyArgs),
                ("readout_cross_entropy_forward", _ReadoutArgs),
                ("readout_cross_entropy_backward", _ReadoutArgs),
            ):
                function = getattr(library, name)
                function.argtypes = [ctypes.POINTER(args), ctypes.c_int]
                function.restype = ctypes.c_int
            for name in (
                "weightspace_cpu_supports_build",
                "weightspace_vector_floats",
                "weightspace_tile_registers",
                "weightspace_vector_registers",
            ):
                getattr(library, name).restype = ctypes.c_int
            return library
    return None


def _compile(compiler: str, flags, target: Path) -> str | None:
    """Compile to a temporary name and rename it into place; returns an error message or None."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=target.stem, suffix=".tmp")
    os.close(handle)
    try:
        result = subprocess.run(
            [compiler, *flags, "-o", temporary, str(_SOURCE), "-lm"], capture_output=True, text=True, timeout=120
        )
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


def _strided(name, tensor, shape):
    """A (K, B, T, n) tensor that may be a strided view: its pointer and its (K, B, T) strides;
    None gives null ones."""
    if tensor is None:
        return 0, 0, 0, 0
    return _check(name, tensor, shape, False), *tensor.stride()[:3]


def forward_layer(x, weight_ih, weight_hh, bias, h0, c0, hs, c_last, factors, cell_from_hidden, forget):
    """One layer forward over all T steps; see ``LSTMLayer`` in ``lstm_kernel``.

    Reads the input ``x`` (K, B, T, I), ``weight_ih`` (K, 4H, I), ``weight_hh`` (K, 4H, H),
    ``bias`` (K, 4H: both biases summed), ``h0`` and ``c0`` (K, B, H); writes the outputs ``hs``
    (K, B, T, H), ``c_last`` (K, B, H) and the factors the backward pass needs: ``factors``
    (K, T, B, 4, H), ``cell_from_hidden`` and ``forget`` (K, T, B, H). ``x``, ``c0`` and ``hs``
    may be strided views with unit stride in the last dim; the others must be contiguous.
    """
    K, B, T, I = x.shape
    H = h0.shape[-1]
    G, rows, saved = 4 * H, (K, B, H), (K, T, B, H)
    args = _ForwardArgs(
        K,
        B,
        T,
        I,
        H,
        *_strided("x", x, (K, B, T, I)),
        _check("weight_ih", weight_ih, (K, G, I)),
        _check("weight_hh", weight_hh, (K, G, H)),
        _check("bias", bias, (K, G)),
        _check("h0", h0, rows),
        _check("c0", c0, rows, False),
        *c0.stride()[:2],
        *_strided("hs", hs, (K, B, T, H)),
        _check("c_last", c_last, rows),
        _check("factors", factors, (K, T, B, 4, H)),
        _check("cell_from_hidden", cell_from_hidden, saved),
        _check("forget", forget, saved),
    )
    _call(_current()[0].lstm_forward_layer, args)


def backward_layer(
    x, weight_ih, weight_hh, h0, hs, factors, cell_from_hidden, forget, grad_hs, dh, dc, dx, dw_ih, dw_hh, dbias
):
    """One layer backward over all T steps, from the forward's input, outputs and saved factors.

    ``grad_hs`` (K, B, T, H; may be None or a strided view) is the gradient of the outputs.
    ``dh`` (K, B, H) comes in as zeros and leaves as the gradient of h0; ``dc`` comes in as the
    gradient of the last cell state and leaves as that of c0. Writes the gradients of the input
    into ``dx`` (K, B, T, I; None when not wanted; may be a strided view), of the weights into
    ``dw_ih`` and ``dw_hh`` and of the bias into ``dbias`` (K, 4H).
    """
    K, B, T, I = x.shape
    H = h0.shape[-1]
    G, rows, saved = 4 * H, (K, B, H), (K, T, B, H)
    args = _BackwardArgs(
        K,
        B,
        T,
        I,
        H,
        *_strided("x", x, (K, B, T, I)),
        _check("weight_ih", weight_ih, (K, G, I)),
        _check("weight_hh", weight_hh, (K, G, H)),
        _check("h0", h0, rows),
        *_strided("hs", hs, (K, B, T, H)),
        _check("factors", factors, (K, T, B, 4, H)),
        _check("cell_from_hidden", cell_from_hidden, saved),
        _check("forget", forget, saved),
        *_strided("grad_hs", grad_hs, (K, B, T, H)),
        _check("dh", dh, rows),
        _check("dc", dc, rows),
        *_strided("dx", dx, (K, B, T, I)),
        _check("dw_ih", dw_ih, (K, G, I)),
        _check("dw_hh", dw_hh, (K, G, H)),
        _check("dbias", dbias, (K, G)),
    )
    _call(_current()[0].lstm_backward_layer, args)


def rnn_forward_layer(x, weight_ih, weight_hh, bias, h0, hs, slopes):
    """One tanh-RNN layer (``nn.RNN``'s cell) forward over all T steps; see ``ElmanLayer`` in
    ``rnn_kernel``. Reads ``x`` (K, B, T, I; may be strided), ``weight_ih`` (K, H, I),
    ``weight_hh`` (K, H, H), ``bias`` (K, H: both biases summed) and ``h0`` (K, B, H); writes the
    outputs ``hs`` (K, B, T, H; may be strided) and ``slopes`` (K, T, B, H): 1 - h^2, which the
    backward pass reads."""
    K, B, T, I = x.shape
    H = h0.shape[-1]
    args = _ForwardArgs(
        K,
        B,
        T,
        I,
        H,
        *_strided("x", x, (K, B, T, I)),
        _check("weight_ih", weight_ih, (K, H, I)),
        _check("weight_hh", weight_hh, (K, H, H)),
        _check("bias", bias, (K, H)),
        _check("h0", h0, (K, B, H)),
        None,  # no cell state
        0,
        0,
        *_strided("hs", hs, (K, B, T, H)),
        None,
        _check("slopes", slopes, (K, T, B, H)),
        None,
        None,
    )
    _call(_current()[0].rnn_forward_layer, args)


def rnn_backward_layer(x, weight_ih, weight_hh, h0, hs, slopes, grad_hs, dh, dx, dw_ih, dw_hh, dbias):
    """The gradients of :func:`rnn_forward_layer`: from ``grad_hs`` (K, B, T, H; may be None or
    strided), ``dh`` (K, B, H) comes in as zeros and leaves as the gradient of h0; writes ``dx``
    (K, B, T, I; None when not wanted; may be strided), ``dw_ih``, ``dw_hh`` and ``dbias`` (K, H)."""
    K, B, T, I = x.shape
    H = h0.shape[-1]
    args = _BackwardArgs(
        K,
        B,
        T,
        I,
        H,
        *_strided("x", x, (K, B, T, I)),
        _check("weight_ih", weight_ih, (K, H, I)),
        _check("weight_hh", weight_hh, (K, H, H)),
        _check("h0", h0, (K, B, H)),
        *_strided("hs", hs, (K, B, T, H)),
        _check("slopes", slopes, (K, T, B, H)),
        None,
        None,
        *_strided("grad_hs", grad_hs, (K, B, T, H)),
        _check("dh", dh, (K, B, H)),
        None,  # no cell state
        *_strided("dx", dx, (K, B, T, I)),
        _check("dw_ih", dw_ih, (K, H, I)),
        _check("dw_hh", dw_hh, (K, H, H)),
        _check("dbias", dbias, (K, H)),
    )
    _call(_current()[0].rnn_backward_layer, args)


def leaky_layer(x, weight_ih, weight_hh, h0, tau, hs, rates, grad_hs=None, dh=None, dx=None, dw_ih=None, dw_hh=None):
    """The mean-field leaky RNN (``LeakyLayer`` in ``rnn_kernel``) over all T steps. Forward
    (``dh`` None): reads ``x`` (K, B, T, I; may be strided), U = ``weight_ih`` (K, H, I), J =
    ``weight_hh`` (K, H, H) and ``h0`` (K, B, H); writes ``hs`` (K, B, T, H; may be strided) and
    ``rates`` (K, T, B, H) = tanh(hs). Backward: also reads ``grad_hs`` (may be None or strided);
    ``dh`` comes in as zeros and leaves as the gradient of h0; writes ``dx`` (None when not
    wanted), ``dw_ih`` and ``dw_hh``."""
    K, B, T, I = x.shape
    H = h0.shape[-1]
    backward = dh is not None
    args = _LeakyArgs(
        K,
        B,
        T,
        I,
        H,
        tau,
        1.0 / H,
        *_strided("x", x, (K, B, T, I)),
        _check("weight_ih", weight_ih, (K, H, I)),
        _check("weight_hh", weight_hh, (K, H, H)),
        _check("h0", h0, (K, B, H)),
        *_strided("hs", hs, (K, B, T, H)),
        _check("rates", rates, (K, T, B, H)),
        *_strided("grad_hs", grad_hs, (K, B, T, H)),
        _check("dh", dh, (K, B, H)) if backward else None,
        *_strided("dx", dx, (K, B, T, I)),
        _check("dw_ih", dw_ih, (K, H, I)) if backward else None,
        _check("dw_hh", dw_hh, (K, H, H)) if backward else None,
    )
    library = _current()[0]
    _call(library.leaky_backward_layer if backward else library.leaky_forward_layer, args)


def readout_cross_entropy_forward(hs, weight, bias, targets, loss, probs):
    """Per network, the mean over (t, b) of the cross-entropy of ``hs @ weight^T + bias`` against
    ``targets``: hs (K, B, T, H; may be strided), weight (K, O, H), bias (K, O), targets (K, B, T)
    int64; writes ``loss`` (K) and the softmax ``probs`` (K, T, B, O) the backward pass reads."""
    K, B, T, H = hs.shape
    O = weight.shape[1]
    args = _ReadoutArgs(
        K,
        B,
        T,
        H,
        O,
        *_strided("hs", hs, (K, B, T, H)),
        _check("weight", weight, (K, O, H)),
        _check("bias", bias, (K, O)),
        _check_targets(targets, (K, B, T)),
        _check("loss", loss, (K,)),
        _check("probs", probs, (K, T, B, O)),
    )
    _call(_current()[0].readout_cross_entropy_forward, args)


def readout_cross_entropy_backward(hs, weight, targets, probs, grad_loss, dh, dw, dbias):
    """The gradients of :func:`readout_cross_entropy_forward` for ``grad_loss`` (K): writes ``dh``
    (K, B, T, H; may be strided), ``dw`` (K, O, H) and ``dbias`` (K, O)."""
    K, B, T, H = hs.shape
    O = weight.shape[1]
    args = _ReadoutArgs(
        K,
        B,
        T,
        H,
        O,
        *_strided("hs", hs, (K, B, T, H)),
        _check("weight", weight, (K, O, H)),
        None,
        _check_targets(targets, (K, B, T)),
        None,
        _check("probs", probs, (K, T, B, O)),
        _check("grad_loss", grad_loss, (K,)),
        *_strided("dh", dh, (K, B, T, H)),
        _check("dw", dw, (K, O, H)),
        _check("dbias", dbias, (K, O)),
    )
    _call(_current()[0].readout_cross_entropy_backward, args)


def _check_targets(targets, shape):
    if targets.dtype != torch.int64 or not targets.is_cpu or targets.shape != shape or not targets.is_contiguous():
        raise ValueError(f"targets must be contiguous int64 on the CPU of shape {tuple(shape)}")
    return targets.data_ptr()


def _call(function, args):
    if function(ctypes.byref(args), kernel_threads()):
        raise MemoryError("the fused LSTM and RNN kernel could not allocate its scratch memory")
