"""One description of a network's weights, and the population type that carries them.

A :class:`WeightSpec` lists every tensor of a subject network under PyTorch's state-dict name,
with its shape and, per axis, which hidden-neuron permutation acts on it. Everything that needs
to know the weight layout (permutations, augmentation, DWSNet layers, invariance analysis,
initialisation, the zoo format) reads it from here instead of re-deriving it.

A :class:`Population` is the weights of K networks of one architecture: a mapping from tensor
name to a tensor with a leading "which network" axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..errors import WeightspaceError

#: State-dict buffers that count steps rather than hold weights (BatchNorm's
#: ``num_batches_tracked``): a WeightSpec leaves them out, a state dict may carry them, and torch
#: restores them when a state dict without them is loaded.
BOOKKEEPING_BUFFERS = frozenset({"num_batches_tracked"})


def is_bookkeeping(name: str) -> bool:
    """Whether state-dict entry ``name`` is a bookkeeping buffer, not a weight."""
    return name.rpartition(".")[2] in BOOKKEEPING_BUFFERS


@dataclass(frozen=True)
class Axis:
    """One tensor axis.

    ``permutation`` names the hidden-neuron permutation that acts on this axis (``None``: the axis
    is not permutable, e.g. input features or output classes). ``blocks`` is the number of
    stacked gate blocks along the axis (4 for an LSTM's rows, 3 for a GRU's); the same
    permutation acts inside every block.
    """

    size: int
    permutation: str | None = None
    blocks: int = 1

    def __post_init__(self) -> None:
        if self.size % self.blocks:
            raise ValueError(f"axis of size {self.size} does not split into {self.blocks} blocks")


@dataclass(frozen=True)
class TensorSpec:
    """A named weight tensor: its axes and its default initialisation, uniform in
    ``init_center +- init_bound`` (the centre is 1 for a norm layer's gains and variances)."""

    name: str
    axes: tuple[Axis, ...]
    init_bound: float
    layer: int = 0
    init_center: float = 0.0

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(axis.size for axis in self.axes)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def is_bias(self) -> bool:
        return len(self.axes) == 1


@dataclass(frozen=True)
class WeightSpec:
    """The weight layout of one architecture (see module docstring)."""

    architecture: str
    config: Mapping[str, int | str]
    tensors: tuple[TensorSpec, ...]
    permutations: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate tensor names in {names}")
        for tensor in self.tensors:
            for axis in tensor.axes:
                if axis.permutation is not None:
                    expected = self.permutations.get(axis.permutation)
                    if expected != axis.size // axis.blocks:
                        raise ValueError(
                            f"{tensor.name}: permutation {axis.permutation!r} of size "
                            f"{expected} does not fit an axis of {axis.blocks} x "
                            f"{axis.size // axis.blocks}"
                        )

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tensors]

    @property
    def num_parameters(self) -> int:
        return sum(t.numel for t in self.tensors)

    @classmethod
    def from_module(cls, module, symmetries: bool = True) -> WeightSpec:
        """The layout of ``module``'s state dict, its hidden-neuron permutations read off its
        ``torch.fx`` graph (see :mod:`weightspace.networks.from_module`); ``symmetries=False``:
        no permutations, from the state dict alone."""
        from .from_module import spec_from_module

        return spec_from_module(module, symmetries)

    def __getitem__(self, name: str) -> TensorSpec:
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        raise KeyError(name)

    def to_json(self) -> dict:
        return {
            "architecture": self.architecture,
            "config": dict(self.config),
            "num_parameters": self.num_parameters,
            "permutations": dict(self.permutations),
            "tensors": [
                {
                    "name": t.name,
                    "shape": list(t.shape),
                    "permutations": [a.permutation for a in t.axes],
                    "blocks": [a.blocks for a in t.axes],
                    "init_bound": t.init_bound,
                    "init_center": t.init_center,
                    "layer": t.layer,
                }
                for t in self.tensors
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping) -> WeightSpec:
        """The spec :meth:`to_json` wrote (a zoo manifest's ``architecture``). Manifests written
        before it stored ``init_bound``, ``init_center`` and ``layer`` read with 0 for each."""
        try:
            tensors = tuple(
                TensorSpec(
                    t["name"],
                    tuple(
                        Axis(int(size), permutation, int(blocks))
                        for size, permutation, blocks in zip(t["shape"], t["permutations"], t["blocks"], strict=True)
                    ),
                    float(t.get("init_bound", 0.0)),
                    int(t.get("layer", 0)),
                    float(t.get("init_center", 0.0)),
                )
                for t in data["tensors"]
            )
            spec = cls(data["architecture"], dict(data["config"]), tensors, dict(data["permutations"]))
        except (KeyError, TypeError, ValueError) as error:
            raise WeightspaceError(f"an unreadable weight description ({type(error).__name__}: {error})") from None
        if "num_parameters" in data and spec.num_parameters != data["num_parameters"]:
            raise WeightspaceError(
                f"a weight description of {data['num_parameters']} parameters whose tensors hold {spec.num_parameters}"
            )
        return spec

    def check_state_dict(self, state: Mapping[str, torch.Tensor], batched: bool) -> int:
        """Validate names and shapes; return the population size (1 if not ``batched``).

        Bookkeeping buffers (``num_batches_tracked``) are allowed and ignored."""
        missing = [n for n in self.names if n not in state]
        extra = [n for n in state if n not in set(self.names) and not is_bookkeeping(n)]
        if missing or extra:
            raise WeightspaceError(
                f"weights do not match the {self.architecture} layout: "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        sizes = set()
        for tensor in self.tensors:
            shape = tuple(state[tensor.name].shape)
            got = shape[1:] if batched else shape
            if got != tensor.shape:
                raise WeightspaceError(
                    f"{tensor.name}: expected shape {'(K, ' if batched else '('}"
                    f"{', '.join(map(str, tensor.shape))}), got {shape}"
                )
            sizes.add(shape[0] if batched else 1)
        if len(sizes) != 1:
            raise WeightspaceError(f"tensors disagree on the population size: {sorted(sizes)}")
        return sizes.pop()


class Population(Mapping[str, torch.Tensor]):
    """Weights of K networks sharing one :class:`WeightSpec`; immutable mapping name -> (K, ...)."""

    def __init__(self, spec: WeightSpec, tensors: Mapping[str, torch.Tensor]):
        self.size = spec.check_state_dict(tensors, batched=True)
        self.spec = spec
        self._tensors = {name: tensors[name] for name in spec.names}

    # Mapping interface -------------------------------------------------------------------
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def __repr__(self) -> str:
        return f"Population({self.spec.architecture}, K={self.size}, P={self.spec.num_parameters})"

    # Transformations ---------------------------------------------------------------------
    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Population:
        return Population(self.spec, {n: fn(t) for n, t in self._tensors.items()})

    def to(self, *args, **kwargs) -> Population:
        return self.map(lambda t: t.to(*args, **kwargs))

    def detach(self) -> Population:
        return self.map(torch.Tensor.detach)

    def clone(self) -> Population:
        return self.map(torch.Tensor.clone)

    def select(self, index) -> Population:
        """Networks ``index`` (an int, slice, list or index tensor) as a new population."""
        if isinstance(index, int):
            index = [index]
        return self.map(lambda t: t[index])

    @property
    def device(self) -> torch.device:
        return next(iter(self._tensors.values())).device

    # Conversions -------------------------------------------------------------------------
    def state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Network ``k`` as a plain state dict under torch's names."""
        return {n: t[k] for n, t in self._tensors.items()}

    @classmethod
    def from_state_dicts(cls, spec: WeightSpec, states: Sequence[Mapping[str, torch.Tensor]]) -> Population:
        for state in states:
            spec.check_state_dict(state, batched=False)
        return cls(spec, {n: torch.stack([s[n] for s in states]) for n in spec.names})

    def flatten(self) -> torch.Tensor:
        """All weights of each network in one vector: (K, P), in spec order."""
        return torch.cat([self._tensors[n].reshape(self.size, -1) for n in self.spec.names], 1)

    @classmethod
    def unflatten(cls, spec: WeightSpec, flat: torch.Tensor) -> Population:
        if flat.ndim != 2 or flat.shape[1] != spec.num_parameters:
            raise WeightspaceError(
                f"expected flat weights of shape (K, {spec.num_parameters}), got {tuple(flat.shape)}"
            )
        pieces = torch.split(flat, [t.numel for t in spec.tensors], dim=1)
        return cls(spec, {t.name: p.reshape(len(flat), *t.shape) for t, p in zip(spec.tensors, pieces)})


def initialize(spec: WeightSpec, seeds, device="cpu") -> Population:
    """PyTorch's default init (uniform in +-bound per tensor), one network per seed.

    Draws come from :mod:`weightspace.counter_rng`, so network k's weights depend on its seed
    only, not on the other members of the population.
    """
    from .. import counter_rng

    tensors = {}
    for tensor in spec.tensors:
        u = counter_rng.uniform(seeds, counter_rng.stream_id("init", tensor.name), tensor.shape)
        value = (u * 2 - 1) * tensor.init_bound
        tensors[tensor.name] = (value + tensor.init_center if tensor.init_center else value).to(device)
    return Population(spec, tensors)
