"""A :class:`WeightSpec` derived from a ``torch.nn.Module``: read off its ``torch.fx`` graph.

``WeightSpec.from_module(module)`` traces the module (standard ``torch.nn`` layers stay leaves)
and follows every tensor through the graph with an abstract value that records, per axis
(counted from the end, as broadcasting does), which hidden-axis variable it carries. Every
layer that writes features (``Linear``, ``Conv1d``/``Conv2d``, ``Embedding``, each layer of an
``LSTM``/``GRU``/``RNN``) creates a variable; a layer that reads them ties its input axis to the
variable it finds there. A variable is a hidden-neuron permutation unless something fixes it:

* an input axis is never permutable (graph inputs carry no variable: a layer reading one gets a
  fixed column axis), and neither is an axis the graph output depends on without passing a
  parametrised layer;
* elementwise operations (activations, dropout, softmax, arithmetic) keep the axes; a residual
  ``x + f(x)`` ties the variables it joins into one permutation, and an operand without a
  variable there (a graph input, a buffer that is not a scalar) fixes it;
* a layer called twice ties both calls' input axes, and a parameter registered under two names
  (tied weights) gets the same labels under both;
* ``LayerNorm`` over the feature axes and ``BatchNorm`` over channels carry the permutation
  through: their weight, bias and running statistics are permuted with it;
* pooling over spatial axes and ``mean``/``sum``/``amax``... over any axis keep the channels; a
  reduction over a hidden axis is permutation-invariant, so it fixes nothing;
* ``flatten``/``view(N, -1)`` keep a channel axis only when every other axis merged with it is
  known to have size 1 (after an adaptive pool to 1 or a ``keepdim`` mean): flattening
  ``(C, H, W)`` into features fixes the channels, the conservative answer; other reshapes,
  concatenation along a hidden axis, indexing into one, grouped convolutions fix what they touch;
* an operation this module does not know that touches a hidden axis, a parametrised layer it
  does not support, a parameter used outside a supported layer, and control flow that
  ``torch.fx`` cannot trace raise :class:`~weightspace.errors.UnsupportedModuleError`, one line
  naming the layer (qualified name and type).

An RNN's recurrent state is in the hidden basis: the ``h0``/``c0`` it gets from the caller and
the ``(h_n, c_n)`` it returns are permuted with the hidden axes, as in the hand-written
recurrent specs, so returning the state from the graph does not fix them (the outputs that must
not change are the others).

Ranks are mostly unknown (a graph input has no shape); convolutions, ``BatchNorm2d`` and RNNs
assume batched inputs, and ``BatchNorm1d`` on an input of unknown rank takes its channels at the
axis whose variable has ``num_features`` entries (last, then second to last). Bidirectional
RNNs and LSTMs with ``proj_size`` are refused.

``num_batches_tracked`` (BatchNorm's step counter) is bookkeeping, not a weight: it is left out
of the spec, :meth:`WeightSpec.check_state_dict` accepts state dicts that carry it, and torch
restores it when a state dict without it is loaded.

Permutation ids are ``h0``, ``h1``, ... in the topological order of the layers that write them,
and ``TensorSpec.layer`` counts layers in topological order (each RNN layer is one; modules the
forward never calls come last, unlabelled); tensors are listed layer by layer, each layer's in
state-dict order. ``init_bound``/``init_center`` follow PyTorch's default initialisation. So a
``TorchSubject`` or an ``MLP``'s ``nn.Sequential`` gives exactly the hand-written spec (with its
architecture and config when the module is exactly that family's ``torch_module()``).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

import torch
import torch.fx
from torch import nn
from torch.nn import functional as F

from ..errors import UnsupportedModuleError
from .mlp import ACTIVATIONS, MLP
from .recurrent import GRU, LSTM, RNN, TorchSubject
from .weights import Axis, TensorSpec, WeightSpec, is_bookkeeping


def spec_from_module(module: nn.Module, symmetries: bool = True) -> WeightSpec:
    """The :class:`WeightSpec` of ``module``'s state dict (see the module docstring).

    ``symmetries=False`` labels no axis at all and reads only the state dict, so it works for any
    module whose state dict holds tensors.
    """
    if not symmetries:
        return _plain_spec(module)
    analysis = _Analysis(module)
    analysis.run()
    spec = analysis.spec()
    return _known_architecture(module, spec) or spec


# Default initialisation ---------------------------------------------------------------------------
def _default_init(owner: nn.Module, local_name: str, tensor: torch.Tensor) -> tuple[float, float]:
    """(init_bound, init_center) of PyTorch's default init of ``owner``'s tensor ``local_name``.

    Norm layers start at ones (weights, running variances) and zeros; ``initialize`` draws
    ``center +- bound`` and DWSNet divides by the bound, so norms get bound 1.0 as a scale
    placeholder around the centre PyTorch uses.
    """
    if isinstance(owner, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        fan_in = owner.weight[0].numel()
        return 1.0 / fan_in**0.5, 0.0
    if isinstance(owner, nn.RNNBase):
        return 1.0 / owner.hidden_size**0.5, 0.0
    if isinstance(owner, nn.Embedding):
        return math.sqrt(3.0), 0.0  # N(0, 1) in torch: the uniform of the same variance
    if isinstance(owner, _NORMS):
        return 1.0, 1.0 if local_name in ("weight", "running_var") else 0.0
    if tensor.ndim >= 2:
        return 1.0 / tensor[0].numel() ** 0.5, 0.0
    return 1.0, 0.0


def _sublayer(owner: nn.Module, local_name: str) -> int:
    """Which of ``owner``'s layers holds ``local_name``: ``_l{k}`` of a multi-layer RNN, else 0."""
    match = re.search(r"_l(\d+)$", local_name) if isinstance(owner, nn.RNNBase) else None
    return int(match.group(1)) if match else 0


