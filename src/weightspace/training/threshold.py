"""Train a population until each network reaches its loss threshold (paper 002's protocol).

Every network trains with Adam (no weight decay) on masked MSE, in epochs of ``steps_per_epoch``
steps. At the end of each epoch, per network:

1. ``ReduceLROnPlateau`` on the epoch's mean training MSE (torch's defaults: mode "min", relative
   threshold 1e-4; factor and patience from :class:`StoppingRule`);
2. the first epoch whose mean training MSE is below ``threshold`` is the network's convergence
   epoch; ``patience_epochs`` epochs later the network stops: its weights and Adam moments no
   longer change, and its step is recorded (``stop_step``). A network still training after
   ``max_epochs`` stops there; it did not converge, and the degeneracy measures leave it out.

Finished networks leave the batched computation (the forward and backward run on the rest), so a
population costs what its slowest member costs, not K times that. The data of network k is a pure
function of its seed and the step, so a network trains exactly as it would alone, and a resumed
run continues exactly (the trainer's whole state is tensors: :meth:`state_tensors`).

An optional structural penalty on the recurrent matrix ``rnn.weight_hh_l0`` is added to each
network's loss with its own strength: the nuclear norm ``lambda * sum(sigma_i)`` or the L1 norm
``lambda * sum(|w|)``. The threshold is on the MSE alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..networks.weights import Population
from ..threads import intra_op_threads, torch_ops_on_one_thread
from .optim import adamw_update

RECURRENT = "rnn.weight_hh_l0"
REGULARIZERS = ("none", "nuclear", "l1")


@dataclass(frozen=True)
class StoppingRule:
    threshold: float
    patience_epochs: int = 3
    steps_per_epoch: int = 128
    max_epochs: int = 1000
    plateau_factor: float = 0.5
    plateau_patience: int = 40
    plateau_threshold: float = 1e-4  # ReduceLROnPlateau's default (relative)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.max_epochs


def masked_mse(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each network over the masked time steps: (K, B, T, O) -> (K,)."""
    squared = ((outputs - targets) ** 2).sum(-1) * mask
    return squared.sum((1, 2)) / (mask.sum((1, 2)) * outputs.shape[-1])


def recurrent_penalty(recurrent: torch.Tensor, kind: str) -> torch.Tensor:
    """(K, N, N) -> (K,): the nuclear norm or the L1 norm of each recurrent matrix."""
    if kind == "nuclear":
        return torch.linalg.svdvals(recurrent).sum(-1)
    if kind == "l1":
        return recurrent.abs().sum((1, 2))
    raise ValueError(f"unknown regulariser {kind!r}; choose from {REGULARIZERS}")


