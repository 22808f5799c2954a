"""Dynamical Similarity Analysis (DSA), batched over networks and over pairs of networks.

DSA (Ostrow et al. 2023, "Beyond Geometry"; reference implementation: PyPI ``dsa-metric``,
import name ``DSA``) compares two dynamical systems through linear operators fitted to their
trajectories, up to an orthogonal change of coordinates. Huang et al. (NeurIPS 2025) use it to
measure how degenerate the dynamics of a population of task-trained RNNs are: the mean over all
pairs of networks of ``min_{C in O(r)} || A_x - C A_y C^T ||_F``.

1. ``havok_dmd``: each network's hidden states are delay-embedded (Hankel matrix), the top
   ``rank`` singular vectors of the time side of that matrix (the "eigen-time-delay" coordinates
   V) are kept, and the operator A (rank x rank) is the least-squares map from V_t to V_{t+1}
   (principal component regression, HAVOK DMD).
2. ``procrustes_distance``: for each pair, C is searched over O(r) by Adam, and the distance is
   scored from the C found ("Procrustes analysis over vector fields").

Conventions of dsa-metric 2.0.2 that this module follows (read from its source):

- Delay embedding: row t of a trial is ``[x_{t+(D-1)s}, x_{t+(D-2)s}, ..., x_t]`` (newest first),
  D = ``n_delays``, s = ``delay_interval``. Trials are embedded separately, then stacked along
  time for one SVD; V_t -> V_{t+1} pairs never cross a trial boundary. No centring, no scaling.
- A = ((V-^T V- + ridge I)^-1 V-^T V+)^T (the reference's ``A_v``) with V truncated to its
  first ``rank`` columns and ridge 1e-8 (the ``DMD`` class default, which ``DSA`` uses when no
  ``lamb`` is given), so v_{t+1} ~ A v_t. The reference leaves the signs of the singular vectors
  to LAPACK; here each column of V is flipped so its largest-magnitude entry is positive (A
  changes by D A D with D diagonal +-1, which is orthogonal, so no distance changes).
- Procrustes: both operators are divided by their Frobenius norm; C = Cayley(S) =
  (I + S)^-1 (I - S) with S = Y - Y^T, Y = L3(tanh(L2(tanh(L1(X))))), X initialised to I and
  L1..L3 bias-free r x r linear maps initialised as ``nn.Linear`` does (uniform, +-1/sqrt(r)). All
  four matrices are trained by Adam on sum((A - C B C^T)^2) for 1500 steps at lr 5e-3 (the
  ``DSA`` class defaults). Because Cayley maps reach only rotations, the search runs a second
  time on P B P^T with P swapping the first two coordinates (det -1) and keeps the run whose last
  recorded loss (before its last step) is strictly lower. Scores: "euclidean" = ||A - C B C^T||_F,
  "angular" = arccos(tr(A^T C B C^T) / (|A| |B|)), both of the normalised operators.
- ``pairwise_dsa`` compares pair (i, j), i > j, with A = operator i and B = operator j, in the
  order the reference's self-pairwise loop does; ``dsa_between`` compares x_i (A) with y_j (B).
- "wasserstein" (the ``DSA`` class's default score in 2.0.2) is not a Procrustes metric: the
  squared-Euclidean optimal transport between the two operators' eigenvalues in the complex plane
  with uniform weights, i.e. the mean squared distance of the best one-to-one matching
  (``ot.emd2`` with ``ot.dist``, no square root, operators not normalised).

Deliberate differences: the reference draws the random start of L1..L3 from torch's global
generator, so its distances change from call to call; here the start of each pair is a pure
function of (seed, pair), so a pair's distance doesn't depend on the other pairs in its batch.
The reference fits the DMD in float32; here the SVD is computed in float64 (from the Gram matrix
of the smaller side of the Hankel matrix) and the operators are returned in the trajectories'
dtype. C is computed as 2 (I + S)^-1 - I, the same matrix (rounding aside) for a cheaper step.
``restarts`` > 1 (not in the reference) keeps the best of more starts. Default score:
"euclidean", the metric as Huang et al. write it; the reference's ``SimilarityTransformDist``
defaults to "angular" and its ``DSA`` class to "wasserstein".

Agreement with dsa-metric 2.0.2 (tests/test_dsa.py): operators equal the reference's ``A_v`` to
~4e-14 when the reference runs in float64 and ~1e-5 in its own float32; given the reference's
random start (and its singular-vector signs), distances equal the ``DSA`` class's to ~3e-7; the
Wasserstein scores to ~1e-6. From our own start, distances differ from the reference's by its own
start-to-start spread: 0.4 % on average (0.6 % at most) for rank-30 operators of 128-unit tanh
RNNs (benchmarks/degeneracy.py), a few % at rank 6.

The search is local, in the reference as here: from a random start it often stops short of the
global minimum. A random 6 x 6 Gaussian operator against a rotated copy of itself scored 0.2-0.55
(instead of 0) in about half of the cases, in the reference's runs as in ours; ``restarts`` helps
only partly. Distances are therefore upper bounds of the metric, noisy at the percent level.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .. import counter_rng
from ..errors import WeightspaceError
from ..threads import intra_op_threads

#: dsa-metric 2.0.2 ``DSA`` defaults for the Procrustes search, and the ``DMD`` ridge.
REFERENCE_ITERATIONS = 1500
REFERENCE_LR = 5e-3
REFERENCE_RIDGE = 1e-8
SCORE_METHODS = ("euclidean", "angular", "wasserstein")
DEFAULT_SCORE = "euclidean"
#: Pairs per Procrustes batch: 1,225 pairs of 50 networks run as 2 batches; ~0.5 GB at rank 30.
DEFAULT_CHUNK = 1024


@dataclass(frozen=True)
class DSASettings:
    """Everything that determines a DSA distance; stored with every result (``to_json``)."""

    n_delays: int  # fixed per task, like rank
    rank: int
    delay_interval: int = 1
    ridge: float = REFERENCE_RIDGE
    score_method: str = DEFAULT_SCORE
    iterations: int = REFERENCE_ITERATIONS
    lr: float = REFERENCE_LR
    seed: int = 0  # the random starts of the search
    restarts: int = 1  # 1: the reference's search

    def __post_init__(self):
        for name in ("n_delays", "rank", "delay_interval", "iterations", "restarts"):
            if int(getattr(self, name)) < 1:
                raise WeightspaceError(f"DSASettings.{name} must be >= 1, got {getattr(self, name)}")
        _check_score_method(self.score_method)
        if not self.lr > 0 or self.ridge < 0:
            raise WeightspaceError(f"DSASettings needs lr > 0 and ridge >= 0, got lr={self.lr}, ridge={self.ridge}")

    def to_json(self) -> dict:
        return asdict(self)

    def fit_operators(self, trajectories: torch.Tensor, threads: int | None = 1) -> torch.Tensor:
        """(M, trials, T, n) trajectories -> (M, rank, rank) HAVOK DMD operators."""
        return havok_dmd(trajectories, self.n_delays, self.rank, self.delay_interval, self.ridge, threads=threads)

    def pairwise(
        self, operators: torch.Tensor, chunk_size: int = DEFAULT_CHUNK, threads: int | None = 1
    ) -> torch.Tensor:
        return pairwise_dsa(operators, self, chunk_size=chunk_size, threads=threads)

    def between(
        self,
        operators_x: torch.Tensor,
        operators_y: torch.Tensor,
        paired: bool = False,
        chunk_size: int = DEFAULT_CHUNK,
        threads: int | None = 1,
    ) -> torch.Tensor:
        return dsa_between(operators_x, operators_y, self, paired=paired, chunk_size=chunk_size, threads=threads)


# ---- HAVOK DMD -----------------------------------------------------------------------------------
def delay_embedding(trajectories: torch.Tensor, n_delays: int, delay_interval: int = 1) -> torch.Tensor:
    """(M, trials, T, n) -> (M, trials, T - (n_delays - 1) * delay_interval, n * n_delays).

    Row t holds ``[x_{t + (D-1) s}, ..., x_{t + s}, x_t]``, newest state first, as dsa-metric's
    ``embed_signal_torch`` builds it.
    """
    _check_trajectories(trajectories)
    if n_delays < 1 or delay_interval < 1:
        raise WeightspaceError(f"n_delays and delay_interval must be >= 1, got {n_delays} and {delay_interval}")
    span = (n_delays - 1) * delay_interval
    steps = trajectories.shape[2] - span
    if steps < 1:
        raise WeightspaceError(
            f"{n_delays} delays x interval {delay_interval} need more than "
            f"{span} time steps, trajectories have {trajectories.shape[2]}"
        )
    blocks = [trajectories[:, :, (n_delays - 1 - d) * delay_interval :][:, :, :steps] for d in range(n_delays)]
    return torch.cat(blocks, dim=-1)


def havok_dmd(
    trajectories: torch.Tensor,
    n_delays: int,
    rank: int,
    delay_interval: int = 1,
    ridge: float = REFERENCE_RIDGE,
    chunk_size: int = 8,
    threads: int | None = 1,
) -> torch.Tensor:
    """One HAVOK DMD fit per network: (M, trials, T, n) -> operators (M, rank, rank).

    Equal to dsa-metric's ``DMD(x, n_delays, delay_interval, rank).fit().A_v`` for each network,
    up to the sign of each coordinate. Fits ``chunk_size`` networks at a time (memory grows with
    chunk_size x trials x T x n x n_delays in float64); each network's fit is independent.
    ``threads``: torch threads on CPU (None: torch's setting). While another process held a
    core, the eigendecompositions were measured 2 to 80 times slower on 2 threads than on 1.
    """
    embedded = delay_embedding(trajectories, n_delays, delay_interval)
    networks, trials, steps, features = embedded.shape
    if steps < 2:
        raise WeightspaceError(
            f"the delay embedding leaves {steps} time step per trial; the fit "
            f"needs at least 2 (fewer delays or longer trajectories)"
        )
    if not 1 <= rank <= min(trials * steps, features):
        raise WeightspaceError(
            f"rank must be in [1, {min(trials * steps, features)}] (the Hankel "
            f"matrix is {trials * steps} x {features}), got {rank}"
        )
    with intra_op_threads(threads if trajectories.device.type == "cpu" else None):
        operators = [
            _fit_operators(embedded[start : start + chunk_size], rank, ridge)
            for start in range(0, networks, chunk_size)
        ]
    return torch.cat(operators).to(trajectories.dtype)


def rank_for_variance(
    trajectories: torch.Tensor, n_delays: int, share: float, delay_interval: int = 1
) -> tuple[int, list[float]]:
    """The smallest rank whose top singular vectors of the Hankel matrix explain ``share`` of its
    variance (the sum of squared singular values), on average over the networks, and each
    network's share at that rank: one rank for a whole condition, so that its networks' operators
    can be compared, a fixed share of each (a wider network's modes are more)."""
    if not 0 < share <= 1:
        raise WeightspaceError(f"the share of explained variance must be in (0, 1], got {share}")
    embedded = delay_embedding(trajectories, n_delays, delay_interval)
    networks, trials, steps, features = embedded.shape
    hankel = embedded.reshape(networks, trials * steps, features).double()
    small = hankel.mT @ hankel if features <= trials * steps else hankel @ hankel.mT
    variance = torch.linalg.eigvalsh(small).flip(-1).clamp_min(0)  # squared singular values, largest first
    shares = variance.cumsum(-1) / variance.sum(-1, keepdim=True)
    rank = int((shares.mean(0) < share - 1e-12).sum()) + 1
    return min(rank, shares.shape[-1]), shares[:, min(rank, shares.shape[-1]) - 1].tolist()


def _fit_operators(embedded: torch.Tensor, rank: int, ridge: float) -> torch.Tensor:
    networks, trials, steps, features = embedded.shape
    hankel = embedded.reshape(networks, trials * steps, features).double()
    V = _top_time_singular_vectors(hankel, rank).reshape(networks, trials, steps, rank)
    before = V[:, :, :-1].reshape(networks, -1, rank)
    after = V[:, :, 1:].reshape(networks, -1, rank)
    gram = before.mT @ before + ridge * torch.eye(rank, dtype=V.dtype, device=V.device)
    return torch.linalg.solve(gram, before.mT @ after).mT


def _top_time_singular_vectors(hankel: torch.Tensor, rank: int) -> torch.Tensor:
    """Top ``rank`` left singular vectors of each (rows, features) matrix, sign-normalised.

    From the eigenvectors of the Gram matrix of the smaller side (in float64 the squared
    condition number costs nothing the rank truncation keeps)."""
    rows, features = hankel.shape[-2:]
    if features <= rows:
        eigenvalues, vectors = torch.linalg.eigh(hankel.mT @ hankel)
        top = vectors[..., -rank:].flip(-1)
        singular = eigenvalues[..., -rank:].flip(-1).clamp_min(0).sqrt()
        V = (hankel @ top) / singular.unsqueeze(-2)
    else:
        V = torch.linalg.eigh(hankel @ hankel.mT)[1][..., -rank:].flip(-1)
    largest = V.gather(-2, V.abs().argmax(-2, keepdim=True))
    return V * torch.where(largest < 0, -1.0, 1.0).to(V.dtype)


# ---- Procrustes over vector fields -------------------------------------------------------------
def procrustes_distance(
    A: torch.Tensor,
    B: torch.Tensor,
    *,
    score_method: str = DEFAULT_SCORE,
    iterations: int = REFERENCE_ITERATIONS,
    lr: float = REFERENCE_LR,
    seed: int = 0,
    restarts: int = 1,
    keys=None,
    initial_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """min over C in O(r) of the distance between A and C B C^T, for P pairs at once: (P,) scores.

    A, B: (P, r, r). Each start runs the search twice (on B and on the swapped B, see the module
    docstring); of the 2 x ``restarts`` runs the one with the lowest last loss is scored.
    ``restarts=1`` is the reference's search; more starts cost proportionally more and choose
    from a superset of the same runs (the first start does not change). The starts of problem k
    are a function of ``(seed, keys[k])`` only (keys default to 0..P-1), so a pair scores the
    same in any batch.
    ``initial_weights`` (P, 2 x restarts, 3, r, r), the L1..L3 starts of each run, replaces them
    (to reproduce another implementation's start). Adam is elementwise, so optimising the P
    problems as one batch equals optimising each alone.
    """
    _check_pairs(A, B)
    _check_score_method(score_method, procrustes_only=True)
    if iterations < 1 or restarts < 1 or not lr > 0:
        raise WeightspaceError(
            f"iterations and restarts must be >= 1 and lr > 0, got {iterations}, {restarts} and {lr}"
        )
    pairs, r, _ = A.shape
    runs = 2 * restarts
    if initial_weights is None:
        initial_weights = initial_skew_weights(np.arange(pairs) if keys is None else keys, r, seed, restarts)
    elif initial_weights.shape != (pairs, runs, 3, r, r):
        raise WeightspaceError(
            f"initial_weights must have shape {(pairs, runs, 3, r, r)}, got {tuple(initial_weights.shape)}"
        )
    A = A / torch.linalg.matrix_norm(A).view(-1, 1, 1)
    B = B / torch.linalg.matrix_norm(B).view(-1, 1, 1)
    swap = torch.eye(r, dtype=A.dtype, device=A.device)
    if r > 1:
        swap = swap[[1, 0, *range(2, r)]]
    # All runs of all pairs in one batch, run-major: run 2k on B, run 2k + 1 on the swapped B.
    targets = A.repeat(runs, 1, 1)
    sources = torch.stack([B, swap @ B @ swap.mT]).repeat(restarts, 1, 1, 1).reshape(-1, r, r)
    weights = initial_weights.to(A).transpose(0, 1).reshape(runs * pairs, 3, r, r)
    rotations, last_loss = _search_rotations(targets, sources, weights, iterations, lr)
    # argmin keeps the first of equal losses: the reference takes the swapped run only if lower.
    best = last_loss.view(runs, pairs).argmin(0) * pairs + torch.arange(pairs, device=A.device)
    C, B_best = rotations[best], sources[best]
    aligned = C @ B_best @ C.mT
    if score_method == "euclidean":
        return torch.linalg.matrix_norm(A - aligned)
    norms = torch.linalg.matrix_norm(A) * torch.linalg.matrix_norm(B_best)
    return torch.arccos(((A * aligned).sum((-1, -2)) / norms).clamp(-1.0, 1.0))


def initial_skew_weights(keys, rank: int, seed: int = 0, restarts: int = 1) -> torch.Tensor:
    """(len(keys), 2 x restarts, 3, rank, rank) starts of L1..L3 of every run: uniform
    (+-1/sqrt(rank)) as ``nn.Linear`` initialises, drawn by counter from (seed, key); the first
    start is the same for any number of restarts."""
    stream = counter_rng.stream_id("dsa-procrustes-start", seed)
    shape = (2 * restarts, 3, rank, rank)
    uniform = counter_rng.uniform(np.asarray(keys, dtype=np.uint64), stream, shape)
    return (2 * uniform - 1) / math.sqrt(rank)


def _search_rotations(A, B, weights, iterations: int, lr: float):
    """Adam on the Cayley-of-MLP parametrisation; returns (C after the last step, last loss)."""
    count, r, _ = A.shape
    eye = torch.eye(r, dtype=A.dtype, device=A.device)
    with torch.enable_grad():
        X = eye.expand(count, r, r).clone().requires_grad_()
        L1, L2, L3 = (w.clone().requires_grad_() for w in weights.unbind(1))
        # The fused kernel does the same arithmetic as the default one, in one pass.
        fused = A.device.type in ("cpu", "cuda")
        optimizer = torch.optim.Adam([X, L1, L2, L3], lr=lr, fused=fused)

        def rotation():
            Y = torch.tanh(torch.tanh(X @ L1.mT) @ L2.mT) @ L3.mT
            skew = Y - Y.mT
            # (I + S)^-1 (I - S) = 2 (I + S)^-1 - I: one inverse, whose backward is two matmuls
            # (a solve and its backward cost ~25 % more of the whole step at r = 30).
            return 2 * torch.linalg.inv(eye + skew) - eye

        for _ in range(iterations):
            optimizer.zero_grad()
            C = rotation()
            loss = ((A - C @ B @ C.mT) ** 2).sum((-1, -2))
            loss.sum().backward()
            optimizer.step()
        with torch.no_grad():
            return rotation(), loss.detach()


# ---- eigenvalue Wasserstein (the reference DSA class's default score) --------------------------
def eigenvalue_wasserstein(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """(P, r, r) x (P, r, r) -> (P,): mean squared distance between the eigenvalues of A and B
    under their best one-to-one matching (dsa-metric's ``score_method="wasserstein"``)."""
    _check_pairs(A, B)
    a, b = torch.linalg.eigvals(A.double()), torch.linalg.eigvals(B.double())
    cost = (a.unsqueeze(-1) - b.unsqueeze(-2)).abs().square().cpu().numpy()
    scores = [cost[k][linear_sum_assignment(cost[k])].mean() for k in range(len(cost))]
    return torch.tensor(scores, dtype=A.dtype, device=A.device)


# ---- all pairs -----------------------------------------------------------------------------------
def pairwise_dsa(
    operators: torch.Tensor,
    settings: DSASettings | None = None,
    *,
    score_method: str | None = None,
    iterations: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    restarts: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    threads: int | None = 1,
) -> torch.Tensor:
    """(M, r, r) operators -> (M, M) symmetric distances, zero diagonal, ``chunk_size`` pairs at
    a time. Pair (i, j), i > j, compares A = operators[i] with B = operators[j].

    The search's parameters come from ``settings`` or from the keywords (not both), else the
    reference's defaults (``DSASettings``'s). ``threads`` as in ``havok_dmd`` (measured at rank
    30, 1,225 pairs: 2 threads 4x slower than 1 while another process held a core).
    """
    _check_operators(operators, "operators")
    search = _search(settings, score_method=score_method, iterations=iterations, lr=lr, seed=seed, restarts=restarts)
    count = operators.shape[0]
    rows, cols = torch.tril_indices(count, count, -1)
    scores = _score_pairs(operators[rows], operators[cols], rows, cols, search, chunk_size, threads)
    distances = operators.new_zeros(count, count)
    distances[rows, cols] = scores
    distances[cols, rows] = scores
    return distances


def dsa_between(
    operators_x: torch.Tensor,
    operators_y: torch.Tensor,
    settings: DSASettings | None = None,
    *,
    paired: bool = False,
    score_method: str | None = None,
    iterations: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    restarts: int | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    threads: int | None = 1,
) -> torch.Tensor:
    """Distances of x_i (A) to y_j (B): (Mx, r, r) and (My, r, r) -> (Mx, My) for every i, j; with
    ``paired`` (Mx == My), (M,) for i == j only, e.g. the null of each network: its operator from
    one half of its trials against the one from the other half. Parameters as ``pairwise_dsa``.
    """
    _check_operators(operators_x, "operators_x")
    _check_operators(operators_y, "operators_y")
    if operators_x.shape[1:] != operators_y.shape[1:] or (paired and len(operators_x) != len(operators_y)):
        raise WeightspaceError(
            f"operators_x and operators_y must have the same rank"
            f"{' and count (paired)' if paired else ''}, got "
            f"{tuple(operators_x.shape)} and {tuple(operators_y.shape)}"
        )
    search = _search(settings, score_method=score_method, iterations=iterations, lr=lr, seed=seed, restarts=restarts)
    if paired:
        rows = cols = torch.arange(len(operators_x))
    else:
        rows, cols = torch.meshgrid(torch.arange(len(operators_x)), torch.arange(len(operators_y)), indexing="ij")
        rows, cols = rows.reshape(-1), cols.reshape(-1)
    scores = _score_pairs(operators_x[rows], operators_y[cols], rows, cols, search, chunk_size, threads)
    return scores if paired else scores.reshape(len(operators_x), len(operators_y))


def _search(settings: DSASettings | None, **given) -> dict:
    """The search's parameters from ``settings`` or the keywords given, refusing both."""
    given = {name: value for name, value in given.items() if value is not None}
    if settings is None:
        return {**_search_parameters(DSASettings(n_delays=1, rank=1)), **given}
    if given:
        raise WeightspaceError(f"pass {', '.join(sorted(given))} through settings or as keywords, not both")
    return _search_parameters(settings)


def _search_parameters(settings: DSASettings) -> dict:
    return dict(
        score_method=settings.score_method,
        iterations=settings.iterations,
        lr=settings.lr,
        seed=settings.seed,
        restarts=settings.restarts,
    )


def _score_pairs(A, B, rows, cols, search: dict, chunk_size: int, threads: int | None):
    """Scores of the pairs (A[k], B[k]); pair k is operator rows[k] against cols[k]."""
    _check_score_method(search["score_method"])
    if chunk_size < 1:
        raise WeightspaceError(f"chunk_size must be >= 1, got {chunk_size}")
    if not len(A):
        return A.new_zeros(0)
    with intra_op_threads(threads if A.device.type == "cpu" else None):
        if search["score_method"] == "wasserstein":
            return eigenvalue_wasserstein(A, B)
        # The start of a pair depends on which two operators it compares, not on its batch.
        keys = (rows.numpy().astype(np.uint64) << np.uint64(32)) | cols.numpy().astype(np.uint64)
        return torch.cat(
            [
                procrustes_distance(
                    A[s : s + chunk_size], B[s : s + chunk_size], keys=keys[s : s + chunk_size], **search
                )
                for s in range(0, len(A), chunk_size)
            ]
        )


# ---- input checks ------------------------------------------------------------------------------
def _check_trajectories(trajectories):
    if not isinstance(trajectories, torch.Tensor) or trajectories.ndim != 4:
        shape = tuple(trajectories.shape) if hasattr(trajectories, "shape") else type(trajectories)
        raise WeightspaceError(f"trajectories must be a tensor (networks, trials, time, units), got {shape}")
    if not trajectories.is_floating_point():
        raise WeightspaceError(f"trajectories must be floats, got {trajectories.dtype}")
    if not torch.isfinite(trajectories).all():
        raise WeightspaceError(
            f"trajectories must be finite, got {int((~torch.isfinite(trajectories)).sum())} non-finite values"
        )


def _check_operators(operators, name):
    if not isinstance(operators, torch.Tensor) or operators.ndim != 3 or operators.shape[1] != operators.shape[2]:
        shape = tuple(operators.shape) if hasattr(operators, "shape") else type(operators)
        raise WeightspaceError(f"{name} must be a tensor (networks, rank, rank), got {shape}")


def _check_pairs(A, B):
    _check_operators(A, "A")
    _check_operators(B, "B")
    if A.shape != B.shape:
        raise WeightspaceError(f"A and B must have the same shape, got {tuple(A.shape)} and {tuple(B.shape)}")


def _check_score_method(score_method, procrustes_only=False):
    allowed = SCORE_METHODS[:2] if procrustes_only else SCORE_METHODS
    if score_method not in allowed:
        raise WeightspaceError(f"score_method must be one of {', '.join(allowed)}, got {score_method!r}")
