"""Paper 004 end to end at a chosen scale, written up as ``report.md`` with tables and figures.

:func:`run_report` builds the CartPole zoo, trains CartPoleGen (on all networks, one per
survival-time group, and the group-conditional variant), and reproduces table 1 and figure 4
(generated vs training survival times), table 2 and figures 5-6 (convergence of good vs bad
networks), figure 7 (latent vs weight-space interpolation) and figure 8 (weight repair). Every
step writes its results under ``OUT`` and is skipped when they already exist, so an interrupted
report resumes, and a finished one re-renders ``report.md`` in seconds.

The experiment is a TOML file (see ``experiments/cartpole-demo.toml``) read by
:func:`load_experiment`.
"""

from __future__ import annotations

import dataclasses
import json
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..analysis.convergence import all_pairs, bipartite_matching, compare_pairs, reference_states
from ..errors import ConfigError, WeightspaceError
from ..generative.data import final_networks, load_networks, save_networks
from ..generative.interpolation import alpha_grid, interpolate_pairs
from ..generative.repair import CRITERIA, RepairConfig, repair_experiment, summarize_repair
from ..generative.vae import CONFIG_FILE, VAEConfig, VAETraining, WeightVAE, train_vae
from ..networks.weights import Population
from ..rl.cartpole import CARTPOLE_NET
from ..rl.evaluation import GROUP_EDGES, GROUP_NAMES, survival_group, survival_time
from ..rl.threads import intra_op_threads
from ..zoo import storage
from ..zoo.builder import ZooConfig, build_zoo
from ..zoo.cartpole import CartPoleZoo
from ..zoo.format import MANIFEST, read_manifest
from ..zoo.reader import load_zoo
from . import figures

#: The top-level ``kind`` of an experiment TOML that this module runs.
EXPERIMENT_KIND = "agent-embeddings"
#: Paper 004, table 1: group, training-set size, (mean, std) of the training set and of 200 generated networks.
PAPER_TABLE1 = (
    ("1-50", 25608, (21.8, 11.5), (11.0, 9.7)),
    ("51-100", 9400, (69.7, 14.2), (77.3, 46.5)),
    ("101-150", 10103, (132.6, 13.1), (127.0, 55.3)),
    ("151-200", 28889, (184.9, 16.3), (116.4, 58.6)),
    ("combined", 74000, (106.7, 73.3), (136.7, 42.8)),
)
#: Paper 004, table 2: survival time, (mean, std) CD of the hidden and of the output layer.
PAPER_TABLE2 = {"good": (191, (2.75, 1.96), (0.32, 0.49)), "bad": (29, (3.13, 1.7), (0.09, 0.11))}


@dataclass(frozen=True)
class Table1Settings:
    generated: int = 200  # networks sampled per model
    seed: int = 0


@dataclass(frozen=True)
class ConvergenceSettings:
    reference_states: int = 10_000
    networks: int = 10  # good and bad networks each
    seed: int = 0


@dataclass(frozen=True)
class InterpolationSettings:
    pairs: int = 4
    points: int = 20
    max_alpha: float = 1.5
    seed: int = 0


@dataclass(frozen=True)
class RepairSettings:
    levels: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
    candidates: int = 200
    keep: int = 10
    threshold: float = 5.0
    fill_missing: bool = False  # False: algorithm 1's candidate replaces the network; both are reported
    network: int | None = None  # zoo row to repair; None: the best final network
    seed: int = 0


