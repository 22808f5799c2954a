"""Multi-layer LSTM, GRU and tanh-RNN subject networks with a linear readout, as populations.

A population member is exactly the state dict of ``nn.LSTM``/``nn.GRU``/``nn.RNN`` under the
prefix ``rnn.`` plus ``readout.weight``/``readout.bias`` of an ``nn.Linear``. All tensors carry a
leading population axis K; inputs are ``(K, B, T, input_size)`` (each network its own batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from ..errors import WeightspaceError
from .lstm_kernel import fused_applies, lstm_layer_fused, lstm_recurrence
from .rnn_kernel import elman_layer_fused, rnn_fused_applies
from .weights import Axis, Population, TensorSpec, WeightSpec, initialize


class TorchSubject(nn.Module):
    """A single subject network as plain torch modules (``rnn`` + ``readout``), batch first."""

    def __init__(self, rnn: nn.RNNBase, readout: nn.Linear):
        super().__init__()
        self.rnn = rnn
        self.readout = readout

    def forward(self, x, state=None):
        hidden, state = self.rnn(x, state)
        return self.readout(hidden), state


@dataclass(frozen=True)
class RecurrentArchitecture:
    """Shared structure of the three recurrent cells; subclasses define the cell."""

    input_size: int
    hidden_size: int
    num_layers: int
    output_size: int

    kind = "rnn"
    gates = 1

    @cached_property
    def spec(self) -> WeightSpec:
        H, G = self.hidden_size, self.gates
        bound = 1.0 / H**0.5
        tensors = []
        for layer in range(self.num_layers):
            hid = f"h{layer}"
            rows = Axis(G * H, hid, G)
            in_axis = Axis(self.input_size) if layer == 0 else Axis(H, f"h{layer - 1}")
            tensors += [
                TensorSpec(f"rnn.weight_ih_l{layer}", (rows, in_axis), bound, layer),
                TensorSpec(f"rnn.weight_hh_l{layer}", (rows, Axis(H, hid)), bound, layer),
                TensorSpec(f"rnn.bias_ih_l{layer}", (rows,), bound, layer),
                TensorSpec(f"rnn.bias_hh_l{layer}", (rows,), bound, layer),
            ]
        last = f"h{self.num_layers - 1}"
        tensors += [
            TensorSpec("readout.weight", (Axis(self.output_size), Axis(H, last)), bound, self.num_layers),
            TensorSpec("readout.bias", (Axis(self.output_size),), bound, self.num_layers),
        ]
        return WeightSpec(
            architecture=self.kind,
            config={
                "input_size": self.input_size,
                "hidden_size": H,
                "num_layers": self.num_layers,
                "output_size": self.output_size,
            },
            tensors=tuple(tensors),
            permutations={f"h{layer}": H for layer in range(self.num_layers)},
        )

    # ---------------------------------------------------------------------------------
    def init(self, seeds, device="cpu") -> Population:
        """PyTorch's default initialisation, one network per seed (see ``weights.initialize``)."""
        return initialize(self.spec, seeds, device)

    def initial_state(self, K: int, B: int, device="cpu", dtype=torch.float32):
        zeros = torch.zeros(self.num_layers, K, B, self.hidden_size, device=device, dtype=dtype)
        return (zeros, zeros.clone()) if self.kind == "lstm" else zeros

    def torch_module(self) -> TorchSubject:
        rnn_class = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[self.kind]
        rnn = rnn_class(self.input_size, self.hidden_size, self.num_layers, batch_first=True)
        return TorchSubject(rnn, nn.Linear(self.hidden_size, self.output_size))

    def to_torch(self, weights: Population, k: int) -> TorchSubject:
        """Network ``k`` of ``weights`` as an ``nn.LSTM``/``nn.GRU``/``nn.RNN`` + ``nn.Linear``."""
        module = self.torch_module().to(weights.device)
        module.load_state_dict({n: t.detach().clone() for n, t in weights.state_dict(k).items()})
        return module

    def _check(self, weights: Population, x: torch.Tensor) -> None:
        if weights.spec != self.spec:
            raise WeightspaceError(
                f"weights are {weights.spec.architecture} {dict(weights.spec.config)}, "
                f"not {self.kind} {dict(self.spec.config)}"
            )
        if x.ndim != 4 or x.shape[0] != weights.size or x.shape[3] != self.input_size:
            raise WeightspaceError(
                f"expected inputs of shape (K={weights.size}, B, T, {self.input_size}), got {tuple(x.shape)}"
            )

    # ---------------------------------------------------------------------------------
    def forward(self, weights: Population, x: torch.Tensor, state=None, return_hidden=False):
        """Outputs ``(K, B, T, output_size)`` and the final state (per-layer stacked).

        With ``return_hidden`` the last layer's hidden sequence ``(K, B, T, H)`` is returned too.
        """
        hidden, final_state = self.hidden(weights, x, state)
        readout = linear_readout if self.runs_compiled(weights) else _project
        outputs = readout(hidden, weights["readout.weight"], weights["readout.bias"])
        return (outputs, final_state, hidden) if return_hidden else (outputs, final_state)

    def hidden(self, weights: Population, x: torch.Tensor, state=None):
        """The last layer's hidden sequence ``(K, B, T, H)`` and the final state: :meth:`forward`
        without the readout."""
        self._check(weights, x)
        K, B, T, _ = x.shape
        if state is None:
            state = self.initial_state(K, B, x.device, x.dtype)
        layer_input = x
        finals = []
        for layer in range(self.num_layers):
            layer_input, final = self._layer(weights, layer, layer_input, _layer_state(state, layer))
            finals.append(final)
        return layer_input, _stack_states(finals)

    def step(self, weights: Population, x_t: torch.Tensor, state):
        """One time step for inputs ``(K, B, input_size)``; differentiable, returns (out, state)."""
        layer_input = x_t
        finals = []
        for layer in range(self.num_layers):
            projected = torch.baddbmm(
                self._input_bias(weights, layer).unsqueeze(1),
                layer_input,
                weights[f"rnn.weight_ih_l{layer}"].transpose(1, 2),
            )
            layer_input, final = self._cell(weights, layer, projected, _layer_state(state, layer))
            finals.append(final)
        out = torch.baddbmm(
            weights["readout.bias"].unsqueeze(1), layer_input, weights["readout.weight"].transpose(1, 2)
        )
        return out, _stack_states(finals)

    def runs_compiled(self, weights: Population) -> bool:
        """Whether :meth:`forward` runs these weights through the compiled kernel (LSTMs with
        float32 weights on the CPU), which splits its work over threads by itself."""
        return False

    def _input_bias(self, weights, layer):
        """Bias added to the input projection; LSTM and RNN fold the recurrent bias in here."""
        return weights[f"rnn.bias_ih_l{layer}"] + weights[f"rnn.bias_hh_l{layer}"]

    def _layer(self, weights, layer, layer_input, state):
        """One layer over the sequence: the input projection, then a loop over :meth:`_cell`.

        LSTM overrides it with its kernels."""
        projected = _project(layer_input, weights[f"rnn.weight_ih_l{layer}"], self._input_bias(weights, layer))
        outputs = []
        for projected_t in projected.unbind(2):
            h, state = self._cell(weights, layer, projected_t, state)
            outputs.append(h)
        return torch.stack(outputs, dim=2), state

    def _cell(self, weights, layer, projected_t, state):
        raise NotImplementedError


