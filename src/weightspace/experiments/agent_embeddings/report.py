"""Paper 004's report template: the zoo's groups, table 1 (sampling), table 2 (convergence),
figure 7 (latent walks) and figure 8 (repair), each next to the paper's numbers. Numbers come
from results.json, gathered from the steps' results; figures are the steps' own files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...stats import bootstrap_interval
from ..steps import Finished
from ..zoo_step import zoo_location

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


def over_seeds(pairs) -> dict:
    """Per-seed (mean, std) pairs -> the mean of the means with a bootstrapped 95% interval, and
    the mean of the stds; seeds without a value (None) are left out."""
    pairs = [p for p in pairs if p[0] is not None]
    if not pairs:
        return {"mean": None, "std": None, "low": None, "high": None, "seeds": 0}
    mean, low, high = bootstrap_interval([p[0] for p in pairs])
    return {"mean": mean, "std": float(np.mean([p[1] for p in pairs])), "low": low, "high": high, "seeds": len(pairs)}


def gather_results(config, finished: dict[str, Finished], out: Path) -> dict:
    """results.json: the zoo, per seed the tables' numbers, tables 1 and 2 over seeds, the first
    seed's figure 7 and 8 numbers, and where each figure is."""
    first = config.seeds[0]
    zoo = finished["zoo"]
    per_seed = {}
    for seed in config.seeds:
        table1, convergence = finished[f"table1/seed-{seed}"].result, finished[f"convergence/seed-{seed}"].result
        repair = finished[f"repair/seed-{seed}"].result
        per_seed[str(seed)] = {
            "table1": [{k: v for k, v in row.items() if not k.endswith("_values")} for row in table1["rows"]],
            "table2": convergence["rows"],
            "interpolation": finished[f"interpolation/seed-{seed}"].result["pairs"],
            "repair": {k: repair[k] for k in ("model_id", "original_survival_time", "config", "summary")},
        }
    seeds = list(per_seed.values())
    table1 = []
    for i, row in enumerate(seeds[0]["table1"]):
        table1.append(
            {
                "group": row["group"],
                "train_size": row["train_size"],
                "train": row["train"],
                **{
                    column: over_seeds([s["table1"][i][column] for s in seeds])
                    for column in ("generated", "conditional")
                },
            }
        )
    table2 = {}
    for name, row in seeds[0]["table2"].items():
        table2[name] = {
            "networks": row["networks"],
            "sources": row["sources"],
            **{
                column: over_seeds([s["table2"][name][column] for s in seeds])
                for column in ("survival_time", "hidden", "output")
            },
        }
    figures = {}
    for step in ("table1", "convergence", "interpolation", "repair"):
        done = finished[f"{step}/seed-{first}"]
        for figure in done.result["figures"]:
            figures[figure.removesuffix(".png")] = (done.directory / figure).relative_to(out).as_posix()
    first_repair = finished[f"repair/seed-{first}"].result
    return {
        "name": config.name,
        "zoo": {k: zoo.result[k] for k in ("networks", "groups", "survival_time")},
        "zoo_directory": _relative(zoo_location(zoo), out),
        "seeds": list(config.seeds),
        "generated_per_model": finished[f"table1/seed-{first}"].result["generated_per_model"],
        "reference_states": finished[f"convergence/seed-{first}"].result["reference_states"],
        "table1": table1,
        "table2": table2,
        "interpolation": per_seed[str(first)]["interpolation"],
        "repair": {**per_seed[str(first)]["repair"], "other_variant_summary": first_repair["other_variant_summary"]},
        "per_seed": per_seed,
        "figures": figures,
        "paper": {"table1": [list(r) for r in PAPER_TABLE1], "table2": PAPER_TABLE2},
    }


def _relative(path: Path, out: Path) -> str:
    try:
        return path.relative_to(out).as_posix()
    except ValueError:  # a zoo outside the experiment's directory
        return path.as_posix()


def _fmt(pair, digits: int = 1) -> str:
    if pair[0] is None:
        return "-"
    return f"{pair[0]:.{digits}f}, {pair[1]:.{digits}f}"


