"""Networks of any ``torch.nn.Module``: the architecture of an imported zoo.

A zoo of networks that weightspace did not build (``weightspace zoo import``) stores the spec
derived from the user's module (:meth:`WeightSpec.from_module`) in its manifest, and, where the
user gave one, the module's factory (``pkg.mod:factory``, a callable that returns the untrained
module; the spec's ``config["factory"]``) and the shape of one input (``config["input_shape"]``,
e.g. ``[1, 32, 32]``). :class:`ModuleArchitecture` rebuilds them from the manifest: everything that
reads a spec (statistics, flattened weights, the parameter transformer, permutations,
augmentation) works on it unchanged, and with a factory the population runs as one batched
computation (``torch.func.functional_call`` under ``vmap``); with an input shape too, the
``module-probing`` encoder probes it (:class:`~weightspace.encoders.probing.ModuleProbing`).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from ..errors import WeightspaceError
from .weights import Population, WeightSpec, initialize

KIND = "module"
#: what every message about networks that cannot be run ends with
WEIGHTS_ONLY = "encoders that read only the weights (statistics, flattened, transformer) apply"


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
    #: the shape of one input, without the batch axis (``()``: not recorded at import)
    input_shape: tuple[int, ...] = ()

    kind = KIND

    @classmethod
    def recording(cls, spec: WeightSpec, factory: str = "", input_shape=()) -> ModuleArchitecture:
        """The architecture of a module whose spec is ``spec`` (:meth:`WeightSpec.from_module`), its
        config recording the factory that rebuilds the module and the shape of one input it reads,
        where given (what :meth:`from_spec_json` reads back)."""
        if factory:
            recorded = {"factory": factory, **({"input_shape": list(input_shape)} if input_shape else {})}
            spec = dataclasses.replace(spec, config={**spec.config, **recorded})
        return cls(spec, factory, tuple(input_shape))

    @classmethod
    def from_spec_json(cls, data: dict) -> ModuleArchitecture:
        spec = WeightSpec.from_json(data)
        shape = tuple(int(size) for size in spec.config.get("input_shape", ()))
        return cls(spec, str(spec.config.get("factory", "")), shape)

    @property
    def spec(self) -> WeightSpec:
        return self.weight_spec

    def __eq__(self, other) -> bool:
        return isinstance(other, ModuleArchitecture) and (self.spec, self.factory, self.input_shape) == (
            other.spec,
            other.factory,
            other.input_shape,
        )

    def __hash__(self) -> int:
        return hash((self.spec.architecture, tuple(self.spec.names), self.factory, self.input_shape))

    def init(self, seeds, device="cpu") -> Population:
        """Uniform in each tensor's default-init bound, one network per seed (``weights.initialize``)."""
        return initialize(self.spec, seeds, device)

    @cached_property
    def _module(self) -> nn.Module:
        if not self.factory:
            raise WeightspaceError(
                "these networks were imported without a module factory (--module pkg.mod:factory), so they "
                f"cannot be run; {WEIGHTS_ONLY}"
            )
        return build_module(self.factory).eval()

    @cached_property
    def output_shape(self) -> tuple[int, ...]:
        """The shape of one network's output on one input of :attr:`input_shape` (the module run
        once on zeros); one error line when the networks cannot be run on such inputs."""
        module = self._module
        if not self.input_shape:
            raise WeightspaceError(
                "these networks were imported without an input shape (zoo import --input-shape C,H,W), so "
                f"they cannot be probed; {WEIGHTS_ONLY}"
            )
        device = next(module.parameters(), torch.empty(0)).device  # where forward last moved it
        try:
            with torch.no_grad():
                output = module(torch.zeros(1, *self.input_shape, device=device))
        except Exception as error:  # the user's module raises whatever its layers raise
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            raise WeightspaceError(
                f"the module {self.factory} rejects inputs of shape {self.input_shape} ({first}): give the shape "
                f"its networks read (zoo import --input-shape); {WEIGHTS_ONLY}"
            ) from None
        if not isinstance(output, torch.Tensor):
            raise WeightspaceError(
                f"the module {self.factory} returns a {type(output).__name__}, not a tensor, so it cannot be "
                f"probed; {WEIGHTS_ONLY}"
            )
        return tuple(output.shape[1:])

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
