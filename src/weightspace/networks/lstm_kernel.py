"""The LSTM recurrence of a population as one autograd node with hand-written BPTT.

Only the recurrence is sequential. The input projections (``x @ W_ih^T + b``) of all time steps
are one batched matmul outside this node, and the recurrent weight gradient is one batched
matmul over all time steps after the backward loop. The gate derivatives are computed in the
forward step while its activations are in cache, so each backward step is one ``bmm`` and a few
elementwise ops and no pass over whole sequences is needed (passes over (K, B, T, 4H) tensors
dominated an earlier version). ``baddbmm`` writes into a contiguous scratch buffer (a strided
``out=`` makes it fall back to one matmul per network, measured 3x slower), and autograd never
sees per-step indexing, so its backward never materialises zero-filled copies of the big
sequence tensors.

For float32 CPU tensors each step's pointwise work is one call of a compiled C loop
(:mod:`.fused_cpu`: gate activations, cell update and saved factors in the forward step; gate
gradients and the cell gradient in the backward step) instead of ~15 and ~5 torch kernels, each
a separate pass over memory with its own dispatch: measured 260 -> 100 us forward and 105 -> 55
us backward per step at K=64, B=32, H=32 on two cores (its exp is a vectorisable polynomial;
glibc's scalar expf made the forward step 8x slower). Other dtypes and devices (float64 gradcheck,
CUDA) and machines without a C compiler use the pure-PyTorch steps, which compute the same
formulas (tanh as 2 sigmoid(2x) - 1 in both).

In the fused path each forward step's matmul is a plain ``bmm`` into ``act`` and the C step adds
``projected[:, :, t]`` itself (a strided read), instead of ``baddbmm`` first copying that strided
slice into ``act``; the C side is set up once per sequence (:class:`.fused_cpu.ForwardSteps`,
:class:`.fused_cpu.BackwardSteps`), so a step costs one ctypes call rather than ~13 us of views
and argument checks. Together with prefetching the strided rows in C: forward 13.2-14.5 ->
11.2-11.7 ms at K=64, B=32, T=41, H=32 on two cores (at K=4, B=8: 1.15 -> 0.45-0.75 ms).

Layouts: ``K`` networks, ``B`` sequences per network, ``T`` steps, hidden size ``H``; gate order
is PyTorch's (i, f, g, o).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import fused_cpu


class LSTMRecurrence(torch.autograd.Function):
    """hs (K,B,T,H), c_T = recurrence(projected (K,B,T,4H), W_hh (K,4H,H), h0, c0 (K,B,H)).

    ``projected`` already holds both biases. The forward pass saves, per step, the factors that
    turn the incoming gradients into gate gradients, computed while the step's activations are
    still in cache:
      (di, df, dg, do) = (dc g i(1-i), dc c_prev f(1-f), dc i(1-g^2), dh tanh(c) o(1-o))
      dc_prev = (dc + dh o (1 - tanh(c)^2)) f
    """

    @staticmethod
    def forward(ctx, projected, weight_hh, h0, c0):
        K, B, T, G = projected.shape
        H = G // 4
        recurrent_t = weight_hh.transpose(1, 2)
        gate_factors = projected.new_empty(T, K, B, 4, H)  # time-major: contiguous per step
        cell_from_hidden = projected.new_empty(T, K, B, H)
        forget = projected.new_empty(T, K, B, H)
        hs = projected.new_empty(K, B, T, H)
        act = projected.new_empty(K, B, G)
        if _fused(projected, weight_hh, h0, c0):
            # bmm writes only the recurrent part into act; the C step adds projected[:, :, t]
            if projected.stride(-1) != 1:
                projected = projected.contiguous()
            c0 = c0 if c0.stride(-1) == 1 else c0.contiguous()
            cells = (projected.new_empty(K, B, H), projected.new_empty(K, B, H))  # c alternates
            steps = fused_cpu.ForwardSteps(act, projected, c0, cells, hs, gate_factors,
                                           cell_from_hidden, forget)
            h_steps = hs.unbind(2)
            h = h0
            for t in range(T):
                torch.bmm(h, recurrent_t, out=act)
                steps.step(t)
                h = h_steps[t]
            c = cells[(T - 1) % 2] if T else c0
        else:
            h, c = h0, c0
            for t in range(T):
                torch.baddbmm(projected[:, :, t], h, recurrent_t, out=act)
                h = hs[:, :, t]
                c = _forward_step(act, c, h, gate_factors[t], cell_from_hidden[t], forget[t])
        ctx.save_for_backward(weight_hh, h0, gate_factors, cell_from_hidden, forget, hs)
        return hs, c

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hs, grad_c_last):
        weight_hh, h0, gate_factors, cell_from_hidden, forget, hs = ctx.saved_tensors
        T, K, B, _, H = gate_factors.shape
        G = 4 * H
        grad_projected = hs.new_empty(K, B, T, G)
        dh = h0.new_zeros(K, B, H)
        if grad_c_last is None:
            dc = h0.new_zeros(K, B, H)
        else:
            dc = grad_c_last.clone(memory_format=torch.contiguous_format)
        if _fused(grad_projected, weight_hh):
            if grad_hs is not None and grad_hs.stride(-1) != 1:
                grad_hs = grad_hs.contiguous()
            steps = fused_cpu.BackwardSteps(dh, grad_hs, dc, gate_factors, cell_from_hidden,
                                            forget, grad_projected)
            grad_steps = grad_projected.unbind(2)
            for t in range(T - 1, -1, -1):
                steps.step(t)
                torch.bmm(grad_steps[t], weight_hh, out=dh)
        else:
            for t in range(T - 1, -1, -1):
                grad_step = grad_projected[:, :, t]
                grad_h = grad_hs[:, :, t] if grad_hs is not None else None
                _backward_step(dh, grad_h, dc, gate_factors[t], cell_from_hidden[t], forget[t],
                               grad_step)
                dh = torch.bmm(grad_step, weight_hh)
        h_prev = torch.cat([h0.unsqueeze(2), hs[:, :, :-1]], dim=2)
        grad_weight_hh = torch.bmm(
            grad_projected.view(K, B * T, G).transpose(1, 2), h_prev.view(K, B * T, H)
        )
        return grad_projected, grad_weight_hh, dh, dc


def _fused(*tensors) -> bool:
    """Whether the compiled pointwise steps apply: float32 CPU tensors and a built library."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors) and (
        fused_cpu.available())


