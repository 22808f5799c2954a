"""Paper 000 (learning representations of weights by emulation) as an experiment family.

The TOML file (``experiments/demo.toml``, ``experiments/paper-*.toml``; no ``family`` key, or
``family = "representations"``) lists the zoos, the encoders, the seeds and each stage's budget.
Its steps, per zoo ``Z``, encoder ``E``, seed ``S`` and downstream target ``T``::

    zoo/Z                         build the zoo                      [[zoos]] table of Z
    pretrain/Z/E/seed-S           emulation pretraining of E         [pretrain], [encoder_options]
    embed/Z/E/seed-S              embeddings of every checkpoint     -
    predict/Z/E/seed-S/T          MLP on frozen embeddings -> T      [predictor]
    supervised/Z/E/seed-S/T       E trained end to end -> T          [supervised], [encoder_options]
    invariance/Z                  figures 17, 18                     [encoder_options]
    embeddings/Z                  figures 6, 7, 21-23                -
    fidelity/Z                    figure 5                           [analyses] fidelity_samples
    probes/Z                      figure 16                          -
    pretrain/Z/ablation/E-O-V/seed-S, probing_ablation/Z             figures 13-15

(right: the settings each step's key hashes besides its inputs). The analyses use the first seed's
runs. The report (:mod:`~weightspace.experiments.representations_report`) shows every target's
table over encoders, pretrained next to supervised, with bootstrapped intervals over seeds.

A zoo of a family without emulation (``kind = "imported"``: networks from ``weightspace zoo
import``, read from ``path``) has no rollouts to pretrain on: only its ``zoo`` and ``supervised``
steps run (each encoder trained end to end on each of its targets), and the report says so. Its
networks are known when the file is read, so an encoder that cannot read them (DWSNet on a
convolution, sequence probing, module-probing without a factory and an input shape) is refused
then, in one line that names the encoders that fit.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from ... import config as typed
from ...downstream.predictor import PredictorConfig
from ...emulation.pretrain import PretrainConfig
from ...emulation.references import REFERENCES
from ...encoders import ENCODER_NAMES, ENCODERS
from ...errors import ConfigError, WeightspaceError
from ..code import module_of
from ..config import DEFAULT_FAMILY, library, moved_keys, per_step_problems
from ..family import Family
from ..steps import Finished, Step, _say
from ..zoo_step import existing_zoo_config, open_zoo, zoo_location, zoo_step
from . import analyses

FAMILY = DEFAULT_FAMILY


@dataclass(frozen=True, kw_only=True)
class ZooSection:
    """A ``[[zoos]]`` table: a name, the task family (``kind``), where the zoo lives, and that
    task's own settings (validated by the task's config class)."""

    name: str = field(metadata={"help": "The zoo's name in step names and the report."})
    kind: str = field(metadata={"help": "The task family (formal-languages, digits, ...)."})
    path: str | None = field(
        default=None,
        metadata={
            "help": "Directory of the zoo (built there, or reused if it holds it); default: inside the zoo step's directory."
        },
    )
    config: object = field(default=None, metadata={"flatten": True})

    @classmethod
    def from_toml(cls, data, where: str) -> ZooSection:
        from ...tasks import get_task

        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a [[zoos]] table, got {data!r}")
        data = dict(data)
        kind = data.pop("kind", None)
        if not isinstance(kind, str):
            raise ConfigError(f'{where}: give the zoo\'s task family as kind = "..." (a string)')
        name, path = data.pop("name", kind), data.pop("path", None)
        if not isinstance(name, str) or not (path is None or isinstance(path, str)):
            raise ConfigError(f"{where}: name and path must be strings")
        task, where = get_task(kind), f"{where} ({kind})"
        config = task.config(data, where) if task.buildable else existing_zoo_config(task, path, data, where)
        return cls(name=name, kind=kind, path=path, config=config)

    @property
    def emulation(self) -> bool:
        """Whether emulation pretraining applies to the zoo (not to imported networks)."""
        from ...tasks import get_task

        return get_task(self.kind).emulation

    def encoder_problems(self, encoders) -> dict[str, str]:
        """Encoder -> why it cannot encode this zoo's networks, for the encoders known to fail before
        anything runs: every one for a zoo that exists already (imported), none for one to build."""
        from ...encoders import encoder_problem
        from ...tasks import get_task
        from ...zoo import load_zoo

        task = get_task(self.kind)
        if task.buildable:
            return {}
        zoo = load_zoo(self.path)
        try:
            task.task_io(zoo)
            has_task = True
        except WeightspaceError:
            has_task = False
        problems = {e: encoder_problem(e, zoo.architecture, has_task) for e in encoders}
        return {e: problem for e, problem in problems.items() if problem is not None}


@dataclass(frozen=True, kw_only=True)
class ProbingAblation:
    """Figures 13-15: pretraining runs of one probing encoder with other numbers of probes and
    probe lengths."""

    encoder: str = field(default="interactive", metadata={"help": "The probing encoder to ablate."})
    probes: tuple[int, ...] = field(default=(1, 2, 4, 8, 16), metadata={"help": "Numbers of parallel probes."})
    lengths: tuple[int, ...] = field(default=(), metadata={"help": "Probe lengths (task-specific)."})
    steps: int | None = field(
        default=None, metadata={"help": "Pretraining steps of each ablation run; default: [pretrain] steps."}
    )
    eval_every: int | None = field(
        default=None,
        metadata={"help": "Steps between evaluations of each ablation run; default: [pretrain] eval_every."},
    )


@dataclass(frozen=True, kw_only=True)
class AnalysesSection:
    invariance: bool = field(default=True, metadata={"help": "Figures 17, 18: permutation invariance."})
    embeddings: bool = field(default=True, metadata={"help": "Figures 6, 7, 21-23: PCA and t-SNE of embeddings."})
    fidelity: bool = field(default=True, metadata={"help": "Figure 5: original vs emulated performance."})
    probes: bool = field(default=True, metadata={"help": "Figure 16: the learned probes."})
    probing_ablation: bool | ProbingAblation = field(
        default=False, metadata={"help": "Figures 13-15: false, true (the default grid) or a table of settings."}
    )
    fidelity_samples: int = field(default=100, metadata={"help": "Emulator samples per network for figure 5."})


@dataclass(frozen=True, kw_only=True)
class RepresentationsExperiment:
    """Paper 000: zoos -> pretraining -> embeddings -> property prediction -> analyses -> report."""

    family: str = field(default=FAMILY, metadata={"help": "The experiment family (paper 000)."})
    name: str = field(metadata={"help": "Results go to RESULTS_DIR/NAME."})
    seeds: tuple[int, ...] = field(
        default=(0,),
        metadata={"help": "Seeds of pretraining, prediction and the baselines; the analyses use the first."},
    )
    encoders: tuple[str, ...] = field(default=ENCODER_NAMES, metadata={"help": "Weight encoders to compare."})
    results_dir: str = field(default="results", metadata={"help": "Where results go (RESULTS_DIR/NAME)."})
    zoos: tuple[ZooSection, ...] = field(metadata={"help": "The zoos."})
    pretrain: PretrainConfig = library(
        PretrainConfig,
        per_step=("encoder", "seed", "encoder_options"),
        help=("The emulation pretraining of every encoder (the encoder, its options and the seed are set per step)."),
    )
    predictor: PredictorConfig = library(PredictorConfig, help="The MLP trained on frozen embeddings.")
    supervised: PredictorConfig = library(PredictorConfig, help="The baseline trained end to end.")
    supervised_targets: str | tuple[str, ...] = field(
        default="all", metadata={"help": 'Targets with a supervised baseline: "all" or a list of target names.'}
    )
    encoder_options: dict[str, dict] = field(
        default_factory=dict,
        metadata={"help": "Per encoder, hyperparameters that replace the paper's (e.g. statistics = { hidden = 64 })."},
    )
    analyses: AnalysesSection = field(default_factory=AnalysesSection)

    def __post_init__(self):
        problems = []
        if self.family != FAMILY:
            problems.append(f"family must be {FAMILY!r}")
        if not self.seeds:
            problems.append("give at least one seed")
        known = ENCODERS.names()
        for label, names in (("encoders", self.encoders), ("[encoder_options]", tuple(self.encoder_options))):
            unknown = [n for n in names if n not in known]
            if unknown:
                problems.append(f"{label}: unknown encoders {unknown}; choose from {known}")
        if not self.zoos:
            problems.append("an experiment needs at least one [[zoos]] table")
        names = [z.name for z in self.zoos]
        if len(set(names)) != len(names):
            problems.append(f"zoo names must differ (got {names})")
        if isinstance(self.supervised_targets, str) and self.supervised_targets != "all":
            problems.append(f'supervised_targets must be "all" or a list of names (got {self.supervised_targets!r})')
        problems += per_step_problems(self)
        ablation = self.ablation
        if ablation is not None and ablation.encoder not in analyses.probing_encoders():
            problems.append(f"[analyses.probing_ablation] encoder must be one of {list(analyses.probing_encoders())}")
        if ablation is not None and self.zoos and not any(z.emulation for z in self.zoos):
            problems.append("[analyses.probing_ablation] ablates emulation pretraining, which no zoo here has")
        if not problems:
            problems += self._unreadable_zoos()
        if problems:
            raise ValueError("; ".join(problems))

    def _unreadable_zoos(self) -> list[str]:
        """Zoos that some of the encoders cannot read, naming the encoders that fit."""
        problems = []
        for zoo in self.zoos:
            every = zoo.encoder_problems(ENCODERS.names())
            unfit = [e for e in self.encoders if e in every]
            if unfit:
                fit = [e for e in ENCODERS.names() if e not in every]
                problems.append(
                    f"zoo {zoo.name!r}: encoders {unfit} cannot read its networks ({unfit[0]}: {every[unfit[0]]}); "
                    f"set encoders to those that fit: {fit}"
                )
        return problems

    @property
    def ablation(self) -> ProbingAblation | None:
        setting = self.analyses.probing_ablation
        return ProbingAblation() if setting is True else (setting or None)

    def pretrain_config(self, encoder: str, seed: int, **encoder_options) -> PretrainConfig:
        options = {**self.encoder_options.get(encoder, {}), **encoder_options}
        return dataclasses.replace(self.pretrain, encoder=encoder, seed=seed, encoder_options=options)

    def supervised_for(self, names) -> list[str]:
        """The targets among ``names`` that get a supervised baseline."""
        wanted = self.supervised_targets
        return list(names) if wanted == "all" else [n for n in names if n in wanted]


# ---- steps ---------------------------------------------------------------------------------
def _zoo_summary(zoo) -> dict:
    from ...downstream import downstream_splits

    return {
        "split_sizes": {k: int(len(v)) for k, v in downstream_splits(zoo).items()},
        "targets": {
            t.name: {
                "kind": t.kind,
                "main_metric": t.main_metric,
                "higher_is_better": t.higher_is_better,
                "chance": dict(t.chance),
            }
            for t in zoo.task.targets(zoo)
        },
    }


def _target(zoo, name: str):
    return next(t for t in zoo.task.targets(zoo) if t.name == name)


def _load_run(finished: Finished, device):
    from ...emulation import load_run

    return load_run(finished.directory / "run", device)


def _inputs(context, prefix: str) -> dict[str, Finished]:
    """The inputs whose role starts with ``prefix`` (``run/``), by the rest of their role."""
    return {role[len(prefix) :]: finished for role, finished in context.inputs.items() if role.startswith(prefix)}


def _runs(context, device) -> dict:
    """Encoder name -> its pretraining run, from the inputs ``run/ENCODER``."""
    return {e: _load_run(finished, device) for e, finished in _inputs(context, "run/").items()}


# Each step's compute function is a module-level function of (context, settings): the settings are
# what its key hashes, so it can read nothing else (weightspace.experiments.steps).
def pretrain_step(name: str, zoo_name: str, config: PretrainConfig, references: dict[str, str] | None = None) -> Step:
    """A pretraining run; ``references`` (reference name -> step name) are the constant-floor and
    oracle-ceiling runs it is read against (their losses go into its metrics and result). The runs
    of one encoder that differ only in the seed, given one after another, train as one batched
    computation (:func:`~weightspace.emulation.seeds.pretrain_seeds`), each in its own step; the
    seeds of an encoder that cannot be batched are not grouped, so an executor with several workers
    trains them side by side instead of one after another in one worker."""
    from ...emulation.seeds import batching_problem

    references = references or {}
    group = None
    if batching_problem(config.encoder) is None:  # the seeds of this encoder train as one computation
        group = "pretrain " + json.dumps(
            {"zoo": zoo_name, "pretrain": {**config.to_json(), "seed": None}, "references": sorted(references)},
            sort_keys=True,
        )
    return Step(
        name,
        "pretrain",
        config.to_json(),
        compute_pretrain,
        {"zoo": zoo_name, **{f"reference/{r}": n for r, n in references.items()}},
        group=group,
        compute_together=compute_pretrain_together if group else None,
        resources={"cpus": 1, "gpus": "device"},
        code=_encoder_code(config.encoder),
    )


def _encoder_code(encoder: str) -> tuple[str, ...]:
    """The encoder's module, which a step picks by name (a reference's is imported anyway)."""
    from ...encoders import encoder_class

    return () if encoder in REFERENCES else (module_of(encoder_class(encoder)),)


def compute_pretrain(context, settings: dict) -> dict:
    return compute_pretrain_together([(settings, context)])[0]


def compute_pretrain_together(items) -> list[dict]:
    """Pretraining steps of one group: [(settings, context), ...]."""
    from ...emulation import run_summary
    from ...emulation.seeds import pretrain_seeds

    first = items[0][1]
    runs = [context.directory / "run" for _, context in items]
    references = [{r: f.directory / "run" for r, f in _inputs(context, "reference/").items()} for _, context in items]
    pretrain_seeds(
        zoo_location(first.input("zoo")),
        runs,
        [typed.from_dict(PretrainConfig, settings, "pretrain") for settings, _ in items],
        device=first.device,
        progress=first.progress,
        references=references,
        log=lambda message: _say(first.progress, message),
    )
    results = []
    for run, refs in zip(runs, references):
        summary = run_summary(run)
        results.append(
            {
                "run": "run",
                "best_val_loss": summary["val_loss"],
                "references": {r: summary[r] for r in refs if r in summary},
            }
        )
    return results


class StepNames:
    """Every step name of the family, in one place: the pipeline, the analyses and the results
    gathering all build them here."""

    @staticmethod
    def zoo(zoo: str) -> str:
        return f"zoo/{zoo}"

    @staticmethod
    def pretrain(zoo: str, encoder: str, seed: int) -> str:
        return f"pretrain/{zoo}/{encoder}/seed-{seed}"

    @staticmethod
    def references(zoo: str, seed: int) -> dict[str, str]:
        """A zoo's constant-floor and oracle-ceiling runs for one seed, by reference name."""
        return {r: f"pretrain/{zoo}/reference-{r}/seed-{seed}" for r in REFERENCES}

    @staticmethod
    def ablation(zoo: str, encoder: str, option: str, value, seed: int) -> str:
        return f"pretrain/{zoo}/ablation/{encoder}-{option}-{value}/seed-{seed}"

    @staticmethod
    def embed(zoo: str, encoder: str, seed: int) -> str:
        return f"embed/{zoo}/{encoder}/seed-{seed}"

    @staticmethod
    def prediction(kind: str, zoo: str, encoder: str, seed: int, target: str) -> str:
        """``kind``: predict (from the pretrained embeddings) or supervised."""
        return f"{kind}/{zoo}/{encoder}/seed-{seed}/{target}"

    @staticmethod
    def analysis(analysis: str, zoo: str) -> str:
        return f"{analysis}/{zoo}"


