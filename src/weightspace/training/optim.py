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


def optimizer_tensors(optimizer: torch.optim.Optimizer, prefix: str = "optimizer.") -> tuple[dict, list]:
    """A torch optimizer's state as safetensors-ready tensors ``PREFIX{index}.{name}`` and its
    JSON-able parameter groups (learning rates, betas, ...)."""
    state = optimizer.state_dict()
    tensors = {
        f"{prefix}{index}.{name}": torch.as_tensor(value).cpu()
        for index, values in state["state"].items()
        for name, value in values.items()
    }
    return tensors, state["param_groups"]


def load_optimizer_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict, groups: list, prefix: str = "optimizer."
) -> None:
    """Restore what :func:`optimizer_tensors` saved (tensors under other prefixes are ignored)."""
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, name = key[len(prefix) :].split(".", 1)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


@torch.no_grad()
def clip_grad_norm_per_network(parameters, max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_`` for tensors with a leading network axis: each network's
    gradients (over all of ``parameters``) are scaled by ``max_norm / (its norm + 1e-6)`` where
    that is below 1, as each would be clipped trained alone."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads])
    coefficient = torch.clamp(max_norm / (torch.linalg.vector_norm(norms, 2, dim=0) + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coefficient.view(-1, *[1] * (g.ndim - 1)))


@torch.no_grad()
def adamw_update(
    params: dict[str, torch.Tensor],
    exp_avg: dict[str, torch.Tensor],
    exp_avg_sq: dict[str, torch.Tensor],
    lr: torch.Tensor,
    weight_decay: torch.Tensor,
    step: int,
    betas=(0.9, 0.999),
    eps: float = 1e-8,
    rows: torch.Tensor | None = None,
) -> None:
    """``torch.optim.AdamW``'s update of tensors with a leading network axis, each network with its
    own learning rate and weight decay (``lr``, ``weight_decay``: one value per updated network).
    ``rows`` restricts the update to some networks (None: all, in place); ``step`` counts this
    update of the updated networks (for the bias corrections)."""
    beta1, beta2 = betas
    decay = 1 - lr * weight_decay
    step_size = lr / (1 - beta1**step)
    bias2_sqrt = (1 - beta2**step) ** 0.5
    for name, param in params.items():
        view = (-1,) + (1,) * (param.ndim - 1)
        if rows is None:
            param.mul_(decay.view(view))
            exp_avg[name].lerp_(param.grad, 1 - beta1)
            exp_avg_sq[name].mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
            denom = (exp_avg_sq[name].sqrt() / bias2_sqrt).add_(eps)
            param.sub_(step_size.view(view) * exp_avg[name] / denom)
        else:
            grad = param.grad[rows]
            first = exp_avg[name][rows].lerp(grad, 1 - beta1)
            second = exp_avg_sq[name][rows].mul(beta2).addcmul(grad, grad, value=1 - beta2)
            denom = (second.sqrt() / bias2_sqrt).add_(eps)
            param[rows] = param[rows] * decay.view(view) - step_size.view(view) * first / denom
            exp_avg[name][rows] = first
            exp_avg_sq[name][rows] = second


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

    def step(self, lr_factor: float = 1.0) -> None:
        self.step_count += 1
        adamw_update(
            self.params,
            self.exp_avg,
            self.exp_avg_sq,
            self.lr * lr_factor,
            self.weight_decay,
            self.step_count,
            self.betas,
            self.eps,
        )

    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"exp_avg.{n}": t for n, t in self.exp_avg.items()}
        out.update({f"exp_avg_sq.{n}": t for n, t in self.exp_avg_sq.items()})
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor], step_count: int) -> None:
        for n in self.params:
            self.exp_avg[n].copy_(tensors[f"exp_avg.{n}"])
            self.exp_avg_sq[n].copy_(tensors[f"exp_avg_sq.{n}"])
        self.step_count = step_count
