"""The readout and the sequence cross-entropy of a population as one compiled autograd node.

For float32 CPU populations whose layers run on the compiled LSTM kernel: per network, logits
``h W^T + b`` of every step and sequence, the mean cross-entropy against the targets, and in the
backward pass the gradients of h, W and b, each network on one thread with its rows of h read
once each way (the torch version is three batched matmuls, narrow ones for the few classes of
our tasks, and a dozen passes of elementwise ops). Same values as
``weightspace.training.sequence_cross_entropy`` of ``h W^T + b`` up to float rounding
(``tests/test_fused_lstm.py``).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from . import fused_cpu


class ReadoutCrossEntropy(torch.autograd.Function):
    """losses (K,) = readout_cross_entropy(hs (K,B,T,H), weight (K,O,H), bias (K,O), targets (K,B,T))."""

    @staticmethod
    def forward(ctx, hs, weight, bias, targets):
        K, B, T, _ = hs.shape
        hs = hs if hs.stride(-1) == 1 else hs.contiguous()
        weight, bias, targets = weight.contiguous(), bias.contiguous(), targets.contiguous()
        loss = hs.new_empty(K)
        probs = hs.new_empty(K, T, B, weight.shape[1])
        fused_cpu.readout_cross_entropy_forward(hs, weight, bias, targets, loss, probs)
        ctx.save_for_backward(hs, weight, targets, probs)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        hs, weight, targets, probs = ctx.saved_tensors
        K, B, T, H = hs.shape
        dh = hs.new_empty(K, T, B, H).transpose(1, 2)  # time-major, as the LSTM layers read it
        dw, dbias = torch.empty_like(weight), hs.new_empty(weight.shape[:2])
        fused_cpu.readout_cross_entropy_backward(hs, weight, targets, probs, grad_loss.contiguous(), dh, dw, dbias)
        return dh, dw, dbias, None


def readout_cross_entropy(hs, weight, bias, targets):
    """Per-network mean cross-entropy of ``hs @ weight^T + bias`` against ``targets``; see the module."""
    return ReadoutCrossEntropy.apply(hs, weight, bias, targets)
