import numpy as np
import pytest
import torch

from weightspace import counter_rng


def test_draws_depend_on_key_stream_and_index_only():
    a = counter_rng.uniform([5, 6, 7], 11, (4, 3))
    b = counter_rng.uniform([7], 11, (4, 3))
    assert a.shape == (3, 4, 3)
    assert (a[2] == b[0]).all()
    assert not (a[0] == a[1]).all()
    assert not (counter_rng.uniform([5], 12, (4, 3)) == a[0]).all()
    assert 0 <= a.min() and a.max() < 1


def test_integers_respect_per_key_bounds_and_derived_seeds_differ():
    values = counter_rng.integers([1, 2], 3, [0, 10], [2, 12], (1000,))
    assert set(values[0].tolist()) == {0, 1} and set(values[1].tolist()) == {10, 11}
    seeds = counter_rng.derive_seeds(0, 100)
    assert len(set(seeds.tolist())) == 100 and (seeds >= 0).all()
    assert np.array_equal(counter_rng.derive_seeds(0, 10), seeds[:10])


def test_streams_depend_on_values_not_their_types():
    import hashlib

    plain = counter_rng.stream_id("batch", 3, 0.5)
    assert counter_rng.stream_id("batch", np.int64(3), np.float64(0.5)) == plain
    assert counter_rng.stream_id(np.str_("batch"), torch.tensor(3), torch.tensor(0.5)) == plain
    assert counter_rng.stream_id("batch", 4, 0.5) != plain
    # plain values name the streams they always did (zoos built before stay the same)
    digest = hashlib.blake2b(repr(("batch", 3, 0.5)).encode(), digest_size=8).digest()
    assert plain == int.from_bytes(digest, "little")
    with pytest.raises(TypeError, match="not dict"):
        counter_rng.stream_id({"a": 1})


def test_uniform_draws_stay_below_one_in_float32():
    """One 53-bit draw in 2^25 lies within 2^-25 of 1, where float32 rounds up to 1.0. Every one must
    stay below 1, so that Box-Muller's log1p(-u) is finite (a PPO trial's action noise was once
    infinite and its weights NaN from then on). Draws are a pure function of (key, stream, index):
    key 1123 of this stream has such a draw at index 11122, so 2^14 draws contain one (rather than
    the 2^26 draws of one arbitrary key that it would take to meet some)."""
    stream = counter_rng.stream_id("below-one")
    bits = counter_rng._random_bits(np.array([1123]), stream, (1 << 14,))
    near_one = ((bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))).astype(np.float32) == 1.0
    assert near_one.any()  # the draws this test is about occur
    u = counter_rng.uniform([1123], stream, (1 << 14,))
    assert float(u.max()) < 1.0 and torch.isfinite(torch.log1p(-u)).all()
