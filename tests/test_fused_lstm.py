"""The compiled float32 LSTM layer computes what the pure-PyTorch layer computes, values and grads."""

import pytest
import torch

from weightspace.networks import fused_cpu
from weightspace.networks.lstm_kernel import lstm_layer_fused, lstm_recurrence
from weightspace.networks.recurrent import _project


@pytest.fixture(params=fused_cpu.levels())
def fused(monkeypatch, request):
    """Each test runs on every instruction-set build of the kernel that this CPU can execute."""
    monkeypatch.delenv("WEIGHTSPACE_FUSED", raising=False)
    monkeypatch.setenv(fused_cpu.ISA_VARIABLE, request.param)
    try:
        if not fused_cpu.available():
            pytest.skip("the fused CPU kernel could not be built (no C compiler?)")
    except fused_cpu.KernelISAError:
        pytest.skip(f"this CPU cannot run {request.param} instructions")
    assert fused_cpu.kernel_path().startswith(f"fused {request.param} ")
    return request.param


def _inputs(K, B, T, I, H, strided=False, seed=0):
    """Inputs of one layer, and the gradients that flow into its outputs.

    ``strided``: x, c0 and grad_hs as non-contiguous views (permuted (K, B, T) strides, and c0 and
    grad_hs non-contiguous in their last dim, which the kernel copies)."""
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(K, B, T, I, generator=g)
    c0 = torch.randn(K, B, H, generator=g)
    grad_hs = torch.randn(K, B, T, H, generator=g)
    if strided:
        x = x.permute(2, 1, 0, 3).contiguous().permute(2, 1, 0, 3)
        c0 = torch.randn(K, H, B, generator=g).transpose(1, 2)
        grad_hs = torch.randn(K, T, H, B, generator=g).permute(0, 3, 1, 2)
    return dict(
        x=x,
        weight_ih=torch.randn(K, 4 * H, I, generator=g) / I**0.5,
        weight_hh=torch.randn(K, 4 * H, H, generator=g) / H**0.5,
        bias=torch.randn(K, 4 * H, generator=g),
        h0=torch.randn(K, B, H, generator=g),
        c0=c0,
    ), (grad_hs, torch.randn(K, B, H, generator=g))


def _run(layer, inputs, grads, dtype=torch.float32):
    leaves = {name: t.detach().to(dtype, copy=True).requires_grad_() for name, t in inputs.items()}
    hs, c_last = layer(**leaves)
    torch.autograd.backward([hs, c_last], [g.to(dtype) for g in grads])
    return {"hs": hs.detach(), "c_last": c_last.detach(), **{f"grad {name}": t.grad for name, t in leaves.items()}}


def _pure(x, weight_ih, weight_hh, bias, h0, c0):
    return lstm_recurrence(_project(x, weight_ih, bias), weight_hh, h0, c0)


def _assert_close(fast, reference, atol=2e-5):
    """Within float32 rounding: the weight gradients are sums over B x T terms, summed in another
    order, so their tolerance grows with their scale."""
    for name, expected in reference.items():
        assert fast[name].dtype == torch.float32, name
        scale = expected.abs().max().item()
        torch.testing.assert_close(fast[name], expected.float(), atol=max(atol, 1e-5 * scale), rtol=1e-5, msg=name)


# (K, B, T, I, H): the demo's shapes, and shapes whose rows and gate columns leave remainders
# after every tile size of every build of the C kernel (4, 6 or 8 rows; 64, 32, 16, 8 or 4
# columns; single columns)
@pytest.mark.parametrize(
    "shape",
    [
        (64, 32, 41, 6, 32),
        (64, 32, 41, 32, 32),
        (5, 3, 7, 4, 8),
        (3, 2, 4, 1, 5),
        (3, 13, 6, 7, 21),
        (2, 9, 5, 3, 24),
        (2, 11, 3, 16, 16),
        (1, 6, 3, 10, 64),
        (2, 4, 1, 2, 3),
    ],
)
def test_fused_layer_matches_pure_pytorch(fused, shape):
    inputs, grads = _inputs(*shape)
    fast = _run(lstm_layer_fused, inputs, grads)
    _assert_close(fast, _run(_pure, inputs, grads))
    # and both against float64, so that neither hides an error the other shares
    _assert_close(fast, _run(_pure, inputs, grads, torch.float64), atol=1e-4)


