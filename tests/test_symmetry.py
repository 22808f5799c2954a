"""Correct hidden-neuron permutations keep the function; incorrect ones change it."""

import pytest
import torch

from weightspace.networks import GRU, LSTM, MLP, RNN, applicable_variants, augment, permute, random_permutations


def _outputs(arch, weights, x):
    return arch.forward(weights, x) if isinstance(arch, MLP) else arch.forward(weights, x)[0]


CASES = [
    (LSTM(5, 12, 2, 3), (4, 6, 8, 5)),
    (GRU(5, 12, 2, 3), (4, 6, 8, 5)),
    (RNN(5, 12, 3, 3), (4, 6, 8, 5)),
    (MLP((4, 30, 20, 2)), (4, 16, 4)),
]


@pytest.mark.parametrize("arch,x_shape", CASES, ids=lambda c: getattr(c, "kind", None))
def test_correct_permutation_keeps_the_function(arch, x_shape):
    weights = arch.init([1, 2, 3, 4])
    x = torch.randn(x_shape)
    perms = random_permutations(arch.spec, 4, torch.Generator().manual_seed(0))
    permuted = permute(weights, perms)
    assert any(not torch.equal(permuted[n], weights[n]) for n in arch.spec.names)
    torch.testing.assert_close(_outputs(arch, permuted, x), _outputs(arch, weights, x), atol=1e-5, rtol=0)
    torch.testing.assert_close(_outputs(arch, augment(weights), x), _outputs(arch, weights, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "arch,x_shape,variant",
    [
        pytest.param(arch, shape, variant, id=f"{arch.kind}-{variant}")
        for arch, shape in CASES
        for variant in applicable_variants(arch.spec)
    ],
)
def test_incorrect_permutations_change_the_function(arch, x_shape, variant):
    weights = arch.init([1, 2, 3, 4])
    x = torch.randn(x_shape)
    perms = random_permutations(arch.spec, 4, torch.Generator().manual_seed(0))
    change = (_outputs(arch, permute(weights, perms, variant), x) - _outputs(arch, weights, x)).abs()
    assert change.amax(dim=tuple(range(1, change.ndim))).min() > 1e-3  # every network changes


def test_lstm_permutation_follows_the_seeds_readme():
    """One permutation per layer on rows (all four gates) of W_ih, W_hh, both biases, columns of
    W_hh and of the next layer's W_ih / the readout."""
    arch = LSTM(2, 3, 2, 2)
    weights = arch.init([0])
    perm = {"h0": torch.tensor([2, 0, 1]), "h1": torch.tensor([1, 2, 0])}
    out = permute(weights, perm)
    p0, p1 = perm["h0"], perm["h1"]
    rows0 = torch.cat([p0 + 3 * g for g in range(4)])
    rows1 = torch.cat([p1 + 3 * g for g in range(4)])
    w = {n: t[0] for n, t in weights.items()}
    expected = {
        "rnn.weight_ih_l0": w["rnn.weight_ih_l0"][rows0],
        "rnn.weight_hh_l0": w["rnn.weight_hh_l0"][rows0][:, p0],
        "rnn.bias_ih_l0": w["rnn.bias_ih_l0"][rows0],
        "rnn.bias_hh_l0": w["rnn.bias_hh_l0"][rows0],
        "rnn.weight_ih_l1": w["rnn.weight_ih_l1"][rows1][:, p0],
        "rnn.weight_hh_l1": w["rnn.weight_hh_l1"][rows1][:, p1],
        "rnn.bias_ih_l1": w["rnn.bias_ih_l1"][rows1],
        "rnn.bias_hh_l1": w["rnn.bias_hh_l1"][rows1],
        "readout.weight": w["readout.weight"][:, p1],
        "readout.bias": w["readout.bias"],
    }
    for name, value in expected.items():
        assert torch.equal(out[name][0], value), name


def test_unknown_variant_and_wrong_shapes_are_rejected():
    arch = LSTM(2, 3, 1, 2)
    weights = arch.init([0, 1])
    with pytest.raises(ValueError, match="unknown permutation variant"):
        permute(weights, random_permutations(arch.spec, 2), "sideways")
    with pytest.raises(ValueError, match="expected shape"):
        permute(weights, {"h0": torch.zeros(3, 3, dtype=torch.long)})
