"""The compiled tanh-RNN layers (networks/rnn_kernel.py): nn.RNN's cell and the mean-field leaky
RNN give the outputs and gradients of their pure-PyTorch paths (autograd over the time steps),
a network's numbers do not depend on its population or the thread count, and the NTK's vmapped
Jacobian takes the PyTorch path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from weightspace.networks import RNN, fused_cpu
from weightspace.networks.mean_field import MeanFieldRNN
from weightspace.networks.weights import Population

pytestmark = pytest.mark.skipif(not fused_cpu.available(), reason="the compiled kernel cannot be built here")

ARCHITECTURES = {
    "elman-2-layers": lambda: RNN(3, 16, 2, 2),
    "elman-wide": lambda: RNN(2, 72, 1, 3),  # a width that is no multiple of the vector length
    "mean-field": lambda: MeanFieldRNN(3, 20, 2, gamma=2.0, tau=0.1),
}


def _run(architecture, weights, x, upstream):
    params = {n: t.clone().requires_grad_() for n, t in weights.items()}
    out = architecture.forward(Population(weights.spec, params), x)[0]
    return out, torch.autograd.grad((out * upstream).sum(), list(params.values()))


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_the_compiled_layer_equals_the_pytorch_path(name):
    architecture = ARCHITECTURES[name]()
    weights = architecture.init(np.arange(5))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, 40, architecture.input_size, generator=g)
    upstream = torch.randn(5, 6, 40, architecture.output_size, generator=g)
    assert architecture.runs_compiled(weights)
    out, grads = _run(architecture, weights, x, upstream)
    with fused_cpu.disabled():
        assert not architecture.runs_compiled(weights)
        expected, expected_grads = _run(architecture, weights, x, upstream)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_a_network_computes_the_same_bits_alone_and_on_any_thread_count(name):
    architecture = ARCHITECTURES[name]()
    weights = architecture.init(np.arange(4))
    x = torch.randn(4, 3, 12, architecture.input_size, generator=torch.Generator().manual_seed(1))
    upstream = torch.ones(4, 3, 12, architecture.output_size)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        out, grads = _run(architecture, weights, x, upstream)
        torch.set_num_threads(1)
        alone = Population(weights.spec, {n: t[2:3] for n, t in weights.items()})
        out_alone, grads_alone = _run(architecture, alone, x[2:3], upstream[2:3])
    finally:
        torch.set_num_threads(before)
    assert torch.equal(out[2:3], out_alone)
    assert all(torch.equal(a[2:3], b) for a, b in zip(grads, grads_alone))


def test_the_elman_layer_equals_nn_rnn():
    architecture = RNN(3, 24, 2, 2)
    weights = architecture.init(np.arange(3))
    x = torch.randn(3, 4, 30, 3, generator=torch.Generator().manual_seed(2))
    outputs = architecture.forward(weights, x)[0]
    for k in range(3):
        torch.testing.assert_close(outputs[k], architecture.to_torch(weights, k)(x[k])[0], rtol=1e-5, atol=1e-6)


def test_the_tangent_kernels_take_the_pytorch_path():
    """torch.autograd.functional.jacobian(vectorize=True) vmaps the backward pass, which the
    compiled one cannot follow: the NTK of a population of compiled RNNs still computes."""
    from weightspace.analysis.degeneracy import tangent_kernels

    architecture = RNN(2, 6, 1, 2)
    weights = architecture.init(np.arange(2))
    kernels = tangent_kernels(architecture, weights, torch.randn(2, 2, 10, 2), every=5)
    assert kernels.shape == (2, 8, 8) and torch.isfinite(kernels).all()
