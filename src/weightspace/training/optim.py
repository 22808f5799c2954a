"""AdamW for a population (per-network learning rate and weight decay) and the paper's schedule."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: Paper 000, appendix C: 0.01 -> 0.003 (step 10k) -> 0.0003 (step 20k) as fractions of the
#: peak learning rate at fractions of the training length.
PAPER_SCHEDULE = ((0.0, 1.0), (0.5, 0.3), (1.0, 0.03))


def piecewise_linear(step: int, total_steps: int, knots: Sequence[tuple[float, float]] = PAPER_SCHEDULE) -> float:
    """Learning-rate factor at ``step`` for knots given as (fraction of training, factor)."""
    xs = [x * total_steps for x, _ in knots]
    ys = [y for _, y in knots]
    return float(np.interp(step, xs, ys))


class PopulationAdamW:
    """``torch.optim.AdamW`` (same update, same defaults) where every tensor has a leading
    network axis and each network has its own learning rate and weight decay.
    """

    def __init__(self, params: dict[str, torch.Tensor], lr, weight_decay, betas=(0.9, 0.999), eps=1e-8):
        self.params = params
        any_param = next(iter(params.values()))
        K, device = any_param.shape[0], any_param.device
        self.lr = torch.tensor(np.asarray(lr, dtype=np.float32), device=device).expand(K).clone()
        self.weight_decay = torch.tensor(np.asarray(weight_decay, dtype=np.float32), device=device).expand(K).clone()
        self.betas = betas
        self.eps = eps
        self.step_count = 0
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}

    @torch.no_grad()
    def step(self, lr_factor: float = 1.0) -> None:
        beta1, beta2 = self.betas
        self.step_count += 1
        bias1 = 1 - beta1**self.step_count
        bias2_sqrt = (1 - beta2**self.step_count) ** 0.5
        lr = self.lr * lr_factor
        decay = 1 - lr * self.weight_decay
        step_size = lr / bias1
        for name, param in self.params.items():
            view = (-1,) + (1,) * (param.ndim - 1)
            grad = param.grad
            param.mul_(decay.view(view))
            self.exp_avg[name].lerp_(grad, 1 - beta1)
            self.exp_avg_sq[name].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (self.exp_avg_sq[name].sqrt() / bias2_sqrt).add_(self.eps)
            param.sub_(step_size.view(view) * self.exp_avg[name] / denom)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"exp_avg.{n}": t for n, t in self.exp_avg.items()}
        out.update({f"exp_avg_sq.{n}": t for n, t in self.exp_avg_sq.items()})
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], step_count: int) -> None:
        for n in self.params:
            self.exp_avg[n].copy_(tensors[f"exp_avg.{n}"])
            self.exp_avg_sq[n].copy_(tensors[f"exp_avg_sq.{n}"])
        self.step_count = step_count
