"""Paper 002's report: table 1 (the direction each knob moves each level's degeneracy, measured,
beside the paper's), a figure per sweep, an MDS picture of one condition's DSA distances, and
example outputs of trained networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from ..analysis.degeneracy import interval
from .degeneracy import LEVELS, PAPER_DIRECTIONS, DegeneracyExperiment, condition_steps
from .report import markdown

#: each level's statistic over its values: sigma_OOD over networks, the mean over pairs
STATISTICS = {"behaviour": lambda v, axis=-1: np.std(v, axis=axis, ddof=1),
              "dynamics": lambda v, axis=-1: np.mean(v, axis=axis),
              "weights": lambda v, axis=-1: np.mean(v, axis=axis)}
MEANING = {"behaviour": "sigma_OOD: s.d. of the OOD MSE over converged networks",
           "dynamics": "mean DSA distance over pairs", "weights": "mean permutation-minimised ||W1 - P^T W2 P||_F / N^2 over pairs"}


def difference(first, second, statistic, seed: int = 0) -> dict:
    """statistic(second) - statistic(first) with a bootstrap 95% interval (both resampled)."""
    first, second = np.asarray(first, float), np.asarray(second, float)
    if len(first) < 2 or len(second) < 2:
        return {"value": None, "low": None, "high": None, "direction": "not measured"}
    value = float(statistic(second) - statistic(first))
    result = stats.bootstrap((first, second), lambda a, b, axis=-1: statistic(b, axis=axis) - statistic(a, axis=axis),
                             n_resamples=2000, method="percentile", rng=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    direction = "up" if low > 0 else "down" if high < 0 else "no clear change"
    return {"value": value, "low": low, "high": high, "direction": direction}


def _effect(conditions: list[dict], level: str, seed: int) -> dict:
    """The change of ``level`` from the smallest to the largest knob setting among the conditions
    where it was measured (at least two networks, or two pairs)."""
    measured = [c for c in conditions if len(c.get(f"{level}_values", [])) >= 2]
    if len(measured) < 2:
        return {"value": None, "low": None, "high": None, "direction": "not measured", "levels": None}
    low = min(measured, key=lambda c: c["level"])
    high = max(measured, key=lambda c: c["level"])
    return {**difference(low[f"{level}_values"], high[f"{level}_values"], STATISTICS[level], seed),
            "levels": [low["level"], high["level"]]}


def _mds(directory: Path, result: dict) -> list[list[float]] | None:
    from safetensors.torch import load_file
    from sklearn.manifold import MDS

    if not result.get("measured"):
        return None
    distances = load_file(directory / result["distances"])["dynamics"].double().numpy()
    embedding = MDS(n_components=2, metric="precomputed", random_state=0, n_init=4, init="random")
    return embedding.fit_transform(distances).tolist()


def gather_results(config: DegeneracyExperiment, finished: dict, out: Path) -> dict:
    seed = config.seeds[0]
    zoos = condition_steps(config)
    sweeps = []
    for sweep, items in config.conditions():
        conditions = []
        for label, _, level in items:
            name = zoos[(sweep.name, label)]
            step = finished[f"measure/{name[4:]}/seed-{seed}"]
            result = step.result
            row = {"label": label, "level": level, "zoo": name, "networks": result["networks"],
                   "converged": result["converged"], "measured": result.get("measured", False),
                   "median_stop_step": float(np.median(result["stop_step"]))}
            if row["measured"]:
                for level_name in LEVELS:
                    row[level_name] = interval(result[f"{level_name}_values"], STATISTICS[level_name], seed)
                    row[f"{level_name}_values"] = result[f"{level_name}_values"]
                row["dsa_null"] = interval(result["dsa_null_values"], seed=seed)
                row["weight_change"] = interval(result["weight_change"], seed=seed)
                row["kernel_alignment"] = interval(result["kernel_alignment"], seed=seed)
                row["dsa"] = result["dsa"]
                row["example"] = result["example"]
            conditions.append(row)
        effects = {level_name: _effect(conditions, level_name, seed) for level_name in LEVELS}
        first = next((c for c in conditions if c["measured"]), None)
        mds = _mds(finished[f"measure/{first['zoo'][4:]}/seed-{seed}"].directory,
                   finished[f"measure/{first['zoo'][4:]}/seed-{seed}"].result) if first else None
        sweeps.append({"name": sweep.name, "knob": sweep.knob, "task": sweep.task, "conditions": conditions,
                       "effects": effects, "paper": PAPER_DIRECTIONS[sweep.knob],
                       "mds": {"label": first["label"], "points": mds} if mds else None})
    return {"seed": seed, "sweeps": sweeps}


def _cell(summary: dict | None) -> str:
    if not summary or summary.get("value") is None:
        return "not measured"
    if summary.get("low") is None:
        return f"{summary['value']:.4g}"
    return f"{summary['value']:.4g} [{summary['low']:.4g}, {summary['high']:.4g}]"


def report_lines(config: DegeneracyExperiment, results: dict, out: Path) -> list[str]:
    import pandas as pd

    from ..analysis.degeneracy_figures import example_figure, mds_figure, sweep_figure

    figures = out / "figures"
    lines = [f"# {config.name}: solution degeneracy of task-trained RNNs (paper 002)", ""]
    if config.description:
        lines += [config.description, ""]
    table1 = []
    for sweep in results["sweeps"]:
        row = {"knob": sweep["knob"], "sweep": sweep["name"], "task": sweep["task"]}
        for level_name in LEVELS:
            effect = sweep["effects"][level_name]
            measured = effect["direction"] if effect["value"] is None else \
                f"{effect['direction']} ({effect['value']:+.3g} [{effect['low']:+.3g}, {effect['high']:+.3g}]; " \
                f"{effect['levels'][0]:g} -> {effect['levels'][1]:g})"
            row[f"{level_name}: measured"] = measured
            row[f"{level_name}: paper"] = sweep["paper"][level_name]
        table1.append(row)
    lines += ["## Table 1: how each knob moves degeneracy", "",
              "Measured: the change from the sweep's smallest to its largest knob setting where the level was "
              "measured (a condition needs two converged networks, and three for the pairwise levels), with a "
              "bootstrap 95% interval (networks resampled for behaviour, pairs for dynamics and weights; pairs are treated as "
              "independent, so the intervals of the pairwise levels are optimistic). A direction is claimed only "
              "where the interval excludes 0. Paper: the direction of paper 002's table 1 (from its abstract: "
              "complexity and feature learning lower dynamics degeneracy and raise weight degeneracy, with mixed "
              "effects on behaviour; width and regularisation lower all three).", "",
              markdown(pd.DataFrame(table1)), ""]
    for level_name in LEVELS:
        lines.append(f"- **{level_name}**: {MEANING[level_name]}")
    lines += ["", "Across widths the weight distance divides by N^2 (the paper's normalisation by parameter "
              "count), so its fall with width is partly that division. The DSA null (each network's two halves of "
              "the trials against each other) says how much of a dynamics distance is estimation noise.", ""]
    for index, sweep in enumerate(results["sweeps"]):
        lines += [f"## Sweep: {sweep['name']} ({sweep['knob']}, {sweep['task']})", ""]
        rows = []
        for c in sweep["conditions"]:
            rows.append({"condition": c["label"], "level": c["level"], "converged": f"{c['converged']}/{c['networks']}",
                         "median stop step": c["median_stop_step"],
                         **{level_name: _cell(c.get(level_name)) for level_name in LEVELS},
                         "DSA null": _cell(c.get("dsa_null")), "||W_T - W_0||_F": _cell(c.get("weight_change")),
                         "NTK alignment": _cell(c.get("kernel_alignment"))})
        lines += [markdown(pd.DataFrame(rows)), ""]
        unconverged = sum(c["networks"] - c["converged"] for c in sweep["conditions"])
        if unconverged:
            lines += [f"{unconverged} network(s) of this sweep never reached the threshold; they are left out of "
                      "every measure.", ""]
        path = sweep_figure(sweep, figures / f"sweep-{index}.png")
        lines += [f"![{sweep['name']}](figures/{path.name})", ""]
    mds_sweep = next((s for s in results["sweeps"] if s["mds"]), None)
    if mds_sweep:
        path = mds_figure(mds_sweep, figures / "mds.png")
        lines += ["## DSA distances of one condition, in two dimensions (MDS)", "",
                  f"{mds_sweep['task']}, {mds_sweep['mds']['label']}: each point a converged network.", "",
                  f"![MDS](figures/{path.name})", ""]
    examples = [(s["task"], c["label"], c["example"]) for s in results["sweeps"] for c in s["conditions"][:1]
                if c.get("example")]
    if examples:
        path = example_figure(examples, figures / "examples.png")
        lines += ["## Trained networks at work", "", "Two fixed trials of the first converged network of each "
                  "sweep's first condition: targets dashed, outputs solid (path integration: the path in the plane).",
                  "", f"![examples](figures/{path.name})", ""]
    first = next((c for s in results["sweeps"] for c in s["conditions"] if c.get("dsa")), None)
    if first:
        lines += ["## Settings of the measures", "", f"DSA: `{first['dsa']}` (per task; stored with every measure "
                  "step's result). Weights: scipy's quadratic_assignment (FAQ) from the barycentre and "
                  f"{config.analysis.weight_restarts} random starts.", ""]
    return lines
