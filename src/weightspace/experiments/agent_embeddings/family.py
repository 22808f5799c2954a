"""Paper 004 (agent embeddings for CartPole) as an experiment family.

The TOML file (``experiments/cartpole-*.toml``, ``family = "agent-embeddings"``) holds the
CartPole zoo's settings (``[zoo]``: the cartpole task's config), CartPoleGen's (``[vae]``) and
each analysis's. Its steps, per seed ``S``::

    zoo                           the CartPole zoo                        [zoo]
    vae/combined/seed-S           CartPoleGen on every final network      [vae], S
    vae/group-G/seed-S            ... on survival-time group G (1-4)      [vae], S
    vae/conditional/seed-S        ... conditioned on the group            [vae], S
    table1/seed-S                 table 1, figure 4: sampled networks     [table1], S
    convergence/seed-S            table 2, figures 5, 6                   [convergence], S
    interpolation/seed-S          figure 7: latent vs weight-space walks  [interpolation], S
    repair/seed-S                 figure 8: repairing zeroed weights      [repair], S

**Seeds.** The zoo is the data and keeps its own ``[zoo] seed``. ``seeds`` seed everything after
it: CartPoleGen's initialisation and batches, the sampled latents, the reference states, the
choice of interpolation pairs and the repair's masks and samples; each seed is one full set of
generative steps. The report's tables 1 and 2 average each cell over the seeds (with a
bootstrapped 95% interval of the mean when there are several); figures and the figure 7 and 8
tables show the first seed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ... import config as typed
from ...analysis.convergence import PAPER_REFERENCE_STATES
from ...errors import ConfigError, WeightspaceError
from ...generative.repair import RepairConfig
from ...generative.vae import VAEConfig, VAETraining
from ..config import library, moved_keys, per_step_problems
from ..family import Family
from ..steps import Finished, Step, StepContext
from ..zoo_step import open_zoo, zoo_step

FAMILY = "agent-embeddings"
TASK = "cartpole"
#: the zoo step's name
ZOO = "zoo"
#: CartPoleGen models trained per seed: name -> (survival-time groups learned (None: all), conditional)
MODELS = {"combined": (None, False), **{f"group-{g}": ([g], False) for g in range(1, 5)}, "conditional": (None, True)}


@dataclass(frozen=True, kw_only=True)
class Table1Settings:
    """Table 1 and figure 4: networks sampled from every CartPoleGen."""

    generated: int = field(default=200, metadata={"help": "Networks sampled per model."})


@dataclass(frozen=True, kw_only=True)
class ConvergenceSettings:
    """Table 2 and figures 5, 6: convergent learning within good and within bad networks."""

    reference_states: int = field(
        default=PAPER_REFERENCE_STATES,
        metadata={"help": "States the activations are correlated over (also for figure 7's endpoint CDs)."},
    )
    networks: int = field(default=10, metadata={"help": "Good and bad networks each."})


@dataclass(frozen=True, kw_only=True)
class InterpolationSettings:
    """Figure 7: walks in latent space between zoo networks of different groups."""

    pairs: int = field(default=4, metadata={"help": "Pairs of zoo networks to walk between."})
    points: int = field(default=20, metadata={"help": "Alphas per walk."})
    max_alpha: float = field(default=1.5, metadata={"help": "Alphas run from 0 to this (> 1 extrapolates)."})


@dataclass(frozen=True, kw_only=True)
class RepairSettings:
    """Figure 8: algorithm 1 at each degradation level; the report shows both variants."""

    levels: tuple[float, ...] = field(
        default=tuple(round(0.1 * i, 1) for i in range(11)), metadata={"help": "Fractions of weights zeroed."}
    )
    network: int | None = field(
        default=None, metadata={"help": "Zoo model_id of the network to repair; default: the best final network."}
    )
    algorithm: RepairConfig = library(
        RepairConfig,
        help="Algorithm 1's budget and threshold (its configured variant comes first; the other is run too).",
    )


def _cartpole_config(values=None, where: str = "[zoo]"):
    from ...tasks import get_task

    return get_task(TASK).config(values or {}, where)


@dataclass(frozen=True, kw_only=True)
class AgentEmbeddingsExperiment:
    """Paper 004: CartPole zoo -> CartPoleGen -> tables 1-2 and figures 4-8 -> report."""

    family: str = field(default=FAMILY, metadata={"help": "The experiment family (paper 004)."})
    name: str = field(metadata={"help": "Results go to RESULTS_DIR/NAME."})
    description: str = field(default="", metadata={"help": "A line for the report."})
    seeds: tuple[int, ...] = field(
        default=(0,),
        metadata={"help": "Seeds of CartPoleGen and every analysis after the zoo; one set of steps per seed."},
    )
    results_dir: str = field(default="results", metadata={"help": "Where results go (RESULTS_DIR/NAME)."})
    zoo: object = field(
        default_factory=_cartpole_config, metadata={"help": "The CartPole zoo (the cartpole task's settings)."}
    )
    vae: VAEConfig = library(
        VAEConfig,
        per_step=("input_size", "num_classes"),
        help=("CartPoleGen's model (its input size and classes follow from the network and the model)."),
    )
    vae_training: VAETraining = library(
        VAETraining, per_step=("seed",), help=("CartPoleGen's training (the seed comes from seeds).")
    )
    table1: Table1Settings = field(default_factory=Table1Settings)
    convergence: ConvergenceSettings = field(default_factory=ConvergenceSettings)
    interpolation: InterpolationSettings = field(default_factory=InterpolationSettings)
    repair: RepairSettings = field(default_factory=RepairSettings)

    def __post_init__(self):
        if self.family != FAMILY:
            raise ValueError(f"family must be {FAMILY!r}")
        if not self.seeds:
            raise ValueError("give at least one seed")
        if not all(0.0 <= level <= 1.0 for level in self.repair.levels):
            raise ValueError(f"[repair] levels are fractions in [0, 1] (got {list(self.repair.levels)})")
        problems = per_step_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def vae_model(self, conditional: bool) -> VAEConfig:
        from ...rl.cartpole import CARTPOLE_NET

        return dataclasses.replace(
            self.vae, input_size=CARTPOLE_NET.spec.num_parameters, num_classes=4 if conditional else 0
        )


# ---- the steps' computations ---------------------------------------------------------------
class _Zoo:
    """The zoo's final networks and how to measure a network's survival time in it."""

    def __init__(self, finished: Finished, device):
        from ...generative.data import final_networks

        self.zoo = open_zoo(finished)
        self.networks = final_networks(self.zoo)
        self.episodes = self.zoo.config.test_episodes
        self.cap = self.zoo.config.max_episode_steps
        self.device = device

    def survival(self, flat: torch.Tensor) -> np.ndarray:
        from ...networks.weights import Population
        from ...rl.cartpole import CARTPOLE_NET
        from ...rl.evaluation import survival_time

        weights = Population.unflatten(CARTPOLE_NET.spec, flat.detach().to(self.device))
        return survival_time(CARTPOLE_NET, weights, self.episodes, self.cap).numpy()


def stats(values) -> tuple[float | None, float | None]:
    """(mean, sample std); (None, None) for no values, so the JSON stays strict."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return None, None
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