def _layer_count(owner: nn.Module) -> int:
    return owner.num_layers if isinstance(owner, nn.RNNBase) else 1


def _state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict minus bookkeeping buffers, with the parameters themselves (for aliasing)."""
    state = module.state_dict(keep_vars=True)
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise UnsupportedModuleError(f"{name}: the state dict holds a {type(value).__name__}, not a tensor")
    return {name: value for name, value in state.items() if not is_bookkeeping(name)}


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str, str]:
    path, _, local = name.rpartition(".")
    return module.get_submodule(path), path, local


def _plain_spec(module: nn.Module) -> WeightSpec:
    """Every tensor of the state dict, no axis permutable; layers counted in state-dict order."""
    tensors, first_layer, next_layer = [], {}, 0
    for name, value in _state_tensors(module).items():
        owner, path, local = _owner(module, name)
        if path not in first_layer:
            first_layer[path], next_layer = next_layer, next_layer + _layer_count(owner)
        bound, center = _default_init(owner, local, value)
        axes = tuple(Axis(n) for n in value.shape)
        tensors.append(TensorSpec(name, axes, bound, first_layer[path] + _sublayer(owner, local), center))
    return WeightSpec("module", {"module": type(module).__name__}, tuple(tensors), {})


def _known_architecture(module: nn.Module, spec: WeightSpec) -> WeightSpec | None:
    """The family's own spec when ``module`` is exactly a ``TorchSubject`` or an ``MLP``'s
    ``torch_module()`` (same repr) and the derived layout equals the hand-written one."""
    candidate = None
    if type(module) is TorchSubject and type(module.readout) is nn.Linear:
        family = {nn.LSTM: LSTM, nn.GRU: GRU, nn.RNN: RNN}.get(type(module.rnn))
        if family is not None:
            rnn = module.rnn
            candidate = family(rnn.input_size, rnn.hidden_size, rnn.num_layers, module.readout.out_features)
    elif type(module) is nn.Sequential and len(module) % 2 == 1 and all(type(m) is nn.Linear for m in module[::2]):
        names = {modules[0]: name for name, modules in ACTIVATIONS.items()}
        activation = names.get(type(module[1]), "elu") if len(module) > 1 else "elu"
        candidate = MLP((module[0].in_features, *(m.out_features for m in module[::2])), activation)
    if candidate is None:
        return None
    with torch.device("meta"):  # no memory, and torch's random generator is left alone
        if repr(candidate.torch_module()) != repr(module):
            return None
    family_spec = candidate.spec
    if family_spec.tensors != spec.tensors or dict(family_spec.permutations) != dict(spec.permutations):
        return None
    return family_spec


# Abstract values ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tensor:
    """What the analysis knows about a tensor: its rank (None: unknown), the hidden-axis variable
    at each position counted from the end, and the positions known to have size 1."""

    rank: int | None = None
    axes: Mapping[int, int] = field(default_factory=dict)
    unit: frozenset[int] = frozenset()
    #: every element equal (a scalar, ``zeros``): invariant under every permutation
    uniform: bool = False
    #: a graph input itself (an RNN state given by the caller is in the hidden basis)
    graph_input: bool = False
    #: an RNN's returned h_n/c_n: index i of dim 0 carries layer i's variable at position -1
    layer_states: tuple[int, ...] | None = None


@dataclass(frozen=True)
class _Seq:
    """A tuple a node returns (an RNN's ``(output, state)``, ``max(dim)``'s values and indices)."""

    items: tuple


@dataclass(frozen=True)
class _Other:
    """A non-tensor value (a size, a dtype); ``size_of`` remembers ``x.size(0)``-style sizes."""

    size_of: tuple | None = None
    shape_of: torch.fx.Node | None = None


_UNKNOWN = _Tensor()
_NORMS = (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())
_GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}

_ELEMENTWISE_MODULES = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Softsign, nn.LogSigmoid,
    nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Threshold, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.AlphaDropout, nn.Softmax, nn.LogSoftmax,
)  # fmt: skip
_ELEMENTWISE_NAMES = (
    "relu relu_ relu6 leaky_relu elu selu celu gelu silu mish sigmoid tanh hardtanh hardswish hardsigmoid "
    "softplus softsign logsigmoid tanhshrink softshrink hardshrink threshold dropout dropout1d dropout2d "
    "alpha_dropout softmax log_softmax normalize exp log log1p expm1 abs neg sqrt rsqrt square sin cos erf "
    "clamp clip add sub mul div true_divide maximum minimum pow where"
).split()
_ELEMENTWISE_FUNCTIONS = {
    getattr(namespace, name) for namespace in (torch, F) for name in _ELEMENTWISE_NAMES if hasattr(namespace, name)
} | {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.pow, operator.neg, operator.pos,
    operator.gt, operator.ge, operator.lt, operator.le, operator.eq, operator.ne,
}  # fmt: skip
_ELEMENTWISE_METHODS = set(_ELEMENTWISE_NAMES) | {
    "add_", "mul_", "sub_", "div_", "tanh_", "sigmoid_", "gt", "ge", "lt", "le", "eq", "ne", "masked_fill",
}  # fmt: skip
_IDENTITY_METHODS = {"contiguous", "detach", "clone", "float", "double", "half", "bfloat16", "to", "type", "cpu"}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "logsumexp", "prod", "std", "var"}
_UNIFORM_FUNCTIONS = {torch.zeros, torch.ones, torch.full, torch.zeros_like, torch.ones_like, torch.full_like}
_POOLS = {
    nn.MaxPool1d: 1, nn.AvgPool1d: 1, nn.AdaptiveAvgPool1d: 1, nn.AdaptiveMaxPool1d: 1,
    nn.MaxPool2d: 2, nn.AvgPool2d: 2, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveMaxPool2d: 2,
}  # fmt: skip
_POOL_FUNCTIONS = {
    F.max_pool1d: 1, F.avg_pool1d: 1, F.adaptive_avg_pool1d: 1, F.adaptive_max_pool1d: 1,
    F.max_pool2d: 2, F.avg_pool2d: 2, F.adaptive_avg_pool2d: 2, F.adaptive_max_pool2d: 2,
}  # fmt: skip


def _walk(value) -> Iterator[_Tensor]:
    """Every abstract tensor inside a (nested) argument."""
    if isinstance(value, _Tensor):
        yield value
    elif isinstance(value, _Seq):
        for item in value.items:
            yield from _walk(item)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, slice):
        yield from _walk((value.start, value.stop, value.step))


def _position(dim, rank: int | None) -> int | None:
    """Dimension ``dim`` as a position from the end (-1 last); None where the rank is needed."""
    if not isinstance(dim, int):
        return None
    if dim < 0:
        return dim
    return dim - rank if rank is not None else None


def _lacks(tensor: _Tensor, position: int) -> bool:
    """Whether the tensor has no axis at ``position`` (broadcasting adds one of size 1)."""
    return tensor.rank is not None and -position > tensor.rank


def _argument(args, kwargs, index: int, name: str, default=None):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


class _Tracer(torch.fx.Tracer):
    """symbolic_trace's tracer, remembering which submodule it was tracing when it failed."""

    def __init__(self):
        super().__init__()
        self.path: list[str] = []

    def call_module(self, m, forward, args, kwargs):
        self.path.append(self.path_of_module(m))
        result = super().call_module(m, forward, args, kwargs)
        self.path.pop()
        return result


