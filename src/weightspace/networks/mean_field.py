"""A leaky tanh RNN in the mean-field (muP) parametrisation, as a population (paper 002).

    h <- h + tau * (-h + (1/N) J tanh(h) + U x_t),      y_t = (1 / (gamma N)) W_out tanh(h)

with h_0 = 0, N hidden units and O(1) weight entries (unit variance at initialisation). gamma
sets how far training moves the hidden representation (the "richness" of feature learning):
small gamma is the lazy, kernel-like regime, large gamma the rich one; its task trains it at
the learning rate gamma * eta0 (``NeuroscienceTask.learning_rate``). The scale of the activity
at initialisation does not depend on the width, which is what the width sweep needs.

The tensors are named like :class:`~weightspace.networks.RNN`'s (``rnn.weight_ih_l0`` = U,
``rnn.weight_hh_l0`` = J, ``readout.weight`` = W_out) so the degeneracy measures read the
recurrent matrix under one name; there are no biases. This is not an ``nn.RNN``, so it has no
torch-module twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from ..errors import WeightspaceError
from .rnn_kernel import leaky_layer_fused, rnn_fused_applies
from .weights import Axis, Population, TensorSpec, WeightSpec, initialize

#: uniform in +-sqrt(3): unit variance, the mean-field scale of every weight entry
UNIT_VARIANCE_BOUND = 3.0**0.5


@dataclass(frozen=True)
class MeanFieldRNN:
    input_size: int
    hidden_size: int
    output_size: int
    gamma: float = 1.0
    tau: float = 0.1

    kind = "mean-field-rnn"
    num_layers = 1

    def __post_init__(self):
        if self.gamma <= 0 or not 0 < self.tau <= 1:
            raise WeightspaceError(
                f"mean-field RNN needs gamma > 0 and 0 < tau <= 1 (got gamma={self.gamma}, tau={self.tau})"
            )

    @cached_property
    def spec(self) -> WeightSpec:
        N = self.hidden_size
        hidden = Axis(N, "h0")
        tensors = (
            TensorSpec("rnn.weight_ih_l0", (hidden, Axis(self.input_size)), UNIT_VARIANCE_BOUND, 0),
            TensorSpec("rnn.weight_hh_l0", (hidden, Axis(N, "h0")), UNIT_VARIANCE_BOUND, 0),
            TensorSpec("readout.weight", (Axis(self.output_size), Axis(N, "h0")), UNIT_VARIANCE_BOUND, 1),
        )
        return WeightSpec(
            architecture=self.kind,
            config={
                "input_size": self.input_size,
                "hidden_size": N,
                "output_size": self.output_size,
                "gamma": self.gamma,
                "tau": self.tau,
            },
            tensors=tensors,
            permutations={"h0": N},
        )

    def init(self, seeds, device="cpu") -> Population:
        return initialize(self.spec, seeds, device)

    #: float32 CPU populations run the compiled kernel (rnn_kernel), whose build a zoo records
    uses_compiled_kernel = True

    def runs_compiled(self, weights: Population) -> bool:
        """Whether :meth:`forward` runs these weights through the compiled kernel (float32 on the
        CPU, a built library), which splits its work over threads by itself."""
        return rnn_fused_applies(weights["rnn.weight_hh_l0"], *weights.values())

    def forward(self, weights: Population, x: torch.Tensor, state=None, return_hidden=False):
        """Outputs (K, B, T, O) and the final state (1, K, B, N); with ``return_hidden`` also the
        hidden sequence (K, B, T, N)."""
        if x.ndim != 4 or x.shape[0] != weights.size or x.shape[3] != self.input_size:
            raise WeightspaceError(
                f"expected inputs of shape (K={weights.size}, B, T, {self.input_size}), got {tuple(x.shape)}"
            )
        K, B, T, _ = x.shape
        N = self.hidden_size
        h = torch.zeros(K, B, N, device=x.device, dtype=x.dtype) if state is None else state[0]
        if rnn_fused_applies(weights["rnn.weight_hh_l0"], x, h, *weights.values()):
            hidden = leaky_layer_fused(x, weights["rnn.weight_ih_l0"], weights["rnn.weight_hh_l0"], h, self.tau)
            h = hidden[:, :, -1]
        else:
            driven = torch.bmm(x.reshape(K, B * T, -1), weights["rnn.weight_ih_l0"].transpose(1, 2)).view(K, B, T, N)
            recurrent = weights["rnn.weight_hh_l0"].transpose(1, 2) / N
            hidden = []
            for t in range(T):
                h = h + self.tau * (torch.bmm(torch.tanh(h), recurrent) + driven[:, :, t] - h)
                hidden.append(h)
            hidden = torch.stack(hidden, dim=2)
        outputs = torch.bmm(torch.tanh(hidden).reshape(K, B * T, N), weights["readout.weight"].transpose(1, 2)).view(
            K, B, T, -1
        ) / (self.gamma * N)
        final = h.unsqueeze(0)
        return (outputs, final, hidden) if return_hidden else (outputs, final)
