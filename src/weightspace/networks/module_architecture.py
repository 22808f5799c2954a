"""Networks of any ``torch.nn.Module``: the architecture of an imported zoo.

A zoo of networks that weightspace did not build (``weightspace zoo import``) stores the spec
derived from the user's module (:meth:`WeightSpec.from_module`) in its manifest, and, where the
user gave one, the module's factory (``pkg.mod:factory``, a callable that returns the untrained
module; the spec's ``config["factory"]``). :class:`ModuleArchitecture` rebuilds both from the manifest: everything that reads a
spec (statistics, flattened weights, the parameter transformer, permutations, augmentation)
works on it unchanged, and with a factory the population runs as one batched computation
(``torch.func.functional_call`` under ``vmap``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from ..errors import WeightspaceError
from .weights import Population, WeightSpec, initialize

KIND = "module"


def load_factory(factory: str):
    """The callable ``pkg.mod:name`` names (one clear error when it cannot be found)."""
    module_name, _, attribute = factory.partition(":")
    if not module_name or not attribute:
        raise WeightspaceError(f"a module factory is written pkg.module:callable (got {factory!r})")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise WeightspaceError(f"cannot load the module factory {factory!r} ({error})") from None
    if not callable(function):
        raise WeightspaceError(f"{factory!r} is not callable")
    return function


def build_module(factory: str) -> nn.Module:
    """The untrained module ``factory`` returns."""
    module = load_factory(factory)()
    if not isinstance(module, nn.Module):
        raise WeightspaceError(f"{factory!r} returned a {type(module).__name__}, not a torch.nn.Module")
    return module


@dataclass(frozen=True, eq=False)
class ModuleArchitecture:
    """The architecture of networks described only by their spec, and optionally their module."""

    weight_spec: WeightSpec
    factory: str = ""

    kind = KIND

    @classmethod
    def from_spec_json(cls, data: dict) -> ModuleArchitecture:
        spec = WeightSpec.from_json(data)
        return cls(spec, str(spec.config.get("factory", "")))

    @property
    def spec(self) -> WeightSpec:
        return self.weight_spec

    def __eq__(self, other) -> bool:
        return isinstance(other, ModuleArchitecture) and (self.spec, self.factory) == (other.spec, other.factory)

    def __hash__(self) -> int:
        return hash((self.spec.architecture, tuple(self.spec.names), self.factory))

    def init(self, seeds, device="cpu") -> Population:
        """Uniform in each tensor's default-init bound, one network per seed (``weights.initialize``)."""
        return initialize(self.spec, seeds, device)

    @cached_property
    def _module(self) -> nn.Module:
        if not self.factory:
            raise WeightspaceError(
                "these networks were imported without a module factory (--module pkg.mod:factory), so they "
                "cannot be run; encoders that read only the weights (statistics, flattened, transformer) apply"
            )
        return build_module(self.factory).eval()

    def torch_module(self) -> nn.Module:
        """A fresh copy of the module (untrained weights)."""
        return build_module(self.factory) if self.factory else self._module

    def to_torch(self, weights: Population, k: int) -> nn.Module:
        """Network ``k`` of ``weights`` as the user's module."""
        module = self.torch_module().to(weights.device)
        module.load_state_dict({n: t.detach().clone() for n, t in weights.state_dict(k).items()}, strict=False)
        return module.eval()

    def forward(self, weights: Population, x: torch.Tensor) -> torch.Tensor:
        """Outputs of every network on its own inputs: ``x`` (K, B, ...) -> (K, B, ...), one
        batched computation (the module in eval mode; its buffers outside the spec as built)."""
        if weights.spec != self.spec:
            raise WeightspaceError("weights of another spec than this architecture's")
        if x.shape[0] != weights.size:
            raise WeightspaceError(f"expected inputs (K={weights.size}, B, ...), got {tuple(x.shape)}")
        module = self._module.to(weights.device)

        def one(parameters, inputs):
            return torch.func.functional_call(module, parameters, (inputs,), strict=False)

        return torch.vmap(one)(dict(weights), x)
