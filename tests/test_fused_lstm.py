"""The compiled float32 LSTM steps compute what the pure-PyTorch steps compute, values and grads."""

import pytest
import torch

from weightspace.networks import fused_cpu
from weightspace.networks.lstm_kernel import lstm_layer


@pytest.fixture
def fused(monkeypatch):
    monkeypatch.delenv("WEIGHTSPACE_FUSED", raising=False)
    if not fused_cpu.available():
        pytest.skip("the fused CPU kernel could not be built (no C compiler?)")


def _run(monkeypatch, use_fused, K, B, T, H, strided=False):
    """Outputs and gradients of one layer.

    ``strided``: non-contiguous c0 and grad_hs, and projected as a view with permuted (K, B, T)
    strides; ``"last"``: as ``strided`` but with projected non-contiguous in its last dim too.
    """
    monkeypatch.setenv("WEIGHTSPACE_FUSED", "1" if use_fused else "0")
    g = torch.Generator().manual_seed(K * 1000 + T)
    projected = 2 * torch.randn(K, B, T, 4 * H, generator=g)
    if strided == "last":
        projected = projected.permute(3, 0, 1, 2).contiguous().permute(1, 2, 3, 0)
    elif strided:
        projected = projected.permute(2, 1, 0, 3).contiguous().permute(2, 1, 0, 3)
    projected.requires_grad_()
    weight_hh = (torch.randn(K, 4 * H, H, generator=g) / H**0.5).requires_grad_()
    h0 = torch.randn(K, B, H, generator=g).requires_grad_()
    c0 = torch.randn(K, B, H, generator=g)
    if strided:
        c0 = torch.randn(K, H, B, generator=g).transpose(1, 2)  # last dim not contiguous
    c0.requires_grad_()
    grad_hs = torch.randn(K, B, T, H, generator=g)
    if strided:
        grad_hs = torch.randn(K, T, H, B, generator=g).permute(0, 3, 1, 2)
    grad_c = torch.randn(K, B, H, generator=g)
    hs, c_last = lstm_layer(projected, weight_hh, h0, c0)
    torch.autograd.backward([hs, c_last], [grad_hs, grad_c])
    return {"hs": hs.detach(), "c_last": c_last.detach(), "projected": projected.grad,
            "weight_hh": weight_hh.grad, "h0": h0.grad, "c0": c0.grad}


@pytest.mark.parametrize("shape", [(5, 3, 7, 8), (64, 32, 41, 32), (3, 2, 4, 5)])
def test_fused_steps_match_pure_pytorch(fused, monkeypatch, shape):
    fast = _run(monkeypatch, True, *shape)
    reference = _run(monkeypatch, False, *shape)
    for name, expected in reference.items():
        assert fast[name].dtype == torch.float32
        torch.testing.assert_close(fast[name], expected, atol=1e-5, rtol=0, msg=name)


@pytest.mark.parametrize("strided", [True, "last"])
def test_fused_steps_accept_strided_inputs_and_gradients(fused, monkeypatch, strided):
    fast = _run(monkeypatch, True, 4, 3, 6, 8, strided=strided)
    reference = _run(monkeypatch, False, 4, 3, 6, 8, strided=strided)
    for name, expected in reference.items():
        torch.testing.assert_close(fast[name], expected, atol=1e-5, rtol=0, msg=name)


def test_fused_steps_reject_steps_outside_the_sequence(fused):
    K, B, T, H = 2, 3, 4, 5
    steps = fused_cpu.ForwardSteps(
        torch.zeros(K, B, 4 * H), torch.zeros(K, B, T, 4 * H), torch.zeros(K, B, H),
        (torch.zeros(K, B, H), torch.zeros(K, B, H)), torch.zeros(K, B, T, H),
        torch.zeros(T, K, B, 4, H), torch.zeros(T, K, B, H), torch.zeros(T, K, B, H))
    steps.step(T - 1)
    for t in (-1, T):
        with pytest.raises(IndexError):
            steps.step(t)
    with pytest.raises(ValueError, match="hs"):
        fused_cpu.ForwardSteps(
            torch.zeros(K, B, 4 * H), torch.zeros(K, B, T, 4 * H), torch.zeros(K, B, H),
            (torch.zeros(K, B, H), torch.zeros(K, B, H)), torch.zeros(K, B, T + 1, H),
            torch.zeros(T, K, B, 4, H), torch.zeros(T, K, B, H), torch.zeros(T, K, B, H))


def test_fused_path_handles_saturated_gates(fused, monkeypatch):
    """Large pre-activations (beyond exp's float range) give the same values and gradients."""
    monkeypatch.setenv("WEIGHTSPACE_FUSED", "1")
    projected = torch.tensor([-200.0, -90.0, -30.0, 0.0, 30.0, 90.0, 200.0, 1.0]).repeat(1, 1, 1, 4)
    projected = projected[..., torch.randperm(32)].contiguous().requires_grad_()
    weight_hh = torch.zeros(1, 32, 8, requires_grad=True)
    h0 = torch.zeros(1, 1, 8)
    c0 = torch.linspace(-3, 3, 8).view(1, 1, 8)
    results = []
    for use_fused in ("1", "0"):
        monkeypatch.setenv("WEIGHTSPACE_FUSED", use_fused)
        projected.grad = None
        hs, c_last = lstm_layer(projected, weight_hh, h0, c0)
        (hs.sum() + c_last.sum()).backward()
        results.append((hs.detach(), c_last.detach(), projected.grad.clone()))
    for fast, reference in zip(*results):
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, reference, atol=1e-6, rtol=0)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("WEIGHTSPACE_FUSED", "0")
    assert not fused_cpu.available()
