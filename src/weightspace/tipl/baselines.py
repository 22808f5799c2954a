"""Forecasters of a weight trajectory that TIPL should beat, and that paper 003 does not report.

All work in weight space on histories (t, P) or batches (B, t, P) and return the next
``horizon`` snapshots, (horizon, P) or (B, horizon, P):

- :func:`copy_last`: the weights stop moving. With small steps between snapshots this is hard
  to beat on weight prediction error, so a WPE curve means little without it.
- :func:`linear_extrapolation`: the weights keep their last step.
- :class:`ParameterMLPForecaster`: one small MLP, shared by every parameter, that reads a
  parameter's recent history and predicts its next step, in the style of the weight-nowcaster
  networks (WNN, Jang et al. 2023) and Introspection (Sinha et al. 2017). It sees no other
  parameter, so it learns how a single weight moves under the optimiser, not the network.
- :func:`svd_trimmed`: the last policy with its path trimmed to the top-k temporal-SVD
  directions of the trial's own history, the policy-path trimming of "Ladder in Chaos" (Tang et
  al. 2024, appendix): learning moves a policy mostly along a few directions, and the rest of a
  step is noise that a forecast may as well drop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from ..errors import ConfigError


def _batched(history: torch.Tensor, needed: int, name: str) -> tuple[torch.Tensor, bool]:
    """``history`` as (B, t, P), and whether it came without the batch axis."""
    if history.ndim not in (2, 3) or history.shape[-2] < needed:
        raise ConfigError(f"{name} needs a history (t, P) or (B, t, P) with t >= {needed}, got {tuple(history.shape)}")
    return (history[None], True) if history.ndim == 2 else (history, False)


def copy_last(history: torch.Tensor, horizon: int) -> torch.Tensor:
    """phi_{t+h} = phi_t."""
    batch, single = _batched(history, 1, "copy_last")
    out = batch[:, -1:].repeat(1, horizon, 1)
    return out[0] if single else out


def linear_extrapolation(history: torch.Tensor, horizon: int) -> torch.Tensor:
    """phi_{t+h} = phi_t + h (phi_t - phi_{t-1})."""
    batch, single = _batched(history, 2, "linear_extrapolation")
    last, step = batch[:, -1:], batch[:, -1:] - batch[:, -2:-1]
    ahead = torch.arange(1, horizon + 1, dtype=batch.dtype, device=batch.device)[None, :, None]
    out = last + ahead * step
    return out[0] if single else out


def svd_trimmed(trajectory: torch.Tensor, starts: Sequence[int], horizon: int, rank: int) -> torch.Tensor:
    """(len(starts), horizon, P): from each start t, phi_0 + P_k (phi_t - phi_0) for every h.

    P_k projects onto the top-``rank`` right singular vectors (temporal-SVD directions) of the
    history ``[phi_1 - phi_0, ..., phi_t - phi_0]`` of ``trajectory`` (T, P): rows after t are
    never read. With ``rank`` >= t the projection keeps everything and this is copy-last. Computed
    on the smaller side of each history, in float64: P's Gram matrix summed up to t, or the
    leading t x t block of the time Gram matrix, whose eigenvectors U give the same projection as
    ``x_t V_k V_k^T = (U_k U_k^T)[t] X_t``."""
    if trajectory.ndim != 2 or rank < 1 or horizon < 1:
        raise ConfigError(
            f"svd_trimmed needs a trajectory (T, P), rank >= 1 and horizon >= 1, got "
            f"{tuple(trajectory.shape)}, {rank}, {horizon}"
        )
    if any(not 1 <= t < len(trajectory) for t in starts):
        raise ConfigError(f"svd_trimmed: start points must lie in 1..{len(trajectory) - 1} (got {list(starts)})")
    rows = (trajectory[1:] - trajectory[0]).double()  # row t - 1 is phi_t - phi_0
    if rows.shape[1] <= max(starts):
        trimmed = _trimmed_parameter_side(rows, starts, rank)
    else:
        trimmed = _trimmed_time_side(rows, starts, rank)
    out = trajectory[0].double() + trimmed
    return out[:, None].repeat(1, horizon, 1).to(trajectory.dtype)


def _trimmed_parameter_side(rows: torch.Tensor, starts: Sequence[int], rank: int) -> torch.Tensor:
    """Eigenvectors of X_t^T X_t (P x P), the Gram matrix summed over the history's rows."""
    out = []
    for t in starts:
        history = rows[:t]
        if rank >= min(history.shape):
            out.append(history[-1])
            continue
        _, vectors = torch.linalg.eigh(history.T @ history)  # ascending
        top = vectors[:, -rank:]
        out.append((history[-1] @ top) @ top.T)
    return torch.stack(out)


def _trimmed_time_side(rows: torch.Tensor, starts: Sequence[int], rank: int) -> torch.Tensor:
    """Eigenvectors of the leading t x t block of X X^T, computed once for the last start."""
    gram = rows[: max(starts)] @ rows[: max(starts)].T
    out = []
    for t in starts:
        if rank >= t:
            out.append(rows[t - 1])
            continue
        _, vectors = torch.linalg.eigh(gram[:t, :t])
        top = vectors[:, -rank:]
        out.append((top[-1] @ top.T) @ rows[:t])
    return torch.stack(out)