def test_fused_layer_accepts_strided_inputs_and_gradients(fused):
    inputs, grads = _inputs(4, 3, 6, 5, 8, strided=True)
    _assert_close(_run(lstm_layer_fused, inputs, grads), _run(_pure, inputs, grads))


def test_fused_layer_without_input_gradient_and_without_output_gradient(fused):
    """Data inputs (no gradient wanted) and a loss on the last cell state only."""
    inputs, (_, grad_c) = _inputs(3, 5, 4, 3, 8)
    results = []
    for layer in (lstm_layer_fused, _pure):
        leaves = {n: t.clone().requires_grad_(n != "x") for n, t in inputs.items()}
        _, c_last = layer(**leaves)
        (c_last * grad_c).sum().backward()
        assert leaves["x"].grad is None
        results.append({n: t.grad for n, t in leaves.items() if n != "x"})
    _assert_close(*results)


def test_fused_network_does_not_depend_on_population_or_threads(fused):
    """Each network's sequence is worked whole by one thread: the same bits alone or among others,
    with one thread or several."""
    inputs, grads = _inputs(6, 5, 7, 4, 12)

    def run(index, threads):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return _run(lstm_layer_fused, {n: t[index] for n, t in inputs.items()}, [g[index] for g in grads])
        finally:
            torch.set_num_threads(previous)

    together = run(slice(None), 2)
    for k in (0, 3):
        for threads in (1, 2):
            alone = run(slice(k, k + 1), threads)
            for name, value in alone.items():
                assert torch.equal(value[0], together[name][k]), (name, k, threads)


def test_fused_layer_handles_saturated_gates(fused):
    """Large pre-activations (beyond exp's float range) give the same values and gradients."""
    bias = torch.tensor([-200.0, -90.0, -30.0, 0.0, 30.0, 90.0, 200.0, 1.0]).repeat(4)
    inputs = dict(
        x=torch.zeros(1, 1, 3, 2),
        weight_ih=torch.zeros(1, 32, 2),
        weight_hh=torch.zeros(1, 32, 8),
        bias=bias[torch.randperm(32)].view(1, 32),
        h0=torch.zeros(1, 1, 8),
        c0=torch.linspace(-3, 3, 8).view(1, 1, 8),
    )
    grads = (torch.ones(1, 1, 3, 8), torch.ones(1, 1, 8))
    fast = _run(lstm_layer_fused, inputs, grads)
    assert all(torch.isfinite(t).all() for t in fast.values())
    _assert_close(fast, _run(_pure, inputs, grads), atol=1e-6)


def test_fused_layer_checks_its_tensors(fused):
    K, B, T, I, H = 2, 3, 4, 2, 5
    tensors = dict(
        x=torch.zeros(K, B, T, I),
        weight_ih=torch.zeros(K, 4 * H, I),
        weight_hh=torch.zeros(K, 4 * H, H),
        bias=torch.zeros(K, 4 * H),
        h0=torch.zeros(K, B, H),
        c0=torch.zeros(K, B, H),
        hs=torch.zeros(K, B, T, H),
        c_last=torch.zeros(K, B, H),
        factors=torch.zeros(K, T, B, 4, H),
        cell_from_hidden=torch.zeros(K, T, B, H),
        forget=torch.zeros(K, T, B, H),
    )
    fused_cpu.forward_layer(**tensors)
    with pytest.raises(ValueError, match="hs"):
        fused_cpu.forward_layer(**{**tensors, "hs": torch.zeros(K, B, T + 1, H)})
    with pytest.raises(ValueError, match="factors must be contiguous"):
        fused_cpu.forward_layer(**{**tensors, "factors": torch.zeros(K, B, T, 4, H).transpose(1, 2)})
    with pytest.raises(TypeError, match="float32"):
        fused_cpu.forward_layer(**{**tensors, "h0": torch.zeros(K, B, H, dtype=torch.float64)})


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv("WEIGHTSPACE_FUSED", "0")
    assert not fused_cpu.available()


