"""WeightSpec.from_module: the permutations it derives keep the function, every axis it labels
matters on its own, the axes it leaves unlabelled are not symmetries of the network, and it
reproduces the hand-written specs of the recurrent and MLP families."""

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from weightspace.errors import UnsupportedModuleError, WeightspaceError
from weightspace.networks import (
    GRU,
    LSTM,
    MLP,
    RNN,
    Axis,
    Population,
    WeightSpec,
    initialize,
    permute,
    random_permutations,
)

B = 6  # inputs per check


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.norm, self.conv2 = nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 5, 3, padding=1)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        h = torch.relu(self.conv2(F.relu(self.norm(self.conv1(x)))))
        return self.head(h.mean((2, 3)))


class FlattenCNN(nn.Module):
    """Conv -> flatten (C, H, W) into features -> Linear: the channels mix with the pixels."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(2, 3, 3), nn.Linear(3 * 4 * 4, 2)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


class ResidualBlock(nn.Module):
    """inp -> x + W2 relu(W1 LayerNorm(x)) -> LayerNorm -> out: the residual stream is one axis."""

    def __init__(self, inputs=3, width=5, hidden=4, outputs=2):
        super().__init__()
        self.inp, self.norm = nn.Linear(inputs, width), nn.LayerNorm(width)
        self.w1, self.w2 = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.final_norm, self.out = nn.LayerNorm(width), nn.Linear(width, outputs)

    def forward(self, x):
        x = self.inp(x)
        x = x + self.w2(torch.relu(self.w1(self.norm(x))))
        return self.out(self.final_norm(x))


class InputResidual(nn.Module):
    """x + W2 relu(W1 x) on the network's input: the residual ties W2's rows to the input."""

    def __init__(self):
        super().__init__()
        self.w1, self.w2, self.out = nn.Linear(3, 4), nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.out(x + self.w2(F.gelu(self.w1(x))))


class SequenceClassifier(nn.Module):
    """Embedding -> LSTM -> Linear on the last step."""

    def __init__(self):
        super().__init__()
        self.embed, self.lstm, self.head = nn.Embedding(7, 4), nn.LSTM(4, 5, batch_first=True), nn.Linear(5, 3)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out[:, -1])


class SharedLayer(nn.Module):
    """One square Linear applied twice: its rows and columns are one permutation."""

    def __init__(self):
        super().__init__()
        self.first, self.shared, self.out = nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.out(torch.tanh(self.shared(torch.tanh(self.shared(F.silu(self.first(x)))))))


class FinalState(nn.Module):
    """A two-layer, sequence-first LSTM read out from its last layer's final state ``h_n[-1]``."""

    def __init__(self):
        super().__init__()
        self.rnn, self.head = nn.LSTM(3, 4, 2), nn.Linear(4, 2)

    def forward(self, x):
        _, (h, _) = self.rnn(x)
        return self.head(h[-1])


class PoolView(nn.Module):
    """Conv -> adaptive pool to 1x1 -> ``view(N, -1)``: the channels stay the features."""

    def __init__(self):
        super().__init__()
        self.conv, self.pool, self.head = nn.Conv2d(2, 3, 3), nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(3, 2)

    def forward(self, x):
        h = self.pool(F.leaky_relu(self.conv(x), 0.1))
        return self.head(h.view(h.size(0), -1))


