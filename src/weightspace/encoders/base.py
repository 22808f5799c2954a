"""What every weight encoder shares: the subject's input/output description and the interface.

An encoder is an ``nn.Module`` built from the subject architecture and a :class:`TaskIO` (None
for an encoder that reads only the weights, ``needs_task = False``), with the paper's
hyperparameters as keyword defaults; ``forward(weights: Population) -> (N, Z)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import WeightspaceError
from ..networks.weights import Population


@dataclass(frozen=True)
class TaskIO:
    """How a zoo's subject networks are fed and read.

    ``input_kind`` is ``"categorical"`` (one-hot tokens; probes are soft token distributions) or
    ``"continuous"`` (real-valued inputs such as tile pixels; probes are real vectors);
    ``output_kind`` is ``"categorical"`` (logits -> log-distributions) or ``"continuous"``.
    ``probe_length`` is the paper's probing sequence length for this zoo (22 for formal
    languages, 51 for MNIST-size digits: the length of one input sequence).
    """

    input_kind: str
    input_size: int
    output_kind: str
    output_size: int
    probe_length: int

    def __post_init__(self):
        for field_name in ("input_kind", "output_kind"):
            if getattr(self, field_name) not in ("categorical", "continuous"):
                raise ValueError(f"{field_name} must be 'categorical' or 'continuous'")

    def to_json(self) -> dict:
        return dict(self.__dict__)


def mlp(sizes: list[int], activation=nn.ReLU) -> nn.Sequential:
    """Linear layers with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(activation())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


class WeightEncoder(nn.Module):
    """Base class: subclasses set ``name``, their capabilities and ``paper_parameters``, and
    implement ``encode``. Code that needs to know what an encoder can do asks these attributes,
    never its name."""

    name = "encoder"
    #: invariant to correct hidden-neuron permutations by construction
    permutation_invariant = False
    #: None when several seeds of this encoder train as one batched computation
    #: (``emulation.seeds``), else why they cannot
    seed_batching_problem: str | None = None
    #: interrogates the subject networks with learned probes (figures and the probe ablation)
    probing = False
    #: probes that do not depend on the subjects' answers (batched seeds run all seeds' subjects
    #: as one population)
    fixed_probes = False
    #: parameter counts in paper 000's tables 5-10: (formal languages, MNIST)
    paper_parameters: tuple[int, int] | None = None
    #: reads the zoo's :class:`TaskIO` (how its networks are fed and read: the sequence probing
    #: encoders); the others are built with ``task=None``, so they encode networks whose task is
    #: unknown (imported zoos)
    needs_task = False

    @classmethod
    def cannot_read(cls, architecture) -> str | None:
        """Why this encoder cannot encode networks of ``architecture`` (one line naming the encoders
        that can), or None when it can. The constructor raises it; callers ask it to list the
        encoders that fit a zoo without building them."""
        return None

    def __init__(self, architecture, task: TaskIO | None, embedding_size: int = 16):
        super().__init__()
        problem = type(self).cannot_read(architecture)
        if problem is not None:
            raise WeightspaceError(problem)
        if self.needs_task and task is None:
            raise WeightspaceError(
                f"the {self.name} encoder needs the zoo's TaskIO (how its networks are fed and read): "
                "build it with zoo.task.task_io(zoo)"
            )
        self.architecture = architecture
        self.spec = architecture.spec
        self.task = task
        self.embedding_size = embedding_size

    def forward(self, weights: Population) -> torch.Tensor:
        if weights.spec != self.spec:
            raise ValueError(
                f"encoder built for {self.spec.architecture} {dict(self.spec.config)}, "
                f"got weights of {weights.spec.architecture} {dict(weights.spec.config)}"
            )
        return self.encode(weights)

    def encode(self, weights: Population) -> torch.Tensor:
        raise NotImplementedError

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