def embed_step(name: str, zoo_name: str, pretrain_name: str) -> Step:
    return Step(name, "embed", {}, compute_embed, {"zoo": zoo_name, "run": pretrain_name})


def compute_embed(context, settings: dict) -> dict:
    from ...emulation.embed import embed_zoo

    run = _load_run(context.input("run"), context.device)
    table = embed_zoo(
        run,
        open_zoo(context.input("zoo")),
        context.directory / "embeddings.parquet",
        device=context.device,
        progress=False,
    )
    return {"file": "embeddings.parquet", "rows": len(table)}


def predict_step(name: str, zoo_name: str, embed_name: str, target: str, seed: int, predictor: PredictorConfig) -> Step:
    settings = {"target": target, "seed": seed, "predictor": dataclasses.asdict(predictor)}
    return Step(name, "predict", settings, compute_predict, {"zoo": zoo_name, "embeddings": embed_name})


def compute_predict(context, settings: dict) -> dict:
    from ...downstream import downstream_splits, evaluate_frozen

    zoo = open_zoo(context.input("zoo"))
    embedded = context.input("embeddings")
    z = pd.read_parquet(embedded.directory / embedded.result["file"]).filter(like="z_").to_numpy()
    predictor = typed.from_dict(PredictorConfig, settings["predictor"], "predictor")
    return evaluate_frozen(
        z, zoo.table, downstream_splits(zoo), _target(zoo, settings["target"]), predictor, settings["seed"]
    )