# Each step's compute function is a module-level function of (context, settings): the settings are
# what its key hashes, so it can read nothing else (weightspace.experiments.steps).
def train_model(context: StepContext, settings: dict) -> dict:
    """CartPoleGen on the zoo's final networks of ``groups`` (None: all), conditioned on the
    group if ``conditional``. A group with fewer than two networks gets no model."""
    from ...generative.vae import WeightVAE, train_vae
    from ...rl.cartpole import CARTPOLE_NET

    model_config = typed.from_dict(VAEConfig, settings["model"], "[vae]")
    training = typed.from_dict(VAETraining, settings["training"], "[vae]")
    groups, conditional = settings["groups"], settings["conditional"]
    zoo = _Zoo(context.input(ZOO), context.device)
    flat, table_groups = zoo.networks.flat, zoo.networks.groups
    if groups is not None:
        members = np.flatnonzero(np.isin(table_groups, groups))
        if len(members) < 2:
            return {"model": None, "networks": int(len(members))}
        flat = flat[members]
    labels = torch.as_tensor(table_groups - 1) if conditional else None
    model = WeightVAE(model_config, CARTPOLE_NET.spec).to(context.device)
    history = train_vae(model, flat.to(context.device), labels, training, progress=context.progress)
    info = {
        "networks": len(flat),
        "groups": groups if groups is not None else ("all, as the class (group - 1)" if conditional else "all"),
    }
    model.save(
        context.directory / "model", {**info, "training": dataclasses.asdict(training), "loss_by_epoch": history}
    )
    return {"model": "model", "networks": len(flat), "loss_by_epoch": history}