#: the forecasters that need no training, by name
FORECASTERS = {"copy_last": copy_last, "linear": linear_extrapolation}


class ParameterMLPForecaster(nn.Module):
    """Per-parameter next-step predictor, applied autoregressively.

    For each parameter the input is its last ``window`` values as offsets from the newest,
    phi_{t-k} - phi_t for k = 1..window-1 (the newest offset is minus the last step), and the
    output the next step phi_{t+1} - phi_t. Inputs and output are divided by one scale, the
    standard deviation of the training steps, so the network is unit-free and the same for a
    zoo whose weights are ten times larger. ReLU, so that outside the training range the
    prediction continues linearly instead of saturating.
    """

    def __init__(self, window: int = 5, hidden: int = 32, layers: int = 2):
        super().__init__()
        if window < 2 or hidden < 1 or layers < 1:
            raise ConfigError(f"need window >= 2, hidden >= 1 and layers >= 1 (got {window}, {hidden}, {layers})")
        self.window, self.hidden, self.layers = window, hidden, layers
        sizes = [window - 1] + [hidden] * layers
        modules: list[nn.Module] = []
        for size_in, size_out in zip(sizes[:-1], sizes[1:]):
            modules += [nn.Linear(size_in, size_out), nn.ReLU()]
        self.network = nn.Sequential(*modules, nn.Linear(hidden, 1))
        self.register_buffer("scale", torch.ones(()))

    def step(self, windows: torch.Tensor) -> torch.Tensor:
        """Windows (..., window, P), oldest first -> the next step (..., P), in weight units."""
        offsets = (windows[..., :-1, :] - windows[..., -1:, :]).flip(-2) / self.scale  # k = 1 first
        return self.network(offsets.transpose(-1, -2))[..., 0] * self.scale

    def fit(
        self,
        train_trajectories: Sequence[torch.Tensor],
        steps: int = 2000,
        batch_size: int = 4096,
        lr: float = 1e-3,
        seed: int = 0,
    ) -> list[float]:
        """Adam on the squared error of the scaled next step. Each example is one (trajectory,
        time, parameter), drawn uniformly in that order. Initialisation and sampling follow
        ``seed`` alone. Returns each step's loss (in scaled units)."""
        trajectories = [trajectory.detach().float().cpu() for trajectory in train_trajectories]
        if not trajectories or any(t.ndim != 2 or t.shape[1] != trajectories[0].shape[1] for t in trajectories):
            raise ConfigError("expected one or more trajectories (T_i, P) with the same P")
        short = [i for i, t in enumerate(trajectories) if len(t) < self.window + 1]
        if short:
            raise ConfigError(f"trajectories {short} have fewer than window + 1 = {self.window + 1} snapshots")
        steps_seen = torch.cat([t.diff(dim=0).flatten() for t in trajectories])
        scale = float(steps_seen.std()) if len(steps_seen) > 1 else 0.0
        self.scale.fill_(scale if scale > 0 else 1.0)
        device = self.scale.device
        num_parameters = trajectories[0].shape[1]
        times_available = torch.tensor([len(t) - self.window for t in trajectories])
        padded = pad_sequence(trajectories, batch_first=True)  # one tensor to draw every batch from
        offsets = torch.arange(self.window + 1)
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in self.network:
                if isinstance(module, nn.Linear):
                    module.reset_parameters()
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        losses = []
        for _ in range(steps):
            which = torch.randint(len(trajectories), (batch_size,), generator=generator)
            starts = (torch.rand(batch_size, generator=generator) * times_available[which]).long()
            parameter = torch.randint(num_parameters, (batch_size,), generator=generator)
            values = padded[which[:, None], starts[:, None] + offsets, parameter[:, None]].to(device)
            predicted = self.step(values[:, :-1, None])[:, 0]
            loss = ((predicted - (values[:, -1] - values[:, -2])) / self.scale).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        return losses

    @torch.no_grad()
    def forecast(self, history: torch.Tensor, horizon: int) -> torch.Tensor:
        """The next ``horizon`` snapshots after ``history`` (t, P) or (B, t, P), t >= window."""
        batch, single = _batched(history, self.window, "ParameterMLPForecaster")
        windows = batch[:, -self.window :].to(self.scale.device, self.scale.dtype)
        predictions = []
        for _ in range(horizon):
            following = windows[:, -1] + self.step(windows)
            predictions.append(following)
            windows = torch.cat([windows[:, 1:], following[:, None]], dim=1)
        out = torch.stack(predictions, dim=1) if predictions else windows[:, :0]
        return out[0] if single else out

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to rebuild it, as tensors (safetensors holds no other kind of value)."""
        sizes = {name: torch.tensor(getattr(self, name)) for name in ("window", "hidden", "layers")}
        return {**sizes, **{key: value.detach() for key, value in self.state_dict().items()}}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> ParameterMLPForecaster:
        try:
            forecaster = cls(*(int(tensors[name]) for name in ("window", "hidden", "layers")))
            forecaster.load_state_dict({k: v for k, v in tensors.items() if k not in ("window", "hidden", "layers")})
        except (KeyError, RuntimeError) as error:
            raise ConfigError(f"not a saved ParameterMLPForecaster ({error})") from None
        return forecaster