def supervised_step(
    name: str, zoo_name: str, encoder: str, options: dict, target: str, seed: int, predictor: PredictorConfig
) -> Step:
    settings = {
        "encoder": encoder,
        "encoder_options": options,
        "target": target,
        "seed": seed,
        "predictor": dataclasses.asdict(predictor),
    }
    return Step(name, "supervised", settings, compute_supervised, {"zoo": zoo_name}, code=_encoder_code(encoder))


def compute_supervised(context, settings: dict) -> dict:
    from ...downstream import downstream_splits, evaluate_supervised
    from ...encoders import build_zoo_encoder

    zoo = open_zoo(context.input("zoo"))
    torch.manual_seed(settings["seed"])
    model = build_zoo_encoder(settings["encoder"], zoo, **settings["encoder_options"])
    predictor = typed.from_dict(PredictorConfig, settings["predictor"], "supervised")
    return evaluate_supervised(
        model,
        zoo,
        downstream_splits(zoo),
        _target(zoo, settings["target"]),
        predictor,
        settings["seed"],
        context.device,
    )


def compute_invariance(context, settings: dict) -> dict:
    return analyses.invariance(
        open_zoo(context.input("zoo")),
        _runs(context, context.device),
        settings["untrained"],
        context.directory,
        settings["title"],
    )