class ManualNorm(nn.Module):
    """Normalisation, softmax and a sum over the hidden axis written out: symmetric in it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        h = (h - h.mean(-1, keepdim=True)) / h.std(-1, keepdim=True)
        return self.b(F.softmax(h, dim=-1)) + h.pow(3).sum(-1, keepdim=True)


def _sequential_mlp():
    return nn.Sequential(nn.Linear(3, 5), nn.GELU(), nn.Dropout(0.1), nn.Linear(5, 4), nn.Sigmoid(), nn.Linear(4, 2))


def _conv1d():
    return nn.Sequential(
        nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Conv1d(4, 3, 3, padding=1), nn.Tanh(), nn.AdaptiveMaxPool1d(1), nn.Flatten(),
        nn.Linear(3, 2),
    )  # fmt: skip


def _pooled_cnn():
    return nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.ELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 2),
    )  # fmt: skip


def _batchnorm_mlp():
    return nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))


def _image(generator):
    return torch.randn(B, 2, 6, 6, generator=generator)


MODELS = {
    "mlp-elu": (lambda: MLP((3, 5, 4, 2), "elu").torch_module(), lambda g: torch.randn(B, 3, generator=g)),
    "mlp-relu": (lambda: MLP((3, 4, 2), "relu").torch_module(), lambda g: torch.randn(B, 3, generator=g)),
    "mlp-gelu-sigmoid": (_sequential_mlp, lambda g: torch.randn(B, 3, generator=g)),
    "mlp-batchnorm": (_batchnorm_mlp, lambda g: torch.randn(B, 3, generator=g)),
    "cnn": (SmallCNN, _image),
    "cnn-adaptive-pool": (_pooled_cnn, _image),
    "cnn-flatten": (FlattenCNN, _image),
    "conv1d": (_conv1d, lambda g: torch.randn(B, 2, 7, generator=g)),
    "lstm": (lambda: LSTM(3, 4, 2, 2).torch_module(), lambda g: torch.randn(B, 5, 3, generator=g)),
    "gru": (lambda: GRU(3, 4, 2, 2).torch_module(), lambda g: torch.randn(B, 5, 3, generator=g)),
    "rnn": (lambda: RNN(3, 4, 1, 2).torch_module(), lambda g: torch.randn(B, 5, 3, generator=g)),
    "residual-layernorm": (ResidualBlock, lambda g: torch.randn(B, 3, generator=g)),
    "input-residual": (InputResidual, lambda g: torch.randn(B, 3, generator=g)),
    "embedding-lstm": (SequenceClassifier, lambda g: torch.randint(0, 7, (B, 5), generator=g)),
    "shared-layer": (SharedLayer, lambda g: torch.randn(B, 3, generator=g)),
    "lstm-final-state": (FinalState, lambda g: torch.randn(5, B, 3, generator=g)),
    "pool-view": (PoolView, _image),
    "manual-norm": (ManualNorm, lambda g: torch.randn(B, 3, generator=g)),
}


def _build(name):
    """The module with every weight and statistic random (no equal gains a permutation could
    miss), in eval mode, and a batch of inputs."""
    make, inputs = MODELS[name]
    torch.manual_seed(0)
    module = make().eval()
    generator = torch.Generator().manual_seed(1)
    state = {}
    for key, value in module.state_dict().items():
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        elif value.is_floating_point():
            state[key] = torch.randn(value.shape, generator=generator) * 0.7
        else:
            state[key] = value
    module.load_state_dict(state)
    return module, inputs(generator)


def _outputs(module, x):
    with torch.no_grad():
        out = module(x)
    return out[0] if isinstance(out, tuple) else out  # a TorchSubject's state is in the hidden basis


def _with(module, weights: Population):
    """A copy of ``module`` carrying network 0 of ``weights`` (num_batches_tracked is restored by torch)."""
    other = copy.deepcopy(module)
    other.load_state_dict(weights.state_dict(0))
    return other


def _one_axis(spec: WeightSpec, tensor: str, axis: int) -> WeightSpec:
    """``spec`` with a permutation on one axis of one tensor and nowhere else (gate blocks kept)."""
    target = spec[tensor].axes[axis]
    tensors = tuple(
        replace(
            t,
            axes=tuple(
                replace(a, permutation="p" if (t.name, i) == (tensor, axis) else None) for i, a in enumerate(t.axes)
            ),
        )
        for t in spec.tensors
    )
    return replace(spec, tensors=tensors, permutations={"p": target.size // target.blocks})


def _shift_one_axis(spec, weights, tensor, axis):
    """Permute only ``tensor``'s ``axis`` by a cyclic shift (moves every unit)."""
    one = _one_axis(spec, tensor, axis)
    n = one.permutations["p"]
    return permute(Population(one, dict(weights)), {"p": torch.roll(torch.arange(n), 1)})