#: trials(step, networks) -> (inputs (k, B, T, I), targets (k, B, T, O), mask (k, B, T)) for the
#: networks at indices ``networks`` (a LongTensor into the population)
TrialsFn = Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class ThresholdTrainer:
    """See the module docstring. ``lr`` and ``strength`` give one value per network. :meth:`run`
    runs torch on ``threads`` threads on the CPU (default 1: these are many small products, see
    :mod:`weightspace.threads`; None: torch's setting); a compiled RNN layer (``nn.RNN``'s cell,
    float32 on the CPU) then splits its networks over torch's thread count from outside."""

    def __init__(
        self,
        architecture,
        weights: Population,
        trials: TrialsFn,
        rule: StoppingRule,
        lr,
        regularizer: str = "none",
        strength=0.0,
        threads: int | None = 1,
    ):
        if regularizer not in REGULARIZERS:
            raise ValueError(f"unknown regulariser {regularizer!r}; choose from {REGULARIZERS}")
        self.architecture = architecture
        self.spec = weights.spec
        self.trials = trials
        self.rule = rule
        self.regularizer = regularizer
        self.total_steps = rule.total_steps
        K, device = weights.size, weights.device
        self.threads = threads if device.type == "cpu" else None
        self.params = {n: t.detach().clone().requires_grad_() for n, t in weights.items()}
        self.exp_avg = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self.strength = torch.as_tensor(np.asarray(strength, np.float32), device=device).expand(K).clone()
        # the per-network state, all tensors (resume saves them as they are)
        self.lr = torch.as_tensor(np.asarray(lr, np.float32), device=device).expand(K).clone()
        self.active = torch.ones(K, dtype=torch.bool, device=device)
        self.epoch_loss = torch.zeros(K, device=device)
        self.best = torch.full((K,), float("inf"), device=device)
        self.bad_epochs = torch.zeros(K, dtype=torch.int64, device=device)
        self.converged_epoch = torch.full((K,), -1, dtype=torch.int64, device=device)
        self.stop_step = torch.full((K,), -1, dtype=torch.int64, device=device)
        self.last_loss = torch.full((K,), float("nan"), device=device)  # the last epoch's mean MSE
        self.step = 0

    #: (``last_loss`` is saved and restored by the zoo builder, as for every trainer)
    _STATE = ("lr", "active", "epoch_loss", "best", "bad_epochs", "converged_epoch", "stop_step")

    @property
    def weights(self) -> Population:
        return Population(self.spec, {n: p.detach() for n, p in self.params.items()})

    @property
    def converged(self) -> torch.Tensor:
        return self.converged_epoch >= 0

    def train_step(self) -> None:
        networks = self.active.nonzero().squeeze(1)
        if len(networks):
            everyone = len(networks) == len(self.active)
            params = self.params if everyone else {n: p[networks] for n, p in self.params.items()}
            inputs, targets, mask = self.trials(self.step, networks)
            outputs = self.architecture.forward(Population(self.spec, params), inputs)[0]
            mse = masked_mse(outputs, targets, mask)
            loss = mse
            if self.regularizer != "none":
                loss = mse + self.strength[networks] * recurrent_penalty(params[RECURRENT], self.regularizer)
            for p in self.params.values():
                p.grad = None
            loss.sum().backward()
            # every network still training has taken exactly self.step updates before this one
            adamw_update(
                self.params,
                self.exp_avg,
                self.exp_avg_sq,
                self.lr[networks],
                torch.zeros_like(self.lr[networks]),
                self.step + 1,
                rows=None if everyone else networks,
            )
            self.epoch_loss[networks] += mse.detach()
        self.step += 1
        if self.step % self.rule.steps_per_epoch == 0:
            self._end_epoch()

    def _end_epoch(self) -> None:
        rule, epoch = self.rule, self.step // self.rule.steps_per_epoch
        active = self.active
        loss = self.epoch_loss / rule.steps_per_epoch
        self.last_loss = torch.where(active, loss, self.last_loss)
        # ReduceLROnPlateau, per network
        improved = active & (loss < self.best * (1 - rule.plateau_threshold))
        self.best = torch.where(improved, loss, self.best)
        self.bad_epochs = torch.where(improved, 0, self.bad_epochs + active.long())
        reduce = self.bad_epochs > rule.plateau_patience
        self.lr = torch.where(reduce, self.lr * rule.plateau_factor, self.lr)
        self.bad_epochs = torch.where(reduce, 0, self.bad_epochs)
        # convergence, then patience, then stop
        newly = active & ~self.converged & (loss < rule.threshold)
        self.converged_epoch = torch.where(newly, epoch, self.converged_epoch)
        stop = active & self.converged & (epoch - self.converged_epoch >= rule.patience_epochs)
        if epoch >= rule.max_epochs:
            stop = active
        self.stop_step = torch.where(stop, self.step, self.stop_step)
        self.active = active & ~stop
        self.epoch_loss.zero_()

    def run(
        self,
        checkpoints,
        on_checkpoint: Callable[[int, Population], None],
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        """Train to ``total_steps`` (or until every network has stopped; then the remaining steps
        are skipped, since nothing changes), calling ``on_checkpoint(step, weights)`` at each
        checkpoint not yet passed and ``on_step(step)`` after every step trained."""
        compiled = self.architecture.runs_compiled(self.weights)
        threads = torch_ops_on_one_thread() if compiled and self.threads == 1 else intra_op_threads(self.threads)
        with threads:
            self._run(checkpoints, on_checkpoint, on_step)

    def _run(self, checkpoints, on_checkpoint, on_step) -> None:
        for checkpoint in sorted(s for s in set(checkpoints) if s >= self.step):
            while self.step < checkpoint:
                if not self.active.any():
                    self.step = checkpoint
                    break
                self.train_step()
                if on_step is not None:
                    on_step(self.step)
            on_checkpoint(self.step, self.weights)

    # resume ------------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"param.{n}": p.detach() for n, p in self.params.items()}
        out.update({f"exp_avg.{n}": t for n, t in self.exp_avg.items()})
        out.update({f"exp_avg_sq.{n}": t for n, t in self.exp_avg_sq.items()})
        out.update({f"state.{name}": getattr(self, name) for name in self._STATE})
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], step: int) -> None:
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(tensors[f"param.{n}"])
                self.exp_avg[n].copy_(tensors[f"exp_avg.{n}"])
                self.exp_avg_sq[n].copy_(tensors[f"exp_avg_sq.{n}"])
        for name in self._STATE:
            setattr(self, name, tensors[f"state.{name}"].to(getattr(self, name).device).clone())
        self.step = int(step)