def _forward_step(act, c, h, factors, cell_from_hidden, forget):
    """Pure-PyTorch pointwise forward step: writes h and the saved factors, returns the new c."""
    H = act.shape[-1] // 4
    # tanh(x) = 2 sigmoid(2x) - 1: torch's CPU tanh is ~5x slower than its sigmoid
    act[..., 2 * H : 3 * H].mul_(2)
    act.sigmoid_()
    act[..., 2 * H : 3 * H].mul_(2).sub_(1)
    i, f, g, o = act.chunk(4, dim=-1)
    sigmoid_slope = torch.addcmul(act, act, act, value=-1)  # s (1 - s)
    slope_i, slope_f, _, slope_o = sigmoid_slope.chunk(4, dim=-1)
    torch.mul(g, slope_i, out=factors[:, :, 0])
    torch.mul(c, slope_f, out=factors[:, :, 1])
    input_times_cell = i * g
    torch.addcmul(i, input_times_cell, g, value=-1, out=factors[:, :, 2])
    forget.copy_(f)
    c = torch.addcmul(input_times_cell, f, c)
    tanh_c = torch.sigmoid(c * 2).mul_(2).sub_(1)
    torch.mul(o, tanh_c, out=h)
    torch.mul(tanh_c, slope_o, out=factors[:, :, 3])
    torch.addcmul(o, h, tanh_c, value=-1, out=cell_from_hidden)
    return c


def _backward_step(dh, grad_h, dc, factors, cell_from_hidden, forget, grad_step):
    """Pure-PyTorch pointwise backward step: writes the gate gradients, updates dc in place."""
    K, B, H = dh.shape
    if grad_h is not None:
        dh = dh + grad_h
    dc.addcmul_(dh, cell_from_hidden)
    grad_gates = grad_step.view(K, B, 4, H)
    torch.mul(factors[:, :, :3], dc.unsqueeze(2), out=grad_gates[:, :, :3])
    torch.mul(factors[:, :, 3], dh, out=grad_gates[:, :, 3])
    dc.mul_(forget)


def lstm_layer(projected, weight_hh, h0, c0):
    """Run one LSTM layer's recurrence; see :class:`LSTMRecurrence`."""
    return LSTMRecurrence.apply(projected, weight_hh, h0, c0)
