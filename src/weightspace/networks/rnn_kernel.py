"""The tanh RNN layers of paper 002's populations as autograd nodes, in the compiled kernel that
the LSTM layers run on (``_lstm_pointwise.c``, :mod:`.fused_cpu`): ``nn.RNN``'s cell
(:class:`ElmanLayer`) and the mean-field leaky RNN (:class:`LeakyLayer`).

:class:`ElmanLayer` runs ``h_t = tanh(b_ih + b_hh + x_t W_ih^T + h_{t-1} W_hh^T)`` over all T
steps for float32 CPU tensors: each network on one thread with its weights in cache, the input
projection included; the backward pass computes the gradients of the input, both weights, the
bias and the initial state step by step from data still in cache. Everything else (float64,
CUDA, no C compiler, ``WEIGHTSPACE_FUSED=0``, inside ``fused_cpu.disabled()``) takes autograd
over the loop of time steps (``RecurrentArchitecture._layer``, ``MeanFieldRNN.forward``).
:class:`LeakyLayer` works the same way for ``h_t = (1 - tau) h_{t-1} + tau (U x_t + (J / N)
tanh(h_{t-1}))`` and saves ``tanh(h_t)`` for its backward pass. tanh is ``2 sigmoid(2x) - 1``
with the kernel's polynomial exp: within a few float32 ulps of ``torch.tanh``.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import fused_cpu
from .lstm_kernel import time_major


def _layer_buffers(x, H: int):
    """The input in the kernel's time-major layout, the (K, B, T, H) output as a view of a
    (K, T, B, H) tensor, and the (K, T, B, H) tensor a layer saves for its backward pass."""
    K, B, T, _ = x.shape
    return time_major(x), x.new_empty(K, T, B, H).transpose(1, 2), x.new_empty(K, T, B, H)


def _gradient_buffers(ctx, x, weight_ih, weight_hh, h0, grad_hs):
    """The incoming gradient time-major, and the buffers the compiled backward writes: dh (zeros
    in, the gradient of h0 out), dx (None when the input needs none), dW_ih and dW_hh."""
    K, B, T, I = x.shape
    dx = x.new_empty(K, T, B, I).transpose(1, 2) if ctx.needs_input_grad[0] else None
    grad_hs = time_major(grad_hs) if grad_hs is not None else None
    return grad_hs, torch.zeros_like(h0), dx, torch.empty_like(weight_ih), torch.empty_like(weight_hh)


class ElmanLayer(torch.autograd.Function):
    """hs (K, B, T, H) = layer(x (K, B, T, I), W_ih (K, H, I), W_hh (K, H, H), bias (K, H), h0 (K, B, H)).

    ``bias`` is ``b_ih + b_hh`` (autograd passes its gradient to both)."""

    @staticmethod
    def forward(ctx, x, weight_ih, weight_hh, bias, h0):
        x, hs, slopes = _layer_buffers(x, weight_hh.shape[-1])
        weight_ih, weight_hh, bias, h0 = (t.contiguous() for t in (weight_ih, weight_hh, bias, h0))
        fused_cpu.rnn_forward_layer(x, weight_ih, weight_hh, bias, h0, hs, slopes)
        ctx.save_for_backward(x, weight_ih, weight_hh, h0, hs, slopes)
        return hs

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hs):
        x, weight_ih, weight_hh, h0, hs, slopes = ctx.saved_tensors
        grad_hs, dh, dx, dw_ih, dw_hh = _gradient_buffers(ctx, x, weight_ih, weight_hh, h0, grad_hs)
        dbias = x.new_empty(weight_hh.shape[:2])
        fused_cpu.rnn_backward_layer(x, weight_ih, weight_hh, h0, hs, slopes, grad_hs, dh, dx, dw_ih, dw_hh, dbias)
        return dx, dw_ih, dw_hh, dbias, dh


class LeakyLayer(torch.autograd.Function):
    """hs (K, B, T, H) = layer(x (K, B, T, I), U (K, H, I), J (K, H, H), h0 (K, B, H), tau): the
    mean-field RNN's ``h_t = (1 - tau) h_{t-1} + tau (U x_t + (J / H) tanh(h_{t-1}))``."""

    @staticmethod
    def forward(ctx, x, weight_ih, weight_hh, h0, tau: float):
        x, hs, rates = _layer_buffers(x, weight_hh.shape[-1])
        weight_ih, weight_hh, h0 = (t.contiguous() for t in (weight_ih, weight_hh, h0))
        fused_cpu.leaky_layer(x, weight_ih, weight_hh, h0, tau, hs, rates)
        ctx.tau = tau
        ctx.save_for_backward(x, weight_ih, weight_hh, h0, hs, rates)
        return hs

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hs):
        x, weight_ih, weight_hh, h0, hs, rates = ctx.saved_tensors
        grad_hs, dh, dx, dw_ih, dw_hh = _gradient_buffers(ctx, x, weight_ih, weight_hh, h0, grad_hs)
        fused_cpu.leaky_layer(x, weight_ih, weight_hh, h0, ctx.tau, hs, rates, grad_hs, dh, dx, dw_ih, dw_hh)
        return dx, dw_ih, dw_hh, dh, None


def rnn_fused_applies(weight_hh, *tensors) -> bool:
    """Whether the compiled layers (:class:`ElmanLayer`, :class:`LeakyLayer`) run a layer with
    recurrent weights ``weight_hh`` (K, H, H): float32 CPU tensors and a built library (not
    inside ``fused_cpu.disabled()``)."""
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in (weight_hh, *tensors)) and (
        fused_cpu.available()
    )


def leaky_layer_fused(x, weight_ih, weight_hh, h0, tau: float):
    """Run the mean-field RNN's layer with the compiled kernel; see :class:`LeakyLayer`."""
    return LeakyLayer.apply(x, weight_ih, weight_hh, h0, tau)


def elman_layer_fused(x, weight_ih, weight_hh, bias, h0):
    """Run one whole tanh-RNN layer with the compiled kernel; see :class:`ElmanLayer`."""
    return ElmanLayer.apply(x, weight_ih, weight_hh, bias, h0)