@dataclass(frozen=True)
class CartPoleExperiment:
    """Everything a paper-004 report depends on (read from TOML by :func:`load_experiment`)."""

    name: str
    zoo: ZooConfig
    vae: VAEConfig = VAEConfig()
    vae_training: VAETraining = VAETraining()
    table1: Table1Settings = Table1Settings()
    convergence: ConvergenceSettings = ConvergenceSettings()
    interpolation: InterpolationSettings = InterpolationSettings()
    repair: RepairSettings = RepairSettings()
    description: str = ""

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["zoo"] = self.zoo.to_json()
        return out


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _build(cls, values: dict, section: str, path):
    unknown = set(values) - _fields(cls)
    if unknown:
        raise ConfigError(f"{path}: unknown keys in [{section}]: {sorted(unknown)}; "
                          f"expected some of {sorted(_fields(cls))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"{path}: [{section}]: {error}") from None


def load_experiment(path) -> CartPoleExperiment:
    """Read an experiment TOML: ``name``, ``description``, ``kind = "agent-embeddings"`` (optional,
    for dispatching) and the tables ``[zoo]`` (ZooConfig
    fields), ``[vae]`` (VAEConfig and VAETraining fields), ``[table1]``, ``[convergence]``,
    ``[interpolation]`` and ``[repair]``. Unknown keys are refused."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"experiment file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML ({error})") from None
    sections = {"zoo", "vae", "table1", "convergence", "interpolation", "repair"}
    unknown = set(data) - sections - {"name", "description", "kind"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; expected name, description, kind and "
                          f"[{'], ['.join(sorted(sections))}]")
    if data.get("kind", EXPERIMENT_KIND) != EXPERIMENT_KIND:
        raise ConfigError(f"{path} is a {data['kind']!r} experiment, not {EXPERIMENT_KIND!r}")
    if "name" not in data:
        raise ConfigError(f"{path}: give the experiment a name")
    vae = dict(data.get("vae", {}))
    training = {k: vae.pop(k) for k in list(vae) if k in _fields(VAETraining)}
    return CartPoleExperiment(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        zoo=_build(ZooConfig, data.get("zoo", {}), "zoo", path),
        vae=_build(VAEConfig, vae, "vae", path),
        vae_training=_build(VAETraining, training, "vae", path),
        table1=_build(Table1Settings, data.get("table1", {}), "table1", path),
        convergence=_build(ConvergenceSettings, data.get("convergence", {}), "convergence", path),
        interpolation=_build(InterpolationSettings, data.get("interpolation", {}), "interpolation", path),
        repair=_build(RepairSettings, data.get("repair", {}), "repair", path),
    )


# ------------------------------------------------------------------------------------------
@dataclass
class _Context:
    experiment: CartPoleExperiment
    out: Path
    device: str
    progress: bool
    timings: dict = field(default_factory=dict)
    recomputed: set = field(default_factory=set)

    @property
    def episodes(self) -> int:
        return self.experiment.zoo.samples

    @property
    def cap(self) -> int:
        return self.experiment.zoo.max_episode_steps

    def survival(self, flat: torch.Tensor) -> np.ndarray:
        weights = Population.unflatten(CARTPOLE_NET.spec, flat.detach().to(self.device))
        return survival_time(CARTPOLE_NET, weights, self.episodes, self.cap).numpy()


def _cached_json(path: Path, settings: dict, compute, ctx: _Context, label: str) -> dict:
    """The stored result of a step if it was computed with the same ``settings``, else compute it."""
    settings = json.loads(json.dumps(settings))
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("settings") == settings:
            return stored
    start = time.perf_counter()
    result = {"settings": settings, **compute()}
    storage.write_json(path, result)
    ctx.timings[label] = round(time.perf_counter() - start, 1)
    ctx.recomputed.add(label)
    return result


def _stats(values) -> tuple[float | None, float | None]:
    """(mean, sample std); (None, None) for no values, so the JSON stays strict."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return None, None
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _train_model(ctx: _Context, directory: Path, flat, labels=None, num_classes=0, info=None) -> WeightVAE:
    if (directory / CONFIG_FILE).exists():
        return WeightVAE.load(directory, ctx.device)
    start = time.perf_counter()
    config = dataclasses.replace(ctx.experiment.vae, input_size=CARTPOLE_NET.spec.num_parameters,
                                 num_classes=num_classes)
    model = WeightVAE(config, CARTPOLE_NET.spec).to(ctx.device)
    history = train_vae(model, flat.to(ctx.device), labels, ctx.experiment.vae_training, progress=ctx.progress)
    model.save(directory, {**(info or {}), "training": dataclasses.asdict(ctx.experiment.vae_training),
                           "loss_by_epoch": history})
    ctx.timings[f"train {directory.name}"] = round(time.perf_counter() - start, 1)
    return model


def _models(ctx: _Context, networks) -> dict[str, WeightVAE]:
    """CartPoleGen on all networks, one per group (paper: "a separate CartPoleGen ... on each
    group"), and the group-conditional variant."""
    flat = networks.flat
    groups = networks.groups
    models = {"combined": _train_model(ctx, ctx.out / "models" / "combined", flat,
                                       info={"networks": len(flat), "groups": "all"})}
    for group in range(1, 5):
        members = np.flatnonzero(groups == group)
        if len(members) >= 2:
            models[f"group-{group}"] = _train_model(ctx, ctx.out / "models" / f"group-{group}", flat[members],
                                                    info={"networks": len(members), "groups": [group]})
    models["conditional"] = _train_model(ctx, ctx.out / "models" / "conditional", flat,
                                         torch.as_tensor(groups - 1), num_classes=4,
                                         info={"networks": len(flat), "groups": "all, as the class (group - 1)"})
    return models


def _table1(ctx: _Context, networks, models) -> dict:
    settings = ctx.experiment.table1
    table = networks.table
    samples, owners = [], []
    for g, name in enumerate(["combined"] + [f"group-{i}" for i in range(1, 5)]):
        if name in models:
            generator = torch.Generator(device=ctx.device).manual_seed(settings.seed + g)
            samples.append(models[name].sample(settings.generated, None, generator))
            owners.append(name)
    for group in range(1, 5):
        generator = torch.Generator(device=ctx.device).manual_seed(settings.seed + 10 + group)
        samples.append(models["conditional"].sample(settings.generated, group - 1, generator))
        owners.append(f"conditional-{group}")
    survival = ctx.survival(torch.cat(samples))  # one batched rollout for every generated network
    by_owner = {}
    for i, (name, flat) in enumerate(zip(owners, samples)):
        values = survival[i * settings.generated:(i + 1) * settings.generated]
        by_owner[name] = values
        save_networks(ctx.out / "samples" / f"{name}.safetensors", Population.unflatten(CARTPOLE_NET.spec, flat),
                      {"survival_time": torch.as_tensor(values)}, {"model": name})
    rows = []
    for group, label in [(1, GROUP_NAMES[0]), (2, GROUP_NAMES[1]), (3, GROUP_NAMES[2]), (4, GROUP_NAMES[3]),
                         (None, "combined")]:
        train = table["survival_time"].to_numpy() if group is None else \
            table.loc[table["group"] == group, "survival_time"].to_numpy()
        separate = by_owner.get("combined" if group is None else f"group-{group}", np.array([]))
        conditional = np.concatenate([by_owner[f"conditional-{g}"] for g in range(1, 5)]) if group is None \
            else by_owner[f"conditional-{group}"]
        rows.append({
            "group": label, "train_size": int(len(train)),
            "train": _stats(train), "generated": _stats(separate), "conditional": _stats(conditional),
            "train_values": train.tolist(), "generated_values": np.asarray(separate).tolist(),
            "conditional_values": np.asarray(conditional).tolist(),
        })
    return {"generated_per_model": settings.generated, "rows": rows}


def _pick(ctx, networks, sample_file: Path, group: int, count: int) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """``count`` networks of ``group``: generated ones that land in the group, closest to the
    training set's mean survival time of the group, topped up with zoo networks closest to that
    mean (from outside the group only if the group has too few)."""
    table = networks.table
    in_group = table["group"] == group
    target = float(table.loc[in_group, "survival_time"].mean()) if in_group.any() else \
        float(np.mean([0, GROUP_EDGES[0]] if group == 1 else [GROUP_EDGES[-1], ctx.cap]))
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


def _convergence(ctx: _Context, networks) -> dict:
    settings = ctx.experiment.convergence
    good, good_st, good_src = _pick(ctx, networks, ctx.out / "samples" / "group-4.safetensors", 4, settings.networks)
    bad, bad_st, bad_src = _pick(ctx, networks, ctx.out / "samples" / "group-1.safetensors", 1, settings.networks)
    if len(good) < 2 or len(bad) < 2:
        raise WeightspaceError("convergence needs at least two good (group 4) and two bad (group 1) networks; "
                               "build a larger zoo")
    states = reference_states(settings.reference_states, settings.seed, ctx.cap)
    n_good = len(good)
    pairs_good, pairs_bad = all_pairs(n_good), all_pairs(len(bad)) + n_good
    pairs = np.concatenate([pairs_good, pairs_bad, [[0, n_good]]])
    population = Population.unflatten(CARTPOLE_NET.spec, torch.cat([good, bad]).to(ctx.device))
    comparison = compare_pairs(CARTPOLE_NET, population, pairs, states)
    rows = {}
    for name, select, st, src in (("good", slice(0, len(pairs_good)), good_st, good_src),
                                  ("bad", slice(len(pairs_good), len(pairs_good) + len(pairs_bad)), bad_st, bad_src)):
        rows[name] = {"networks": len(st), "survival_time": _stats(st), "sources": {s: src.count(s) for s in set(src)},
                      "hidden": _stats(comparison.distances["hidden"][select]),
                      "output": _stats(comparison.distances["output"][select]),
                      "pairs": int(select.stop - select.start)}
    panels = {}
    for layer in ("hidden", "output"):
        panels[layer] = []
        for title, index in (("good vs good", 0), ("bad vs bad", len(pairs_good)), ("good vs bad", len(pairs) - 1)):
            matrix = comparison.correlations[layer][index]
            panels[layer].append({"title": title, "matrix": matrix.tolist(),
                                  "distance": float(comparison.distances[layer][index]),
                                  "partner": bipartite_matching(matrix).tolist()})
    return {"reference_states": settings.reference_states, "rows": rows, "panels": panels}


def _interpolation(ctx: _Context, networks, model: WeightVAE) -> dict:
    settings = ctx.experiment.interpolation
    rng = np.random.default_rng(settings.seed)
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
    flat = networks.flat.to(ctx.device)
    alphas = alpha_grid(settings.points, settings.max_alpha)
    result = interpolate_pairs(model, [(flat[a], flat[b]) for a, b in chosen], alphas, ctx.episodes, ctx.cap)
    ends = result.endpoints.reshape(-1, result.endpoints.shape[-1])
    states = reference_states(ctx.experiment.convergence.reference_states, ctx.experiment.convergence.seed, ctx.cap)
    comparison = compare_pairs(CARTPOLE_NET, Population.unflatten(CARTPOLE_NET.spec, ends),
                               np.arange(len(ends)).reshape(-1, 2), states)
    table = networks.table
    pairs = []
    for p, (a, b) in enumerate(chosen):
        part = result.table[result.table["pair"] == p]
        latent = part[part["space"] == "latent"]
        pairs.append({"first_model_id": int(table["model_id"].iloc[a]), "second_model_id": int(table["model_id"].iloc[b]),
                      "first_zoo_survival": float(table["survival_time"].iloc[a]),
                      "second_zoo_survival": float(table["survival_time"].iloc[b]),
                      "hidden_cd": float(comparison.distances["hidden"][p]),
                      "endpoint_survival": result.endpoint_survival[p].tolist(),
                      "latent_max": float(latent["survival_time"].max()),
                      "latent_at_max_alpha": float(latent["survival_time"].iloc[-1])})
    return {"alphas": alphas.tolist(), "pairs": pairs, "table": result.table.to_dict(orient="list")}


def _repair(ctx: _Context, networks, model: WeightVAE) -> dict:
    settings = ctx.experiment.repair
    table = networks.table
    if settings.network is None:
        row = int(np.argmax(table["survival_time"].to_numpy()))
    else:
        matches = np.flatnonzero(table["model_id"].to_numpy() == settings.network)
        if not len(matches):
            raise ConfigError(f"[repair] network {settings.network} is not a final network of the zoo")
        row = int(matches[0])
    runs = {}
    for fill in (settings.fill_missing, not settings.fill_missing):  # the configured variant first
        config = RepairConfig(settings.candidates, settings.keep, settings.threshold, fill)
        result = repair_experiment(model, networks.flat[row].to(ctx.device), settings.levels, CRITERIA, config,
                                   settings.seed, ctx.episodes, ctx.cap)
        summary = summarize_repair(result, settings.threshold)
        summary["variant"] = "fill missing" if fill else "replace"
        runs["fill" if fill else "replace"] = (config, result, summary)
    config, result, summary = runs["fill" if settings.fill_missing else "replace"]
    _, other_result, other = runs["replace" if settings.fill_missing else "fill"]
    return {"model_id": int(table["model_id"].iloc[row]),
            "original_survival_time": float(result["original_survival_time"].iloc[0]),
            "config": dataclasses.asdict(config), "summary": summary.to_dict(orient="list"),
            "other_variant_summary": other.to_dict(orient="list"),
            "candidates": result.to_dict(orient="list"), "other_variant_candidates": other_result.to_dict(orient="list")}


def run_report(experiment: CartPoleExperiment | str | Path, out, device: str = "cpu", progress: bool = True,
               threads: int | None = 1) -> Path:
    """Run paper 004's pipeline for ``experiment`` (or the path of its TOML) into directory
    ``out``; returns the path of ``out/report.md``. Finished steps are reused (see module
    docstring). Runs with ``threads`` torch threads (see :mod:`weightspace.rl.threads`)."""
    with intra_op_threads(threads if torch.device(device).type == "cpu" else None):
        return _run_report(experiment, out, device, progress)


def _run_report(experiment, out, device, progress) -> Path:
    if not isinstance(experiment, CartPoleExperiment):
        experiment = load_experiment(experiment)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stored = out / "experiment.json"
    wanted = json.loads(json.dumps(experiment.to_json()))
    if stored.exists():  # the zoo and the models are expensive: never replace them silently
        previous = json.loads(stored.read_text())
        changed = [k for k in ("zoo", "vae", "vae_training") if previous.get(k) != wanted[k]]
        if changed:
            raise ConfigError(f"{out} holds a report built with other [{'], ['.join(changed)}] settings; "
                              "choose another output directory or delete it")
    storage.write_json(stored, wanted)
    ctx = _Context(experiment, out, device, progress)
    steps = tqdm(total=7, desc=f"{experiment.name}", unit="step", disable=not progress, dynamic_ncols=True)

    def advance(label):
        steps.set_postfix_str(label)
        steps.update(1)

    start = time.perf_counter()
    manifest = out / "zoo" / MANIFEST
    finished = manifest.exists() and len(read_manifest(out / "zoo")["shards"]["completed"]) == \
        read_manifest(out / "zoo")["shards"]["total"]
    build_zoo(out / "zoo", CartPoleZoo(), experiment.zoo, device=device, progress=progress)
    if not finished:
        ctx.timings["zoo"] = round(time.perf_counter() - start, 1)
    zoo = load_zoo(out / "zoo")
    networks = final_networks(zoo)
    advance("zoo")
    models = _models(ctx, networks)
    advance("models")
    e = experiment
    table1 = _cached_json(out / "table1.json", dataclasses.asdict(e.table1),
                          lambda: _table1(ctx, networks, models), ctx, "table 1")
    advance("table 1")
    convergence = _cached_json(out / "convergence.json", [dataclasses.asdict(e.table1), dataclasses.asdict(e.convergence)],
                               lambda: _convergence(ctx, networks), ctx, "convergence")
    advance("convergence")
    interpolation = _cached_json(out / "interpolation.json",
                                 [dataclasses.asdict(e.interpolation), dataclasses.asdict(e.convergence)],
                                 lambda: _interpolation(ctx, networks, models["combined"]), ctx, "interpolation")
    advance("interpolation")
    repair = _cached_json(out / "repair.json", dataclasses.asdict(e.repair),
                          lambda: _repair(ctx, networks, models["combined"]), ctx, "repair")
    advance("repair")
    _figures(out, table1, convergence, interpolation, repair, experiment.zoo.max_episode_steps, ctx.recomputed)
    report = _write_report(out, experiment, zoo, networks, table1, convergence, interpolation, repair, ctx.timings)
    advance("report")
    steps.close()
    return report


def _figures(out: Path, table1, convergence, interpolation, repair, cap: int, recomputed: set) -> None:
    """Draw each figure that is missing or whose step was just recomputed."""
    paths = {name: out / f"{name}.png" for name in ("figure4", "figure5", "figure6", "figure7", "figure8")}
    sources = {"figure4": "table 1", "figure5": "convergence", "figure6": "convergence", "figure7": "interpolation",
               "figure8": "repair"}
    for name, step in sources.items():
        if step in recomputed:
            paths[name].unlink(missing_ok=True)
    if not paths["figure4"].exists():
        figures.survival_histograms([(row["group"], row["train_values"], row["generated_values"])
                                     for row in table1["rows"]], paths["figure4"], cap)
    for name, layer in (("figure5", "hidden"), ("figure6", "output")):
        if not paths[name].exists():
            figures.correlation_matrices([(p["title"], p["matrix"], p["distance"], p["partner"])
                                          for p in convergence["panels"][layer]], paths[name], layer)
    if not paths["figure7"].exists():
        titles = [f"zoo {p['first_model_id']} -> {p['second_model_id']}, hidden CD {p['hidden_cd']:.2f}"
                  for p in interpolation["pairs"]]
        endpoints = [p["endpoint_survival"] for p in interpolation["pairs"]]
        figures.interpolation_panels(pd.DataFrame(interpolation["table"]), titles, endpoints, paths["figure7"], cap)
    if not paths["figure8"].exists():
        figures.repair_curves(pd.DataFrame(repair["summary"]), paths["figure8"],
                              pd.DataFrame(repair["other_variant_summary"]))


def _fmt(pair, digits: int = 1) -> str:
    if pair[0] is None:
        return "-"
    return f"{pair[0]:.{digits}f}, {pair[1]:.{digits}f}"


def _write_report(out, experiment, zoo, networks, table1, convergence, interpolation, repair, timings) -> Path:
    previous = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    timings = {**previous.get("seconds", {}), **timings}
    cfg = experiment.zoo
    counts = {g: int((networks.groups == g).sum()) for g in range(1, 5)}
    lines = [f"# {experiment.name}: agent embeddings for CartPole (paper 004)", ""]
    if experiment.description:
        lines += [experiment.description, ""]
    lines += [
        "## Zoo", "",
        f"{cfg.models:,} CartPoleNets (4-30-2 ELU, 212 parameters), Q-learning for log-uniform training lengths up to "
        f"{cfg.steps:,} steps, survival time over {cfg.samples} fixed test episodes capped at {cfg.max_episode_steps} steps. "
        f"Zoo seed {cfg.seed}; built in `zoo/`.", "",
        "| group | networks | share | paper's share |", "|---|---|---|---|",
    ]
    paper_total = sum(r[1] for r in PAPER_TABLE1[:4])
    for g in range(1, 5):
        lines.append(f"| {GROUP_NAMES[g - 1]} | {counts[g]:,} | {counts[g] / max(1, len(networks)):.0%} | "
                     f"{PAPER_TABLE1[g - 1][1] / paper_total:.0%} |")
    lines += ["", "## Table 1: sampling new CartPoleNets", "",
              f"{table1['generated_per_model']} networks generated per model. *Separate model*: a CartPoleGen trained "
              "on that group only (the combined row: on all networks), as in the paper; *conditional*: one "
              "CartPoleGen conditioned on the group (one-hot), sampled with that group.", "",
              "| group | train size | train (mean, std) | generated, separate model | generated, conditional | "
              "paper: train size | paper: train | paper: generated |", "|---|---|---|---|---|---|---|---|"]
    for row, paper in zip(table1["rows"], PAPER_TABLE1):
        lines.append(f"| {row['group']} | {row['train_size']:,} | {_fmt(row['train'])} | {_fmt(row['generated'])} | "
                     f"{_fmt(row['conditional'])} | {paper[1]:,} | {_fmt(paper[2])} | {_fmt(paper[3])} |")
    lines += ["", "An agent choosing at random lasts about 22 steps, one always pushing the same way about 9.", "",
              "![figure 4](figure4.png)", "",
              "*Figure 4: survival times of the training set (blue) and of the generated networks of the separate "
              "models (orange), percent of networks per bin, with KDE curves.*", "",
              "## Table 2: convergence of good vs bad networks", "",
              f"Correlations of absolute activations over {convergence['reference_states']:,} reference states; "
              "CD = sum over units of (semi-matched - bipartite-matched correlation), averaged over all pairs in "
              "a group.", "",
              "| group | networks (source) | survival time | CD hidden (mean, std) | CD output (mean, std) | "
              "paper: survival | paper: CD hidden | paper: CD output |", "|---|---|---|---|---|---|---|---|"]
    for name in ("good", "bad"):
        row, paper = convergence["rows"][name], PAPER_TABLE2[name]
        sources = ", ".join(f"{v} {k}" for k, v in sorted(row["sources"].items()))
        lines.append(f"| {name} | {row['networks']} ({sources}) | {row['survival_time'][0]:.1f} | "
                     f"{_fmt(row['hidden'], 2)} | {_fmt(row['output'], 2)} | "
                     f"{paper[0]} | {_fmt(paper[1], 2)} | {_fmt(paper[2], 2)} |")
    lines += ["", "![figure 5](figure5.png)", "", "*Figure 5: correlations between hidden units of two networks "
              "(columns in bipartite-matched order).*", "", "![figure 6](figure6.png)", "",
              "*Figure 6: the same for the two output units.*", "",
              "## Figure 7: walking the latent space", "",
              "| pair (zoo rows) | zoo survival times | hidden CD of endpoints | best on the latent walk | at alpha = "
              f"{experiment.interpolation.max_alpha:g} |", "|---|---|---|---|---|"]
    for p in interpolation["pairs"]:
        lines.append(f"| {p['first_model_id']} -> {p['second_model_id']} | {p['first_zoo_survival']:.1f} -> "
                     f"{p['second_zoo_survival']:.1f} | {p['hidden_cd']:.2f} | {p['latent_max']:.1f} | "
                     f"{p['latent_at_max_alpha']:.1f} |")
    lines += ["", "![figure 7](figure7.png)", "",
              "*Figure 7: survival time against alpha; orange: networks decoded from (1 - alpha) z1 + alpha z2, "
              "green: (1 - alpha) w1 + alpha w2 between the two decoded endpoint networks, blue: the line between "
              "the endpoints' survival times.*", "",
              "## Figure 8: repairing missing weights", "",
              f"Zoo network {repair['model_id']} (survival time {repair['original_survival_time']:.1f}); "
              f"gamma = {repair['config']['candidates']} samples per level, k = {repair['config']['keep']} kept, "
              f"epsilon = {repair['config']['threshold']:g}. Cells: the smallest |survival time difference| "
              "among the k kept candidates (success: below epsilon). *replace*: the candidate is the repaired "
              "network (algorithm 1's `return C_i`); *fill missing*: a candidate's weights only fill the missing "
              "ones (the text: candidates \"fill out the missing weights\"). Both variants use the same samples; "
              f"the figure draws *{'fill missing' if repair['config']['fill_missing'] else 'replace'}* solid.", "",
              "| degradation | " + " | ".join(f"{c} criterion, {variant}" for variant in ("replace", "fill missing")
                                             for c in CRITERIA) + " |",
              "|---|" + "---|" * 2 * len(CRITERIA),
              ]
    both = pd.concat([pd.DataFrame(repair["summary"]), pd.DataFrame(repair["other_variant_summary"])])
    for level, part in both.groupby("level"):
        cells = []
        for variant in ("replace", "fill missing"):
            for criterion in CRITERIA:
                row = part[(part["criterion"] == criterion) & (part["variant"] == variant)]
                cells.append(f"{row['best_difference'].iloc[0]:.1f} ({'yes' if row['success'].iloc[0] else 'no'})"
                             if len(row) else "-")
        lines.append(f"| {level:.0%} | " + " | ".join(cells) + " |")
    lines += ["", "![figure 8](figure8.png)", "",
              "## Notes", "",
              "- Survival times use fixed test episodes (gymnasium `reset(seed=s)`, s = 0, 1, ...), so they are "
              "exact and repeatable; the paper's +-5 simulator noise does not arise.",
              "- Generated networks are the decoder means for latents drawn from the prior.",
              "- CD is reported as a non-negative distance (equation 7 as printed would be <= 0).",
              f"- Groups: survival time <= {GROUP_EDGES[0]:g}, <= {GROUP_EDGES[1]:g}, <= {GROUP_EDGES[2]:g}, above.", ""]
    if timings:
        lines += ["Seconds per step (in the run that computed it): "
                  + ", ".join(f"{k} {v:g}" for k, v in timings.items()), ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    results = {
        "experiment": experiment.to_json(),
        "zoo": {"networks": len(networks), "groups": counts,
                "survival_time": _stats(networks.table["survival_time"])},
        "table1": [{k: v for k, v in row.items() if not k.endswith("_values")} for row in table1["rows"]],
        "table2": convergence["rows"],
        "interpolation": interpolation["pairs"],
        "repair": {k: repair[k] for k in ("model_id", "original_survival_time", "config", "summary")},
        "paper": {"table1": [list(r) for r in PAPER_TABLE1], "table2": PAPER_TABLE2},
    }
    if timings:
        results["seconds"] = timings
    storage.write_json(out / "results.json", results)
    return report
