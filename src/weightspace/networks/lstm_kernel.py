"""One LSTM layer of a population as one autograd node with hand-written BPTT.

Two implementations of the same formulas (tanh as 2 sigmoid(2x) - 1 in both):

- :class:`LSTMLayer`, for float32 CPU tensors: a compiled C kernel (:mod:`.fused_cpu`,
  ``_lstm_pointwise.c``) runs the whole layer, input projection included, one network per thread
  with its weights in cache for all T steps; the backward pass computes the gradients of the
  input, the weights and the bias step by step from data still in cache, so no (K, B, T, 4H)
  tensor of pre-activations or gate gradients is ever written. At K=64, B=32, T=41, I=6, H=32 on
  two cores a training step of the 2-layer demo LSTMs went from 127 ms (batched ``bmm`` per step
  with compiled pointwise steps) to 78 ms (``benchmarks/profile_engine.py``).
- :class:`LSTMRecurrence`, for everything else (float64 for gradcheck, CUDA, machines without a
  C compiler): the input projections of all steps are one batched matmul outside the node, each
  step is a ``baddbmm`` into a contiguous scratch buffer and a few elementwise ops, and the
  recurrent weight gradient is one batched matmul over all steps after the backward loop.

Both save, per step, the factors that turn the incoming gradients into gate gradients, computed
in the forward step while its activations are in cache:
  (di, df, dg, do) = (dc g i(1-i), dc c_prev f(1-f), dc i(1-g^2), dh tanh(c) o(1-o))
  dc_prev = (dc + dh o (1 - tanh(c)^2)) f

Layouts: ``K`` networks, ``B`` sequences per network, ``T`` steps, input size ``I``, hidden size
``H``; gate order is PyTorch's (i, f, g, o).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ..threads import kernel_threads
from . import fused_cpu


class LSTMRecurrence(torch.autograd.Function):
    """hs (K,B,T,H), c_T = recurrence(projected (K,B,T,4H), W_hh (K,4H,H), h0, c0 (K,B,H)).

    ``projected`` already holds both biases (the pure-PyTorch path; see the module docstring)."""

    @staticmethod
    def forward(ctx, projected, weight_hh, h0, c0):
        K, B, T, G = projected.shape
        H = G // 4
        hs = projected.new_empty(K, B, T, H)
        recurrent_t = weight_hh.transpose(1, 2)
        gate_factors = projected.new_empty(T, K, B, 4, H)  # time-major: contiguous per step
        cell_from_hidden = projected.new_empty(T, K, B, H)
        forget = projected.new_empty(T, K, B, H)
        act = projected.new_empty(K, B, G)
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
        K, B, T, H = hs.shape
        G = 4 * H
        grad_projected = hs.new_empty(K, B, T, G)
        dh = h0.new_zeros(K, B, H)
        dc = _initial_cell_gradient(grad_c_last, h0)
        for t in range(T - 1, -1, -1):
            grad_step = grad_projected[:, :, t]
            grad_h = grad_hs[:, :, t] if grad_hs is not None else None
            _backward_step(dh, grad_h, dc, gate_factors[t], cell_from_hidden[t], forget[t], grad_step)
            dh = torch.bmm(grad_step, weight_hh)
        h_prev = torch.cat([h0.unsqueeze(2), hs[:, :, :-1]], dim=2)
        grad_weight_hh = torch.bmm(grad_projected.view(K, B * T, G).transpose(1, 2), h_prev.view(K, B * T, H))
        return grad_projected, grad_weight_hh, dh, dc


class LSTMLayer(torch.autograd.Function):
    """hs (K,B,T,H), c_T = layer(x (K,B,T,I), W_ih (K,4H,I), W_hh (K,4H,H), bias (K,4H), h0, c0).

    The compiled whole-layer kernel (:mod:`.fused_cpu`) for float32 CPU tensors: the input
    projection, the recurrence and, in the backward pass, the gradients of the input, the weights
    and the bias, network by network with each network's weights in cache; see
    ``_lstm_pointwise.c``. ``bias`` is ``b_ih + b_hh`` (autograd passes its gradient to both).
    """

    @staticmethod
    def forward(ctx, x, weight_ih, weight_hh, bias, h0, c0):
        K, B, T, I = x.shape
        H = weight_hh.shape[-1]
        x = time_major(x)
        c0 = c0 if c0.stride(-1) == 1 else c0.contiguous()
        weight_ih, weight_hh, bias, h0 = (t.contiguous() for t in (weight_ih, weight_hh, bias, h0))
        hs = x.new_empty(K, T, B, H).transpose(1, 2)
        c_last = x.new_empty(K, B, H)
        factors = x.new_empty(K, T, B, 4, H)  # network-major, as the C side works
        cell_from_hidden = x.new_empty(K, T, B, H)
        forget = x.new_empty(K, T, B, H)
        fused_cpu.forward_layer(x, weight_ih, weight_hh, bias, h0, c0, hs, c_last, factors, cell_from_hidden, forget)
        if T == 0:
            c_last.copy_(c0)
        ctx.save_for_backward(x, weight_ih, weight_hh, h0, hs, factors, cell_from_hidden, forget)
        return hs, c_last

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hs, grad_c_last):
        x, weight_ih, weight_hh, h0, hs, factors, cell_from_hidden, forget = ctx.saved_tensors
        if grad_hs is not None:
            grad_hs = time_major(grad_hs)
        dh = torch.zeros_like(h0)
        dc = _initial_cell_gradient(grad_c_last, h0)
        K, B, T, I = x.shape
        dx = x.new_empty(K, T, B, I).transpose(1, 2) if ctx.needs_input_grad[0] else None
        dw_ih, dw_hh = torch.empty_like(weight_ih), torch.empty_like(weight_hh)
        dbias = x.new_empty(weight_hh.shape[:2])
        fused_cpu.backward_layer(
            x, weight_ih, weight_hh, h0, hs, factors, cell_from_hidden, forget, grad_hs, dh, dc, dx, dw_ih, dw_hh, dbias
        )
        return dx, dw_ih, dw_hh, dbias, dh, dc


def time_major(x):
    """``x`` (K, B, T, n) with each network's time steps contiguous blocks of B rows: a view of a
    (K, T, B, n) tensor, as the layers return their outputs. The C kernel reads step t of all B
    sequences at once, and rows a whole sequence apart (T n floats) defeat the prefetcher: at
    K=64, B=32, T=41, I=H=32 on two cores, forward 15.8 -> 12.7 ms and backward 28.0 -> 24.5 ms
    per layer (medians of 10, interleaved)."""
    if x.transpose(1, 2).is_contiguous():
        return x
    return x.transpose(1, 2).contiguous().transpose(1, 2)


def _initial_cell_gradient(grad_c_last, h0):
    if grad_c_last is None:
        return h0.new_zeros(h0.shape)
    return grad_c_last.clone(memory_format=torch.contiguous_format)


def fused_applies(weight_hh, *tensors) -> bool:
    """Whether :class:`LSTMLayer` runs a layer with recurrent weights ``weight_hh`` (K, 4H, H):
    float32 CPU tensors, a built library, and a shape where it is the faster path (:func:`fused_wins`)."""
    return (
        all(t.dtype == torch.float32 and t.device.type == "cpu" for t in (weight_hh, *tensors))
        and fused_cpu.available()
        and fused_wins(weight_hh.shape[0], weight_hh.shape[-1])
    )


#: Hidden sizes up to this run on the compiled kernel whatever the population's size.
FUSED_MAX_HIDDEN = 64


def fused_wins(networks: int, hidden: int) -> bool:
    """Whether the compiled kernel is the faster path for ``networks`` LSTMs of ``hidden`` units,
    as measured side by side by ``benchmarks/lstm_shapes.py`` (2-core AMD EPYC, AVX-512 and forced
    AVX2 builds, against ``WEIGHTSPACE_FUSED=0``).

    The kernel gives each network to one thread. Up to hidden 64 it wins on every shape weightspace
    runs, from 1 to 256 networks (1.4-6x; K=1, B=64, hidden 64: 1.8x with AVX-512, 1.4x with AVX2).
    Above, one network's weights outgrow the core's cache, and with fewer networks than threads the
    other cores idle while torch's matmuls use them all: one hidden-128 emulator ran at 0.79x
    (AVX-512) and 0.67x (AVX2), one hidden-256 emulator at 0.64x and 0.44x. With at least as many
    networks as threads the AVX-512 build still wins (4 hidden-256 emulators: 1.31x) and the AVX2
    one does not (0.75x). So: hidden <= 64 always; larger only with AVX-512 and networks >= threads.
    """
    if hidden <= FUSED_MAX_HIDDEN:
        return True
    return fused_cpu.vector_floats() >= 16 and networks >= kernel_threads()


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


def lstm_recurrence(projected, weight_hh, h0, c0):
    """Run one LSTM layer's recurrence from its input projections; see :class:`LSTMRecurrence`."""
    return LSTMRecurrence.apply(projected, weight_hh, h0, c0)


def lstm_layer_fused(x, weight_ih, weight_hh, bias, h0, c0):
    """Run one whole LSTM layer with the compiled kernel; see :class:`LSTMLayer`."""
    return LSTMLayer.apply(x, weight_ih, weight_hh, bias, h0, c0)