@pytest.mark.parametrize("shape", [(5, 4, 7, 8, 6), (3, 9, 2, 32, 10), (1, 1, 1, 3, 2)])
def test_fused_readout_cross_entropy_matches_torch(fused, shape):
    from weightspace.networks.readout import readout_cross_entropy
    from weightspace.training import sequence_cross_entropy

    K, B, T, H, O = shape
    g = torch.Generator().manual_seed(sum(shape))
    hs = torch.randn(K, T, B, H, generator=g).transpose(1, 2)  # time-major, as the layers give it
    weight, bias = torch.randn(K, O, H, generator=g), torch.randn(K, O, generator=g)
    targets = torch.randint(0, O, (K, B, T), generator=g)
    grad = torch.rand(K, generator=g)
    results = []
    for loss_of in (
        lambda h, w, b: readout_cross_entropy(h, w, b, targets),
        lambda h, w, b: sequence_cross_entropy(_project(h, w, b), targets),
    ):
        leaves = [t.detach().clone().requires_grad_() for t in (hs, weight, bias)]
        loss = loss_of(*leaves)
        (loss * grad).sum().backward()
        results.append([loss.detach(), *(t.grad for t in leaves)])
    for name, fast, reference in zip(("loss", "hs", "weight", "bias"), *results):
        torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("level", fused_cpu.levels())
def test_every_build_keeps_its_main_tile_in_registers(level):
    """The kernel's main product tile (accumulators plus the loaded vectors) fits in the vector
    registers of the instruction set it is built for: the AVX-512 tile in an AVX2 build spilled on
    every step and made zoo builds 7.8x slower (issue 28)."""
    try:
        library = fused_cpu.build(level)
    except RuntimeError as error:
        pytest.skip(f"no {level} build here: {error}")
    assert library.weightspace_tile_registers() <= library.weightspace_vector_registers()
    assert library.weightspace_vector_floats() == {"x86-64-v4": 16, "x86-64-v3": 8, "x86-64": 4}.get(level, 4)


def test_unforced_the_best_measured_level_this_cpu_runs(monkeypatch):
    monkeypatch.delenv("WEIGHTSPACE_FUSED", raising=False)
    monkeypatch.delenv(fused_cpu.ISA_VARIABLE, raising=False)
    runs = [level for level in fused_cpu.supported_levels() if level in fused_cpu._AUTO]
    expected = f"fused {runs[0]} " if runs else "pytorch"
    assert fused_cpu.kernel_path().startswith(expected)


def test_an_unknown_or_unrunnable_level_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("WEIGHTSPACE_FUSED", raising=False)
    monkeypatch.setenv(fused_cpu.ISA_VARIABLE, "x86-64-v9")
    with pytest.raises(fused_cpu.KernelISAError, match="is not one of"):
        fused_cpu.available()
    unrunnable = [level for level in fused_cpu.levels() if level not in fused_cpu.supported_levels()]
    if unrunnable:
        monkeypatch.setenv(fused_cpu.ISA_VARIABLE, unrunnable[0])
        with pytest.raises(fused_cpu.KernelISAError, match="cannot run"):
            fused_cpu.available()


def test_a_zoo_resumed_with_another_kernel_path_is_refused_unless_allowed(tmp_path, monkeypatch):
    """Issue 27: the kernel that built a zoo is recorded, so a zoo resumed on a machine (or with a
    setting) that takes another path says so in one line instead of switching midway."""
    from weightspace.errors import ConfigError
    from weightspace.zoo import build_zoo, load_zoo

    monkeypatch.delenv("WEIGHTSPACE_FUSED", raising=False)
    monkeypatch.delenv(fused_cpu.ISA_VARIABLE, raising=False)
    settings = dict(models=2, population=2, steps=4, checkpoints=(0, 4), samples=8, rollouts=2, hidden_size=4, seed=0)
    out = build_zoo(tmp_path / "zoo", "formal-languages", settings, progress=False)
    assert load_zoo(out).manifest["created_with"]["lstm_kernel"] == fused_cpu.kernel_path()
    monkeypatch.setenv("WEIGHTSPACE_FUSED", "0" if fused_cpu.available() else "1")
    if fused_cpu.kernel_path() == load_zoo(out).manifest["created_with"]["lstm_kernel"]:
        pytest.skip("only one kernel path on this machine")
    with pytest.raises(ConfigError, match="was started with the recurrent kernel path"):
        build_zoo(out, "formal-languages", settings, progress=False)
    monkeypatch.setenv("WEIGHTSPACE_ALLOW_KERNEL_CHANGE", "1")
    build_zoo(out, "formal-languages", settings, progress=False)
