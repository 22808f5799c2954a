"""Functionalist encoders: interrogate the subject networks with probe sequences (paper 000, sec. 3).

Both encoders share four parts (figure 2; tables 9 and 10 give the sizes):

* **E_I** (``probe_generator``), an MLP (one hidden layer of ``mlp_hidden``) that maps a code
  vector to the ``M = probes`` parallel probe inputs of one step, reshaped to ``(M, X)``;
* the **subject networks** ``f_theta``, which read the probes as input sequences (the hidden-state
  recurrence over probing steps is the subject's own);
* **E_O** (``output_encoder``), an MLP (one hidden layer of ``mlp_hidden``) that maps the M
  concatenated subject outputs of a step to a vector ``o_i`` of size ``reader_hidden``;
* **E_R** (``reader``), an LSTM (``reader_layers`` x ``reader_hidden``) over ``o_1 .. o_L``; its
  final top-layer output goes through ``head`` (linear) to the embedding. Non-interactive: one
  ``nn.LSTM`` per layer over the whole sequence; interactive: a stack of ``nn.LSTMCell`` stepped
  once per probing step (same parameter count); in both each layer adds its input to its output
  (``reader_residual``, the authors' reader; see below).

Probe inputs. For categorical subject inputs (formal-language tokens) a probe is a *soft token
distribution*: a softmax over the ``input_size`` logits of E_I, fed as the input vector where the
subject normally sees a one-hot token. For continuous inputs (digit tiles) a probe is a real vector
``lo + (hi - lo) * sigmoid(z)`` in ``continuous_range``, by default ``(-1, 2)``: the tiles' pixel
range [0, 1] plus the digits task's BOS (-1) and EOS (2) marker tiles, so probes can reach every
input value the subjects were trained on but cannot drive them far outside it (a sigmoid as in
the paper's code, stretched to the marker values). ``continuous_range=None`` gives unbounded
linear probes. Subject outputs: log-probabilities (``log_softmax`` of the logits) for categorical
outputs, the raw values for continuous ones.

:class:`NonInteractiveProbing` learns fixed code vectors ``S_1 .. S_L``; its probes do not depend on
the subject, so all L steps of all N subjects run as one batched call of the population engine
(``architecture.forward`` on the probes expanded, not copied, over N). :class:`InteractiveProbing`
feeds E_R's current top-layer hidden state to E_I instead (a learned vector at step 1), so the
probe at step i depends on the subject's outputs to the earlier probes; it steps all N subjects
and M probes together with ``architecture.step``, one probing step at a time.

The interactive reader is residual by default, as in the authors' code: o_i reaches the next probe
and the head past the LSTM cells, whose outputs start small. Without it (``reader_residual=False``,
this package's reader until the probing-budget measurements) the probes of different subjects
differed about 20 times less at initialisation, and on the small-digits zoo the interactive encoder
sat on the constant floor for 3,000 pretraining steps (seed 0) where the residual one left it by
step 750 (docs/reproductions/probing-budget.md). The non-interactive reader is residual by default
as well (one-layer ``nn.LSTM`` s, each adding its input to its output; ``reader_residual=False``
gives the former single multi-layer ``nn.LSTM``): in the small-digits reproduction's settings
(4,000 steps, both seeds batched) the former reader left seed 1 on the constant floor for all 4,000
steps, the residual one took both seeds below it by step 1,000.

Both are invariant to correct hidden-neuron permutations of the subjects because they only see
the subjects' input-output behaviour (up to floating-point rounding of permuted sums).

Parameter counts with the defaults (the paper's tables 9/10 in brackets; printed by
``benchmarks/probing_evaluation.py``): formal languages, LSTM(6, 32, 2, 6), L = 22: non-interactive
1,140,800 (1,241,718), interactive 1,135,424 (1,235,830); digits, LSTM(16, 32, 2, 10), L = 51:
non-interactive 1,162,640 (1,254,016), interactive 1,149,840 (1,240,960). E_R is 1,052,672 of
them. The remaining 7-8% gap: the paper's published code also maps E_R's state up to M per-probe
codes before a shared per-probe decoder and ends in an MLP head, layers its tables do not list;
the sizes the tables do list are the ones used here.

Subclasses (benchmarks, references) can replace how the subjects are evaluated by overriding
:meth:`NonInteractiveProbing.run_subjects` or :meth:`InteractiveProbing.start_subjects` /
:meth:`InteractiveProbing.step_subjects`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightspaceError
from ..networks.weights import Population
from .base import TaskIO, WeightEncoder, mlp

#: input range of continuous probes: digit pixels [0, 1] plus the BOS (-1) and EOS (2) tiles
DEFAULT_CONTINUOUS_RANGE = (-1.0, 2.0)


class _ProbingEncoder(WeightEncoder):
    """What both probing encoders share: E_I, E_O, E_R, the head and the probe/output maps."""

    permutation_invariant = True
    probing = True
    needs_task = True

    @classmethod
    def cannot_read(cls, architecture) -> str | None:
        if not hasattr(architecture, "initial_state"):  # run step by step: the sequence models
            return (
                f"the {cls.name} encoder probes sequence models (LSTM, GRU, RNN stacks), not "
                f"{architecture.spec.architecture} networks: module-probing probes a module imported with a "
                "factory and an input shape; the statistics, flattened and transformer encoders read any network"
            )
        return None

    def __init__(
        self,
        architecture,
        task: TaskIO,
        embedding_size: int = 16,
        probes: int = 8,
        probe_length: int | None = None,
        reader_hidden: int = 256,
        reader_layers: int = 2,
        mlp_hidden: int = 128,
        continuous_range: tuple[float, float] | None = DEFAULT_CONTINUOUS_RANGE,
    ):
        super().__init__(architecture, task, embedding_size)
        self._check_subjects(architecture, task)
        self.probes = probes
        self.probe_length = task.probe_length if probe_length is None else probe_length
        if self.probes < 1 or self.probe_length < 1:
            raise ValueError("need at least one probe sequence of length >= 1")
        self.reader_hidden = reader_hidden
        self.continuous_range = None if continuous_range is None else tuple(map(float, continuous_range))
        X, Y, M = task.input_size, task.output_size, probes
        self.probe_generator = mlp([reader_hidden, mlp_hidden, M * X])  # E_I
        self.output_encoder = mlp([M * Y, mlp_hidden, reader_hidden])  # E_O
        self.reader = self._make_reader(reader_hidden, reader_layers)  # E_R
        self.head = nn.Linear(reader_hidden, embedding_size)

    def _check_subjects(self, architecture, task: TaskIO) -> None:
        if architecture.input_size != task.input_size or architecture.output_size != task.output_size:
            raise ValueError(
                f"task io {task.input_size} -> {task.output_size} does not fit the subject "
                f"architecture {architecture.input_size} -> {architecture.output_size}"
            )

    def _make_reader(self, size: int, layers: int) -> nn.Module:
        return nn.LSTM(size, size, layers, batch_first=True)

    def make_probes(self, codes: torch.Tensor) -> torch.Tensor:
        """E_I: codes (..., C) -> probe inputs (..., M, X) in the subject's input space."""
        raw = self.probe_generator(codes)
        raw = raw.view(*raw.shape[:-1], self.probes, self.task.input_size)
        if self.task.input_kind == "categorical":
            return torch.softmax(raw, dim=-1)
        if self.continuous_range is None:
            return raw
        lo, hi = self.continuous_range
        return torch.sigmoid(raw) * (hi - lo) + lo

    def subject_features(self, outputs: torch.Tensor) -> torch.Tensor:
        """Subject outputs (..., Y) as E_O sees them: log-probabilities for categorical outputs."""
        if self.task.output_kind == "categorical":
            return F.log_softmax(outputs, dim=-1)
        return outputs

    def _weights_dtype(self, weights: Population):
        return next(iter(weights.values())).dtype


