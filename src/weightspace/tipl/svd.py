"""Temporal SVD (Tang et al. 2024, as used by TIPL): policy weight vectors as d-dimensional tokens.

The snapshots of a trajectory, stacked as rows, factor as ``[phi_0 ... phi_n]^T = U S V^T``. A
snapshot's token is its row of ``U[:, :d]``; a token u is turned back into weights by
``u S_d V_d^T``. Nothing is fitted by gradient descent, and the matrix is not centred (the paper
factors the raw snapshots; the mean snapshot is then mostly the first component).

Two readings of "the" matrix:

- :func:`per_run_bases`: one basis per trajectory, the paper's literal reading. A trajectory's
  basis has seen its whole future, so a forecast made with it is not a forecast from the past alone.
- :func:`pooled_basis`: one basis on the stacked snapshots of the training trials only; a test
  trial is encoded by projection (:meth:`Basis.encode`), so nothing about it enters the basis.

SVD's signs are arbitrary. Each component is flipped so that its token coordinate has a positive
mean over the fitted rows; otherwise two per-run bases could show the model the same trajectory
mirrored along any axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import ConfigError

#: Above this ``min(rows, parameters)`` the factors come from a randomised low-rank SVD: the full
#: SVD of a (10^5, 7 * 10^4) matrix does not fit in memory, and only d components are needed.
EXACT_SVD_LIMIT = 4096
#: Extra directions and power iterations of the randomised SVD (Halko et al. 2011's usual choice).
LOWRANK_OVERSAMPLING, LOWRANK_ITERATIONS = 10, 4


@dataclass(frozen=True)
class Basis:
    """The kept part of one temporal SVD: ``singular_values`` (d,), ``components`` (P, d) = V[:, :d],
    and ``energy``, the share of the fitted matrix's squared Frobenius norm that the d components keep."""

    singular_values: torch.Tensor
    components: torch.Tensor
    energy: float

    @property
    def size(self) -> int:
        """d, the token size."""
        return self.singular_values.shape[0]

    @property
    def num_parameters(self) -> int:
        return self.components.shape[0]

    def encode(self, phi: torch.Tensor) -> torch.Tensor:
        """Weights (..., P) -> tokens (..., d): u = phi V S^{-1}; for a fitted row, its row of U[:, :d]."""
        if phi.shape[-1] != self.num_parameters:
            raise ConfigError(
                f"this basis encodes {self.num_parameters} parameters, got weights of shape {tuple(phi.shape)}"
            )
        components = self.components.to(phi.device, phi.dtype)
        return (phi @ components) / self.singular_values.to(phi.device, phi.dtype)

    def decode(self, u: torch.Tensor) -> torch.Tensor:
        """Tokens (..., d) -> weights (..., P): u S V^T, the closest point of the kept subspace."""
        if u.shape[-1] != self.size:
            raise ConfigError(f"this basis decodes tokens of size {self.size}, got shape {tuple(u.shape)}")
        scaled = u * self.singular_values.to(u.device, u.dtype)
        return scaled @ self.components.to(u.device, u.dtype).T

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """For safetensors: the two factors and the energy as a 0-dim tensor."""
        return {
            "singular_values": self.singular_values,
            "components": self.components,
            "energy": torch.tensor(self.energy, dtype=torch.float64),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> Basis:
        missing = {"singular_values", "components", "energy"} - set(tensors)
        if missing:
            raise ConfigError(f"not a temporal SVD basis: missing {', '.join(sorted(missing))}")
        return cls(tensors["singular_values"], tensors["components"], float(tensors["energy"]))


def fit_basis(rows: torch.Tensor, d: int) -> Basis:
    """The first d components of the uncentred SVD of ``rows`` (N, P), in float32.

    Factors in float64 (float32 loses the small singular values of a slowly moving trajectory);
    above :data:`EXACT_SVD_LIMIT` with ``torch.svd_lowrank`` on the float32 rows (a float64 copy
    of a large stacked zoo would not fit), seeded so that a basis is a function of its rows alone.
    The energy's denominator is the squared Frobenius norm, which is exact on either path.
    """
    if rows.ndim != 2:
        raise ConfigError(f"temporal SVD needs snapshots as rows (N, P), got shape {tuple(rows.shape)}")
    count, num_parameters = rows.shape
    rank_limit = min(count, num_parameters)
    if not 1 <= d <= rank_limit:
        raise ConfigError(
            f"token size d={d} must lie in 1..min(snapshots, parameters) = {rank_limit} "
            f"for {count} snapshots of {num_parameters} parameters"
        )
    total = float(rows.double().square().sum())
    if rank_limit <= EXACT_SVD_LIMIT:
        u, s, vh = torch.linalg.svd(rows.double(), full_matrices=False)
        u, s, v = u[:, :d], s[:d], vh[:d].T
    else:
        with torch.random.fork_rng(devices=[rows.device] if rows.device.type == "cuda" else []):
            torch.manual_seed(0)
            q = min(d + LOWRANK_OVERSAMPLING, rank_limit)
            u, s, v = torch.svd_lowrank(rows.float(), q=q, niter=LOWRANK_ITERATIONS)
        u, s, v = u[:, :d].double(), s[:d].double(), v[:, :d].double()
    # numerical rank as matrix_rank counts it, at the precision the rows came in
    precision = torch.finfo(rows.dtype if rows.dtype in (torch.float32, torch.float64) else torch.float32).eps
    tolerance = float(s[0]) * max(count, num_parameters) * precision
    if float(s[-1]) <= tolerance:
        rank = int((s > tolerance).sum())
        raise ConfigError(
            f"token size d={d} keeps zero singular values: these {count} snapshots span only {rank} dimension(s)"
        )
    signs = torch.where(u.sum(0) < 0, -1.0, 1.0).to(v.dtype)
    return Basis(s.float(), (v * signs).float(), sum(float(x) ** 2 for x in s) / total)


def per_run_bases(trajectories: Sequence[torch.Tensor], d: int) -> list[Basis]:
    """One basis per trajectory (T_i, P): the paper's literal reading (see the module docstring)."""
    return [fit_basis(trajectory, d) for trajectory in trajectories]


def pooled_basis(train_trajectories: Sequence[torch.Tensor], d: int) -> Basis:
    """One basis on the stacked snapshots of the training trajectories only."""
    if not train_trajectories:
        raise ConfigError("a pooled basis needs at least one training trajectory")
    return fit_basis(torch.cat(list(train_trajectories)), d)


def tokens(trajectories: Sequence[torch.Tensor], bases: Basis | Sequence[Basis]) -> list[torch.Tensor]:
    """Each trajectory (T_i, P) as tokens (T_i, d): with one pooled basis, or with one basis per
    trajectory (in the same order)."""
    if isinstance(bases, Basis):
        return [bases.encode(trajectory) for trajectory in trajectories]
    if len(bases) != len(trajectories):
        raise ConfigError(
            f"{len(trajectories)} trajectories but {len(bases)} bases; give one basis per "
            "trajectory, or one pooled basis"
        )
    return [basis.encode(trajectory) for basis, trajectory in zip(bases, trajectories)]