def compute_embeddings(context, settings: dict) -> dict:
    files = {e: f.directory / f.result["file"] for e, f in _inputs(context, "embeddings/").items()}
    return analyses.embeddings(open_zoo(context.input("zoo")), files, context.directory, settings["title"])


def compute_fidelity(context, settings: dict) -> dict:
    return analyses.fidelity(
        open_zoo(context.input("zoo")),
        _runs(context, context.device),
        settings["samples"],
        context.directory,
        settings["title"],
    )


def compute_probes(context, settings: dict) -> dict:
    return analyses.probes(open_zoo(context.input("zoo")), _runs(context, context.device), context.directory)


def compute_probing_ablation(context, settings: dict) -> dict:
    return analyses.probing_ablation(
        [
            {"option": o, "value": v, "seed": s, "val_loss": context.input(f"run/{i}").result["best_val_loss"]}
            for i, (o, v, s) in enumerate(settings["runs"])
        ],
        context.directory,
    )


def analysis_steps(config: RepresentationsExperiment, zoo_name: str) -> list[Step]:
    """The analyses of one zoo, on the first seed's runs."""
    seed = config.seeds[0]
    zoo_step_name = StepNames.zoo(zoo_name)
    pretrained = {f"run/{e}": StepNames.pretrain(zoo_name, e, seed) for e in config.encoders}
    embedded = {f"embeddings/{e}": StepNames.embed(zoo_name, e, seed) for e in config.encoders}
    wanted = config.analyses
    steps = []
    if wanted.invariance:
        options = {e: config.encoder_options.get(e, {}) for e in config.encoders}
        steps.append(
            Step(
                StepNames.analysis("invariance", zoo_name),
                "invariance",
                {"untrained": options, "networks": analyses.INVARIANCE_NETWORKS, "title": zoo_name},
                compute_invariance,
                {"zoo": zoo_step_name, **pretrained},
                code=tuple(sorted({m for e in options for m in _encoder_code(e)})),
            )
        )
    if wanted.embeddings:
        steps.append(
            Step(
                StepNames.analysis("embeddings", zoo_name),
                "embeddings",
                {"title": zoo_name},
                compute_embeddings,
                {"zoo": zoo_step_name, **embedded},
            )
        )
    if wanted.fidelity:
        steps.append(
            Step(
                StepNames.analysis("fidelity", zoo_name),
                "fidelity",
                {"samples": wanted.fidelity_samples, "title": zoo_name},
                compute_fidelity,
                {"zoo": zoo_step_name, **pretrained},
            )
        )
    probing = {
        f"run/{e}": n
        for e, n in ((e, pretrained[f"run/{e}"]) for e in config.encoders)
        if e in analyses.probing_encoders()
    }
    if wanted.probes and probing:
        steps.append(
            Step(
                StepNames.analysis("probes", zoo_name), "probes", {}, compute_probes, {"zoo": zoo_step_name, **probing}
            )
        )
    ablation = config.ablation
    if ablation is not None:
        runs_of = []  # (option, value, seed, step name)
        overrides = {k: v for k, v in (("steps", ablation.steps), ("eval_every", ablation.eval_every)) if v is not None}
        for option, (_, key) in analyses.ABLATIONS.items():
            for value in getattr(ablation, key):
                for s in config.seeds:
                    name = StepNames.ablation(zoo_name, ablation.encoder, option, value, s)
                    run_config = dataclasses.replace(
                        config.pretrain_config(ablation.encoder, s, **{option: value}), **overrides
                    )
                    steps.append(pretrain_step(name, zoo_step_name, run_config))
                    runs_of.append((option, value, s, name))
        if runs_of:
            steps.append(
                Step(
                    StepNames.analysis("probing_ablation", zoo_name),
                    "probing_ablation",
                    {"runs": [[o, v, s] for o, v, s, _ in runs_of]},
                    compute_probing_ablation,
                    {f"run/{i}": n for i, (*_, n) in enumerate(runs_of)},
                )
            )
    return steps


