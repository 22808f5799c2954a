"""Paper 004's figures of generated networks (4: survival times, 7: latent walks, 8: weight
repair), drawn with matplotlib's object API (no pyplot state, Agg canvas)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

TRAIN_COLOR, GENERATED_COLOR, WEIGHT_COLOR, LINE_COLOR = "tab:blue", "tab:orange", "tab:green", "tab:blue"


def _kde(ax, values, color, bins):
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2 or np.std(values) < 1e-9:
        return
    from scipy.stats import gaussian_kde

    grid = np.linspace(0, 200, 400)
    width = bins[1] - bins[0]
    ax.plot(grid, gaussian_kde(values)(grid) * 100 * width, color=color, linewidth=1.5)


def survival_histograms(panels, path, max_steps: int = 200) -> Path:
    """Figure 4: per panel (title, training-set survival times, generated survival times), the
    percentage of networks per survival-time bin, with KDE curves."""
    fig = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    bins = np.linspace(0, max_steps, 21)
    for ax, (title, train, generated) in zip(axes, panels):
        for values, color, label in ((train, TRAIN_COLOR, "training set"), (generated, GENERATED_COLOR, "generated")):
            values = np.asarray(values, dtype=np.float64)
            if len(values):
                ax.hist(
                    values,
                    bins=bins,
                    weights=np.full(len(values), 100 / len(values)),
                    color=color,
                    alpha=0.45,
                    label=label,
                )
                _kde(ax, values, color, bins)
        ax.set_title(title)
        ax.set_xlabel("survival time")
        ax.set_xlim(0, max_steps)
    axes[0].set_ylabel("% of networks")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.savefig(path, dpi=110)
    return Path(path)


def interpolation_panels(table, titles, endpoints, path, max_steps: int = 200) -> Path:
    """Figure 7: survival time against alpha for the latent walk (orange), the weight-space walk
    (green), and the straight line between the survival times ``endpoints[pair]`` of the
    networks decoded from the two embeddings (blue)."""
    pairs = sorted(table["pair"].unique())
    columns = 2 if len(pairs) > 1 else 1
    rows = -(-len(pairs) // columns)
    fig = Figure(figsize=(5.0 * columns, 3.4 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).reshape(-1)
    for ax, pair in zip(axes, pairs):
        part = table[table["pair"] == pair]
        latent = part[part["space"] == "latent"].sort_values("alpha")
        weight = part[part["space"] == "weight"].sort_values("alpha")
        ax.plot([0, 1], list(endpoints[pair]), color=LINE_COLOR, label="line between endpoints")
        ax.scatter(
            latent["alpha"], latent["survival_time"], color=GENERATED_COLOR, s=18, label="latent space", zorder=3
        )
        ax.scatter(
            weight["alpha"],
            weight["survival_time"],
            color=WEIGHT_COLOR,
            s=18,
            marker="s",
            label="weight space",
            zorder=3,
        )
        ax.axvline(1.0, color="0.7", linewidth=0.8, linestyle=":")
        ax.set_ylim(0, max_steps * 1.05)
        ax.set_title(titles[pair] if pair < len(titles) else f"pair {pair}", fontsize=10)
        ax.set_xlabel("alpha")
        ax.set_ylabel("survival time")
    for ax in axes[len(pairs) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8, loc="best")
    fig.savefig(path, dpi=110)
    return Path(path)


def repair_curves(summary, path, other=None) -> Path:
    """Figure 8: the best kept candidate's survival-time difference to the original network
    against the degradation level, per criterion, with the success threshold; ``other`` (the
    summary of the other repair variant, if given) is drawn dashed."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    markers = {"missing": "o", "whole": "s"}
    colors = {"missing": "tab:purple", "whole": "tab:red"}
    for table, style, suffix in ((summary, "-", ""), (other, "--", " (other variant)")):
        if table is None:
            continue
        variant = table["variant"].iloc[0] if "variant" in table.columns else ""
        for criterion, part in table.groupby("criterion"):
            part = part.sort_values("level")
            ax.plot(
                part["level"] * 100,
                part["best_difference"],
                style,
                marker=markers.get(criterion, "^"),
                color=colors.get(criterion),
                label=f"{criterion} criterion{f', {variant}' if variant else suffix}",
            )
    threshold = float(summary["threshold"].iloc[0])
    ax.axhline(threshold, color="0.3", linestyle=":", linewidth=1, label=f"threshold = {threshold:g}")
    ax.set_xlabel("degradation (% of weights zeroed)")
    ax.set_ylabel("|survival time difference|")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return Path(path)