def _project(x, weight, bias):
    """(K, B, T, I) @ (K, O, I)^T + (K, O) as one batched matmul.

    ``bmm`` then an in-place bias add: ``baddbmm`` with a broadcast bias first expands the bias
    into the whole output through a slow copy (measured 10.7 vs 6.2 ms at K=64, B*T=1312, O=128).
    A time-major ``x`` (a view of (K, T, B, I), as the fused LSTM layers return) stays so, without
    a copy: the result is then a view of (K, T, B, O) too.
    """
    K, B, T, I = x.shape
    if x.transpose(1, 2).is_contiguous() and not x.is_contiguous():
        out = torch.bmm(x.transpose(1, 2).reshape(K, T * B, I), weight.transpose(1, 2))
        return out.add_(bias.unsqueeze(1)).view(K, T, B, -1).transpose(1, 2)
    out = torch.bmm(x.reshape(K, B * T, I), weight.transpose(1, 2)).add_(bias.unsqueeze(1))
    return out.view(K, B, T, -1)


class _LinearReadout(torch.autograd.Function):
    """:func:`_project` with a backward pass in the products' fast forms. With few outputs (a
    flip-flop RNN's 3), autograd's own backward of the batched matmul takes the slow ones: at
    K=16, 6,400 rows, H=64, O=3 on one thread, 13.1 ms for the weight gradient against 3.8 ms as
    g^T x, and 6.4 ms for the input gradient against 2.2 ms through ``matmul``."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return _project(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        K, B, T, H = x.shape
        time_major = x.transpose(1, 2).is_contiguous() and not x.is_contiguous()
        if time_major:  # rows in (t, b) order, as x holds them
            rows, grad_rows = x.transpose(1, 2).reshape(K, T * B, H), grad.transpose(1, 2).reshape(K, T * B, -1)
        else:
            rows, grad_rows = x.reshape(K, B * T, H), grad.reshape(K, B * T, -1)
        grad_x = torch.matmul(grad_rows, weight)
        grad_x = grad_x.view(K, T, B, H).transpose(1, 2) if time_major else grad_x.view(K, B, T, H)
        return grad_x, torch.bmm(grad_rows.transpose(1, 2), rows), grad_rows.sum(1)


def linear_readout(x, weight, bias):
    """(K, B, T, H) @ (K, O, H)^T + (K, O), with the backward pass of :class:`_LinearReadout`."""
    return _LinearReadout.apply(x, weight, bias)


def _layer_state(state, layer):
    if isinstance(state, tuple):
        return tuple(s[layer] for s in state)
    return state[layer]


def _stack_states(finals):
    if isinstance(finals[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*finals))
    return torch.stack(finals)


@dataclass(frozen=True)
class LSTM(RecurrentArchitecture):
    kind = "lstm"
    gates = 4
    #: float32 CPU populations run the compiled kernel (fused_cpu), whose build a zoo records
    uses_compiled_kernel = True

    def runs_compiled(self, weights: Population) -> bool:
        return fused_applies(weights["rnn.weight_hh_l0"], *weights.values())

    def _layer(self, weights, layer, layer_input, state):
        h0, c0 = state
        weight_ih, weight_hh = weights[f"rnn.weight_ih_l{layer}"], weights[f"rnn.weight_hh_l{layer}"]
        bias = self._input_bias(weights, layer)
        if fused_applies(weight_hh, layer_input, weight_ih, bias, h0, c0):
            hs, c_last = lstm_layer_fused(layer_input, weight_ih, weight_hh, bias, h0, c0)
        else:
            hs, c_last = lstm_recurrence(_project(layer_input, weight_ih, bias), weight_hh, h0, c0)
        return hs, (hs[:, :, -1], c_last)

    def _cell(self, weights, layer, projected_t, state):
        h, c = state
        gates = torch.baddbmm(projected_t, h, weights[f"rnn.weight_hh_l{layer}"].transpose(1, 2))
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


@dataclass(frozen=True)
class GRU(RecurrentArchitecture):
    kind = "gru"
    gates = 3

    def _input_bias(self, weights, layer):
        return weights[f"rnn.bias_ih_l{layer}"]  # b_hn sits inside r * (W_hn h + b_hn)

    def _cell(self, weights, layer, projected_t, h):
        hidden = torch.baddbmm(
            weights[f"rnn.bias_hh_l{layer}"].unsqueeze(1), h, weights[f"rnn.weight_hh_l{layer}"].transpose(1, 2)
        )
        x_r, x_z, x_n = projected_t.chunk(3, dim=-1)
        h_r, h_z, h_n = hidden.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = n + z * (h - n)
        return h, h


@dataclass(frozen=True)
class RNN(RecurrentArchitecture):
    """Elman RNN with tanh nonlinearity (``nn.RNN``'s default)."""

    kind = "rnn"
    gates = 1
    #: float32 CPU populations run the compiled kernel (rnn_kernel), whose build a zoo records
    uses_compiled_kernel = True

    def runs_compiled(self, weights: Population) -> bool:
        return rnn_fused_applies(weights["rnn.weight_hh_l0"], *weights.values())

    def _layer(self, weights, layer, layer_input, h0):
        weight_ih, weight_hh = weights[f"rnn.weight_ih_l{layer}"], weights[f"rnn.weight_hh_l{layer}"]
        bias = self._input_bias(weights, layer)
        if rnn_fused_applies(weight_hh, layer_input, weight_ih, bias, h0):
            hs = elman_layer_fused(layer_input, weight_ih, weight_hh, bias, h0)
            return hs, hs[:, :, -1]
        return super()._layer(weights, layer, layer_input, h0)

    def _cell(self, weights, layer, projected_t, h):
        h = torch.tanh(torch.baddbmm(projected_t, h, weights[f"rnn.weight_hh_l{layer}"].transpose(1, 2)))
        return h, h
