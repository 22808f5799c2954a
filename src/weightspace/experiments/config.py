"""Experiment configs: one TOML file describes zoos, encoders, seeds and budgets.

Every value has one source: the file, unless the command line gives it (the command line wins).
Unknown keys are errors, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..emulation.pretrain import PretrainConfig
from ..encoders import ENCODER_NAMES
from ..errors import ConfigError
from ..downstream.predictor import PredictorConfig
from ..zoo import KINDS
from ..zoo.builder import ZooConfig


@dataclass(frozen=True)
class ZooSection:
    """A zoo to build (or reuse, if ``path`` already holds it) for the experiment."""

    name: str
    kind: str
    path: str | None = None  # default: RESULTS/zoos/NAME
    options: dict = field(default_factory=dict)  # ZooConfig fields

    def zoo_config(self) -> ZooConfig:
        options = dict(self.options)
        options.setdefault("population", KINDS[self.kind].default_population)
        return ZooConfig(**options)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    zoos: tuple[ZooSection, ...]
    seeds: tuple[int, ...] = (0,)
    encoders: tuple[str, ...] = ENCODER_NAMES
    pretrain: dict = field(default_factory=dict)  # PretrainConfig fields except encoder, seed
    predictor: dict = field(default_factory=dict)  # PredictorConfig fields
    supervised: dict = field(default_factory=dict)  # PredictorConfig fields + "targets" (list or "all")
    encoder_options: dict = field(default_factory=dict)  # encoder name -> hyperparameter overrides
    analyses: dict = field(default_factory=dict)
    results_dir: str = "results"

    @property
    def output(self) -> Path:
        return Path(self.results_dir) / self.name

    def pretrain_config(self, encoder: str, seed: int, **extra_options) -> PretrainConfig:
        options = {**self.encoder_options.get(encoder, {}), **extra_options}
        return PretrainConfig(encoder=encoder, seed=seed, encoder_options=options, **self.pretrain)

    def predictor_config(self) -> PredictorConfig:
        return PredictorConfig(**self.predictor)

    def supervised_config(self) -> PredictorConfig:
        return PredictorConfig(**{k: v for k, v in self.supervised.items() if k != "targets"})

    def supervised_targets(self, names: list[str]) -> list[str]:
        wanted = self.supervised.get("targets", "all")
        return names if wanted == "all" else [n for n in names if n in wanted]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


_ANALYSES = {"invariance", "embeddings", "fidelity", "fidelity_samples", "probes", "probing_ablation"}


def _check_keys(where: str, data: dict, allowed) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def load_experiment(path, overrides: dict | None = None) -> ExperimentConfig:
    """Read an experiment TOML file; ``overrides`` (from the command line) win over the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"experiment config {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    _check_keys(str(path), data, _fields(ExperimentConfig))
    if "name" not in data or "zoos" not in data:
        raise ConfigError(f"{path}: an experiment needs a name and at least one [[zoos]] table")
    zoos = []
    for i, zoo in enumerate(data["zoos"]):
        _check_keys(f"{path}: zoos[{i}]", zoo, {"name", "kind", "path"} | (_fields(ZooConfig)))
        if zoo.get("kind") not in KINDS or zoo["kind"] == "cartpole":
            raise ConfigError(f"{path}: zoos[{i}] needs kind formal-languages or digits")
        options = {k: (tuple(v) if k == "checkpoints" else v) for k, v in zoo.items() if k not in ("name", "kind", "path")}
        zoos.append(ZooSection(zoo.get("name", zoo["kind"]), zoo["kind"], zoo.get("path"), options))
    unknown_encoders = sorted(set(data.get("encoders", ())) - set(ENCODER_NAMES))
    if unknown_encoders:
        raise ConfigError(f"{path}: unknown encoders {unknown_encoders}; choose from {list(ENCODER_NAMES)}")
    _check_keys(f"{path}: [pretrain]", data.get("pretrain", {}), _fields(PretrainConfig) - {"encoder", "seed", "encoder_options"})
    _check_keys(f"{path}: [predictor]", data.get("predictor", {}), _fields(PredictorConfig))
    _check_keys(f"{path}: [supervised]", data.get("supervised", {}), _fields(PredictorConfig) | {"targets"})
    _check_keys(f"{path}: [analyses]", data.get("analyses", {}), _ANALYSES)
    _check_keys(f"{path}: [encoder_options]", data.get("encoder_options", {}), ENCODER_NAMES)
    return ExperimentConfig(
        name=data["name"], zoos=tuple(zoos), seeds=tuple(data.get("seeds", (0,))),
        encoders=tuple(data.get("encoders", ENCODER_NAMES)), pretrain=data.get("pretrain", {}),
        predictor=data.get("predictor", {}), supervised=data.get("supervised", {}),
        encoder_options=data.get("encoder_options", {}), analyses=data.get("analyses", {}),
        results_dir=data.get("results_dir", "results"),
    )
