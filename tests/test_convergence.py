"""Convergent learning: correlations of absolute activations, matchings, convergence distance."""

import itertools

import numpy as np
import pytest
import torch

from weightspace.analysis.convergence import (
    absolute_activations,
    all_pairs,
    bipartite_matching,
    compare_pairs,
    convergence_distance,
    correlations,
    reference_states,
    semi_matching,
)
from weightspace.networks import Population, permute, random_permutations
from weightspace.rl import CARTPOLE_NET


@pytest.fixture(scope="module")
def states():
    return reference_states(2000, seed=1)


def test_reference_states_are_diverse_valid_and_reproducible(states):
    assert states.shape == (2000, 4) and states.dtype == torch.float32
    assert torch.equal(states, reference_states(2000, seed=1))
    assert not torch.equal(states, reference_states(2000, seed=2))
    assert len(torch.unique(states, dim=0)) == 2000
    angle = states[:, 2].abs()
    assert angle.max() <= 0.21 and states[:, 0].abs().max() <= 2.4 + 0.1  # inside (or one step past) the limits
    assert (angle < 0.02).float().mean() > 0.1 and (angle > 0.1).float().mean() > 0.05  # upright and falling
    assert len(reference_states()) == 10_000  # the paper's reference set


def test_correlations_are_pearson_correlations_of_absolute_activations(states):
    weights = CARTPOLE_NET.init([1, 2])
    hidden = absolute_activations(CARTPOLE_NET, weights, states)["hidden"]
    assert hidden.shape == (2, 2000, 30) and (hidden >= 0).all()
    rho = correlations(hidden[:1], hidden[1:])[0].numpy()
    expected = np.corrcoef(hidden[0].T.numpy(), hidden[1].T.numpy())[:30, 30:]
    np.testing.assert_allclose(rho, expected, atol=1e-5)


def test_matching_agrees_with_brute_force_on_small_cases():
    rng = np.random.default_rng(0)
    for _ in range(20):
        rho = rng.uniform(-1, 1, size=(5, 5))
        best = max(itertools.permutations(range(5)), key=lambda p: sum(rho[i, p[i]] for i in range(5)))
        partner = bipartite_matching(rho)
        assert sorted(partner) == list(range(5))
        assert rho[np.arange(5), partner].sum() == pytest.approx(sum(rho[i, best[i]] for i in range(5)))
        semi = semi_matching(rho)
        assert np.array_equal(semi, rho.argmax(1))
        # CD = what the semi-matching gains over the best one-to-one matching, by brute force too
        assert convergence_distance(rho) == pytest.approx(rho.max(1).sum() - sum(rho[i, best[i]] for i in range(5)))
        assert convergence_distance(rho) >= 0


def test_convergence_distance_by_hand():
    rho = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert bipartite_matching(rho).tolist() == [1, 0]  # 0.8 + 0.85 beats 0.9 + 0.1
    assert semi_matching(rho).tolist() == [0, 0]  # both units' best partner is unit 0
    assert convergence_distance(rho) == pytest.approx((0.9 + 0.85) - (0.8 + 0.85))


def test_a_network_and_its_permuted_copy_have_zero_convergence_distance(states):
    weights = CARTPOLE_NET.init([5, 6, 7])
    perms = random_permutations(CARTPOLE_NET.spec, 3, torch.Generator().manual_seed(0))
    permuted = permute(weights, perms)
    both = Population(weights.spec, {n: torch.cat([weights[n], permuted[n]]) for n in weights})
    comparison = compare_pairs(CARTPOLE_NET, both, [[0, 3], [1, 4], [2, 5]], states)
    np.testing.assert_allclose(comparison.distances["hidden"], 0.0, atol=1e-9)
    np.testing.assert_allclose(comparison.distances["output"], 0.0, atol=1e-9)
    for k in range(3):  # the matching recovers the permutation
        partner = bipartite_matching(comparison.correlations["hidden"][k])
        assert np.array_equal(perms["h0"][k].numpy()[partner], np.arange(30))
    # two unrelated networks do not converge perfectly
    other = compare_pairs(CARTPOLE_NET, weights, all_pairs(3), states)
    assert (other.distances["hidden"] > 0.1).all()


def test_all_pairs():
    assert all_pairs(3).tolist() == [[0, 1], [0, 2], [1, 2]]
    assert len(all_pairs(10)) == 45
