"""Budget curves of paper 000's encoders, ours beside the authors' code (issue: the probing encoders).

Reads finished runs and writes one figure and one Markdown table:

* ``--ours RESULTS``: a ``weightspace run`` results folder (``results/NAME``) of the representations
  family; its pretraining runs, the constant floor and the oracle ceiling, of zoo ``--zoo`` and seed
  ``--seed``, with the learning rate its ``experiment.json`` gives. Repeat it for each learning rate.
* ``--run LABEL=FOLDER``: one pretraining run folder (``weightspace pretrain`` or ``pretrain()``),
  drawn as codebase LABEL (for example a variant of ours: ``--run "ours, plain reader=runs/x"``)
  when its seed is ``--seed``. Repeatable.
* ``--authors FOLDER``: a folder of ``experiments/authors_code.py`` runs (one sub-folder each, with
  ``summary.json`` and ``metrics.jsonl``); the runs of seed ``--seed`` are drawn.

The figure has one panel per encoder: validation loss (reverse KL, mean over classes: the units of
both codebases here) against pretraining steps, one line per codebase and learning rate, with the
floor and the ceiling of our runs at the same learning rate. The table gives each curve's best
validation loss up to each of ``--marks`` steps (a dash: not trained so far), how far below the floor
(at the same step and learning rate) that is, the step of its best and its wall time. Below the table,
for each codebase and learning rate: the step from which each probing encoder's best validation loss so
far stays below the statistics encoder's (the crossing the paper's claim needs), or that it never does::

    python experiments/probing_budget.py --zoo digits --seed 0 \\
        --ours results/probing-budget-5k --ours results/probing-budget-lr1e-4 \\
        --authors runs/authors --figure docs/reproductions/probing-budget/digits-seed0.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from weightspace.plotting import pyplot

ENCODERS = ("statistics", "probing", "interactive")
MARKS = (1000, 2000, 2500, 3000, 5000)
MECHANISTIC = "statistics"


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _curve(lines: list[dict]) -> dict:
    points = [(line["step"], line["val_loss"]) for line in lines if "val_loss" in line]
    return {"steps": [s for s, _ in points], "val": [v for _, v in points], "seconds": lines[-1].get("seconds")}


def ours(results: Path, zoo: str, seed: int) -> tuple[str, float, dict]:
    """(label, learning rate, {encoder or reference: curve}) of one results folder: a finished run
    (its ``experiment.json``) or one still going or killed (the pretraining steps' own settings)."""
    curves, settings = {}, None
    for name in (*ENCODERS, "reference-constant", "reference-oracle"):
        found = sorted((results / "steps" / "pretrain" / zoo / name / f"seed-{seed}").glob("*/run/metrics.jsonl"))
        if found and _metrics(found[-1]):
            curves[name] = _curve(_metrics(found[-1]))
            settings = settings or json.loads((found[-1].parents[1] / "step.json").read_text())["settings"]
    if not curves:
        raise SystemExit(f"probing_budget.py: error: {results} has no pretraining runs of zoo {zoo!r}, seed {seed}")
    if (results / "experiment.json").exists():
        settings = json.loads((results / "experiment.json").read_text())["pretrain"]
    criterion = settings.get("criterion", "reverse-kl")
    label = "ours" if criterion == "reverse-kl" else f"ours, {criterion}"
    return label, settings["learning_rate"], curves


def single_run(label: str, folder: Path, seed: int) -> tuple[tuple[str, float], dict] | None:
    """((label, learning rate), {encoder: curve}) of one pretraining run folder of ``seed``, or None."""
    settings = json.loads((folder / "config.json").read_text())["pretrain"]
    if settings["seed"] != seed:
        return None
    name = settings["encoder"]
    name = f"reference-{name}" if name in ("constant", "oracle") else name  # a run's references/NAME
    return (label, settings["learning_rate"]), {name: _curve(_metrics(folder / "metrics.jsonl"))}


def authors(folder: Path, seed: int) -> dict[tuple[str, float], dict]:
    """{(label, learning rate): {encoder: curve}} of the authors'-code runs of ``seed`` under ``folder``
    (the label names their training criterion)."""
    runs: dict[tuple[str, float], dict] = {}
    for summary_file in sorted(folder.glob("*/summary.json")):
        summary = json.loads(summary_file.read_text())
        if summary["settings"]["seed"] != seed:
            continue
        curve = _curve(_metrics(summary_file.parent / "metrics.jsonl"))
        key = (f"authors, {summary['criterion'].replace('_', '-')}", summary["settings"]["learning_rate"])
        runs.setdefault(key, {})[summary["encoder"]] = curve
    return runs


def best_until(curve: dict, step: int) -> float | None:
    values = [v for s, v in zip(curve["steps"], curve["val"]) if s <= step]
    return min(values) if values and curve["steps"][-1] >= step else None


def best_so_far(curve: dict, step: int) -> float:
    """The best validation loss up to ``step`` (after an early stop: the run's best)."""
    return min(v for s, v in zip(curve["steps"], curve["val"]) if s <= step)


def crossing(probing: dict, mechanistic: dict) -> int | None:
    """The first evaluation step from which ``probing``'s best loss so far is below
    ``mechanistic``'s at every later evaluation of either, or None."""
    steps = sorted(
        s for s in {*probing["steps"], *mechanistic["steps"]} if s >= max(probing["steps"][0], mechanistic["steps"][0])
    )
    first = None
    for step in steps:
        if best_so_far(probing, step) < best_so_far(mechanistic, step):
            first = step if first is None else first
        else:
            first = None
    return first


def crossings(curves: dict) -> list[str]:
    """One line per codebase, learning rate and probing encoder with a statistics curve to compare
    (a variant of ours without one: our statistics run at that learning rate)."""
    lines = []
    for (codebase, lr), by_encoder in curves.items():
        ours = curves.get(("ours", lr), {}) if codebase.startswith("ours") else {}
        mechanistic = by_encoder.get(MECHANISTIC) or ours.get(MECHANISTIC)
        if mechanistic is None:
            continue
        for name in (e for e in ENCODERS if e != MECHANISTIC and e in by_encoder):
            step = crossing(by_encoder[name], mechanistic)
            last = min(by_encoder[name]["steps"][-1], mechanistic["steps"][-1])
            when = f"from step {step} on" if step is not None else f"never (to step {last})"
            lines.append(f"- {codebase}, lr {lr:g}: {name} below {MECHANISTIC} {when}")
    return lines


def table(curves: dict, marks=MARKS) -> list[str]:
    """Markdown rows: one per (codebase, learning rate, encoder)."""
    head = " | ".join(f"best to {m / 1000:g}k (vs floor)" for m in marks)
    rows = [f"| codebase | lr | encoder | {head} | best at step | wall |", "|---" * (5 + len(marks)) + "|"]
    for (codebase, lr), by_encoder in curves.items():
        floor = by_encoder.get("reference-constant") or curves.get(("ours", lr), {}).get("reference-constant")
        for name, curve in by_encoder.items():
            cells = []
            for mark in marks:
                value = best_until(curve, mark)
                below = best_until(floor, mark) if floor and not name.startswith("reference") else None
                cells.append(
                    "-" if value is None else f"{value:.4f}" + (f" ({value / below - 1:+.0%})" if below else "")
                )
            best = min(range(len(curve["val"])), key=curve["val"].__getitem__)
            wall = f"{curve['seconds'] / 60:.0f} min" if curve["seconds"] else "-"
            rows.append(f"| {codebase} | {lr:g} | {name} | {' | '.join(cells)} | {curve['steps'][best]} | {wall} |")
    return rows


def figure(curves: dict, path: Path, title: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(ENCODERS), figsize=(5 * len(ENCODERS), 4), sharey=True)
    colours = {key: f"C{i}" for i, key in enumerate(curves)}
    for ax, name in zip(axes, ENCODERS):
        for (codebase, lr), by_encoder in curves.items():
            colour = colours[(codebase, lr)]
            if name in by_encoder:
                c = by_encoder[name]
                style = "-" if codebase.startswith("ours") else "--"
                ax.plot(c["steps"], c["val"], style, color=colour, label=f"{codebase}, lr {lr:g}")
            if codebase.startswith("ours"):
                for reference, style in (("reference-constant", ":"), ("reference-oracle", "-.")):
                    if reference in by_encoder:
                        r = by_encoder[reference]
                        label = f"{reference.split('-')[1]} ({codebase}), lr {lr:g}"
                        ax.plot(r["steps"], r["val"], style, color=colour, alpha=0.6, linewidth=1, label=label)
        ax.set_title(name)
        ax.set_xlabel("pretraining step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation loss (reverse KL, mean over classes)")
    axes[-1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ours", type=Path, action="append", default=[], help="a results folder (repeatable)")
    parser.add_argument("--run", action="append", default=[], help="LABEL=FOLDER: one pretraining run (repeatable)")
    parser.add_argument("--authors", type=Path, help="a folder of authors_code.py runs")
    parser.add_argument("--zoo", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path, required=True)
    parser.add_argument("--marks", default=",".join(map(str, MARKS)), help="steps of the table's columns")
    cli = parser.parse_args(argv)
    try:
        marks = tuple(int(m) for m in cli.marks.split(","))
    except ValueError:
        print(f"probing_budget.py: error: --marks takes steps separated by commas, got {cli.marks!r}", file=sys.stderr)
        return 2
    runs = [tuple(item.split("=", 1)) for item in cli.run]
    if any(len(run) != 2 for run in runs):
        print("probing_budget.py: error: --run takes LABEL=FOLDER", file=sys.stderr)
        return 2
    for folder in [*cli.ours, *([cli.authors] if cli.authors else []), *(Path(f) for _, f in runs)]:
        if not folder.is_dir():
            print(f"probing_budget.py: error: {folder} is not a folder", file=sys.stderr)
            return 2
    curves = {}
    for results in cli.ours:
        label, lr, found = ours(results, cli.zoo, cli.seed)
        curves[(label, lr)] = found
    for label, folder in runs:
        found = single_run(label, Path(folder), cli.seed)
        if found:
            curves.setdefault(found[0], {}).update(found[1])
    if cli.authors:
        curves.update(authors(cli.authors, cli.seed))
    figure(curves, cli.figure, f"zoo {cli.zoo}, seed {cli.seed}: ours (solid) and the authors' code (dashed)")
    print("\n".join(table(curves, marks)))
    print()
    print("\n".join(crossings(curves)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