def experiment_steps(config: RepresentationsExperiment, finished: dict[str, Finished]):
    for zoo in config.zoos:
        zoo_name = StepNames.zoo(zoo.name)
        yield zoo_step(zoo_name, zoo.kind, zoo.config, zoo.path, _zoo_summary)
        targets = list(finished[zoo_name].result["targets"])
        supervised = config.supervised_for(targets)
        # a zoo without emulation (imported networks): no references, pretraining, embeddings,
        # frozen-embedding predictions or analyses; the report says so
        for reference in REFERENCES if zoo.emulation else ():  # what every encoder's loss is read against
            for seed in config.seeds:
                yield pretrain_step(
                    StepNames.references(zoo.name, seed)[reference], zoo_name, config.pretrain_config(reference, seed)
                )
        for encoder in config.encoders:
            for seed in config.seeds if zoo.emulation else ():  # one after another: the seeds train as one computation
                yield pretrain_step(
                    StepNames.pretrain(zoo.name, encoder, seed),
                    zoo_name,
                    config.pretrain_config(encoder, seed),
                    StepNames.references(zoo.name, seed),
                )
            for seed in config.seeds:
                if zoo.emulation:
                    embedded = StepNames.embed(zoo.name, encoder, seed)
                    yield embed_step(embedded, zoo_name, StepNames.pretrain(zoo.name, encoder, seed))
                    for target in targets:
                        yield predict_step(
                            StepNames.prediction("predict", zoo.name, encoder, seed, target),
                            zoo_name,
                            embedded,
                            target,
                            seed,
                            config.predictor,
                        )
                for target in supervised:
                    yield supervised_step(
                        StepNames.prediction("supervised", zoo.name, encoder, seed, target),
                        zoo_name,
                        encoder,
                        config.encoder_options.get(encoder, {}),
                        target,
                        seed,
                        config.supervised,
                    )
        if zoo.emulation:  # the analyses read the pretrained encoders
            yield from analysis_steps(config, zoo.name)


