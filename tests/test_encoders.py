"""Mechanistic encoders, the registry, the emulator and its loss."""

import pytest
import torch

from weightspace.emulation import Emulator, emulation_loss
from weightspace.encoders import ENCODER_NAMES, TaskIO, build_encoder, encoder_class
from weightspace.encoders.statistics import layerwise_statistics
from weightspace.networks import INCORRECT_VARIANTS, LSTM, permute, random_permutations

ARCH = LSTM(6, 8, 2, 6)
TASK = TaskIO("categorical", 6, "categorical", 6, probe_length=5)
SMALL = {
    "statistics": dict(hidden=32),
    "flattened": dict(hidden=32),
    "transformer": dict(width=32, layers=2, mlp_hidden=64),
}


def _relative_change(encoder, weights, variant):
    perms = random_permutations(ARCH.spec, weights.size, torch.Generator().manual_seed(1))
    with torch.no_grad():
        before, after = encoder(weights), encoder(permute(weights, perms, variant))
    return ((after - before).norm(dim=1) / before.norm(dim=1)).min().item()


@pytest.mark.parametrize("name", list(SMALL))
def test_shapes_and_gradients(name):
    encoder = build_encoder(name, ARCH, TASK, **SMALL[name])
    weights = ARCH.init([1, 2, 3])
    z = encoder(weights)
    assert z.shape == (3, 16)
    z.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters())


def test_statistics_are_invariant_to_every_permutation():
    """Statistics cannot tell correct from incorrect permutations (paper appendix E.2)."""
    encoder = build_encoder("statistics", ARCH, TASK, **SMALL["statistics"])
    weights = ARCH.init([4, 5])
    for variant in ["correct", *INCORRECT_VARIANTS]:
        assert _relative_change(encoder, weights, variant) < 1e-5, variant
    assert layerwise_statistics(weights).shape == (2, 7 * (4 * 4 * 2 + 2))


@pytest.mark.parametrize("name", ["flattened", "transformer"])
def test_flattened_and_transformer_are_not_invariant(name):
    encoder = build_encoder(name, ARCH, TASK, **SMALL[name])
    weights = ARCH.init([4, 5])
    assert _relative_change(encoder, weights, "correct") > 1e-3
    assert encoder_class(name).augment and not encoder_class(name).permutation_invariant


def test_paper_parameter_counts():
    fl_task = TaskIO("categorical", 6, "categorical", 6, 22)
    assert build_encoder("flattened", LSTM(6, 32, 2, 6), fl_task).num_parameters == 1797264  # table 6, exact
    transformer = build_encoder("transformer", LSTM(6, 32, 2, 6), fl_task).num_parameters
    assert abs(transformer - 1276688) / 1276688 < 0.05  # table 7
    statistics = build_encoder("statistics", LSTM(6, 32, 2, 6), fl_task).num_parameters
    assert abs(statistics - 1248016) / 1248016 < 0.11  # table 5 (per-gate statistics: 238 features, not 70)


def test_registry_names_all_six_and_rejects_others():
    assert ENCODER_NAMES == ("statistics", "flattened", "transformer", "dwsnet", "probing", "interactive")
    with pytest.raises(ValueError, match="unknown encoder"):
        encoder_class("magic")


def test_reverse_kl_is_zero_for_equal_distributions_and_positive_otherwise():
    p = torch.log_softmax(torch.randn(2, 3, 4, 6), -1)
    q = torch.log_softmax(torch.randn(2, 3, 4, 6), -1)
    torch.testing.assert_close(emulation_loss(p, p, "categorical"), torch.zeros(2))
    summed = (q.exp() * (q - p)).sum(-1).mean((1, 2))  # KL(q || p) per network
    torch.testing.assert_close(emulation_loss(q, p, "categorical", "sum"), summed)
    # the paper's units (the authors' code): the same terms averaged over the 6 classes
    loss = emulation_loss(q, p, "categorical")
    torch.testing.assert_close(loss, summed / 6)
    assert (loss > 0).all()
    torch.testing.assert_close(emulation_loss(p, p + 1, "continuous"), torch.ones(2))


def test_total_variation_is_half_the_l1_distance_of_the_distributions():
    p = torch.log_softmax(torch.randn(2, 3, 4, 6), -1)
    q = torch.log_softmax(torch.randn(2, 3, 4, 6), -1)
    tv = emulation_loss(q, p, "categorical", criterion="total-variation")
    torch.testing.assert_close(tv, 0.5 * (q.exp() - p.exp()).abs().sum(-1).mean((1, 2)))
    torch.testing.assert_close(emulation_loss(p, p, "categorical", criterion="total-variation"), torch.zeros(2))
    certain = torch.log(torch.eye(6)[[0, 1]].clamp_min(1e-30)).view(2, 1, 1, 6)  # disjoint certainties
    torch.testing.assert_close(
        emulation_loss(certain[:1], certain[1:], "categorical", criterion="total-variation"), torch.ones(1)
    )
    assert ((tv > 0) & (tv <= 1)).all()


def test_emulator_conditions_on_the_embedding_at_bos():
    emulator = Emulator(TASK, embedding_size=16, hidden=16)
    inputs = torch.nn.functional.one_hot(torch.randint(0, 6, (2, 3, 5)), 6).float()
    z = torch.randn(2, 16)
    out = emulator(z, inputs)
    assert out.shape == (2, 3, 5, 6)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2, 3, 5))
    swapped = emulator(z.flip(0), inputs)
    assert not torch.allclose(out, swapped)
    tokens = emulator.sample_tokens(z, bos=4, length=7, count=5, generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (2, 5, 8) and (tokens[..., 0] == 4).all()