def _cell(value: dict, digits: int = 1) -> str:
    """(mean, std) over seeds; with several seeds the mean's interval in brackets."""
    if value["mean"] is None:
        return "-"
    if value["seeds"] > 1:
        return (
            f"{value['mean']:.{digits}f} [{value['low']:.{digits}f}, {value['high']:.{digits}f}], "
            f"{value['std']:.{digits}f}"
        )
    return _fmt((value["mean"], value["std"]), digits)


def report_lines(config, results: dict, out: Path) -> list[str]:
    from ...generative.repair import CRITERIA
    from ...rl.evaluation import GROUP_EDGES, GROUP_NAMES

    cfg = config.zoo
    figures = results["figures"]
    groups = {int(g): n for g, n in results["zoo"]["groups"].items()}
    total = results["zoo"]["networks"]
    seeds = results["seeds"]
    lines = [f"# {config.name}: agent embeddings for CartPole (paper 004)", ""]
    if config.description:
        lines += [config.description, ""]
    lines += [
        "## Zoo",
        "",
        f"{cfg.models:,} CartPoleNets (4-30-2 ELU, 212 parameters), Q-learning for log-uniform training lengths up to "
        f"{cfg.steps:,} steps, survival time over {cfg.test_episodes} fixed test episodes capped at "
        f"{cfg.max_episode_steps} steps. Zoo seed {cfg.seed}; built in `{results['zoo_directory']}/`.",
        "",
        "| group | networks | share | paper's share |",
        "|---|---|---|---|",
    ]
    paper_total = sum(r[1] for r in PAPER_TABLE1[:4])
    for g in range(1, 5):
        lines.append(
            f"| {GROUP_NAMES[g - 1]} | {groups[g]:,} | {groups[g] / max(1, total):.0%} | "
            f"{PAPER_TABLE1[g - 1][1] / paper_total:.0%} |"
        )
    if len(seeds) > 1:
        lines += [
            "",
            f"Seeds {seeds}: CartPoleGen and every analysis below ran once per seed. Tables 1 and 2 show "
            "the mean over seeds of each (mean, std) cell, with a bootstrapped 95% interval of the mean in "
            f"brackets; figures and the figure 7 and 8 tables show seed {seeds[0]}.",
        ]
    lines += [
        "",
        "## Table 1: sampling new CartPoleNets",
        "",
        f"{results['generated_per_model']} networks generated per model. *Separate model*: a CartPoleGen trained "
        "on that group only (the combined row: on all networks), as in the paper; *conditional*: one "
        "CartPoleGen conditioned on the group (Sohn et al. 2015: the group one-hot into the encoder and the "
        "decoder, and one decoder output layer per group), sampled with that group.",
        "",
        "| group | train size | train (mean, std) | generated, separate model | generated, conditional | "
        "paper: train size | paper: train | paper: generated |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row, paper in zip(results["table1"], PAPER_TABLE1):
        lines.append(
            f"| {row['group']} | {row['train_size']:,} | {_fmt(row['train'])} | {_cell(row['generated'])} | "
            f"{_cell(row['conditional'])} | {paper[1]:,} | {_fmt(paper[2])} | {_fmt(paper[3])} |"
        )
    lines += [
        "",
        "An agent choosing at random lasts about 22 steps, one always pushing the same way about 9.",
        "",
        f"![figure 4]({figures['figure4']})",
        "",
        "*Figure 4: survival times of the training set (blue) and of the generated networks of the separate "
        "models (orange), percent of networks per bin, with KDE curves.*",
        "",
        "## Table 2: convergence of good vs bad networks",
        "",
        f"Correlations of absolute activations over {results['reference_states']:,} reference states; "
        "CD = sum over units of (semi-matched - bipartite-matched correlation), averaged over all pairs in "
        "a group.",
        "",
        "| group | networks (source) | survival time | CD hidden (mean, std) | CD output (mean, std) | "
        "paper: survival | paper: CD hidden | paper: CD output |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("good", "bad"):
        row, paper = results["table2"][name], PAPER_TABLE2[name]
        sources = ", ".join(f"{v} {k}" for k, v in sorted(row["sources"].items()))
        lines.append(
            f"| {name} | {row['networks']} ({sources}) | {row['survival_time']['mean']:.1f} | "
            f"{_cell(row['hidden'], 2)} | {_cell(row['output'], 2)} | "
            f"{paper[0]} | {_fmt(paper[1], 2)} | {_fmt(paper[2], 2)} |"
        )
    lines += [
        "",
        f"![figure 5]({figures['figure5']})",
        "",
        "*Figure 5: correlations between hidden units of two networks (columns in bipartite-matched order).*",
        "",
        f"![figure 6]({figures['figure6']})",
        "",
        "*Figure 6: the same for the two output units.*",
        "",
        "## Figure 7: walking the latent space",
        "",
        "| pair (zoo rows) | zoo survival times | hidden CD of endpoints | best on the latent walk | at alpha = "
        f"{config.interpolation.max_alpha:g} |",
        "|---|---|---|---|---|",
    ]
    for p in results["interpolation"]:
        lines.append(
            f"| {p['first_model_id']} -> {p['second_model_id']} | {p['first_zoo_survival']:.1f} -> "
            f"{p['second_zoo_survival']:.1f} | {p['hidden_cd']:.2f} | {p['latent_max']:.1f} | "
            f"{p['latent_at_max_alpha']:.1f} |"
        )
    repair = results["repair"]
    lines += [
        "",
        f"![figure 7]({figures['figure7']})",
        "",
        "*Figure 7: survival time against alpha; orange: networks decoded from (1 - alpha) z1 + alpha z2, "
        "green: (1 - alpha) w1 + alpha w2 between the two decoded endpoint networks, blue: the line between "
        "the endpoints' survival times.*",
        "",
        "## Figure 8: repairing missing weights",
        "",
        f"Zoo network {repair['model_id']} (survival time {repair['original_survival_time']:.1f}); "
        f"gamma = {repair['config']['candidates']} samples per level, k = {repair['config']['keep']} kept, "
        f"epsilon = {repair['config']['threshold']:g}. Cells: the smallest |survival time difference| "
        "among the k kept candidates (success: below epsilon). *replace*: the candidate is the repaired "
        "network (algorithm 1's `return C_i`); *fill missing*: a candidate's weights only fill the missing "
        'ones (the text: candidates "fill out the missing weights"). Both variants use the same samples; '
        f"the figure draws *{'fill missing' if repair['config']['fill_missing'] else 'replace'}* solid.",
        "",
        "| degradation | "
        + " | ".join(f"{c} criterion, {variant}" for variant in ("replace", "fill missing") for c in CRITERIA)
        + " |",
        "|---|" + "---|" * 2 * len(CRITERIA),
    ]
    both = pd.concat([pd.DataFrame(repair["summary"]), pd.DataFrame(repair["other_variant_summary"])])
    for level, part in both.groupby("level"):
        cells = []
        for variant in ("replace", "fill missing"):
            for criterion in CRITERIA:
                row = part[(part["criterion"] == criterion) & (part["variant"] == variant)]
                cells.append(
                    f"{row['best_difference'].iloc[0]:.1f} ({'yes' if row['success'].iloc[0] else 'no'})"
                    if len(row)
                    else "-"
                )
        lines.append(f"| {level:.0%} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"![figure 8]({figures['figure8']})",
        "",
        "## Notes",
        "",
        "- Survival times use fixed test episodes (gymnasium `reset(seed=s)`, s = 0, 1, ...), so they are "
        "exact and repeatable; the paper's +-5 simulator noise does not arise.",
        "- Generated networks are the decoder means for latents drawn from the prior.",
        "- CD is reported as a non-negative distance (equation 7 as printed would be <= 0).",
        f"- Groups: survival time <= {GROUP_EDGES[0]:g}, <= {GROUP_EDGES[1]:g}, <= {GROUP_EDGES[2]:g}, above.",
        "",
    ]
    return lines
