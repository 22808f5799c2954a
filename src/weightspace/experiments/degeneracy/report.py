"""Paper 002's report: table 1 (the direction each knob moves each level's degeneracy, measured,
beside the paper's), a figure per sweep, an MDS picture of one condition's DSA distances, and
example outputs of trained networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...analysis.degeneracy import LEVEL_STATISTICS, RESAMPLES, interval
from ...stats import bootstrap_difference
from ..report import markdown
from .family import LEVELS, PAPER_DIRECTIONS, DegeneracyExperiment, condition_steps, measure_name

MEANING = {
    "behaviour": "sigma_OOD: s.d. of the OOD MSE over converged networks",
    "dynamics": "mean DSA distance over pairs",
    "shape": "the dynamics by a closed-form measure: mean 1 - linear CKA of the hidden states over pairs",
    "weights": "mean permutation-minimised ||W1 - P^T W2 P||_F / N^2 over pairs",
}


def _effect(conditions: list[dict], level: str, seed: int) -> dict:
    """The change of ``level`` from the smallest to the largest knob setting among the conditions
    where it was measured (at least two networks, or two pairs), with a bootstrap 95% interval
    (both conditions resampled); a direction only where the interval excludes 0."""
    measured = [c for c in conditions if len(c.get(f"{level}_values", [])) >= 2]
    if len(measured) < 2:
        return {"value": None, "low": None, "high": None, "direction": "not measured", "levels": None}
    low = min(measured, key=lambda c: c["level"])
    high = max(measured, key=lambda c: c["level"])
    value, lower, upper = bootstrap_difference(
        low[f"{level}_values"], high[f"{level}_values"], LEVEL_STATISTICS[level], resamples=RESAMPLES, seed=seed
    )
    direction = "up" if lower > 0 else "down" if upper < 0 else "no clear change"
    return {
        "value": value,
        "low": lower,
        "high": upper,
        "direction": direction,
        "levels": [low["level"], high["level"]],
    }


def _mds(directory: Path, result: dict) -> list[list[float]]:
    from safetensors.torch import load_file
    from sklearn.manifold import MDS

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
            name = zoos[(sweep.name, label)][0]
            result = finished[measure_name(name, seed)].result
            row = {
                "label": label,
                "level": level,
                "zoo": name,
                "networks": result["networks"],
                "converged": result["converged"],
                "missed_held_out": result.get("missed_held_out", 0),
                "measured": result.get("measured", False),
                "median_stop_step": float(np.median(result["stop_step"])),
            }
            if row["measured"]:
                for level_name in LEVELS:
                    row[level_name] = interval(result[f"{level_name}_values"], LEVEL_STATISTICS[level_name], seed)
                    row[f"{level_name}_values"] = result[f"{level_name}_values"]
                row["dsa_null"] = interval(result["dsa_null_values"], seed=seed)
                spread = result.get("dsa_spread_values") or []  # an older release's result has none
                row["dsa_spread"] = {"median": float(np.median(spread)), "max": float(max(spread))} if spread else None
                row["weight_change"] = interval(result["weight_change"], seed=seed)
                row["kernel_alignment"] = interval(result["kernel_alignment"], seed=seed)
                row["dsa"] = result["dsa"]
                row["example"] = result["example"]
                row["dsa_grid"] = [
                    {
                        "dsa": point["dsa"],
                        "explained": point["explained"],
                        "dynamics": interval(point["dynamics_values"], seed=seed),
                        "dynamics_values": point["dynamics_values"],
                        "null": interval(point["dsa_null_values"], seed=seed),
                    }
                    for point in result.get("dsa_grid", [])
                ]
            conditions.append(row)
        conditions.sort(key=lambda c: c["level"])  # a config may list the costliest condition first
        effects = {level_name: _effect(conditions, level_name, seed) for level_name in LEVELS}
        grid = [_grid_effect(conditions, entry, index, seed) for index, entry in enumerate(config.analysis.grid)]
        sweeps.append(
            {
                "name": sweep.name,
                "knob": sweep.knob,
                "task": sweep.task,
                "conditions": conditions,
                "effects": effects,
                "paper": PAPER_DIRECTIONS[sweep.knob],
                "dsa_grid": grid,
            }
        )
    # the MDS picture: the first measured condition of the first sweep that has one
    shown = next(((s, c) for s in sweeps for c in s["conditions"] if c["measured"]), None)
    mds = None
    if shown:
        step = finished[measure_name(shown[1]["zoo"], seed)]
        mds = {"task": shown[0]["task"], "label": shown[1]["label"], "points": _mds(step.directory, step.result)}
    return {"seed": seed, "sweeps": sweeps, "mds": mds}


def _grid_effect(conditions: list[dict], entry: dict, index: int, seed: int) -> dict:
    """One ``[analysis] grid`` entry across a sweep: the dynamics direction, and in how many
    measured conditions the distances between networks clear the same-network null (the lower
    end of their 95% interval above the upper end of the null's)."""
    points = [{"level": c["level"], **c["dsa_grid"][index]} for c in conditions if len(c.get("dsa_grid", [])) > index]
    clear = [p for p in points if p["dynamics"]["low"] is not None and p["null"]["high"] is not None]
    return {
        "entry": entry,
        "ranks": [p["dsa"]["rank"] for p in points],
        "effect": _effect(points, "dynamics", seed),
        "clears_null": sum(p["dynamics"]["low"] > p["null"]["high"] for p in clear),
        "conditions": len(points),
    }


def _cell(summary: dict | None) -> str:
    if not summary or summary.get("value") is None:
        return "not measured"
    if summary.get("low") is None:
        return f"{summary['value']:.4g}"
    return f"{summary['value']:.4g} [{summary['low']:.4g}, {summary['high']:.4g}]"


def _grid_lines(sweep: dict) -> list[str]:
    """The dynamics direction of a sweep under each ``[analysis] grid`` entry."""
    import pandas as pd

    rows = []
    for point in sweep["dsa_grid"]:
        effect = point["effect"]
        rows.append(
            {
                "DSA settings": _entry_name(point["entry"]),
                "rank per condition": ", ".join(map(str, point["ranks"])),
                "dynamics: measured": effect["direction"]
                if effect["value"] is None
                else f"{effect['direction']} ({effect['value']:+.3g} [{effect['low']:+.3g}, {effect['high']:+.3g}])",
                "clears the null": f"{point['clears_null']}/{point['conditions']} conditions",
                "paper": PAPER_DIRECTIONS[sweep["knob"]]["dynamics"],
            }
        )
    return [
        "The dynamics direction under other DSA settings (`[analysis] grid`), each with its own "
        "same-network null; a direction counts only where the distances clear the null in every condition.",
        "",
        markdown(pd.DataFrame(rows)),
        "",
        "Each condition's mean DSA distance between networks under every setting, with its 95% interval, "
        "and the same-network null's mean (its interval's upper end in brackets); rank and starts as used.",
        "",
        markdown(pd.DataFrame(_per_condition_rows(sweep))),
        "",
    ]


def _entry_name(entry: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in entry.items())


def _per_condition_rows(sweep: dict) -> list[dict]:
    """One row per DSA setting (the main one, then the grid's), one column per measured condition."""
    rows = [{"DSA settings": name} for name in ["main", *(_entry_name(p["entry"]) for p in sweep["dsa_grid"])]]
    for c in (c for c in sweep["conditions"] if c.get("dsa")):
        points = [{"dsa": c["dsa"], "dynamics": c["dynamics"], "null": c["dsa_null"]}, *c["dsa_grid"]]
        for index, row in enumerate(rows):  # a result measured before a grid entry was configured lacks it
            row[c["label"]] = _distance_cell(points[index]) if index < len(points) else "not measured"
    return rows


def _distance_cell(point: dict) -> str:
    dsa, null = point["dsa"], point["null"]
    return (
        f"{_cell(point['dynamics'])}; null {null['value']:.3g} [{null['high']:.3g}] "
        f"(rank {dsa['rank']}, delays {dsa['n_delays']}, {dsa['restarts']} starts)"
    )


def report_lines(config: DegeneracyExperiment, results: dict, out: Path) -> list[str]:
    import pandas as pd

    from ...analysis.degeneracy_figures import example_figure, mds_figure, sweep_figure

    figures = out / "figures"
    lines = [f"# {config.name}: solution degeneracy of task-trained RNNs (paper 002)", ""]
    if config.description:
        lines += [config.description, ""]
    table1 = []
    for sweep in results["sweeps"]:
        row = {"knob": sweep["knob"], "sweep": sweep["name"], "task": sweep["task"]}
        for level_name in (name for name in LEVELS if name in sweep["effects"]):  # an older release's: fewer
            effect = sweep["effects"][level_name]
            measured = (
                effect["direction"]
                if effect["value"] is None
                else f"{effect['direction']} ({effect['value']:+.3g} [{effect['low']:+.3g}, {effect['high']:+.3g}]; "
                f"{effect['levels'][0]:g} -> {effect['levels'][1]:g})"
            )
            row[f"{level_name}: measured"] = measured
            row[f"{level_name}: paper"] = PAPER_DIRECTIONS[sweep["knob"]][level_name]
        table1.append(row)
    lines += [
        "## Table 1: how each knob moves degeneracy",
        "",
        "Measured: the change from the sweep's smallest to its largest knob setting where the level was "
        "measured (a condition needs two converged networks, and three for the pairwise levels), with a "
        "bootstrap 95% interval (networks resampled for behaviour, pairs for dynamics and weights; pairs are treated as "
        "independent, so the intervals of the pairwise levels are optimistic). A direction is claimed only "
        "where the interval excludes 0. Paper: the direction of paper 002's table 1 (from its abstract: "
        "complexity and feature learning lower dynamics degeneracy and raise weight degeneracy, with mixed "
        "effects on behaviour; width and regularisation lower all three).",
        "",
        markdown(pd.DataFrame(table1)),
        "",
    ]
    for level_name in LEVELS:
        lines.append(f"- **{level_name}**: {MEANING[level_name]}")
    lines += [
        "",
        "Across widths the weight distance divides by N^2 (the paper's normalisation by parameter "
        "count), so its fall with width is partly that division. The DSA null (each network's two halves of "
        "the trials against each other) says how much of a dynamics distance is estimation noise; the "
        "spread over starts (the first pairs measured again from other random starts of the Procrustes "
        "search, |d1 - d2| / mean) how much is the search's noise.",
        "",
    ]
    for index, sweep in enumerate(results["sweeps"]):
        lines += [f"## Sweep: {sweep['name']} ({sweep['knob']}, {sweep['task']})", ""]
        rows = []
        for c in sweep["conditions"]:
            rows.append(
                {
                    "condition": c["label"],
                    "level": c["level"],
                    "converged": f"{c['converged']}/{c['networks']}",
                    "median stop step": c["median_stop_step"],
                    **{level_name: _cell(c.get(level_name)) for level_name in LEVELS},
                    "DSA null": _cell(c.get("dsa_null")),
                    "DSA spread over starts (median, max)": (
                        f"{c['dsa_spread']['median']:.1%}, {c['dsa_spread']['max']:.1%}" if c.get("dsa_spread") else "-"
                    ),
                    "||W_T - W_0||_F": _cell(c.get("weight_change")),
                    "NTK alignment": _cell(c.get("kernel_alignment")),
                }
            )
        lines += [markdown(pd.DataFrame(rows)), ""]
        missed = sum(c.get("missed_held_out", 0) for c in sweep["conditions"])
        never = sum(c["networks"] - c["converged"] for c in sweep["conditions"]) - missed
        if never or missed:
            lines += [
                f"{never} network(s) of this sweep never reached the threshold in training, and {missed} "
                "reached it but their stored weights miss it on the held-out evaluation trials; they are "
                "left out of every measure.",
                "",
            ]
        if sweep.get("dsa_grid"):
            lines += _grid_lines(sweep)
        path = sweep_figure(sweep, figures / f"sweep-{index}.png")
        lines += [f"![{sweep['name']}](figures/{path.name})", ""]
    mds = results["mds"]
    if mds:
        path = mds_figure(mds, figures / "mds.png")
        lines += [
            "## DSA distances of one condition, in two dimensions (MDS)",
            "",
            f"{mds['task']}, {mds['label']}: each point a converged network.",
            "",
            f"![MDS](figures/{path.name})",
            "",
        ]
    examples = [
        (s["task"], c["label"], c["example"])
        for s in results["sweeps"]
        for c in s["conditions"][:1]
        if c.get("example")
    ]
    if examples:
        path = example_figure(examples, figures / "examples.png")
        lines += [
            "## Trained networks at work",
            "",
            "Two fixed trials of the first converged network of each "
            "sweep's first condition: targets dashed, outputs solid (path integration: the path in the plane).",
            "",
            f"![examples](figures/{path.name})",
            "",
        ]
    first = next((c for s in results["sweeps"] for c in s["conditions"] if c.get("dsa")), None)
    if first:
        lines += [
            "## Settings of the measures",
            "",
            f"DSA: `{first['dsa']}` (per task; stored with every measure "
            "step's result). Weights: scipy's quadratic_assignment (FAQ) from the barycentre and "
            f"{config.analysis.weight_restarts} random starts.",
            "",
        ]
    return lines
