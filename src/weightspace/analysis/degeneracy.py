"""Solution degeneracy at the behaviour and weight levels, a closed-form second measure of the
dynamics, and the training diagnostics (paper 002). The dynamics level (DSA) is
:mod:`weightspace.analysis.dsa`.

- **Behaviour**: sigma_OOD, the standard deviation over converged networks of their OOD MSE.
- **Dynamics, closed form** (``shape``): 1 - linear CKA (Kornblith et al. 2019) between two
  networks' hidden states on the same trials, rows the (trial, time step) samples, columns the
  units, each unit centred: ``||X^T Y||_F^2 / (||X^T X||_F ||Y^T Y||_F)``. CKA is invariant to
  rotations (hence neuron permutations) and to the scale of the activity, and needs no search:
  beside DSA, whose Procrustes search is a local optimisation, the direction does not rest on one
  optimiser.
- **Weights**: ``min_P ||W1 - P^T W2 P||_F`` over neuron permutations P of the recurrent matrices,
  divided by the number of entries of W (N^2). The permutation is scipy's
  ``quadratic_assignment`` (FAQ), maximising ``trace(W1^T P W2 P^T)`` (which minimises the
  distance), from the barycentre and from ``restarts`` random starts; the best is kept.
- **Diagnostics**: how far training moved the recurrent matrix, ``||W_T - W_0||_F``, and the
  alignment between the initial and the final neural tangent kernel on fixed probe trials,
  ``<K_0, K_T>_F / (||K_0||_F ||K_T||_F)`` (1: the kernel did not change, i.e. lazy training).

Every summary comes with a bootstrap 95% interval (``scipy.stats.bootstrap``, percentile method)
over networks, or over pairs for the pairwise measures.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import quadratic_assignment

from ..networks import fused_cpu
from ..networks.weights import Population
from ..stats import bootstrap_interval

#: the reports' bootstrap resamples
RESAMPLES = 2000


def sample_std(values, axis=-1):
    """The standard deviation with one degree of freedom removed (axis-aware, for the bootstrap)."""
    return np.std(values, axis=axis, ddof=1)


#: each level's statistic over its values: sigma_OOD over networks, the mean over pairs
LEVEL_STATISTICS = {"behaviour": sample_std, "dynamics": np.mean, "shape": np.mean, "weights": np.mean}


def cka_distances(hidden: torch.Tensor, every: int = 1) -> torch.Tensor:
    """1 - linear CKA between every two networks: hidden (K, trials, T, N) -> (K, K), zero on the
    diagonal. The rows are each trial's every ``every``-th time step (the same trials for every
    network). All pairs from one product of the networks' sample Gram matrices
    (``<X X^T, Y Y^T>_F = ||X^T Y||_F^2``), in float64."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    K, _, _, N = hidden.shape
    samples = hidden[:, :, every - 1 :: every].reshape(K, -1, N).double()
    samples = samples - samples.mean(1, keepdim=True)
    grams = (samples @ samples.mT).reshape(K, -1)
    inner = grams @ grams.T  # (K, K): ||X_i^T X_j||_F^2
    norms = inner.diagonal().sqrt()
    cka = inner / (norms[:, None] * norms[None, :])
    distances = (1 - cka).clamp_min(0)
    distances.fill_diagonal_(0)
    return distances.float()


def permuted_distance(
    first: np.ndarray, second: np.ndarray, restarts: int = 3, seed: int = 0
) -> tuple[float, np.ndarray]:
    """(min over the permutations tried of ||first - P^T second P||_F, the best permutation
    ``perm`` with ``second[perm][:, perm]`` aligned to ``first``)."""
    first, second = np.asarray(first, np.float64), np.asarray(second, np.float64)
    rng = np.random.default_rng(seed)
    best, best_perm = np.inf, np.arange(len(first))
    for start in ["barycenter"] + ["randomized"] * restarts:
        options = {"maximize": True, "P0": start, "rng": rng}
        perm = quadratic_assignment(first, second, method="faq", options=options).col_ind
        distance = float(np.linalg.norm(first - second[np.ix_(perm, perm)]))
        if distance < best:
            best, best_perm = distance, perm
    return best, best_perm


def pairwise_weight_distances(recurrent: torch.Tensor | np.ndarray, restarts: int = 3, seed: int = 0) -> np.ndarray:
    """(M, M) symmetric matrix of permutation-minimised distances between M recurrent matrices
    (M, N, N), each divided by N^2. scipy solves one assignment problem at a time, so this loops
    over the M (M - 1) / 2 pairs."""
    matrices = np.asarray(recurrent.detach().cpu() if torch.is_tensor(recurrent) else recurrent, np.float64)
    M, N = len(matrices), matrices.shape[-1]
    distances = np.zeros((M, M))
    for i in range(M):
        for j in range(i + 1, M):
            distances[i, j] = distances[j, i] = (
                permuted_distance(matrices[i], matrices[j], restarts, seed + i * M + j)[0] / N**2
            )
    return distances


def upper_triangle(distances: np.ndarray) -> np.ndarray:
    return distances[np.triu_indices(len(distances), 1)]


def interval(values, statistic=np.mean, seed: int = 0) -> dict:
    """{"value", "low", "high", "n"}: the statistic and its bootstrap 95% interval
    (:func:`weightspace.stats.bootstrap_interval`); JSON-ready, with None where undefined (no
    value; an interval of fewer than two values, or of equal ones)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    value, low, high = bootstrap_interval(values, resamples=RESAMPLES, seed=seed, statistic=statistic)
    if len(values) < 2 or np.ptp(values) == 0:
        low = high = None
    return {"value": value, "low": low, "high": high, "n": int(len(values))}


def weight_change(initial: Population, final: Population, name: str = "rnn.weight_hh_l0") -> torch.Tensor:
    """||W_T - W_0||_F of tensor ``name`` per network: (K,)."""
    return (final[name] - initial[name]).flatten(1).norm(dim=1)


def tangent_kernels(architecture, weights: Population, inputs: torch.Tensor, every: int = 10) -> torch.Tensor:
    """Each network's empirical NTK on its probe ``inputs`` (K, B, T, I), over the outputs at
    every ``every``-th time step: (K, R, R) with R = B x (T // every) x outputs.

    One Jacobian per network (each vectorised over its R outputs). Batched over the population
    instead (one ``torch.func.vjp`` of the population forward, vmapped over R one-hot rows), it
    gives the same kernels but took 1.4x as long: 0.64 against 0.46 s for 16 tanh RNNs of 64
    units on 4 probe trials of 50 steps (``python benchmarks/degeneracy.py --sections ntk``)."""
    names = list(weights.keys())
    kernels = []
    for k in range(weights.size):
        params = tuple(weights[n][k : k + 1].detach() for n in names)

        def outputs(*tensors, k=k):
            out = architecture.forward(Population(weights.spec, dict(zip(names, tensors))), inputs[k : k + 1])[0]
            return out[:, :, every - 1 :: every].reshape(-1)

        with fused_cpu.disabled():  # the compiled backward passes cannot be vmapped
            jacobian = torch.autograd.functional.jacobian(outputs, params, vectorize=True)
        flat = torch.cat([j.reshape(j.shape[0], -1) for j in jacobian], dim=1)
        kernels.append(flat @ flat.T)
    return torch.stack(kernels)


def kernel_alignment(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """<K1, K2>_F / (||K1||_F ||K2||_F) per network: (K, R, R) x 2 -> (K,)."""
    inner = (first * second).sum((1, 2))
    return inner / (first.flatten(1).norm(dim=1) * second.flatten(1).norm(dim=1))