def _models(context: StepContext, seed: int, names=tuple(MODELS)) -> dict:
    """The trained CartPoleGens of ``seed`` among ``names`` (a group too small has none)."""
    from ...generative.vae import WeightVAE

    models = {}
    for name in names:
        finished = context.input(f"vae/{name}/seed-{seed}")
        if finished.result["model"]:
            models[name] = WeightVAE.load(finished.directory / finished.result["model"], context.device)
    return models


def table1(context: StepContext, step_settings: dict) -> dict:
    """Table 1 and figure 4: survival times of networks sampled from every model, next to the
    training set's, per group."""
    settings, seed = typed.from_dict(Table1Settings, step_settings, "[table1]", ignore=("seed",)), step_settings["seed"]
    from ...generative.data import save_networks
    from ...generative.figures import survival_histograms
    from ...networks.weights import Population
    from ...rl.cartpole import CARTPOLE_NET
    from ...rl.evaluation import GROUP_NAMES

    zoo, models = _Zoo(context.input(ZOO), context.device), _models(context, seed)
    table = zoo.networks.table
    samples, owners = [], []
    for g, name in enumerate(["combined"] + [f"group-{i}" for i in range(1, 5)]):
        if name in models:
            generator = torch.Generator(device=context.device).manual_seed(seed + g)
            samples.append(models[name].sample(settings.generated, None, generator))
            owners.append(name)
    for group in range(1, 5):
        generator = torch.Generator(device=context.device).manual_seed(seed + 10 + group)
        samples.append(models["conditional"].sample(settings.generated, group - 1, generator))
        owners.append(f"conditional-{group}")
    survival = zoo.survival(torch.cat(samples))  # one batched rollout for every generated network
    by_owner = {}
    for i, (name, flat) in enumerate(zip(owners, samples)):
        values = survival[i * settings.generated : (i + 1) * settings.generated]
        by_owner[name] = values
        save_networks(
            context.directory / "samples" / f"{name}.safetensors",
            Population.unflatten(CARTPOLE_NET.spec, flat),
            {"survival_time": torch.as_tensor(values)},
            {"model": name},
        )
    rows = []
    for group, label in [
        (1, GROUP_NAMES[0]),
        (2, GROUP_NAMES[1]),
        (3, GROUP_NAMES[2]),
        (4, GROUP_NAMES[3]),
        (None, "combined"),
    ]:
        train = (
            table["survival_time"].to_numpy()
            if group is None
            else table.loc[table["group"] == group, "survival_time"].to_numpy()
        )
        separate = by_owner.get("combined" if group is None else f"group-{group}", np.array([]))
        conditional = (
            np.concatenate([by_owner[f"conditional-{g}"] for g in range(1, 5)])
            if group is None
            else by_owner[f"conditional-{group}"]
        )
        rows.append(
            {
                "group": label,
                "train_size": int(len(train)),
                "train": stats(train),
                "generated": stats(separate),
                "conditional": stats(conditional),
                "train_values": train.tolist(),
                "generated_values": np.asarray(separate).tolist(),
                "conditional_values": np.asarray(conditional).tolist(),
            }
        )
    survival_histograms(
        [(row["group"], row["train_values"], row["generated_values"]) for row in rows],
        context.directory / "figure4.png",
        zoo.cap,
    )
    return {"generated_per_model": settings.generated, "rows": rows, "figures": ["figure4.png"]}


