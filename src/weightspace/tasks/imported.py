"""Zoos of networks weightspace did not train: what ``weightspace zoo import`` writes.

An imported zoo is an ordinary zoo (manifest, Parquet table, safetensors shards) whose
architecture is the spec derived from the user's module (``architecture = "module"``, see
:mod:`weightspace.networks.module_architecture`) or one of the built-in architectures (paper
000's released LSTM zoo imports as ``lstm``), and whose table holds the properties the source
came with (test accuracy, hyperparameters, ...). Each numeric property is a regression target of
downstream prediction, each categorical one a classification target; the rest of the toolkit
reads the zoo as it reads one it built. An imported zoo stores no rollouts, so the emulation
encoders' pretraining does not apply to it: encoders train on its targets end to end (supervised
prediction), the weight encoders on any spec, ``module-probing`` on networks imported with a
module factory and an input shape.

Rows of one source network (``run_id``) at several training steps (``step``) keep their split
together. The split is ``train``/``val``/``ood``, where ``ood`` is the held-out test set of the
source (nfn's split file for the Small CNN Zoo) or a random one: here it means "test", not "out of
distribution".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import WeightspaceError
from .base import Task, TaskConfig


@dataclass(frozen=True)
class ImportedConfig(TaskConfig):
    """Where an imported zoo came from; the importer fills it in (nothing here is trained)."""

    models: int = field(default=1, metadata={"help": "Source networks (runs)."})
    steps: int = field(default=0, metadata={"help": "The latest training step among the checkpoints (0: unknown)."})
    population: int = field(default=256, metadata={"help": "Checkpoints per shard file."})
    source_format: str = field(default="state-dicts", metadata={"help": "The format imported."})
    source: str = field(default="", metadata={"help": "The path imported from, as given."})
    module: str = field(default="", metadata={"help": "The module factory (pkg.mod:callable), if given."})
    input_shape: tuple[int, ...] = field(
        default=(), metadata={"help": "The shape of one input (C,H,W), if given: what module-probing feeds."}
    )
    properties: tuple[str, ...] = field(default=(), metadata={"help": "Numeric property columns (regression)."})
    categorical: tuple[str, ...] = field(default=(), metadata={"help": "Categorical property columns."})
    val_fraction: float = field(default=0.1, metadata={"help": "Share of runs for validation (random split)."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share of runs held out as the test set ('ood')."})
    split_file: str = field(default="", metadata={"help": "A split file of the source (given: no random split)."})

    def problems(self) -> list[str]:
        problems = []
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{name} must lie in [0, 1) (got {getattr(self, name)})")
        if self.val_fraction + self.test_fraction >= 1:
            problems.append("val_fraction + test_fraction must leave runs to train on")
        if any(size < 1 for size in self.input_shape):
            problems.append(f"input_shape sizes must be >= 1 (got {list(self.input_shape)})")
        overlap = set(self.properties) & set(self.categorical)
        if overlap:
            problems.append(f"columns both numeric and categorical: {sorted(overlap)}")
        return problems


class ImportedNetworks(Task):
    """Networks from outside weightspace (``weightspace zoo import``); not buildable."""

    name = "imported"
    summary = "networks imported from checkpoints or a public zoo (weightspace zoo import)"
    config_class = ImportedConfig
    plot_columns = ("run_id", "step")
    #: not offered by ``zoo build``: an imported zoo is written by ``zoo import``
    buildable = False
    emulation = False

    def architecture(self, config):
        raise WeightspaceError("an imported zoo's architecture is stored in its manifest (weightspace zoo import)")

    def task_io(self, zoo):
        raise WeightspaceError(
            f"{zoo.path} holds imported networks without the inputs they were trained on, so the sequence "
            "probing encoders and emulation do not apply: the statistics, flattened and transformer encoders "
            "read any network (and DWSNet MLP and LSTM stacks), module-probing a module imported with "
            "--module and --input-shape"
        )

    def quality_column(self, zoo) -> str:
        """The first numeric property the source came with."""
        return zoo.config.properties[0] if zoo.config.properties else "step"

    def targets(self, zoo) -> list:
        """Each numeric property (MSE, with Kendall's tau) and each categorical one (accuracy)."""
        from ..downstream.targets import Classification, Regression

        config = zoo.config
        targets = [Regression(column, (column,)) for column in config.properties]
        for column in config.categorical:
            classes = tuple(sorted(zoo.table[column].dropna().unique().tolist()))
            targets.append(Classification(column, (column,), classes, chance={"accuracy": 1 / max(1, len(classes))}))
        return targets
