"""Counter-based random numbers: a pure function of (key, stream, index).

Every random draw in a zoo build (initial weights, training batches, sampled strings) is
addressed by the network's seed, a named stream and the position of the number. That makes a
network's training independent of which other networks share its population, and makes resume
after a kill exact without storing any generator state.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return z ^ (z >> np.uint64(31))


def stream_id(*parts: object) -> int:
    """A stable 64-bit id for a named stream, e.g. ``stream_id("batch", step)``. It depends on the
    parts' values, not their types: ``np.int64(3)``, ``torch.tensor(3)`` and ``3`` name one stream."""
    digest = hashlib.blake2b(repr(tuple(_plain(p) for p in parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _plain(part):
    """``part`` as the Python value it stands for (numpy and torch scalars, nested sequences)."""
    if isinstance(part, torch.Tensor) and part.dim() == 0:
        part = part.item()
    if isinstance(part, (bool, np.bool_)):
        return bool(part)
    if isinstance(part, (int, np.integer)):
        return int(part)
    if isinstance(part, (float, np.floating)):
        return float(part)
    if isinstance(part, (str, np.str_)):
        return str(part)
    if isinstance(part, (tuple, list)):
        return tuple(_plain(p) for p in part)
    raise TypeError(f"a stream is named by numbers, strings and tuples of them, not {type(part).__name__}")


def derive_seeds(seed: int, count: int, purpose: str = "run") -> np.ndarray:
    """``count`` independent 63-bit seeds derived from one seed (e.g. one per run of a zoo)."""
    raw = _random_bits(np.array([seed]), stream_id(purpose), (count,))[0]
    return (raw >> np.uint64(1)).astype(np.int64)


def _random_bits(keys: np.ndarray, stream: int, shape: tuple[int, ...]) -> np.ndarray:
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1)
    count = int(np.prod(shape, dtype=np.int64))
    with np.errstate(over="ignore"):
        base = _splitmix64(_splitmix64(keys) ^ np.uint64(stream))
        index = np.arange(count, dtype=np.uint64)
        bits = _splitmix64(base[:, None] + index[None, :] * _GOLDEN)
    return bits.reshape((len(keys), *shape))


#: the largest float32 below 1: a 53-bit draw within 2^-25 of 1 rounds up to 1.0 in float32
_BELOW_ONE = np.nextafter(np.float32(1), np.float32(0))


def uniform(keys, stream: int, shape: tuple[int, ...], device="cpu") -> torch.Tensor:
    """Uniform floats in [0, 1), shape ``(len(keys), *shape)``, float32 on ``device``. A draw that
    float32 would round up to 1.0 (one in 2^25) is the largest float32 below 1 instead, so that
    ``log1p(-u)`` (Box-Muller) stays finite: with 1.0 it is -inf, and a PPO trial whose action
    noise met one took an infinite action and trained to NaN."""
    bits = _random_bits(np.asarray(keys), stream, shape)
    values = (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return torch.from_numpy(np.minimum(values.astype(np.float32), _BELOW_ONE)).to(device)


def integers(keys, stream: int, low, high, shape: tuple[int, ...], device="cpu") -> torch.Tensor:
    """Integers uniform in [low, high) with per-key bounds (broadcast over trailing axes)."""
    bits = _random_bits(np.asarray(keys), stream, shape)
    low = np.asarray(low, dtype=np.int64).reshape((-1,) + (1,) * len(shape))
    high = np.asarray(high, dtype=np.int64).reshape((-1,) + (1,) * len(shape))
    span = (high - low).astype(np.uint64)
    values = low + (bits % span).astype(np.int64)
    return torch.from_numpy(values).to(device)
