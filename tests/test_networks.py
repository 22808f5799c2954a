"""Population networks compute exactly what torch's modules compute with the same weights."""

import pytest
import torch
from torch import nn

from weightspace import WeightspaceError
from weightspace.networks import GRU, LSTM, MLP, RNN, Population

ARCHITECTURES = [LSTM, GRU, RNN]


@pytest.mark.parametrize("arch_class", ARCHITECTURES)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_forward_matches_torch_modules(arch_class, layers):
    arch = arch_class(input_size=5, hidden_size=16, num_layers=layers, output_size=4)
    weights = arch.init(seeds=[1, 2, 3, 4])
    x = torch.randn(4, 6, 9, 5)
    out, _ = arch.forward(weights, x)
    assert out.shape == (4, 6, 9, 4)
    for k in range(4):
        module = arch.torch_module()
        module.load_state_dict(weights.state_dict(k))  # our names are torch's names
        expected, _ = module(x[k])
        torch.testing.assert_close(out[k], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch_class", ARCHITECTURES)
def test_torch_trained_models_come_in_and_go_out(arch_class):
    arch = arch_class(3, 8, 2, 2)
    modules = [arch.torch_module() for _ in range(3)]
    weights = Population.from_state_dicts(arch.spec, [m.state_dict() for m in modules])
    x = torch.randn(3, 2, 5, 3)
    out, _ = arch.forward(weights, x)
    for k, module in enumerate(modules):
        torch.testing.assert_close(out[k], module(x[k])[0], atol=1e-5, rtol=0)
        exported = arch.to_torch(weights, k)
        torch.testing.assert_close(exported(x[k])[0], module(x[k])[0])


@pytest.mark.parametrize("arch_class", ARCHITECTURES)
def test_step_by_step_equals_sequence(arch_class):
    arch = arch_class(4, 8, 2, 3)
    weights = arch.init([5, 6])
    x = torch.randn(2, 3, 7, 4)
    full, final = arch.forward(weights, x)
    state = arch.initial_state(2, 3)
    for t in range(7):
        out, state = arch.step(weights, x[:, :, t], state)
        torch.testing.assert_close(out, full[:, :, t], atol=1e-5, rtol=0)
    for a, b in zip(state if isinstance(state, tuple) else [state], final if isinstance(final, tuple) else [final]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch_class", ARCHITECTURES)
def test_gradients_match_torch_autograd(arch_class):
    arch = arch_class(3, 8, 2, 2)
    weights = arch.init([7, 8]).map(lambda t: t.clone().requires_grad_())
    x = torch.randn(2, 4, 6, 3)
    target = torch.randn(2, 4, 6, 2)
    out, _ = arch.forward(weights, x)
    ((out - target) ** 2).sum().backward()
    for k in range(2):
        module = arch.torch_module()
        module.load_state_dict({n: t.detach()[k] for n, t in weights.items()})
        ((module(x[k])[0] - target[k]) ** 2).sum().backward()
        for name, param in module.named_parameters():
            torch.testing.assert_close(weights[name].grad[k], param.grad, atol=1e-5, rtol=1e-4)


def test_lstm_kernel_gradcheck_float64():
    arch = LSTM(3, 4, 2, 2)
    weights = arch.init([1, 2]).map(lambda t: t.double().requires_grad_())
    x = torch.randn(2, 3, 5, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(2, 2, 3, 4, dtype=torch.double, requires_grad=True)
    c0 = torch.randn(2, 2, 3, 4, dtype=torch.double, requires_grad=True)

    def f(x, h0, c0, *tensors):
        population = Population(arch.spec, dict(zip(arch.spec.names, tensors)))
        out, (h, c) = arch.forward(population, x, (h0, c0))
        return out, h, c

    assert torch.autograd.gradcheck(f, (x, h0, c0, *[weights[n] for n in arch.spec.names]))


def test_mlp_matches_sequential_and_uses_its_names():
    mlp = MLP((4, 30, 2), "elu")
    assert mlp.spec.names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert mlp.spec.num_parameters == 212  # CartPoleNet of paper 004
    weights = mlp.init([1, 2, 3])
    x = torch.randn(3, 10, 4)
    out = mlp.forward(weights, x)
    for k in range(3):
        module = nn.Sequential(nn.Linear(4, 30), nn.ELU(), nn.Linear(30, 2))
        module.load_state_dict(weights.state_dict(k))
        torch.testing.assert_close(out[k], module(x[k]), atol=1e-5, rtol=0)


def test_parameter_count_of_paper_subject_network():
    assert LSTM(6, 32, 2, 6).spec.num_parameters == 13766  # formal languages, paper 000
    assert LSTM(16, 32, 2, 10).spec.num_parameters == 15178  # sequential MNIST, paper 000


def test_flatten_roundtrip_and_init_depends_on_seed_only():
    arch = LSTM(6, 8, 2, 6)
    a = arch.init([10, 11, 12])
    b = arch.init([12])
    torch.testing.assert_close(a.state_dict(2), b.state_dict(0))
    assert not torch.equal(a["rnn.weight_hh_l0"][0], a["rnn.weight_hh_l0"][1])
    roundtrip = Population.unflatten(arch.spec, a.flatten())
    for name in arch.spec.names:
        assert torch.equal(roundtrip[name], a[name])


def test_bad_inputs_give_clear_errors():
    arch = LSTM(6, 8, 1, 6)
    weights = arch.init([1, 2])
    with pytest.raises(WeightspaceError, match=r"expected inputs of shape \(K=2, B, T, 6\)"):
        arch.forward(weights, torch.randn(2, 3, 4, 5))
    with pytest.raises(WeightspaceError, match="missing"):
        Population(arch.spec, {"rnn.weight_ih_l0": torch.zeros(2, 32, 6)})
    bad = dict(weights)
    bad["readout.bias"] = torch.zeros(2, 7)
    with pytest.raises(WeightspaceError, match="readout.bias: expected shape"):
        Population(arch.spec, bad)