class NonInteractiveProbing(_ProbingEncoder):
    """Learned fixed probe sequences, all L steps of all subjects in one batched pass."""

    name = "probing"
    fixed_probes = True
    paper_parameters = (1241718, 1254016)

    def __init__(self, architecture, task: TaskIO, reader_residual: bool = True, **kwargs):
        #: E_R as a stack of one-layer LSTMs, each adding its input to its output (the authors'
        #: reader, as the interactive encoder's); False: one multi-layer nn.LSTM
        self.reader_residual = bool(reader_residual)
        super().__init__(architecture, task, **kwargs)
        # S_1 .. S_L, one code per probing step, unit normal as in the paper's code
        self.codes = nn.Parameter(torch.randn(self.probe_length, self.reader_hidden))

    def _make_reader(self, size: int, layers: int) -> nn.Module:
        if getattr(self, "reader_residual", False):
            return nn.ModuleList(nn.LSTM(size, size, 1, batch_first=True) for _ in range(layers))
        return super()._make_reader(size, layers)

    def probe_inputs(self) -> torch.Tensor:
        """The probe sequences (M, L, X); the same for every subject."""
        return self.make_probes(self.codes).transpose(0, 1)

    def run_subjects(self, weights: Population, probes: torch.Tensor) -> torch.Tensor:
        """Subject outputs (N, M, L, Y) for shared probes (M, L, X): one population-engine call."""
        probes = probes.to(self._weights_dtype(weights))
        shared = probes.unsqueeze(0).expand(weights.size, *probes.shape)  # a view, no copy
        outputs, _ = self.architecture.forward(weights, shared)
        return outputs

    def read(self, outputs: torch.Tensor) -> torch.Tensor:
        """E_O, E_R and the head: subject outputs (N, M, L, Y) -> embeddings (N, Z)."""
        if self.reader_residual:
            x = self.reader_inputs(outputs)
            for layer in self.reader:
                x = layer(x)[0] + x
            return self.head(x[:, -1])
        _, (h_n, _) = self.reader(self.reader_inputs(outputs))
        return self.head(h_n[-1])

    def reader_inputs(self, outputs: torch.Tensor) -> torch.Tensor:
        """E_O: subject outputs (N, M, L, Y) -> E_R's input sequence o_1 .. o_L (N, L, reader_hidden)."""
        N, M, L, Y = outputs.shape
        features = self.subject_features(outputs).to(self.codes.dtype)
        steps = features.permute(0, 2, 1, 3).reshape(N, L, M * Y)  # o_i sees all M outputs of step i
        return self.output_encoder(steps)

    def encode(self, weights: Population) -> torch.Tensor:
        return self.read(self.run_subjects(weights, self.probe_inputs()))


