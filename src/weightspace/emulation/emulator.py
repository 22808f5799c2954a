"""The emulator of paper 000 (section 6.1): an LSTM that imitates a subject network from its
embedding alone, and the emulation loss."""

from __future__ import annotations

import torch
from torch import nn

from ..encoders.base import TaskIO


class Emulator(nn.Module):
    """2-layer LSTM (hidden 256). The embedding is projected to the input space and added to the
    input at the first (BOS) step; the outputs are the emulated subject outputs at every step."""

    def __init__(self, task: TaskIO, embedding_size: int = 16, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.task = task
        self.project = nn.Linear(embedding_size, task.input_size)
        self.lstm = nn.LSTM(task.input_size, hidden, layers, batch_first=True)
        self.readout = nn.Linear(hidden, task.output_size)

    def forward(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """z (N, Z), inputs (N, R, T, input_size) -> outputs (N, R, T, output_size)
        (log-distributions for categorical outputs)."""
        N, R, T, I = inputs.shape
        x = inputs.reshape(N * R, T, I)
        bos = self.project(z).repeat_interleave(R, 0)
        x = torch.cat([x[:, :1] + bos[:, None], x[:, 1:]], 1)
        out = self.readout(self.lstm(x)[0]).view(N, R, T, -1)
        return torch.log_softmax(out, -1) if self.task.output_kind == "categorical" else out

    @torch.no_grad()
    def sample_tokens(self, z: torch.Tensor, bos: int, length: int, count: int, generator=None) -> torch.Tensor:
        """Autoregressive samples for categorical tasks: (N, count, length + 1) tokens, BOS first."""
        N = z.shape[0]
        token = torch.full((N * count,), bos, dtype=torch.long, device=z.device)
        x = torch.nn.functional.one_hot(token, self.task.input_size).float() + self.project(z).repeat_interleave(count, 0)
        state = None
        tokens = [token]
        for _ in range(length):
            out, state = self.lstm(x[:, None], state)
            probs = torch.softmax(self.readout(out[:, 0]), -1)
            token = torch.multinomial(probs, 1, generator=generator)[:, 0]
            tokens.append(token)
            x = torch.nn.functional.one_hot(token, self.task.input_size).float()
        return torch.stack(tokens, 1).view(N, count, length + 1)


def emulation_loss(emulated: torch.Tensor, target: torch.Tensor, output_kind: str) -> torch.Tensor:
    """Per network (N,): reverse KL(emulator || subject) for categorical outputs (both given as
    log-distributions), MSE for continuous ones; averaged over rollouts and steps."""
    if output_kind == "categorical":
        per_step = (emulated.exp() * (emulated - target)).sum(-1)
    else:
        per_step = ((emulated - target) ** 2).mean(-1)
    return per_step.flatten(1).mean(1)
