"""Batched DSA (weightspace.analysis.dsa) against its definition and against dsa-metric 2.0.2.

Tolerances reached against the reference (dsa-metric 2.0.2, when installed):
- HAVOK DMD operators: 1e-10 with the reference computing in float64 (measured ~4e-14), 5e-5
  with it in its own float32 (measured ~1e-5), after fixing the sign of each singular vector;
- DSA distances of the ``DSA`` class, given its random start and its singular-vector signs:
  1e-5 (measured ~3e-7);
- eigenvalue Wasserstein scores: 1e-5 (measured ~1e-6).
"""

import json
import math

import pytest
import torch

from weightspace.analysis.dsa import (
    DSASettings,
    delay_embedding,
    dsa_between,
    eigenvalue_wasserstein,
    havok_dmd,
    pairwise_dsa,
    procrustes_distance,
)
from weightspace.errors import WeightspaceError
from weightspace.threads import intra_op_threads

FEW_ITERATIONS = 200  # enough for the batching properties; the reference comparisons use more


@pytest.fixture(autouse=True)
def _one_thread():
    """Small batched problems: a second thread only waits when another process holds a core."""
    with intra_op_threads(1):
        yield


def tanh_rnn_trajectories(networks, units, trials, steps, seed, gain=1.5):
    """(networks, trials, steps, units) hidden states of random noisy tanh RNNs."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(networks, units, units, generator=g) * gain / math.sqrt(units)
    h = torch.randn(networks, trials, units, generator=g) * 0.5
    states = []
    for _ in range(steps):
        h = torch.tanh(h @ W.mT + 0.1 * torch.randn(networks, trials, units, generator=g))
        states.append(h)
    return torch.stack(states, 2)


def linear_system(W, trials, steps, g):
    x, states = torch.randn(trials, W.shape[0], generator=g), []
    for _ in range(steps):
        x = x @ W.mT + 0.3 * torch.randn(trials, W.shape[0], generator=g)
        states.append(x)
    return torch.stack(states, 1)


def stable_matrix(n, g):
    W = torch.randn(n, n, generator=g)
    return 0.9 * W / torch.linalg.eigvals(W).abs().max()


def sign_convention(V):
    """The signs that make each column's largest-magnitude entry positive (havok_dmd's rule)."""
    largest = V.gather(0, V.abs().argmax(0, keepdim=True))[0]
    return torch.where(largest < 0, -1.0, 1.0).to(V.dtype)


def reference_starts(seed, pairs, rank):
    """The L1..L3 starts dsa-metric draws from torch's global generator after manual_seed(seed):
    per pair, the rotation run then the swapped run, three nn.Linear(rank, rank) each."""
    g, bound = torch.Generator().manual_seed(seed), 1 / math.sqrt(rank)
    draws = [torch.empty(rank, rank).uniform_(-bound, bound, generator=g) for _ in range(pairs * 2 * 3)]
    return torch.stack(draws).reshape(pairs, 2, 3, rank, rank)


# ---- definition ----------------------------------------------------------------------------------
def test_delay_embedding_stacks_newest_state_first():
    x = torch.arange(2 * 3 * 10 * 2, dtype=torch.float32).reshape(2, 3, 10, 2)
    embedded = delay_embedding(x, n_delays=3, delay_interval=2)
    assert embedded.shape == (2, 3, 10 - 4, 6)
    for t in range(6):
        expected = torch.cat([x[:, :, t + 4], x[:, :, t + 2], x[:, :, t]], dim=-1)
        assert torch.equal(embedded[:, :, t], expected)


def test_rotated_copy_of_a_linear_system_is_at_distance_zero_and_another_system_is_not():
    g = torch.Generator().manual_seed(0)
    x = linear_system(stable_matrix(8, g), trials=4, steps=60, g=g)
    Q = torch.linalg.qr(torch.randn(8, 8, generator=g))[0]
    other = linear_system(stable_matrix(8, g), trials=4, steps=60, g=g)
    # x @ Q^T is the system Q W Q^T driven by rotated noise from rotated initial states.
    operators = havok_dmd(torch.stack([x, x @ Q.mT, other]), n_delays=3, rank=6)
    distances = pairwise_dsa(operators)
    assert distances[0, 1] < 1e-4
    assert distances[0, 2] > 0.2 and distances[1, 2] > 0.2


def test_dmd_fit_of_a_network_does_not_depend_on_the_others():
    x = tanh_rnn_trajectories(5, 8, 3, 30, seed=1)
    together = havok_dmd(x, n_delays=2, rank=5, chunk_size=2)
    alone = torch.cat([havok_dmd(x[k : k + 1], n_delays=2, rank=5) for k in range(5)])
    assert torch.allclose(together, alone, atol=1e-6)


def test_batched_pairs_equal_pairs_alone():
    operators = havok_dmd(tanh_rnn_trajectories(4, 8, 3, 30, seed=1), n_delays=2, rank=5)
    distances = pairwise_dsa(operators, iterations=FEW_ITERATIONS, chunk_size=4)
    alone = procrustes_distance(operators[3:4], operators[1:2], iterations=FEW_ITERATIONS, keys=[(3 << 32) | 1])
    assert torch.allclose(distances[3, 1], alone[0], atol=1e-6)
    assert torch.allclose(pairwise_dsa(operators, iterations=FEW_ITERATIONS, chunk_size=1), distances, atol=1e-6)


def test_pairwise_is_symmetric_with_zero_diagonal_and_matches_between():
    operators = havok_dmd(tanh_rnn_trajectories(3, 8, 3, 30, seed=2), n_delays=2, rank=5)
    distances = pairwise_dsa(operators, iterations=FEW_ITERATIONS, score_method="angular")
    assert torch.equal(distances, distances.T) and torch.equal(distances.diag(), torch.zeros(3))
    assert (distances[~torch.eye(3, dtype=torch.bool)] > 0).all()
    between = dsa_between(operators, operators, iterations=FEW_ITERATIONS, score_method="angular")
    rows, cols = torch.tril_indices(3, 3, -1)
    assert torch.allclose(between[rows, cols], distances[rows, cols], atol=1e-6)
    crossed = dsa_between(operators, operators.flip(0), iterations=FEW_ITERATIONS)
    paired = dsa_between(operators, operators.flip(0), paired=True, iterations=FEW_ITERATIONS)
    assert paired.shape == (3,) and torch.allclose(paired, crossed.diag(), atol=1e-6)


def test_same_seed_same_distances():
    operators = havok_dmd(tanh_rnn_trajectories(3, 8, 3, 30, seed=3), n_delays=2, rank=5)
    first = pairwise_dsa(operators, iterations=50, seed=4)
    assert torch.equal(first, pairwise_dsa(operators, iterations=50, seed=4))


def test_more_restarts_only_lower_the_distance():
    g = torch.Generator().manual_seed(5)
    A = torch.randn(6, 5, 5, generator=g)
    B = torch.randn(6, 5, 5, generator=g)
    one = procrustes_distance(A, B, iterations=FEW_ITERATIONS)
    three = procrustes_distance(A, B, iterations=FEW_ITERATIONS, restarts=3)
    assert (three <= one + 1e-2).all() and (three < one - 1e-3).any()


def test_angular_and_euclidean_scores_agree_for_unit_norm_operators():
    operators = havok_dmd(tanh_rnn_trajectories(2, 8, 3, 30, seed=6), n_delays=2, rank=5)
    A, B = operators[1:], operators[:1]
    euclidean = procrustes_distance(A, B, iterations=FEW_ITERATIONS)
    angular = procrustes_distance(A, B, iterations=FEW_ITERATIONS, score_method="angular")
    assert torch.allclose(angular, 2 * torch.arcsin(euclidean / 2), atol=1e-5)


def test_settings_round_trip_through_json_and_drive_the_pipeline():
    settings = DSASettings(n_delays=4, rank=10, score_method="angular", restarts=2)
    stored = json.loads(json.dumps(settings.to_json()))
    assert DSASettings(**stored) == settings and stored["iterations"] == 1500
    x = tanh_rnn_trajectories(3, 8, 3, 30, seed=7)
    settings = DSASettings(n_delays=2, rank=5, iterations=50, seed=3)
    operators = havok_dmd(x, 2, 5)
    expected = pairwise_dsa(operators, iterations=50, seed=3)
    assert torch.equal(settings.pairwise(settings.fit_operators(x)), expected)
    assert torch.equal(pairwise_dsa(operators, settings), expected)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: havok_dmd(torch.zeros(3, 20, 4), 2, 3), "networks, trials, time, units"),
        (lambda: havok_dmd(torch.randn(1, 2, 20, 4), 2, 9), "rank must be in"),
        (lambda: havok_dmd(torch.randn(1, 2, 5, 4), 6, 3), "need more than"),
        (lambda: havok_dmd(torch.full((1, 2, 20, 4), math.nan), 2, 3), "finite"),
        (lambda: procrustes_distance(torch.randn(2, 3, 3), torch.randn(2, 4, 4)), "same shape"),
        (
            lambda: procrustes_distance(torch.randn(2, 3, 3), torch.randn(2, 3, 3), score_method="w"),
            "score_method must be one of",
        ),
        (lambda: pairwise_dsa(torch.randn(3, 4)), "networks, rank, rank"),
        (lambda: dsa_between(torch.randn(2, 3, 3), torch.randn(2, 4, 4)), "same rank"),
        (lambda: DSASettings(n_delays=0, rank=3), "n_delays must be >= 1"),
        (
            lambda: pairwise_dsa(torch.randn(3, 4, 4), DSASettings(n_delays=1, rank=4), seed=2),
            "through settings or as keywords, not both",
        ),
        (lambda: dsa_between(torch.randn(2, 3, 3), torch.randn(3, 3, 3), paired=True), "count"),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(WeightspaceError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


# ---- against dsa-metric ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 5e-5)])
@pytest.mark.parametrize(
    "trials, steps, n_delays, rank, interval",
    [
        (4, 40, 3, 6, 1),  # several trials, more rows than features
        (1, 60, 4, 10, 2),  # one trial, delay interval 2
        (1, 14, 4, 8, 1),  # one trial, fewer rows (11) than features (32)
    ],
)
def test_havok_dmd_equals_reference(dtype, tolerance, trials, steps, n_delays, rank, interval):
    reference = pytest.importorskip("DSA")
    x = tanh_rnn_trajectories(2, 8, trials, steps, seed=0).to(dtype)
    ours = havok_dmd(x, n_delays, rank, interval)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # the reference embeds into a default-dtype buffer
    try:
        for network in range(2):
            dmd = reference.DMD(
                x[network] if trials > 1 else x[network, 0], n_delays=n_delays, delay_interval=interval, rank=rank
            )
            dmd.fit()
            signs = sign_convention(dmd.V[:, :rank])
            expected = signs[:, None] * dmd.A_v * signs[None, :]
            assert torch.allclose(ours[network], expected, atol=tolerance, rtol=0)
    finally:
        torch.set_default_dtype(default)


def test_dsa_distances_equal_reference_given_its_random_start():
    reference = pytest.importorskip("DSA")
    networks, rank, n_delays, iterations = 3, 6, 3, 300
    x = tanh_rnn_trajectories(networks, 8, 4, 40, seed=1)
    torch.manual_seed(7)
    dsa = reference.DSA(list(x.numpy()), n_delays=n_delays, rank=rank, score_method="euclidean", iters=iterations)
    expected = torch.as_tensor(dsa.fit_score(), dtype=torch.float32)
    # The search's path depends on the basis, so give ours the reference's singular-vector signs.
    signs = torch.stack([sign_convention(dmd.V[:, :rank]) for dmd in dsa.dmds[0]])
    operators = havok_dmd(x, n_delays, rank)
    operators = signs[:, :, None] * operators * signs[:, None, :]
    rows, cols = torch.tril_indices(networks, networks, -1)
    starts = reference_starts(7, len(rows), rank)
    for method in ("euclidean", "angular"):
        ours = procrustes_distance(
            operators[rows], operators[cols], score_method=method, iterations=iterations, initial_weights=starts
        )
        if method == "euclidean":
            assert torch.allclose(ours, expected[rows, cols], atol=1e-5, rtol=0)
        else:  # the reference keeps the C of its last pair, (2, 1), to score it another way
            assert abs(ours[-1].item() - float(dsa.simdist.score(score_method="angular"))) < 1e-5


def test_wasserstein_equals_reference():
    reference = pytest.importorskip("DSA")
    x = tanh_rnn_trajectories(3, 8, 4, 40, seed=2)
    expected = torch.as_tensor(
        reference.DSA(list(x.numpy()), n_delays=3, rank=6, score_method="wasserstein").fit_score()
    )
    operators = havok_dmd(x, 3, 6)
    assert torch.allclose(pairwise_dsa(operators, score_method="wasserstein").double(), expected, atol=1e-5, rtol=0)
    assert eigenvalue_wasserstein(operators[:1], operators[:1]).abs().max() < 1e-6