def _pick(zoo: _Zoo, sample_file: Path, group: int, count: int) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """``count`` networks of ``group``: generated ones that land in the group, closest to the
    training set's mean survival time of the group, topped up with zoo networks closest to that
    mean (from outside the group only if the group has too few)."""
    from ...generative.data import load_networks
    from ...rl.evaluation import GROUP_EDGES, survival_group

    networks = zoo.networks
    table = networks.table
    in_group = table["group"] == group
    target = (
        float(table.loc[in_group, "survival_time"].mean())
        if in_group.any()
        else float(np.mean([0, GROUP_EDGES[0]] if group == 1 else [GROUP_EDGES[-1], zoo.cap]))
    )
    flats, values, sources = [], [], []
    if sample_file.exists():
        weights, info = load_networks(sample_file)
        st = info["survival_time"].to_numpy()
        ok = np.flatnonzero(survival_group(st) == group)
        ok = ok[np.argsort(np.abs(st[ok] - target), kind="stable")][:count]
        flats.append(weights.flatten()[torch.as_tensor(ok, dtype=torch.long)])
        values += st[ok].tolist()
        sources += ["generated"] * len(ok)
    missing = count - len(values)
    if missing > 0:
        st = table["survival_time"].to_numpy()
        # zoo networks of the group first, then the rest, each by closeness to the target
        order = np.lexsort((np.abs(st - target), ~in_group.to_numpy()))[:missing]
        flats.append(networks.flat[torch.as_tensor(order, dtype=torch.long)])
        values += st[order].tolist()
        sources += ["zoo" if in_group.iloc[i] else "zoo, outside the group" for i in order]
    return torch.cat(flats), np.asarray(values), sources


def convergence(context: StepContext, step_settings: dict) -> dict:
    """Table 2 and figures 5, 6: convergence distances within good and within bad networks
    (generated ones of table 1 where they landed in the group, else zoo networks)."""
    settings, seed = (
        typed.from_dict(ConvergenceSettings, step_settings, "[convergence]", ignore=("seed",)),
        step_settings["seed"],
    )
    from ...analysis.convergence import (
        all_pairs,
        bipartite_matching,
        compare_pairs,
        plot_correlation_matrices,
        reference_states,
    )
    from ...networks.weights import Population
    from ...rl.cartpole import CARTPOLE_NET

    zoo = _Zoo(context.input(ZOO), context.device)
    samples = context.input(f"table1/seed-{seed}").directory / "samples"
    good, good_st, good_src = _pick(zoo, samples / "group-4.safetensors", 4, settings.networks)
    bad, bad_st, bad_src = _pick(zoo, samples / "group-1.safetensors", 1, settings.networks)
    if len(good) < 2 or len(bad) < 2:
        raise WeightspaceError(
            "convergence needs at least two good (group 4) and two bad (group 1) networks; build a larger zoo"
        )
    states = reference_states(settings.reference_states, seed, zoo.cap)
    n_good = len(good)
    pairs_good, pairs_bad = all_pairs(n_good), all_pairs(len(bad)) + n_good
    pairs = np.concatenate([pairs_good, pairs_bad, [[0, n_good]]])
    population = Population.unflatten(CARTPOLE_NET.spec, torch.cat([good, bad]).to(context.device))
    comparison = compare_pairs(CARTPOLE_NET, population, pairs, states)
    rows = {}
    for name, select, st, src in (
        ("good", slice(0, len(pairs_good)), good_st, good_src),
        ("bad", slice(len(pairs_good), len(pairs_good) + len(pairs_bad)), bad_st, bad_src),
    ):
        rows[name] = {
            "networks": len(st),
            "survival_time": stats(st),
            "sources": {s: src.count(s) for s in set(src)},
            "hidden": stats(comparison.distances["hidden"][select]),
            "output": stats(comparison.distances["output"][select]),
            "pairs": int(select.stop - select.start),
        }
    panels = {}
    for layer, figure in (("hidden", "figure5.png"), ("output", "figure6.png")):
        panels[layer] = []
        for title, index in (("good vs good", 0), ("bad vs bad", len(pairs_good)), ("good vs bad", len(pairs) - 1)):
            matrix = comparison.correlations[layer][index]
            panels[layer].append(
                {
                    "title": title,
                    "matrix": matrix.tolist(),
                    "distance": float(comparison.distances[layer][index]),
                    "partner": bipartite_matching(matrix).tolist(),
                }
            )
        plot_correlation_matrices(
            [(p["title"], p["matrix"], p["distance"], p["partner"]) for p in panels[layer]],
            context.directory / figure,
            layer,
        )
    return {
        "reference_states": settings.reference_states,
        "rows": rows,
        "panels": panels,
        "figures": ["figure5.png", "figure6.png"],
    }


