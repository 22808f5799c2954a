"""The emulator of paper 000 (section 6.1): an LSTM that imitates a subject network from its
embedding alone, and the emulation loss."""

from __future__ import annotations

import torch
from torch import nn

from ..encoders.base import TaskIO


class Emulator(nn.Module):
    """2-layer LSTM (hidden 256) that imitates a subject network from its embedding z.

    As in the authors' code (``normalize_embedding``, on by default there), z is divided by its
    norm before use, so its scale cannot grow without bound and saturate the emulator's gates.
    With ``condition_at_width`` (the authors' choice), the subject's input and z are each
    projected to the emulator's width and added at the first (BOS) step; without it (our first
    version), z is projected to the subject's input size and added to the raw first input.
    """

    def __init__(
        self,
        task: TaskIO,
        embedding_size: int = 16,
        hidden: int = 256,
        layers: int = 2,
        normalize_embedding: bool = True,
        condition_at_width: bool = True,
    ):
        super().__init__()
        self.task = task
        self.normalize_embedding = normalize_embedding
        self.condition_at_width = condition_at_width
        width = hidden if condition_at_width else task.input_size
        self.embed_input = nn.Linear(task.input_size, hidden) if condition_at_width else nn.Identity()
        self.project = nn.Linear(embedding_size, width)
        self.lstm = nn.LSTM(width, hidden, layers, batch_first=True)
        self.readout = nn.Linear(hidden, task.output_size)

    def condition(self, z: torch.Tensor) -> torch.Tensor:
        """What z adds to the first input: (N, width)."""
        if self.normalize_embedding:
            z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        return self.project(z)

    def forward(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """z (N, Z), inputs (N, R, T, input_size) -> outputs (N, R, T, output_size)
        (log-distributions for categorical outputs)."""
        return self.outputs(self.readout(self.lstm(self.lstm_inputs(z, inputs))[0]), inputs.shape)

    def lstm_inputs(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The LSTM's input sequences (N R, T, width): the inputs, embedded, with z added at BOS."""
        N, R, T, I = inputs.shape
        x = self.embed_input(inputs.reshape(N * R, T, I))
        bos = self.condition(z).repeat_interleave(R, 0)
        return torch.cat([x[:, :1] + bos[:, None], x[:, 1:]], 1)

    def outputs(self, readout: torch.Tensor, input_shape) -> torch.Tensor:
        """The readout (N R, T, output_size) as outputs (N, R, T, output_size)."""
        N, R, T, _ = input_shape
        out = readout.reshape(N, R, T, -1)
        return torch.log_softmax(out, -1) if self.task.output_kind == "categorical" else out

    @torch.no_grad()
    def sample_tokens(self, z: torch.Tensor, bos: int, length: int, count: int, generator=None) -> torch.Tensor:
        """Autoregressive samples for categorical tasks: (N, count, length + 1) tokens, BOS first."""
        N = z.shape[0]
        token = torch.full((N * count,), bos, dtype=torch.long, device=z.device)
        x = self.embed_input(nn.functional.one_hot(token, self.task.input_size).float())
        x = x + self.condition(z).repeat_interleave(count, 0)
        state = None
        tokens = [token]
        for _ in range(length):
            out, state = self.lstm(x[:, None], state)
            probs = torch.softmax(self.readout(out[:, 0]), -1)
            token = torch.multinomial(probs, 1, generator=generator)[:, 0]
            tokens.append(token)
            x = self.embed_input(nn.functional.one_hot(token, self.task.input_size).float())
        return torch.stack(tokens, 1).view(N, count, length + 1)


#: how the categorical loss reduces over the output classes: "mean" is the authors' code and the
#: paper's tables; "sum" is the textbook KL (our first version), ``output_size`` times larger
LOSS_REDUCTIONS = ("mean", "sum")
#: training losses for categorical outputs: reverse KL (the paper's and our validation units), or
#: total variation, 0.5 |p_emulator - p_subject| summed over the classes (the loss the authors'
#: released configs train with)
CRITERIA = ("reverse-kl", "total-variation")


def emulation_loss(
    emulated: torch.Tensor,
    target: torch.Tensor,
    output_kind: str,
    reduction: str = "mean",
    criterion: str = "reverse-kl",
) -> torch.Tensor:
    """Per network (N,): reverse KL(emulator || subject) for categorical outputs (both given as
    log-distributions), reduced over the classes by ``reduction``, or with ``criterion =
    "total-variation"`` the total variation distance; MSE for continuous ones; averaged over
    rollouts and steps."""
    if output_kind == "categorical" and criterion == "total-variation":
        per_step = 0.5 * (emulated.exp() - target.exp()).abs().sum(-1)
    elif output_kind == "categorical":
        terms = emulated.exp() * (emulated - target)
        per_step = terms.mean(-1) if reduction == "mean" else terms.sum(-1)
    else:
        per_step = ((emulated - target) ** 2).mean(-1)
    return per_step.flatten(1).mean(1)
