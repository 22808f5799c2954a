"""``weightspace zoo import FORMAT SRC --out ZOO``: networks weightspace did not train, as an ordinary zoo.

Each importer reads its source into a :class:`Source`: the networks' :class:`WeightSpec`, a table
with one row per checkpoint (``run_id``, ``step`` and the source's properties) and a function that
loads the weights of some rows. :func:`write_zoo` then writes the zoo the builder would (the
manifest, ``checkpoints.parquet``, one safetensors file per shard of ``population`` rows, in
order) with the same guarantees: every file is written atomically, the manifest lists a shard
only once its files and rows are written, and an interrupted import resumes after its last
finished shard (rerun the same command). Nothing is downloaded; nothing is unpickled
(``torch.load(weights_only=True)`` for ``.pt``/``.pth`` files).

Formats:

``state-dicts``
    A folder of checkpoints (``.safetensors``, ``.pt``, ``.pth``) and ``--properties FILE.csv``:
    one row per checkpoint, the file name first, then property columns (numeric: regression
    targets; any other: categorical; optional ``run_id`` and ``step`` columns group checkpoints
    of one training run). The module comes from ``--module pkg.mod:factory``, or is inferred
    from the keys and shapes when the checkpoints are a plain stack of standard layers
    (:func:`infer_module`). The spec comes from :meth:`WeightSpec.from_module`.
``small-cnn-zoo``
    Unterthiner et al.'s Small CNN Zoo (the NFN/NFT benchmark): ``weights.npy`` (N x P),
    ``layout.csv`` (varname, start_idx, end_idx, shape, TensorFlow layouts) and
    ``metrics.csv.gz`` (``config.*`` columns, step, test and train accuracy and loss). The
    TensorFlow kernels are transposed to PyTorch's (conv (h, w, in, out) -> (out, in, h, w),
    dense (in, out) -> (out, in)), so each network loads into
    :func:`~weightspace.networks.cnn.small_cnn` (conv 3x3 stride 2 layers, global average
    pooling, a linear head); a zoo of one activation records its module (ReLU or tanh), so that
    module-probing can run it, a zoo of both does not. ``--split-file`` takes
    nfn's split protocol (a JSON or NumPy ``.npz`` file of ``train``/``val``/``test`` row
    indices) instead of a random split.
``model-zoos``
    Schürholt et al.'s Model Zoos (Ray Tune's layout): one folder per trial, holding
    ``result.json`` (JSON lines, one per epoch: ``training_iteration``, metrics such as
    ``test_acc``/``train_acc``/``test_loss``/``train_loss``, and the trial's ``config``) and
    ``checkpoint_NNNNNN/`` folders whose ``checkpoints`` file (or one ``.pt``/``.pth``/
    ``.safetensors`` file) is the network's state dict (``module_list.{i}`` keys). One row per
    trial and checkpoint: ``step`` is the checkpoint's epoch, the properties its epoch's metrics
    and the config's numeric values. The module is inferred from the keys (``--module`` overrides).
``rnn-zoo-npy``
    Paper 000's released formal-language zoo, as the authors' code stores it (``parameters.npy``,
    ``sequences.npy``, ``logits.npy``, ``tasks.npy``, ``num_step_correct.npy``, ``args.json``):
    imported as a ``formal-languages`` zoo with its rollouts, so paper 000's experiments run on
    the authors' own networks (:func:`from_rnn_zoo_npy`).

``--input-shape C,H,W`` (``input_shape``) records the shape of one input the networks read (in
the spec's config, beside the factory, and in the zoo's config), after checking that the module
runs on zeros of that shape; it needs a factory (``--module``, or the Small CNN Zoo's own, whose
default is its input channels x 32 x 32). The ``module-probing`` encoder feeds probes of that shape.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from .. import counter_rng, storage
from ..errors import ConfigError, WeightspaceError
from ..networks import Population, WeightSpec
from ..networks.cnn import FACTORIES, small_cnn
from ..networks.module_architecture import ModuleArchitecture, build_module
from ..tasks import get_task
from ..versions import runtime_versions
from .format import MANIFEST, new_manifest, read_manifest, shard_file
from .table import ZooTable

FORMATS = ("state-dicts", "small-cnn-zoo", "model-zoos", "rnn-zoo-npy")


class ImportError_(WeightspaceError):
    """A source that cannot be imported (one line, exit code 2)."""


@dataclass
class Source:
    """What an importer read: the spec, one table row per checkpoint, and a loader of rows."""

    spec: WeightSpec
    table: pd.DataFrame  # run_id, step, the properties; optionally split
    load: Callable[[np.ndarray], dict[str, torch.Tensor]]  # row positions -> {name: (rows, ...)}
    config: dict = field(default_factory=dict)  # the kind's config: ImportedConfig fields for "imported"
    description: dict = field(default_factory=dict)  # the manifest's task section ("imported")
    #: the zoo kind written: "imported", or a built-in family whose zoos the source's networks are
    #: (paper 000's released zoo imports as "formal-languages")
    kind: str = "imported"
    #: row positions -> the rows' stored rollout tensors (a built-in family's), or None
    rollouts: Callable[[np.ndarray], dict[str, torch.Tensor]] | None = None
    #: the manifest's task, splits and rollouts sections (default: an imported zoo's)
    sections: dict | None = None


# ---- writing -------------------------------------------------------------------------------------
def _splits(table: pd.DataFrame, val_fraction: float, test_fraction: float) -> np.ndarray:
    """Train/val/ood per row, drawn per run (a run's checkpoints share it), reproducibly."""
    runs = int(table["run_id"].max()) + 1
    u = counter_rng.uniform(np.array([0]), counter_rng.stream_id("import-split"), (runs,))[0].numpy()
    by_run = np.where(u < test_fraction, "ood", np.where(u < test_fraction + val_fraction, "val", "train"))
    return by_run[table["run_id"].to_numpy()]


def write_zoo(out, source: Source, progress: bool = True) -> Path:
    """Write ``source`` as a zoo in ``out`` (resuming an interrupted import of the same source)."""
    out = Path(out)
    task = get_task(source.kind)
    table = source.table.reset_index(drop=True).copy()
    table["run_id"] = table["run_id"].astype(np.int64)
    table["step"] = table["step"].astype(np.int64)
    steps = sorted(int(s) for s in table["step"].unique())
    counts = {"models": int(table["run_id"].nunique()), "steps": steps[-1], "checkpoints": steps}
    config = task.config({**counts, **source.config}, "zoo import")
    if "split" not in table:
        table["split"] = _splits(table, config.val_fraction, config.test_fraction)
    population = config.population
    table["shard"] = np.arange(len(table)) // population
    table["shard_row"] = np.arange(len(table)) % population
    manifest = _prepare(out, config, source)
    zoo_table = ZooTable(out, manifest)
    shards = [s for s in range(manifest["shards"]["total"]) if s not in zoo_table.completed]
    done = int(table["shard"].isin(zoo_table.completed).sum())
    bar = tqdm(total=len(table), initial=done, unit="network", desc="import", disable=not progress, dynamic_ncols=True)
    for shard in shards:
        rows = table[table["shard"] == shard]
        weights = source.load(rows.index.to_numpy())
        source.spec.check_state_dict(weights, batched=True)
        storage.write_tensors(out / shard_file("weights", shard), {n: weights[n].float() for n in source.spec.names})
        rollouts = source.rollouts(rows.index.to_numpy()) if source.rollouts else {}
        storage.write_tensors(out / shard_file("rollouts", shard), rollouts)
        zoo_table.add(shard, rows.reset_index(drop=True))
        bar.update(len(rows))
    bar.close()
    return out


def _prepare(out: Path, config, source: Source) -> dict:
    if (out / MANIFEST).exists():
        manifest = read_manifest(out)
        if manifest["kind"] != source.kind or manifest["config"] != config.to_json():
            raise ConfigError(f"{out} holds another zoo than this import; choose another --out")
        return manifest
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty, but has no {MANIFEST}; choose another --out")
    manifest = new_manifest(
        source.kind,
        config,
        source.spec.to_json(),
        source.sections or _imported_sections(config, source),
        int(np.ceil(len(source.table) / config.population)),
        runtime_versions(),
    )
    storage.write_json(out / MANIFEST, manifest)
    return manifest


def _imported_sections(config, source: Source) -> dict:
    rule = (
        f"nfn's split file {config.split_file}"
        if config.split_file
        else f"random by run: {config.val_fraction:.0%} val, {config.test_fraction:.0%} held out as 'ood' (test)"
    )
    return {
        "task": {"family": "imported networks", **source.description},
        "splits": {"rule": rule},
        "rollouts": {"count": 0, "tensors": {}},
    }


# ---- state dicts -----------------------------------------------------------------------------------
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")


def read_state_dict(path, suffix: str | None = None) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors: safetensors, or torch.load(weights_only=True) (never a pickle of
    code). ``suffix``: the format of a file whose name does not say it (Ray Tune's ``checkpoints``)."""
    actual = Path(path)
    suffix = suffix or actual.suffix
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ImportError_(f"{actual}: a checkpoint is {', '.join(CHECKPOINT_SUFFIXES)}")
    try:
        if suffix == ".safetensors":
            state = load_file(actual)
        else:
            state = torch.load(actual, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ImportError_(f"{actual} does not exist") from None
    except Exception as error:  # torch.load and safetensors raise many types for a corrupt file
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ImportError_(f"{actual} is not a readable checkpoint ({first[:200]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ImportError_(f"{actual} does not hold a state dict of tensors")
    return state


def _properties(path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise ImportError_(f"{path} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ImportError_(f"{path} is not a readable CSV file ({type(error).__name__})") from None
    if table.shape[1] < 1 or not len(table):
        raise ImportError_(f"{path} has no rows: one row per checkpoint, its file name first")
    return table


def infer_module(state: dict[str, torch.Tensor]) -> nn.Module:
    """The plain stack of standard layers a state dict's keys and shapes describe, in key order:
    ``Linear`` (2-d weight), ``Conv1d``/``Conv2d`` (3-d/4-d weight), ``BatchNorm`` (weight, bias,
    running statistics), ``LayerNorm`` (1-d weight and bias after a ``Linear``), with an
    elementwise activation between layers (which one does not change the spec), global average
    pooling between the last convolution and a ``Linear`` whose input is its channel count, and a
    flatten where it is not. Anything else: one error that asks for ``--module``."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        prefix, _, name = key.rpartition(".")
        groups.setdefault(prefix, {})[name] = value
    layers: list[nn.Module] = []
    names = []
    last_channels = None  # channels out of the last convolution, while no Linear followed
    for prefix, tensors in groups.items():
        weight, bias = tensors.get("weight"), tensors.get("bias")
        extra = set(tensors) - {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
        if weight is None or extra:
            raise ImportError_(
                f"cannot infer a standard layer from the keys under {prefix or '(top level)'!r} "
                f"({sorted(tensors)}): give --module pkg.mod:factory"
            )
        if "running_mean" in tensors:
            layer = (nn.BatchNorm2d if last_channels else nn.BatchNorm1d)(weight.shape[0])
        elif weight.ndim == 1:
            layer = nn.LayerNorm(weight.shape[0])
        elif weight.ndim == 2:
            if last_channels is not None:
                layers.append(_GlobalAveragePool() if weight.shape[1] == last_channels else nn.Flatten())
                names.append(None)
                last_channels = None
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        elif weight.ndim in (3, 4):
            conv = nn.Conv1d if weight.ndim == 3 else nn.Conv2d
            layer = conv(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), bias=bias is not None)
            last_channels = weight.shape[0]
        else:
            raise ImportError_(
                f"cannot infer a layer from {prefix}.weight of shape {tuple(weight.shape)}: give --module"
            )
        if layers and not isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
            layers.append(nn.ReLU())
            names.append(None)
        layers.append(layer)
        names.append(prefix)
    return _Named(layers, names)


class _GlobalAveragePool(nn.Module):
    def forward(self, x):
        return x.mean(dim=tuple(range(2, x.ndim)))


class _Named(nn.Module):
    """Layers in order, registered under the state dict's own prefixes (so its keys load as they are)."""

    def __init__(self, layers: Sequence[nn.Module], names: Sequence[str | None]):
        super().__init__()
        self.order = []
        for i, (layer, name) in enumerate(zip(layers, names)):
            key = name if name is not None else f"_op{i}"
            module, attribute = self._parent(key)
            module.add_module(attribute, layer)
            self.order.append(key)

    def _parent(self, key: str):
        *path, attribute = key.split(".")
        module = self
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        return module, attribute

    def forward(self, x):
        for key in self.order:
            x = self.get_submodule(key)(x)
        return x


def _stacked(spec: WeightSpec, files: Sequence[Path], read) -> dict[str, torch.Tensor]:
    """The checkpoints in ``files`` (read by ``read``) stacked under the spec's names; a file whose
    tensors do not match the spec is one error naming it."""
    states = []
    for file in files:
        state = read(file)
        try:
            spec.check_state_dict(state, batched=False)
        except WeightspaceError as error:
            raise ImportError_(f"{file}: {error}") from None
        states.append(state)
    return {n: torch.stack([s[n].float() for s in states]) for n in spec.names}


def _spec(net: nn.Module, factory: str | None, input_shape: Sequence[int] = ()) -> WeightSpec:
    """``net``'s spec, recording the factory that rebuilds it and the shape of one input it reads
    (a derived spec of a built-in family is that family's own)."""
    try:
        spec = WeightSpec.from_module(net)
    except WeightspaceError as error:
        raise ImportError_(
            f"{error} (WeightSpec.from_module(module, symmetries=False) gives a spec without symmetries)"
        ) from None
    if input_shape:
        _check_input_shape(net, factory, tuple(input_shape))
    if spec.architecture == "module" and factory:
        spec = ModuleArchitecture.recording(spec, factory, input_shape).spec
    return spec


def _check_input_shape(net: nn.Module, factory: str | None, shape: tuple[int, ...]) -> None:
    """An input shape is recorded for a module that can run (module-probing feeds it): refuse it
    without a factory, or when the module rejects a batch of zeros of that shape."""
    if not factory:
        raise ImportError_(
            f"--input-shape {','.join(map(str, shape))} is for networks that can be run: give --module pkg.mod:factory too"
        )
    if any(size < 1 for size in shape):
        raise ImportError_(f"--input-shape sizes must be >= 1 (got {','.join(map(str, shape))})")
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, *shape))
    except Exception as error:  # the user's module raises whatever its layers raise
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise ImportError_(
            f"the module {factory} rejects inputs of shape {shape} ({first}): check --input-shape"
        ) from None


def from_state_dicts(
    paths: Sequence,
    properties,
    module: str | None = None,
    out=None,
    progress: bool = True,
    input_shape: Sequence[int] = (),
    **settings,
) -> Path | Source:
    """Import checkpoint files ``paths`` with ``properties`` (a CSV path or a DataFrame: file name
    first, then property columns). ``module``: a factory ``pkg.mod:callable``; without it the
    module is inferred (:func:`infer_module`). ``input_shape``: the shape of one input the module
    reads (with a factory; what ``module-probing`` feeds). With ``out`` the zoo is written there
    (returns its path); without, the :class:`Source` is returned."""
    table = properties if isinstance(properties, pd.DataFrame) else _properties(properties)
    file_column = table.columns[0]
    by_name = {Path(p).name: Path(p) for p in paths}
    missing = [name for name in table[file_column].astype(str) if name not in by_name]
    if missing:
        raise ImportError_(f"the properties name {len(missing)} checkpoints that are not there, e.g. {missing[0]!r}")
    files = [by_name[name] for name in table[file_column].astype(str)]
    first = read_state_dict(files[0])
    net = build_module(module) if module else infer_module(first)
    spec = _spec(net, module, input_shape)
    columns = [c for c in table.columns[1:] if c not in ("run_id", "step", "split")]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(table[c])]
    rows = pd.DataFrame(
        {
            "run_id": table["run_id"] if "run_id" in table else np.arange(len(table)),
            "step": table["step"] if "step" in table else np.zeros(len(table), dtype=np.int64),
            "file": table[file_column].astype(str),
            **{c: table[c] for c in columns},
        }
    )

    source = Source(
        spec,
        rows,
        lambda positions: _stacked(spec, [files[i] for i in positions], read_state_dict),
        config={
            "source_format": "state-dicts",
            "source": str(Path(files[0]).parent),
            "module": module or "",
            "input_shape": tuple(input_shape),
            "properties": tuple(numeric),
            "categorical": tuple(c for c in columns if c not in numeric),
            **settings,
        },
        description={"module": module or f"inferred from the keys: {net}".replace("\n", " ")},
    )
    return write_zoo(out, source, progress) if out is not None else source


# ---- the Small CNN Zoo ------------------------------------------------------------------------------
def _layout(path: Path) -> list[dict]:
    try:
        layout = pd.read_csv(path)
        entries = [
            {
                "varname": str(r["varname"]),
                "start": int(r["start_idx"]),
                "end": int(r["end_idx"]),
                "shape": tuple(int(s) for s in ast.literal_eval(str(r["shape"]))),
            }
            for _, r in layout.iterrows()
        ]
    except FileNotFoundError:
        raise ImportError_(f"{path} does not exist") from None
    except (KeyError, ValueError, SyntaxError, TypeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ImportError_(
            f"{path} is not a Small CNN Zoo layout (varname, start_idx, end_idx, shape): {error}"
        ) from None
    return entries


def from_small_cnn_zoo(
    src, out=None, split_file=None, progress: bool = True, input_shape: Sequence[int] = (), **settings
) -> Path | Source:
    """Import the Small CNN Zoo folder ``src`` (see the module docstring). ``input_shape``: one
    input's shape, by default (input channels, 32, 32) (CIFAR-10-GS: 1,32,32 grayscale images;
    MNIST's 28,28 reads as well: the network pools globally)."""
    src = Path(src)
    layout = _layout(src / "layout.csv")
    try:
        weights = np.load(src / "weights.npy", mmap_mode="r")
    except FileNotFoundError:
        raise ImportError_(f"{src / 'weights.npy'} does not exist") from None
    except ValueError as error:
        raise ImportError_(f"{src / 'weights.npy'} is not a NumPy array file ({error})") from None
    try:
        metrics = pd.read_csv(src / "metrics.csv.gz")
    except FileNotFoundError:
        raise ImportError_(f"{src / 'metrics.csv.gz'} does not exist") from None
    except Exception as error:  # pandas, gzip and zlib raise several types for a corrupt file
        raise ImportError_(f"{src / 'metrics.csv.gz'} is not a readable gzipped CSV ({type(error).__name__})") from None
    if weights.ndim != 2 or len(weights) != len(metrics):
        raise ImportError_(
            f"{src}: weights.npy has shape {weights.shape} but metrics.csv.gz has {len(metrics)} rows (one per network)"
        )
    kernels = [e for e in layout if len(e["shape"]) == 4]
    dense = [e for e in layout if len(e["shape"]) == 2]
    if not kernels or len(dense) != 1 or layout[-1]["end"] != weights.shape[1]:
        raise ImportError_(
            f"{src}: the layout does not describe conv layers and one dense layer of {weights.shape[1]} weights"
        )
    channels = [kernels[0]["shape"][2]] + [k["shape"][3] for k in kernels]
    net = small_cnn(channels, [k["shape"][0] for k in kernels], dense[0]["shape"][1])
    # the module runs only where every network has one activation the factories know (the zoo's
    # networks use ReLU or tanh: one module for all of them would run some with the wrong one)
    activations = set(metrics["config.activation"].astype(str)) if "config.activation" in metrics else {"relu"}
    factory = FACTORIES.get(activations.pop()) if len(activations) == 1 and channels == [1, 16, 16, 16] else None
    input_shape = tuple(input_shape) or ((channels[0], 32, 32) if factory else ())
    spec = _spec(net, factory, input_shape)
    names = list(spec.names)  # convs.0.weight, convs.0.bias, ..., head.weight, head.bias
    ordered = [e for e in layout if len(e["shape"]) in (4, 2)], [e for e in layout if len(e["shape"]) == 1]
    kernel_entries, bias_entries = ordered
    if len(bias_entries) != len(kernel_entries):
        raise ImportError_(f"{src}: the layout has {len(kernel_entries)} kernels but {len(bias_entries)} biases")

    def convert(block: np.ndarray) -> dict[str, torch.Tensor]:
        out = {}
        for i, (kernel, bias) in enumerate(zip(kernel_entries, bias_entries)):
            w = torch.from_numpy(np.ascontiguousarray(block[:, kernel["start"] : kernel["end"]], dtype=np.float32))
            w = w.reshape(len(block), *kernel["shape"])
            w = w.permute(0, 4, 3, 1, 2) if w.ndim == 5 else w.permute(0, 2, 1)  # TF -> PyTorch layouts
            b = torch.from_numpy(np.ascontiguousarray(block[:, bias["start"] : bias["end"]], dtype=np.float32))
            out[names[2 * i]], out[names[2 * i + 1]] = w.contiguous(), b
        return out

    step = metrics["step"] if "step" in metrics else pd.Series(np.zeros(len(metrics), dtype=np.int64))
    hyper = [c for c in metrics.columns if c.startswith("config.")]
    numeric = [
        c for c in metrics.columns if c not in hyper and c != "step" and pd.api.types.is_numeric_dtype(metrics[c])
    ]
    table = metrics.rename(columns={c: c.replace("config.", "config_") for c in hyper}).copy()
    hyper = [c.replace("config.", "config_") for c in hyper]
    # a network is one training run at one step; runs are told apart by their hyperparameters and seed
    run_keys = table[hyper].astype(str).agg("|".join, axis=1) if hyper else pd.Series(np.arange(len(table)).astype(str))
    table.insert(0, "run_id", pd.factorize(run_keys)[0].astype(np.int64))
    table["step"] = step.astype(np.int64).to_numpy()
    if split_file:
        table["split"] = _nfn_split(Path(split_file), len(table))
    numeric_hyper = [c for c in hyper if pd.api.types.is_numeric_dtype(table[c])]
    source = Source(
        spec,
        table,
        lambda positions: convert(np.asarray(weights[np.sort(positions)])),
        config={
            "source_format": "small-cnn-zoo",
            "source": str(src),
            "properties": tuple(numeric + numeric_hyper),
            "categorical": tuple(c for c in hyper if c not in numeric_hyper),
            "split_file": str(split_file or ""),
            "input_shape": input_shape,
            **settings,
        },
        description={"layout": "TensorFlow kernels transposed to PyTorch's: conv (h, w, in, out) -> (out, in, h, w)"},
    )
    return write_zoo(out, source, progress) if out is not None else source


def _nfn_split(path: Path, rows: int) -> np.ndarray:
    """Rows' splits from nfn's split file: ``train``/``val``/``test`` index lists (JSON or .npz)."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as data:
                parts = {k: np.asarray(data[k]) for k in data.files}
        else:
            parts = {k: np.asarray(v) for k, v in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        raise ImportError_(f"{path} does not exist") from None
    except (ValueError, OSError, AttributeError) as error:
        raise ImportError_(f"{path} is not a split file (train/val/test index lists): {error}") from None
    if not {"train", "test"} <= set(parts):
        raise ImportError_(f"{path} lacks a train or test list (has {sorted(parts)})")
    split = np.full(rows, "", dtype=object)
    for name, label in (("train", "train"), ("val", "val"), ("test", "ood")):
        indices = parts.get(name, np.array([], dtype=np.int64)).astype(np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= rows):
            raise ImportError_(f"{path}: {name} indices outside 0..{rows - 1}")
        split[indices] = label
    if (split == "").any():
        raise ImportError_(f"{path} leaves {(split == '').sum()} networks in no split")
    return split.astype(str)


# ---- Model Zoos (Schürholt et al.) ------------------------------------------------------------------
def _trial_checkpoint(folder: Path) -> Path:
    """The state-dict file inside a ``checkpoint_NNNNNN`` folder."""
    candidates = [folder / "checkpoints"] + sorted(p for p in folder.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ImportError_(f"{folder} holds no checkpoint file ('checkpoints' or {', '.join(CHECKPOINT_SUFFIXES)})")


def _read_any_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """``read_state_dict`` for a file with or without a suffix (Ray Tune's ``checkpoints``: torch.save)."""
    return read_state_dict(path, path.suffix if path.suffix in CHECKPOINT_SUFFIXES else ".pt")


def _flat_config(config, prefix="config_") -> dict:
    out = {}
    for key, value in (config or {}).items():
        name = prefix + str(key).replace("::", "_").replace(".", "_").replace(" ", "_")
        if isinstance(value, dict):
            out.update(_flat_config(value, name + "_"))
        elif isinstance(value, (bool, int, float, str)) or value is None:
            out[name] = value
        else:
            out[name] = str(value)
    return out


def _trial_results(path: Path) -> dict[int, dict]:
    """Epoch -> that epoch's line of a trial's ``result.json``."""
    lines = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ImportError_(f"{path} does not exist: a Model Zoos trial folder holds result.json") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            epoch = int(record["training_iteration"])
        except (ValueError, KeyError, TypeError) as error:
            raise ImportError_(f"{path}, line {number}: not a result line with training_iteration ({error})") from None
        lines[epoch] = record
    return lines


def from_model_zoos(
    src, out=None, module: str | None = None, progress: bool = True, input_shape: Sequence[int] = (), **settings
) -> Path | Source:
    """Import a Model Zoos folder ``src`` of trial folders (see the module docstring);
    ``input_shape`` as for :func:`from_state_dicts`."""
    src = Path(src)
    if not src.is_dir():
        raise ImportError_(f"{src} is not a folder of trial folders")
    trials = sorted(p for p in src.iterdir() if p.is_dir() and (p / "result.json").exists())
    if not trials:
        raise ImportError_(f"{src} holds no trial folder with a result.json")
    records, files = [], []
    for run_id, trial in enumerate(tqdm(trials, desc="read trials", disable=not progress, dynamic_ncols=True)):
        results = _trial_results(trial / "result.json")
        for folder in sorted(trial.glob("checkpoint_*")):
            try:
                epoch = int(folder.name.split("_")[-1])
            except ValueError:
                continue
            result = results.get(epoch, {})
            metrics = {k: v for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            metrics.pop("training_iteration", None)
            records.append(
                {"run_id": run_id, "step": epoch, "trial": trial.name, **metrics, **_flat_config(result.get("config"))}
            )
            files.append(_trial_checkpoint(folder))
    if not records:
        raise ImportError_(f"{src}: no trial has a checkpoint_NNNNNN folder")
    table = pd.DataFrame(records)
    first = _read_any_state_dict(files[0])
    net = build_module(module) if module else infer_module(first)
    spec = _spec(net, module, input_shape)
    columns = [c for c in table.columns if c not in ("run_id", "step", "trial")]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(table[c]) and table[c].nunique() > 1]
    categorical = [c for c in columns if not pd.api.types.is_numeric_dtype(table[c]) and table[c].nunique() > 1]

    source = Source(
        spec,
        table,
        lambda positions: _stacked(spec, [files[i] for i in positions], _read_any_state_dict),
        config={
            "source_format": "model-zoos",
            "source": str(src),
            "module": module or "",
            "input_shape": tuple(input_shape),
            "properties": tuple(numeric),
            "categorical": tuple(categorical),
            **settings,
        },
        description={"trials": len(trials), "module": module or f"inferred from the keys: {net}".replace("\n", " ")},
    )
    return write_zoo(out, source, progress) if out is not None else source


# ---- paper 000's released zoo (Herrmann et al.) --------------------------------------------------------
def from_rnn_zoo_npy(src, out=None, progress: bool = True, population: int = 256) -> Path | Source:
    """Import paper 000's released formal-language zoo ``src`` (the authors' ``datasets/formal_languages*``
    folder) as a ``formal-languages`` zoo, so that paper 000's experiments run on the authors' own
    networks. Their files: ``parameters.npy`` (N x P: ``torch.cat`` of ``RNNFast.parameters()``, an
    ``nn.LSTM`` then an ``nn.Linear``, i.e. our LSTM spec's order), ``sequences.npy`` (N, R, L) int16
    sampled strings, BOS first, ``logits.npy`` (N, R, L - 1, tokens + 2) float16 log-distributions,
    ``tasks.npy`` (N, tokens) the occurrence differences [0, m_b, m_c, m_d], ``num_step_correct.npy``
    (N, 3): run, training step, members among 1,000 sampled strings, and ``args.json``. Their
    vocabulary is ours (a-d = 0-3, BOS = 4, EOS = 5); the table's split is our family's split by
    language. Only their formal-language zoo fits a family of ours (4 letters, 42 tokens)."""
    from ..networks import LSTM
    from ..tasks.formal_languages import SEQUENCE_LENGTH, VOCAB_SIZE, all_languages, language_splits

    src = Path(src)
    arrays = {}
    for name in ("parameters", "sequences", "logits", "tasks", "num_step_correct"):
        try:
            arrays[name] = np.load(src / f"{name}.npy", mmap_mode="r")
        except FileNotFoundError:
            raise ImportError_(f"{src / f'{name}.npy'} does not exist (paper 000's zoo holds {name}.npy)") from None
        except ValueError as error:
            raise ImportError_(f"{src / f'{name}.npy'} is not a NumPy array file ({error})") from None
    try:
        args = json.loads((src / "args.json").read_text())
    except FileNotFoundError:
        raise ImportError_(f"{src / 'args.json'} does not exist") from None
    except ValueError as error:
        raise ImportError_(f"{src / 'args.json'} is not JSON ({error})") from None
    if "num_tokens" not in args:
        raise ImportError_(f"{src}: args.json has no num_tokens; only the authors' formal-language zoo imports")
    rows = len(arrays["parameters"])
    if any(len(a) != rows for a in arrays.values()):
        raise ImportError_(
            f"{src}: the .npy files disagree on the number of rows ({[len(a) for a in arrays.values()]})"
        )
    if int(args["num_tokens"]) != 4 or arrays["sequences"].shape[2] != SEQUENCE_LENGTH:
        raise ImportError_(
            f"{src}: {args['num_tokens']} letters and sequences of {arrays['sequences'].shape[2]} tokens; the "
            f"formal-language family has 4 letters and {SEQUENCE_LENGTH} tokens"
        )
    hidden, layers = int(args.get("rnn_hidden_size", 32)), int(args.get("rnn_num_layers", 2))
    architecture = LSTM(VOCAB_SIZE, hidden, layers, VOCAB_SIZE)
    spec = architecture.spec
    if arrays["parameters"].shape[1] != spec.num_parameters:
        raise ImportError_(
            f"{src}: parameters.npy has {arrays['parameters'].shape[1]} columns, an LSTM of {layers} x {hidden} "
            f"with a readout has {spec.num_parameters}"
        )
    rollouts = arrays["sequences"].shape[1]
    if arrays["logits"].shape[1:] != (rollouts, SEQUENCE_LENGTH - 1, VOCAB_SIZE):
        raise ImportError_(f"{src}: logits.npy has shape {arrays['logits'].shape}, not (N, {rollouts}, 41, 6)")
    tasks = np.asarray(arrays["tasks"], dtype=np.int64)
    if tasks.shape[1] != 4 or (tasks[:, 0] != 0).any() or tasks.min() < -3 or tasks.max() > 2:
        raise ImportError_(f"{src}: tasks.npy rows are not occurrence differences [0, m_b, m_c, m_d] in -3..2")
    record = np.asarray(arrays["num_step_correct"], dtype=np.int64)
    languages = {m: i for i, m in enumerate(all_languages())}
    params = [tuple(int(v) for v in t[1:]) for t in tasks]
    splits = language_splits()
    samples = 1000  # evaluate_rnn(rnn, language, 1000) in their dataset_creation_formal_language.py
    table = pd.DataFrame(
        {
            "run_id": record[:, 0],
            "step": record[:, 1],
            "split": [splits[m] for m in params],
            "seed": record[:, 0],
            "learning_rate": np.full(rows, 0.01),
            "weight_decay": np.full(rows, 1e-4),
            "task_id": [languages[m] for m in params],
            "m_b": tasks[:, 1],
            "m_c": tasks[:, 2],
            "m_d": tasks[:, 3],
            "performance": record[:, 2] / samples,
            "train_loss": np.full(rows, np.nan),
        }
    )
    steps = sorted(int(s) for s in np.unique(record[:, 1]))
    config = {
        "models": int(table["run_id"].nunique()),
        "steps": steps[-1],
        "checkpoints": steps,
        "population": population,
        "batch_size": 32,
        "learning_rate": 0.01,
        "weight_decay": 1e-4,
        "hidden_size": hidden,
        "num_layers": layers,
        "samples": samples,
        "rollouts": rollouts,
    }
    task = get_task("formal-languages")
    sections = task.describe(task.config({**config, "checkpoints": steps}, "zoo import"))
    sections["task"] = {
        **sections["task"],
        "n_range": f"uniform integer in [max(0, -min(m)), {args.get('max_n')}) (their max_n)",
        "imported_from": {"format": "rnn-zoo-npy", "source": str(src), "args": args},
        "train_loss": "not stored by the authors (NaN)",
    }

    def load(positions: np.ndarray) -> dict[str, torch.Tensor]:
        flat = torch.from_numpy(np.asarray(arrays["parameters"][np.sort(positions)], dtype=np.float32))
        return dict(Population.unflatten(spec, flat))

    def stored_rollouts(positions: np.ndarray) -> dict[str, torch.Tensor]:
        order = np.sort(positions)
        return {
            "tokens": torch.from_numpy(np.asarray(arrays["sequences"][order]).astype(np.uint8)),
            "logprobs": torch.from_numpy(np.asarray(arrays["logits"][order], dtype=np.float16)),
        }

    source = Source(spec, table, load, config, kind="formal-languages", rollouts=stored_rollouts, sections=sections)
    return write_zoo(out, source, progress) if out is not None else source