def interpolation(context: StepContext, step_settings: dict) -> dict:
    """Figure 7: survival times along the latent walk between two zoo networks' embeddings, and
    along the straight weight-space walk between the decoded endpoints."""
    settings = typed.from_dict(
        InterpolationSettings, step_settings, "[interpolation]", ignore=("seed", "reference_states")
    )
    seed, reference_count = step_settings["seed"], step_settings["reference_states"]
    import pandas as pd

    from ...analysis.convergence import compare_pairs, reference_states
    from ...generative.figures import interpolation_panels
    from ...generative.interpolation import alpha_grid, interpolate_pairs
    from ...networks.weights import Population
    from ...rl.cartpole import CARTPOLE_NET

    zoo, model = _Zoo(context.input(ZOO), context.device), _models(context, seed, ["combined"])["combined"]
    networks = zoo.networks
    rng = np.random.default_rng(seed)
    schedule = [(1, 4), (2, 4), (1, 3), (3, 4), (2, 3), (1, 2)]
    chosen = []
    for low, high in schedule * (settings.pairs // len(schedule) + 1):
        if len(chosen) == settings.pairs:
            break
        a, b = np.flatnonzero(networks.groups == low), np.flatnonzero(networks.groups == high)
        if len(a) and len(b):
            chosen.append((int(rng.choice(a)), int(rng.choice(b))))
    if not chosen:  # a zoo whose networks all share one group: walk from its worst to its best
        survival = networks.table["survival_time"].to_numpy()
        chosen = [(int(np.argmin(survival)), int(np.argmax(survival)))]
    flat = networks.flat.to(context.device)
    alphas = alpha_grid(settings.points, settings.max_alpha)
    result = interpolate_pairs(model, [(flat[a], flat[b]) for a, b in chosen], alphas, zoo.episodes, zoo.cap)
    ends = result.endpoints.reshape(-1, result.endpoints.shape[-1])
    states = reference_states(reference_count, seed, zoo.cap)
    comparison = compare_pairs(
        CARTPOLE_NET, Population.unflatten(CARTPOLE_NET.spec, ends), np.arange(len(ends)).reshape(-1, 2), states
    )
    table = networks.table
    pairs = []
    for p, (a, b) in enumerate(chosen):
        part = result.table[result.table["pair"] == p]
        latent = part[part["space"] == "latent"]
        pairs.append(
            {
                "first_model_id": int(table["model_id"].iloc[a]),
                "second_model_id": int(table["model_id"].iloc[b]),
                "first_zoo_survival": float(table["survival_time"].iloc[a]),
                "second_zoo_survival": float(table["survival_time"].iloc[b]),
                "hidden_cd": float(comparison.distances["hidden"][p]),
                "endpoint_survival": result.endpoint_survival[p].tolist(),
                "latent_max": float(latent["survival_time"].max()),
                "latent_at_max_alpha": float(latent["survival_time"].iloc[-1]),
            }
        )
    walks = result.table.to_dict(orient="list")
    titles = [f"zoo {p['first_model_id']} -> {p['second_model_id']}, hidden CD {p['hidden_cd']:.2f}" for p in pairs]
    interpolation_panels(
        pd.DataFrame(walks), titles, [p["endpoint_survival"] for p in pairs], context.directory / "figure7.png", zoo.cap
    )
    return {"alphas": alphas.tolist(), "pairs": pairs, "table": walks, "figures": ["figure7.png"]}


def repair(context: StepContext, step_settings: dict) -> dict:
    """Figure 8: zero a growing fraction of one network's weights and repair them by rejection
    sampling from CartPoleGen, with both repair variants."""
    settings, seed = typed.from_dict(RepairSettings, step_settings, "[repair]", ignore=("seed",)), step_settings["seed"]
    repair_config = settings.algorithm
    from ...generative.figures import repair_curves
    from ...generative.repair import CRITERIA, repair_experiment, summarize_repair

    zoo, model = _Zoo(context.input(ZOO), context.device), _models(context, seed, ["combined"])["combined"]
    table = zoo.networks.table
    if settings.network is None:
        row = int(np.argmax(table["survival_time"].to_numpy()))
    else:
        matches = np.flatnonzero(table["model_id"].to_numpy() == settings.network)
        if not len(matches):
            raise ConfigError(f"[repair] network {settings.network} is not a final network of the zoo")
        row = int(matches[0])
    runs = {}
    for fill in (repair_config.fill_missing, not repair_config.fill_missing):  # the configured variant first
        config = dataclasses.replace(repair_config, fill_missing=fill)
        result = repair_experiment(
            model,
            zoo.networks.flat[row].to(context.device),
            settings.levels,
            CRITERIA,
            config,
            seed,
            zoo.episodes,
            zoo.cap,
        )
        summary = summarize_repair(result, repair_config.threshold)
        summary["variant"] = "fill missing" if fill else "replace"
        runs["fill" if fill else "replace"] = (config, result, summary)
    config, result, summary = runs["fill" if repair_config.fill_missing else "replace"]
    _, other_result, other = runs["replace" if repair_config.fill_missing else "fill"]
    repair_curves(summary, context.directory / "figure8.png", other)
    return {
        "model_id": int(table["model_id"].iloc[row]),
        "original_survival_time": float(result["original_survival_time"].iloc[0]),
        "config": dataclasses.asdict(config),
        "summary": summary.to_dict(orient="list"),
        "other_variant_summary": other.to_dict(orient="list"),
        "candidates": result.to_dict(orient="list"),
        "other_variant_candidates": other_result.to_dict(orient="list"),
        "figures": ["figure8.png"],
    }


# ---- the pipeline ------------------------------------------------------------------------
def _zoo_summary(zoo) -> dict:
    from ...generative.data import final_networks

    networks = final_networks(zoo)
    return {
        "networks": len(networks),
        "groups": {str(g): int((networks.groups == g).sum()) for g in range(1, 5)},
        "survival_time": stats(networks.table["survival_time"]),
    }


def experiment_steps(config: AgentEmbeddingsExperiment):
    yield zoo_step(ZOO, TASK, config.zoo, summary=_zoo_summary)
    for seed in config.seeds:
        models = []
        for name, (groups, conditional) in MODELS.items():
            model, training = config.vae_model(conditional), dataclasses.replace(config.vae_training, seed=seed)
            settings = {
                "model": dataclasses.asdict(model),
                "training": dataclasses.asdict(training),
                "groups": groups,
                "conditional": conditional,
            }
            models.append(f"vae/{name}/seed-{seed}")
            yield Step(models[-1], "vae", settings, train_model, (ZOO,))
        combined = f"vae/combined/seed-{seed}"
        yield Step(
            f"table1/seed-{seed}", "table1", {**dataclasses.asdict(config.table1), "seed": seed}, table1, (ZOO, *models)
        )
        yield Step(
            f"convergence/seed-{seed}",
            "convergence",
            {**dataclasses.asdict(config.convergence), "seed": seed},
            convergence,
            (ZOO, f"table1/seed-{seed}"),
        )
        yield Step(
            f"interpolation/seed-{seed}",
            "interpolation",
            {
                **dataclasses.asdict(config.interpolation),
                "reference_states": config.convergence.reference_states,
                "seed": seed,
            },
            interpolation,
            (ZOO, combined),
        )
        yield Step(
            f"repair/seed-{seed}",
            "repair",
            {**dataclasses.asdict(config.repair), "seed": seed},
            repair,
            (ZOO, combined),
        )


class AgentEmbeddings(Family):
    name = FAMILY
    summary = "paper 004: CartPoleGen, a VAE over CartPole policy networks, and what it shows"
    report_module = "agent_embeddings.report"
    cpu_threads = 1  # small batched rollouts and VAE batches of 10: see weightspace.threads

    def config(self, data: dict, where: str) -> AgentEmbeddingsExperiment:
        data = dict(data)
        data["zoo"] = _cartpole_config(data.get("zoo"), f"{where}: [zoo]")
        moved_keys(
            data,
            {
                **{("vae", f.name): f"[vae_training] {f.name}" for f in dataclasses.fields(VAETraining)},
                **{("repair", f.name): f"[repair.algorithm] {f.name}" for f in dataclasses.fields(RepairConfig)},
            },
            where,
        )
        return typed.from_dict(AgentEmbeddingsExperiment, data, where)

    def steps(self, config, finished):
        return experiment_steps(config)