# The analysis ---------------------------------------------------------------------------------------
class _Analysis:
    def __init__(self, module: nn.Module):
        self.module = module
        # union-find over hidden-axis variables; a class joined with a fixed one is not permutable
        self.parent: list[int] = []
        self.sizes: list[int] = []
        self.fixed: list[bool] = []
        self.writers: list[int] = []  # variables in the topological order of the layers writing them
        self.values: dict[torch.fx.Node, object] = {}
        self.layers: dict[str, dict] = {}  # qualified name -> the layer's variables
        self.tensors: dict[str, tuple[tuple[tuple[int, int | None, int], ...], int]] = {}
        self.next_layer = 0

    # union-find ---------------------------------------------------------------------------------
    def _new(self, size: int, writer: bool = False) -> int:
        self.parent.append(len(self.parent))
        self.sizes.append(size)
        self.fixed.append(False)
        if writer:
            self.writers.append(len(self.parent) - 1)
        return len(self.parent) - 1

    def _find(self, v: int) -> int:
        while self.parent[v] != v:
            self.parent[v] = self.parent[self.parent[v]]
            v = self.parent[v]
        return v

    def _fix(self, v: int | None) -> None:
        if v is not None:
            self.fixed[self._find(v)] = True

    def _tie(self, a: int | None, b: int | None) -> None:
        """One permutation acts on both; None (a non-permutable axis) fixes the other."""
        if a is None or b is None:
            self._fix(a if b is None else b)
            return
        a, b = self._find(a), self._find(b)
        if a == b:
            return
        if self.sizes[a] != self.sizes[b]:
            self.fixed[a] = self.fixed[b] = True
            return
        self.parent[b] = a
        self.fixed[a] = self.fixed[a] or self.fixed[b]

    def _fix_all(self, value) -> None:
        for tensor in _walk(value):
            for v in tensor.axes.values():
                self._fix(v)
            for v in tensor.layer_states or ():
                self._fix(v)

    # running ------------------------------------------------------------------------------------
    def run(self) -> None:
        tracer = _Tracer()
        try:
            graph = tracer.trace(self.module)
        except Exception as error:  # any failure of tracing means: not analysable
            where = tracer.path[-1] if tracer.path else None
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise _refusal(f"cannot trace {self._describe(where)} with torch.fx ({reason})") from None
        for node in graph.nodes:
            self.values[node] = self._evaluate(node)

    def _describe(self, path: str | None) -> str:
        target = self.module if not path else self.module.get_submodule(path)
        return f"{path or '<root>'} ({type(target).__name__})"

    def _where(self, node: torch.fx.Node) -> str:
        stack = node.meta.get("nn_module_stack") or {}
        return f" in {self._describe(list(stack.values())[-1][0] if stack else None)}"

    def _refuse(self, node: torch.fx.Node, what: str) -> UnsupportedModuleError:
        where = "" if node.op == "call_module" else self._where(node)
        return _refusal(f"cannot analyse {what}{where}: it touches a hidden axis")

    def _load(self, arg):
        return torch.fx.node.map_arg(arg, lambda n: self.values[n])

    def _evaluate(self, node: torch.fx.Node):
        args, kwargs = self._load(node.args), self._load(node.kwargs)
        if node.op == "placeholder":
            return _Tensor(graph_input=True)
        if node.op == "get_attr":
            return self._attribute(node)
        if node.op == "output":
            for tensor in _walk(args):
                if tensor.layer_states is None:
                    self._fix_all(tensor)
            return None
        if node.op == "call_module":
            return self._call_module(node, self.module.get_submodule(node.target), args, kwargs)
        if node.op == "call_function":
            return self._call_function(node, node.target, args, kwargs)
        return self._call_method(node, node.target, args, kwargs)

    def _attribute(self, node: torch.fx.Node):
        path, _, name = node.target.rpartition(".")
        value = getattr(self.module.get_submodule(path), name)
        if isinstance(value, nn.Parameter):
            raise _refusal(f"{self._describe(path)} uses its parameter {name!r} outside a supported layer")
        if isinstance(value, torch.Tensor):
            unit = frozenset(p - value.ndim for p, n in enumerate(value.shape) if n == 1)
            return _Tensor(value.ndim, {}, unit, uniform=value.numel() <= 1)
        return _Other()

    # values -------------------------------------------------------------------------------------
    def _plain(self, value) -> _Tensor:
        """``value`` as an ordinary tensor: an RNN's stacked states of several layers mix their
        variables along one axis, which fixes them."""
        if not isinstance(value, _Tensor):
            return _UNKNOWN
        if value.layer_states is None:
            return replace(value, graph_input=False)
        if len(value.layer_states) > 1:
            self._fix_all(value)
            return _Tensor(value.rank)
        return replace(value, layer_states=None, graph_input=False)

    def _elementwise(self, operands) -> _Tensor:
        """Broadcasting elementwise op: same variables at the same positions become one."""
        tensors = [self._plain(t) for t in _walk(operands)]
        if not tensors:
            return _Other()  # arithmetic on sizes
        ranks = [t.rank for t in tensors]
        rank = None if None in ranks else max(ranks)
        positions = sorted({p for t in tensors for p in t.axes} | {p for t in tensors for p in t.unit})
        axes, unit = {}, set()
        for p in positions:
            found = [t.axes[p] for t in tensors if p in t.axes]
            if not found:
                if all(p in t.unit or _lacks(t, p) for t in tensors):
                    unit.add(p)
                continue
            for v in found[1:]:
                self._tie(found[0], v)
            # an operand without the variable must be the same along the axis: a constant, a
            # size-1 axis or no axis there; anything else (an input, a buffer) fixes it
            if not all(t.uniform or p in t.unit or _lacks(t, p) for t in tensors if p not in t.axes):
                self._fix(found[0])
            axes[p] = found[0]
        return _Tensor(rank, axes, frozenset(unit), uniform=all(t.uniform for t in tensors))

    def _as_dims(self, x: _Tensor) -> list[tuple[int | None, bool]]:
        """(variable, size-1) per dimension, first to last; needs the rank."""
        return [(x.axes.get(p), p in x.unit) for p in range(-x.rank, 0)]

    @staticmethod
    def _from_dims(dims: list[tuple[int | None, bool]]) -> _Tensor:
        rank = len(dims)
        axes = {i - rank: v for i, (v, _) in enumerate(dims) if v is not None}
        return _Tensor(rank, axes, frozenset(i - rank for i, (_, u) in enumerate(dims) if u))

    def _give_up(self, x) -> _Tensor:
        """The conservative answer for a shape change the analysis cannot follow."""
        self._fix_all(x)
        return _UNKNOWN

    # shape operations ---------------------------------------------------------------------------
    def _reduce(self, x: _Tensor, dims, keepdim: bool) -> _Tensor:
        x = self._plain(x)
        if dims is None:
            return _Tensor(x.rank if keepdim else 0, uniform=True)  # symmetric in every permutation
        dims = dims if isinstance(dims, (tuple, list)) else (dims,)
        reduced = {_position(d, x.rank) for d in dims}
        if None in reduced:
            return self._give_up(x)
        if keepdim:
            axes = {p: v for p, v in x.axes.items() if p not in reduced}
            return _Tensor(x.rank, axes, x.unit | reduced)

        def moved(p):
            return p + sum(1 for r in reduced if r > p)

        axes = {moved(p): v for p, v in x.axes.items() if p not in reduced}
        unit = frozenset(moved(p) for p in x.unit if p not in reduced)
        return _Tensor(None if x.rank is None else x.rank - len(reduced), axes, unit)

    def _flatten(self, x: _Tensor, start, end) -> _Tensor:
        x = self._plain(x)
        s, e = _position(start, x.rank), _position(end, x.rank)
        if s is None or e is None:
            return self._give_up(x)
        merged = range(s, e + 1)
        inside = [p for p in merged if p in x.axes]
        axes = {p + (e - s) if p < s else p: v for p, v in x.axes.items() if p not in merged}
        unit = {p + (e - s) if p < s else p for p in x.unit if p not in merged}
        if len(inside) == 1 and all(p in x.unit for p in merged if p != inside[0]):
            axes[e] = x.axes[inside[0]]  # the other merged axes have size 1: the order is kept
        else:
            for p in inside:
                self._fix(x.axes[p])
            if all(p in x.unit for p in merged):
                unit.add(e)
        return _Tensor(None if x.rank is None else x.rank - (e - s), axes, frozenset(unit))

    def _reshape(self, node: torch.fx.Node, x: _Tensor, shape) -> _Tensor:
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
        source = node.args[0]
        if len(shape) == 2 and shape[1] == -1 and isinstance(shape[0], _Other) and x.rank is not None:
            if shape[0].size_of in ((source, 0), (source, -x.rank)):
                return self._flatten(x, 1, -1)  # x.view(x.size(0), -1)
        self._fix_all(x)
        return _Tensor(len(shape)) if all(isinstance(n, (int, _Other)) for n in shape) else _UNKNOWN

    def _transpose(self, x: _Tensor, order: list[int | None]) -> _Tensor:
        x = self._plain(x)
        if x.rank is None or None in order or sorted(order) != list(range(-x.rank, 0)):
            return self._give_up(x)
        dims = self._as_dims(x)
        return self._from_dims([dims[p + x.rank] for p in order])

    def _unsqueeze(self, x: _Tensor, dim) -> _Tensor:
        x = self._plain(x)
        p = _position(dim, None if x.rank is None else x.rank + 1)
        if p is None:
            return self._give_up(x)
        axes = {q - 1 if q <= p else q: v for q, v in x.axes.items()}
        unit = {q - 1 if q <= p else q for q in x.unit} | {p}
        return _Tensor(None if x.rank is None else x.rank + 1, axes, frozenset(unit))

    def _squeeze(self, x: _Tensor, dim) -> _Tensor:
        x = self._plain(x)
        p = _position(dim, x.rank)
        if p is None:
            return self._give_up(x)
        self._fix(x.axes.get(p))
        axes = {q + 1 if q < p else q: v for q, v in x.axes.items() if q != p}
        unit = {q + 1 if q < p else q for q in x.unit if q != p}
        return _Tensor(None if x.rank is None else x.rank - 1, axes, frozenset(unit))

    def _getitem(self, x, index):
        if isinstance(x, _Seq):
            return x.items[index] if isinstance(index, int) else _Seq(x.items[index])
        if isinstance(x, _Other):
            return _Other(size_of=(x.shape_of, index)) if x.shape_of is not None and isinstance(index, int) else x
        if not isinstance(x, _Tensor):
            return _UNKNOWN
        index = index if isinstance(index, tuple) else (index,)
        if x.rank is None or any(isinstance(i, _Tensor) for i in index):
            return self._give_up(x)  # advanced indexing, or positions that need the rank
        consuming = sum(1 for i in index if i is not None and i is not Ellipsis)
        if Ellipsis in index:
            at = index.index(Ellipsis)
            index = index[:at] + (slice(None),) * (x.rank - consuming) + index[at + 1 :]
        dims, states = self._as_dims(x), x.layer_states
        out, d = [], 0
        for i in index:
            if i is None:
                out.append((None, True))
                continue
            var, unit = dims[d]
            if isinstance(i, slice):
                if i != slice(None):
                    self._fix(var)  # a part of a hidden axis
                out.append((var, unit))
            elif states is not None and d == 0 and isinstance(i, int):
                dims[-1] = (states[i], dims[-1][1])  # h_n[k]: layer k's state
                states = None
            else:
                self._fix(var)  # one unit of a hidden axis
            d += 1
        out += dims[d:]
        if states is not None and len(states) > 1:
            return x if out == dims else self._give_up(x)
        return self._from_dims(out)

    def _cat(self, tensors, dim) -> _Tensor:
        tensors = [self._plain(t) for t in tensors]
        rank = tensors[0].rank if tensors else None
        p = _position(dim, rank)
        if p is None:
            return self._give_up(tensors)
        for t in tensors:
            self._fix(t.axes.get(p))
        out = self._elementwise([replace(t, axes={q: v for q, v in t.axes.items() if q != p}) for t in tensors])
        return replace(out, unit=out.unit - {p}, uniform=False)

    def _pool(self, x: _Tensor, spatial: int, to_one: bool) -> _Tensor:
        x = self._plain(x)
        positions = set(range(-spatial, 0))
        for p in positions:
            self._fix(x.axes.get(p))
        axes = {p: v for p, v in x.axes.items() if p not in positions}
        return _Tensor(x.rank, axes, (x.unit - positions) | (positions if to_one else frozenset()))

    # calls --------------------------------------------------------------------------------------
    def _call_function(self, node, target, args, kwargs):
        if target is operator.getitem:
            return self._getitem(args[0], args[1])
        if target is getattr:
            if args[1] == "shape":
                return _Other(shape_of=node.args[0])
            if args[1] in ("T", "mT"):
                return self._call_method(node, "transpose", (args[0], -2, -1), {})
            if args[1] in ("dtype", "device", "ndim", "is_cuda", "requires_grad"):
                return _Other()
            if isinstance(args[0], _Seq) and args[1] in ("values", "indices"):
                return args[0].items[args[1] == "indices"]  # x.max(dim).values
            return self._unknown(node, f".{args[1]}", args[0])
        if target in _ELEMENTWISE_FUNCTIONS:
            return self._elementwise((args, kwargs))
        if target in _UNIFORM_FUNCTIONS:
            return _Tensor(uniform=True)
        if target is torch.flatten:
            start, end = _argument(args, kwargs, 1, "start_dim", 0), _argument(args, kwargs, 2, "end_dim", -1)
            return self._flatten(args[0], start, end)
        if target is torch.reshape:
            return self._reshape(node, args[0], (args[1],))
        if target in (torch.transpose, torch.swapaxes):
            return self._call_method(node, "transpose", args, kwargs)
        if target is torch.cat or target is torch.concat:
            return self._cat(args[0], _argument(args, kwargs, 1, "dim", 0))
        if target in _POOL_FUNCTIONS:
            if kwargs.get("return_indices"):
                raise self._refuse(node, f"{target.__name__}(return_indices=True)")
            size = _argument(args, kwargs, 1, "output_size")
            adaptive = "adaptive" in target.__name__
            return self._pool(args[0], _POOL_FUNCTIONS[target], adaptive and _all_ones(size))
        if target in (torch.mean, torch.sum, torch.amax, torch.amin, torch.logsumexp, torch.prod):
            return self._reduce(
                args[0], _argument(args, kwargs, 1, "dim"), _argument(args, kwargs, 2, "keepdim", False)
            )
        if target in (torch.max, torch.min):
            return self._call_method(node, target.__name__, args, kwargs)
        if target in (torch.unsqueeze, torch.squeeze, torch.permute):
            return self._call_method(node, target.__name__, args, kwargs)
        return self._unknown(node, _function_name(target), (args, kwargs))

    def _call_method(self, node, name, args, kwargs):
        x, rest = args[0], args[1:]
        if name in ("size", "shape"):
            dim = _argument(rest, kwargs, 0, "dim")
            return _Other(shape_of=node.args[0]) if dim is None else _Other(size_of=(node.args[0], dim))
        if name in ("dim", "numel", "ndimension", "nelement"):
            return _Other()
        if name in _IDENTITY_METHODS:
            return x
        if name in _ELEMENTWISE_METHODS:
            return self._elementwise((args, kwargs))
        if name in _REDUCTIONS or (name in ("max", "min") and not rest and "dim" not in kwargs):
            if name in ("std", "var"):  # (dim, unbiased, keepdim), with correction= as a keyword
                rest = rest[:1] + rest[2:] if len(rest) > 1 else rest
                rest = () if rest and isinstance(rest[0], bool) else rest
            dim = _argument(rest, kwargs, 0, "dim")
            return self._reduce(x, dim, _argument(rest, kwargs, 1, "keepdim", False))
        if name in ("max", "min"):
            if rest and isinstance(rest[0], _Tensor):
                return self._elementwise((args, kwargs))
            dim = _argument(rest, kwargs, 0, "dim")
            keepdim = _argument(rest, kwargs, 1, "keepdim", False)
            p = _position(dim, self._plain(x).rank)
            values = self._reduce(x, dim, keepdim)
            self._fix(self._plain(x).axes.get(p) if p is not None else None)  # the indices pick units
            return _Seq((values, values))
        if name == "flatten":
            start = _argument(rest, kwargs, 0, "start_dim", 0)
            return self._flatten(x, start, _argument(rest, kwargs, 1, "end_dim", -1))
        if name in ("view", "reshape"):
            return self._reshape(node, self._plain(x), rest)
        if name in ("transpose", "swapaxes"):
            x = self._plain(x)
            a, b = _position(rest[0], x.rank), _position(rest[1], x.rank)
            if a is None or b is None:
                return self._give_up(x)
            axes = dict(x.axes)
            axes.pop(a, None), axes.pop(b, None)
            axes.update({b: x.axes[a]} if a in x.axes else {})
            axes.update({a: x.axes[b]} if b in x.axes else {})
            unit = (x.unit - {a, b}) | ({b} if a in x.unit else set()) | ({a} if b in x.unit else set())
            return _Tensor(x.rank, axes, frozenset(unit))
        if name == "permute":
            order = list(rest[0]) if len(rest) == 1 and isinstance(rest[0], (tuple, list)) else list(rest)
            rank = len(order)
            return self._transpose(x, [_position(d, rank) for d in order])
        if name == "unsqueeze":
            return self._unsqueeze(x, _argument(rest, kwargs, 0, "dim"))
        if name == "squeeze":
            return self._squeeze(x, _argument(rest, kwargs, 0, "dim"))
        return self._unknown(node, f".{name}()", (args, kwargs))

    def _unknown(self, node, what: str, arguments):
        if any(t.axes or t.layer_states for t in _walk(arguments)):
            raise self._refuse(node, what)
        return _UNKNOWN

    def _call_module(self, node, module: nn.Module, args, kwargs):
        kind = type(module)
        if kind in _LAYERS:
            return _LAYERS[kind](self, node, module, args, kwargs)
        if kind in _ELEMENTWISE_MODULES:
            return self._elementwise((args, kwargs))
        if kind in _POOLS:
            if getattr(module, "return_indices", False):
                raise self._refuse(node, f"{kind.__name__}(return_indices=True)")
            return self._pool(args[0], _POOLS[kind], "Adaptive" in kind.__name__ and _all_ones(module.output_size))
        if kind is nn.Flatten:
            return self._flatten(args[0], module.start_dim, module.end_dim)
        if any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
            raise _refusal(f"{self._describe(node.target)} is not a supported layer")
        return self._unknown(node, self._describe(node.target), (args, kwargs))

    # layers -------------------------------------------------------------------------------------
    def _layer(self, name: str, module: nn.Module, make) -> dict:
        """The variables of layer ``name``, made (and its tensors recorded) at its first call, so
        that a layer called twice ties both uses to the same permutation."""
        if name not in self.layers:
            variables = make()
            self.layers[name] = variables
            first = self.next_layer
            self.next_layer += _layer_count(module)
            for local, axes in variables.pop("tensors").items():
                self.tensors[f"{name}.{local}"] = (axes, first + _sublayer(module, local))
        return self.layers[name]

    def _linear(self, node, module: nn.Linear, args, kwargs) -> _Tensor:
        x = self._plain(args[0])
        out, n_in = module.out_features, module.in_features

        def make():
            columns, rows = self._new(n_in), self._new(out, writer=True)
            tensors = {"weight": ((out, rows, 1), (n_in, columns, 1))}
            if module.bias is not None:
                tensors["bias"] = ((out, rows, 1),)
            return {"columns": columns, "rows": rows, "tensors": tensors}

        layer = self._layer(node.target, module, make)
        self._tie(layer["columns"], x.axes.get(-1))
        axes = {**{p: v for p, v in x.axes.items() if p != -1}, -1: layer["rows"]}
        unit = (x.unit - {-1}) | ({-1} if out == 1 else set())
        return _Tensor(x.rank, axes, frozenset(unit))

    def _conv(self, node, module: nn.Conv1d | nn.Conv2d, args, kwargs) -> _Tensor:
        x = self._plain(args[0])
        spatial = len(module.kernel_size)
        channel = -(spatial + 1)
        out, n_in, groups = module.out_channels, module.in_channels, module.groups

        def make():
            columns, rows = self._new(n_in), self._new(out, writer=True)
            if groups != 1:  # channels mix in groups: the conservative answer
                self._fix(columns)
                self._fix(rows)
            kernel = tuple((k, None, 1) for k in module.kernel_size)
            column_axis = (n_in // groups, columns if groups == 1 else None, 1)
            tensors = {"weight": ((out, rows, 1), column_axis, *kernel)}
            if module.bias is not None:
                tensors["bias"] = ((out, rows, 1),)
            return {"columns": columns, "rows": rows, "tensors": tensors}

        layer = self._layer(node.target, module, make)
        self._tie(layer["columns"], x.axes.get(channel))
        for p in range(-spatial, 0):
            self._fix(x.axes.get(p))  # a kernel mixes positions
        axes = {**{p: v for p, v in x.axes.items() if p < channel}, channel: layer["rows"]}
        rank = x.rank if x.rank is not None else spatial + 2
        return _Tensor(rank, axes, frozenset(p for p in x.unit if p < channel))

    def _norm(self, node, module, args, kwargs) -> _Tensor:
        x = self._plain(args[0])
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            sizes = (module.num_features,)
            if isinstance(module, nn.BatchNorm2d):
                positions = (-3,)
            elif x.rank is not None:
                positions = (-1,) if x.rank == 2 else (-2,)
            else:  # unknown rank: (N, C) or (N, C, L), told apart by the variable that fits
                fits = [p for p in (-1, -2) if p in x.axes and self.sizes[x.axes[p]] == sizes[0]]
                positions = (fits[0] if fits else -1,)
        else:
            sizes = tuple(module.normalized_shape)
            positions = tuple(range(-len(sizes), 0))

        def make():
            variables = [self._new(n) for n in sizes]
            axes = tuple((n, v, 1) for n, v in zip(sizes, variables))
            local = [name for name, _ in module.named_parameters(recurse=False)]
            local += [
                name for name, b in module.named_buffers(recurse=False) if b is not None and not is_bookkeeping(name)
            ]
            return {"variables": variables, "tensors": {name: axes for name in local}}

        layer = self._layer(node.target, module, make)
        axes = dict(x.axes)
        for p, v in zip(positions, layer["variables"]):
            self._tie(v, x.axes.get(p))
            axes[p] = v
        return _Tensor(x.rank, axes, x.unit - set(positions))

    def _embedding(self, node, module: nn.Embedding, args, kwargs) -> _Tensor:
        x = self._plain(args[0])
        self._fix_all(x)  # the indices select rows: the vocabulary is an input axis

        def make():
            features = self._new(module.embedding_dim, writer=True)
            axes = ((module.num_embeddings, None, 1), (module.embedding_dim, features, 1))
            return {"features": features, "tensors": {"weight": axes}}

        layer = self._layer(node.target, module, make)
        return _Tensor(None if x.rank is None else x.rank + 1, {-1: layer["features"]})

    def _recurrent(self, node, module: nn.RNNBase, args, kwargs):
        name = self._describe(node.target)
        if module.bidirectional:
            raise _refusal(f"{name}: bidirectional RNNs are not supported")
        if getattr(module, "proj_size", 0):
            raise _refusal(f"{name}: LSTMs with proj_size are not supported")
        x = self._plain(args[0])
        state = _argument(args, kwargs, 1, "hx")
        H, G, L = module.hidden_size, _GATES[type(module)], module.num_layers

        def make():
            columns = self._new(module.input_size)
            hidden = [self._new(H, writer=True) for _ in range(L)]
            tensors = {}
            for layer, v in enumerate(hidden):
                rows = (G * H, v, G)
                inputs = (module.input_size, columns, 1) if layer == 0 else (H, hidden[layer - 1], 1)
                tensors[f"weight_ih_l{layer}"] = (rows, inputs)
                tensors[f"weight_hh_l{layer}"] = (rows, (H, v, 1))
                if module.bias:
                    tensors[f"bias_ih_l{layer}"] = (rows,)
                    tensors[f"bias_hh_l{layer}"] = (rows,)
            return {"columns": columns, "hidden": hidden, "tensors": tensors}

        layer = self._layer(node.target, module, make)
        hidden = layer["hidden"]
        self._tie(layer["columns"], x.axes.get(-1))
        for p, v in x.axes.items():
            if p != -1:
                self._fix(v)  # time and batch are mixed by the recurrence (the conservative answer)
        for given in _walk(state):
            if given.graph_input or given.uniform:
                continue  # the caller's state is in the hidden basis; zeros are in every basis
            if given.layer_states is not None and len(given.layer_states) == L:
                for v, w in zip(hidden, given.layer_states):
                    self._tie(v, w)
            elif L == 1 and -1 in given.axes:
                self._tie(hidden[0], given.axes[-1])
            else:
                self._fix_all(given)
                for v in hidden:
                    self._fix(v)
        rank = 2 if x.rank == 2 else 3
        output = _Tensor(rank, {-1: hidden[-1]})
        final = _Tensor(rank, {-1: hidden[0]} if L == 1 else {}, frozenset({-rank}) if L == 1 else frozenset())
        final = replace(final, layer_states=tuple(hidden))
        return _Seq((output, _Seq((final, final)) if isinstance(module, nn.LSTM) else final))

    # the spec -----------------------------------------------------------------------------------
    def spec(self) -> WeightSpec:
        state = _state_tensors(self.module)
        self._tie_aliases(state)
        ids, permutations = {}, {}
        for v in self.writers:
            root = self._find(v)
            if not self.fixed[root] and root not in ids:
                ids[root] = f"h{len(ids)}"
                permutations[ids[root]] = self.sizes[root]

        def label(v):
            return None if v is None else ids.get(self._find(v))

        tensors, unused = [], {}
        for name, value in state.items():
            owner, path, local = _owner(self.module, name)
            bound, center = _default_init(owner, local, value)
            if name in self.tensors:
                axes, layer = self.tensors[name]
                axes = tuple(Axis(n, label(v), blocks) for n, v, blocks in axes)
            else:  # never called: the function does not depend on it
                axes = tuple(Axis(n) for n in value.shape)
                if path not in unused:
                    unused[path] = self.next_layer
                    self.next_layer += _layer_count(owner)
                layer = unused[path] + _sublayer(owner, local)
            tensors.append(TensorSpec(name, axes, bound, layer, center))
        tensors.sort(key=lambda t: t.layer)  # stable: each layer's tensors in state-dict order
        return WeightSpec("module", {"module": type(self.module).__name__}, tuple(tensors), permutations)

    def _tie_aliases(self, state: dict[str, torch.Tensor]) -> None:
        """A tensor under two names (tied weights) is permuted the same way under both: recorded
        names are tied axis by axis, the others take the layout of a recorded one."""
        names_of: dict[int, list[str]] = {}
        for name, value in state.items():
            names_of.setdefault(id(value), []).append(name)
        for names in names_of.values():
            recorded = [n for n in names if n in self.tensors]
            for other in recorded[1:]:
                for (_, v, _), (_, w, _) in zip(self.tensors[recorded[0]][0], self.tensors[other][0]):
                    self._tie(v, w)
            for name in names:
                if recorded and name not in self.tensors:
                    self.tensors[name] = self.tensors[recorded[0]]


def _refusal(message: str) -> UnsupportedModuleError:
    return UnsupportedModuleError(
        f"{message} (supported: {', '.join(sorted(_SUPPORTED_NAMES))} and elementwise operations between "
        "them; WeightSpec.from_module(module, symmetries=False) gives a spec without permutations)"
    )


def _function_name(target) -> str:
    name = getattr(target, "__name__", str(target))
    for prefix, namespace in (("torch.", torch), ("torch.nn.functional.", F), ("operator.", operator)):
        if getattr(namespace, name, None) is target:
            return prefix + name
    return name


def _all_ones(size) -> bool:
    sizes = size if isinstance(size, (tuple, list)) else (size,)
    return all(n == 1 for n in sizes)


_LAYERS = {
    nn.Linear: _Analysis._linear,
    nn.Conv1d: _Analysis._conv,
    nn.Conv2d: _Analysis._conv,
    nn.LayerNorm: _Analysis._norm,
    nn.BatchNorm1d: _Analysis._norm,
    nn.BatchNorm2d: _Analysis._norm,
    nn.Embedding: _Analysis._embedding,
    nn.LSTM: _Analysis._recurrent,
    nn.GRU: _Analysis._recurrent,
    nn.RNN: _Analysis._recurrent,
    **({nn.RMSNorm: _Analysis._norm} if hasattr(nn, "RMSNorm") else {}),
}
_SUPPORTED_NAMES = {kind.__name__ for kind in _LAYERS}