# ---- results -------------------------------------------------------------------------------
ANALYSES = ("invariance", "embeddings", "fidelity", "probes", "probing_ablation")


def gather_results(config: RepresentationsExperiment, finished: dict[str, Finished], out: Path) -> dict:
    """results.json: per zoo its summary, per encoder and seed the pretraining loss and every
    prediction's metrics, the analyses' numbers, and the table rows aggregated over seeds."""
    from .report import aggregate

    results = {"name": config.name, "zoos": {}}
    for zoo in config.zoos:
        summary = finished[StepNames.zoo(zoo.name)].result
        record = {k: summary[k] for k in ("kind", "path", "checkpoints", "split_sizes", "targets")}
        record["encoders"] = {}
        record["emulation"] = zoo.emulation
        record["references"] = {
            r: [finished[StepNames.references(zoo.name, seed)[r]].result["best_val_loss"] for seed in config.seeds]
            for r in (REFERENCES if zoo.emulation else ())
        }
        record["loss_units"] = config.pretrain.loss_reduction
        for encoder in config.encoders:
            per_seed = []
            for seed in config.seeds:
                predictions = {}
                for mode, kind in (("pretrained", "predict"), ("supervised", "supervised")):
                    for target in summary["targets"]:
                        name = StepNames.prediction(kind, zoo.name, encoder, seed, target)
                        if name in finished:
                            predictions[f"{mode}/{target}"] = finished[name].result
                pretrained = finished.get(StepNames.pretrain(zoo.name, encoder, seed))
                loss = pretrained.result["best_val_loss"] if pretrained is not None else None
                per_seed.append({"seed": seed, "pretrain_val_loss": loss, "predictions": predictions})
            record["encoders"][encoder] = per_seed
        record["analyses"], record["figures"] = {}, {}
        for analysis in ANALYSES:
            step = finished.get(StepNames.analysis(analysis, zoo.name))
            if step is not None:
                record["analyses"][analysis] = step.result
                record["figures"][analysis] = step.directory.relative_to(out).as_posix()
        results["zoos"][zoo.name] = record
    results["rows"] = aggregate(results)
    return results


class Representations(Family):
    name = FAMILY
    summary = "paper 000: encoders pretrained by emulation, compared on downstream prediction"
    report_module = "representations.report"

    def config(self, data: dict, where: str) -> RepresentationsExperiment:
        data = dict(data)
        zoos = data.get("zoos")
        if not zoos:
            raise ConfigError(f"{where}: an experiment needs a name and at least one [[zoos]] table")
        if not isinstance(zoos, list):
            raise ConfigError(f"{where}: zoos must be [[zoos]] tables")
        data["zoos"] = [ZooSection.from_toml(zoo, f"{where}: zoos[{i}]") for i, zoo in enumerate(zoos)]
        moved_keys(data, {("supervised", "targets"): "supervised_targets (a top-level key)"}, where)
        return typed.from_dict(RepresentationsExperiment, data, where)

    def steps(self, config, finished):
        return experiment_steps(config, finished)

    def results(self, config, finished, out):
        return gather_results(config, finished, out)