class InteractiveProbing(_ProbingEncoder):
    """Each probe step is generated from E_R's state after the subject's answers so far."""

    name = "interactive"
    paper_parameters = (1235830, 1240960)
    seed_batching_problem = "its reader steps nn.LSTMCell, which torch.func.vmap cannot batch"

    def __init__(self, architecture, task: TaskIO, reader_residual: bool = True, **kwargs):
        super().__init__(architecture, task, **kwargs)
        #: E_I's input at step 1, before any subject output has been read
        self.initial_query = nn.Parameter(torch.randn(self.reader_hidden))
        #: each E_R layer adds its input to its output (the authors' residual LSTM reader): o_i
        #: reaches the next probe and the head past the cells' initially small outputs
        self.reader_residual = bool(reader_residual)

    def _make_reader(self, size: int, layers: int) -> nn.Module:
        # E_R runs one step at a time: a stack of LSTM cells (the same parameters as an nn.LSTM);
        # a seq-len-1 nn.LSTM call per step goes through the CPU's oneDNN RNN kernel, measured
        # ~6 ms per layer-step forward + backward at N=8, against well under 1 ms for the cell
        return nn.ModuleList(nn.LSTMCell(size, size) for _ in range(layers))

    def _read_step(self, o: torch.Tensor, state):
        """One E_R step on o_i (N, R); state: per-layer (h, c) or None -> (top h, state)."""
        new_state = []
        for layer, cell in enumerate(self.reader):
            h, c = cell(o, None if state is None else state[layer])
            new_state.append((h, c))
            o = h + o if self.reader_residual else h
        return o, new_state

    # how the subjects are evaluated: the population engine, N networks x M probes per call ------
    def start_subjects(self, weights: Population):
        return self.architecture.initial_state(weights.size, self.probes, weights.device, self._weights_dtype(weights))

    def step_subjects(self, weights: Population, probe: torch.Tensor, state):
        """One probing step: probe inputs (N, M, X) -> subject outputs (N, M, Y), new state."""
        return self.architecture.step(weights, probe.to(self._weights_dtype(weights)), state)

    # ------------------------------------------------------------------------------------------
    def interrogate(self, weights: Population) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings (N, Z) and the probes (N, M, L, X) each subject was given."""
        if weights.spec != self.spec:
            raise ValueError(
                f"encoder built for {dict(self.spec.config)}, got weights of "
                f"{weights.spec.architecture} {dict(weights.spec.config)}"
            )
        N = weights.size
        query = self.initial_query.expand(N, -1)
        subject_state = self.start_subjects(weights)
        reader_state = None
        probes = []
        for _ in range(self.probe_length):
            probe = self.make_probes(query)  # (N, M, X), depends on this subject's answers
            outputs, subject_state = self.step_subjects(weights, probe, subject_state)
            features = self.subject_features(outputs).to(query.dtype).reshape(N, -1)
            query, reader_state = self._read_step(self.output_encoder(features), reader_state)
            probes.append(probe)
        return self.head(query), torch.stack(probes, dim=2)

    def encode(self, weights: Population) -> torch.Tensor:
        return self.interrogate(weights)[0]


class ModuleProbing(NonInteractiveProbing):
    """Non-interactive probing of any feed-forward ``torch.nn.Module``: networks imported with a
    module factory and an input shape
    (:class:`~weightspace.networks.module_architecture.ModuleArchitecture`), or an MLP stack (the
    built-in :class:`~weightspace.networks.MLP`, which an imported ``nn.Sequential`` of linear
    layers is): any architecture with ``input_shape``, ``output_shape`` and
    ``forward(weights, x (N, B, *input_shape)) -> (N, B, *output_shape)``.

    The same E_I, E_O and head as :class:`NonInteractiveProbing`, with one probing step: E_I maps
    one learned code to the M probe inputs, each of the networks' input shape (continuous, in
    ``continuous_range``: by default (-2, 2), which holds pixels in [0, 1] and standardised
    inputs); every network of the population reads all M of them in one call of
    :meth:`ModuleArchitecture.forward` (one ``vmap``); E_O maps the M flattened outputs (raw: a
    module's outputs may be logits or values) to a vector, and the head (after a ReLU) to the
    embedding. A feed-forward network has no sequence to read, so there is no LSTM reader.
    ``inputs``: a ``.npy`` file of example inputs (B, *input shape); its first M are the probes,
    fixed, in place of learned ones (no E_I). It reads only the networks' outputs, so it is
    invariant to every correct permutation of their hidden units by construction."""

    name = "module-probing"
    needs_task = False
    paper_parameters = None

    @classmethod
    def cannot_read(cls, architecture) -> str | None:
        if not hasattr(type(architecture), "output_shape") or hasattr(architecture, "initial_state"):
            return (
                f"module-probing probes feed-forward networks (imported with a module factory, or MLPs), not "
                f"{architecture.spec.architecture} networks (sequence models: probing, interactive)"
            )
        try:
            architecture.output_shape  # noqa: B018 - an imported module runs once on zeros
        except WeightspaceError as error:
            return str(error)
        return None

    def __init__(
        self,
        architecture,
        task: TaskIO | None = None,
        embedding_size: int = 16,
        probes: int = 8,
        reader_hidden: int = 256,
        mlp_hidden: int = 128,
        continuous_range: tuple[float, float] | None = (-2.0, 2.0),
        inputs: str = "",
    ):
        problem = self.cannot_read(architecture)
        if problem is not None:
            raise WeightspaceError(problem)
        shape = architecture.input_shape
        given = _example_inputs(inputs, shape, probes) if inputs else None
        # how a module is fed and read, as the probing parts expect it: one step of flat vectors
        sizes = math.prod(architecture.input_shape), math.prod(architecture.output_shape)
        io = TaskIO("continuous", sizes[0], "continuous", sizes[1], probe_length=1)
        super().__init__(
            architecture,
            io,
            embedding_size=embedding_size,
            probes=probes,
            probe_length=1,
            reader_hidden=reader_hidden,
            mlp_hidden=mlp_hidden,
            continuous_range=continuous_range,
        )
        if given is not None:
            del self.probe_generator, self.codes  # fixed probes: nothing generates them
            self.register_buffer("given_probes", given.reshape(probes, 1, -1))

    def _check_subjects(self, architecture, task: TaskIO) -> None:
        pass  # the task io is the architecture's own

    def _make_reader(self, size: int, layers: int) -> nn.Module:
        return nn.Identity()  # one probing step: no sequence for an LSTM to read

    def probe_inputs(self) -> torch.Tensor:
        """The probes (M, 1, X): flattened inputs, the same for every network."""
        if hasattr(self, "given_probes"):
            return self.given_probes
        return super().probe_inputs()

    def run_subjects(self, weights: Population, probes: torch.Tensor) -> torch.Tensor:
        """Outputs (N, M, 1, Y) of every network on the shared probes (M, 1, X): one vmapped call."""
        M = probes.shape[0]
        inputs = probes.to(self._weights_dtype(weights)).reshape(M, *self.architecture.input_shape)
        shared = inputs.unsqueeze(0).expand(weights.size, *inputs.shape)  # a view, no copy
        return self.architecture.forward(weights, shared).reshape(weights.size, M, 1, -1)

    def read(self, outputs: torch.Tensor) -> torch.Tensor:
        """E_O and the head: outputs (N, M, 1, Y) -> embeddings (N, Z)."""
        dtype = self.head.weight.dtype
        features = self.subject_features(outputs).to(dtype).reshape(len(outputs), -1)
        return self.head(torch.relu(self.output_encoder(features)))


def _example_inputs(path: str, shape: tuple[int, ...], probes: int) -> torch.Tensor:
    """The first ``probes`` inputs of the ``.npy`` file ``path`` (B, *shape), as float32."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise WeightspaceError(f"module-probing inputs: {path} does not exist") from None
    except ValueError as error:
        raise WeightspaceError(f"module-probing inputs: {path} is not a NumPy array file ({error})") from None
    if array.ndim != len(shape) + 1 or tuple(array.shape[1:]) != tuple(shape) or len(array) < probes:
        raise WeightspaceError(
            f"module-probing inputs: {path} holds an array of shape {array.shape}; expected at least {probes} "
            f"inputs of shape {tuple(shape)} (probes, *input_shape)"
        )
    return torch.as_tensor(np.asarray(array[:probes], dtype=np.float32))