def _axes(spec, labelled: bool):
    return [
        (t.name, i)
        for t in spec.tensors
        for i, a in enumerate(t.axes)
        if (a.permutation is not None) == labelled and a.size // a.blocks > 1
    ]


@pytest.mark.parametrize("name", MODELS)
def test_a_random_correct_permutation_keeps_the_function(name):
    module, x = _build(name)
    spec = WeightSpec.from_module(module)
    weights = Population.from_state_dicts(spec, [module.state_dict()])
    perms = random_permutations(spec, 1, torch.Generator().manual_seed(2))
    permuted = permute(weights, perms)
    assert all(not torch.equal(permuted[n], weights[n]) for n, _ in _axes(spec, True))
    torch.testing.assert_close(_outputs(_with(module, permuted), x), _outputs(module, x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("labelled", [True, False], ids=["labelled", "unlabelled"])
@pytest.mark.parametrize("name", MODELS)
def test_shifting_any_single_axis_alone_changes_the_function(name, labelled):
    """A labelled axis permuted alone (not with the rest of its permutation), or an axis the spec
    leaves unlabelled, changes the outputs: the spec claims no symmetry the network lacks."""
    module, x = _build(name)
    spec = WeightSpec.from_module(module)
    weights = Population.from_state_dicts(spec, [module.state_dict()])
    reference = _outputs(module, x)
    for tensor, axis in _axes(spec, labelled=labelled):
        changed = _outputs(_with(module, _shift_one_axis(spec, weights, tensor, axis)), x)
        assert not torch.allclose(changed, reference, atol=1e-4), f"{tensor} axis {axis} alone changed nothing"


@pytest.mark.parametrize("name", MODELS)
def test_input_and_output_axes_are_never_permutable(name):
    module, _ = _build(name)
    spec = WeightSpec.from_module(module)
    first, last = spec.tensors[0], [t for t in spec.tensors if t.layer == spec.tensors[-1].layer]
    assert first.axes[0 if first.name == "embed.weight" else 1].permutation is None  # vocabulary, features
    assert all(t.axes[0].permutation is None for t in last)
    kernels = [a for t in spec.tensors if t.name.endswith("weight") and len(t.axes) > 2 for a in t.axes[2:]]
    assert all(a.permutation is None for a in kernels)


def test_flattening_channels_into_features_fixes_them():
    module, x = _build("cnn-flatten")
    spec = WeightSpec.from_module(module)
    assert spec.permutations == {} and spec["conv.weight"].axes[0].permutation is None
    # the channel permutation an elementwise path would allow (conv rows and bias) changes the outputs
    rolled = {n: t.clone() for n, t in module.state_dict().items()}
    for n in ("conv.weight", "conv.bias"):
        rolled[n] = rolled[n][[1, 2, 0]]
    assert not torch.allclose(
        _outputs(_with(module, Population.from_state_dicts(spec, [rolled])), x), _outputs(module, x)
    )


def test_residual_connections_tie_their_axes():
    spec = WeightSpec.from_module(ResidualBlock())
    stream = spec["inp.weight"].axes[0].permutation
    assert stream is not None
    tied = [
        ("w2.weight", 0),
        ("w2.bias", 0),
        ("w1.weight", 1),
        ("norm.weight", 0),
        ("final_norm.bias", 0),
        ("out.weight", 1),
    ]
    assert all(spec[n].axes[i].permutation == stream for n, i in tied)
    assert set(spec.permutations) == {"h0", "h1"} and spec["w1.weight"].axes[0].permutation == "h1"
    residual_on_input = WeightSpec.from_module(InputResidual())
    assert residual_on_input["w2.weight"].axes[0].permutation is None
    assert residual_on_input.permutations == {"h0": 4}


class TiedEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.mid, self.out = nn.Embedding(6, 4), nn.Linear(4, 4), nn.Linear(4, 6, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens):
        return self.out(torch.tanh(self.mid(self.embed(tokens))))


def test_tied_weights_are_permuted_alike_under_both_names():
    torch.manual_seed(0)
    module, tokens = TiedEmbedding().eval(), torch.arange(6).repeat(2, 1)
    spec = WeightSpec.from_module(module)
    assert spec["embed.weight"].axes == spec["out.weight"].axes == (Axis(6), Axis(4, "h0"))
    weights = Population.from_state_dicts(spec, [module.state_dict()])
    permuted = permute(weights, random_permutations(spec, 1, torch.Generator().manual_seed(3)))
    torch.testing.assert_close(_outputs(_with(module, permuted), tokens), _outputs(module, tokens))


@pytest.mark.parametrize(
    "architecture", [LSTM(3, 5, 1, 2), LSTM(2, 4, 3, 3), GRU(3, 5, 2, 1), RNN(1, 3, 2, 2), RNN(4, 6, 1, 4)]
)
def test_recurrent_specs_equal_the_hand_written_ones(architecture):
    module, generator_state = architecture.torch_module(), torch.get_rng_state()
    derived = WeightSpec.from_module(module)
    assert torch.equal(torch.get_rng_state(), generator_state)  # deriving a spec draws nothing
    assert derived.tensors == architecture.spec.tensors
    assert dict(derived.permutations) == dict(architecture.spec.permutations)
    assert derived == architecture.spec  # the module is exactly the family's: its name and config too


@pytest.mark.parametrize("mlp", [MLP((3, 2), "tanh"), MLP((4, 8, 3), "relu"), MLP((2, 5, 6, 4, 1), "elu")])
def test_mlp_specs_equal_the_hand_written_ones(mlp):
    derived = WeightSpec.from_module(mlp.torch_module())
    assert derived.tensors == mlp.spec.tensors
    assert dict(derived.permutations) == dict(mlp.spec.permutations)


def test_population_accepts_num_batches_tracked_and_stays_strict():
    module, _ = _build("cnn")
    spec = WeightSpec.from_module(module)
    assert "norm.num_batches_tracked" not in spec.names and "norm.running_var" in spec.names
    state = module.state_dict()
    assert Population.from_state_dicts(spec, [state, state]).size == 2
    with pytest.raises(WeightspaceError, match="unexpected"):
        Population.from_state_dicts(spec, [{**state, "norm.extra": torch.zeros(4)}])
    plain = WeightSpec.from_module(module, symmetries=False)
    assert plain.names == spec.names and plain.permutations == {}
    assert [t.shape for t in plain.tensors] == [t.shape for t in spec.tensors]
    fresh = initialize(spec, [0, 1])
    assert (fresh["norm.running_var"] > 0).all() and (fresh["norm.weight"] > 0).all()


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj, self.attn = nn.Linear(3, 4), nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x):
        h = self.proj(x)
        return self.attn(h, h, h)[0]


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return x * self.gain


class WithScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.scale = nn.Linear(3, 4), Scale()

    def forward(self, x):
        return self.scale(self.lin(x))


class Branching(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4)

    def forward(self, x):
        return self.lin(x) if x.sum() > 0 else -x


class Gram(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.out = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.lin(x)
        return self.out(torch.matmul(h.transpose(-1, -2), h).sum(-1))


@pytest.mark.parametrize(
    "module, named",
    [
        (Attention(), "attn (MultiheadAttention)"),
        (WithScale(), "scale (Scale)"),
        (Branching(), "Branching"),
        (Gram(), "matmul"),
        (nn.Sequential(nn.LSTM(3, 4, bidirectional=True)), "0 (LSTM)"),
    ],
)
def test_unanalysable_modules_are_refused_in_one_line_and_symmetries_false_still_works(module, named):
    with pytest.raises(UnsupportedModuleError) as error:
        WeightSpec.from_module(module)
    assert named in str(error.value) and "\n" not in str(error.value)
    plain = WeightSpec.from_module(module, symmetries=False)
    assert plain.names == list(module.state_dict()) and plain.permutations == {}
    assert all(a.permutation is None for t in plain.tensors for a in t.axes)
    assert Population.from_state_dicts(plain, [module.state_dict()]).size == 1
