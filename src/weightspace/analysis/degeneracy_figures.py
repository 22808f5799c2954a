"""Figures of paper 002's report: a sweep's three levels against its knob, an MDS picture of DSA
distances, and trained networks' outputs on example trials."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import pyplot

TITLES = {
    "behaviour": "behaviour: sigma_OOD",
    "dynamics": "dynamics: mean DSA distance",
    "shape": "dynamics: mean 1 - linear CKA",
    "weights": "weights: mean ||W1 - P^T W2 P|| / N^2",
}


def sweep_figure(sweep: dict, path: Path) -> Path:
    """One panel per level (behaviour, dynamics by DSA and by CKA, weights) against the knob, with
    95% intervals; the DSA null as a dotted line in the DSA panel."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(TITLES), figsize=(4 * len(TITLES), 3.4))
    measured = [c for c in sweep["conditions"] if c["measured"]]
    x = [c["level"] for c in measured]
    for ax, level in zip(axes, TITLES):
        if not all(level in c for c in measured):  # a result of a release before this level
            ax.set_visible(False)
            continue
        values = np.array([c[level]["value"] for c in measured], float)
        low = np.array([c[level]["low"] if c[level]["low"] is not None else c[level]["value"] for c in measured], float)
        high = np.array(
            [c[level]["high"] if c[level]["high"] is not None else c[level]["value"] for c in measured], float
        )
        ax.errorbar(x, values, yerr=[values - low, high - values], marker="o", capsize=3)
        if level == "dynamics":
            null = [c["dsa_null"]["value"] for c in measured]
            ax.plot(x, null, ":", color="gray", label="null (same network)")
            ax.legend(fontsize=8)
        ax.set_title(f"{TITLES[level]}\npaper: {sweep['paper'][level]}", fontsize=9)
        ax.set_xlabel(sweep["knob"])
        if len(x) > 2 and min(x) > 0 and max(x) / min(x) >= 10:
            ax.set_xscale("log")
    fig.suptitle(f"{sweep['name']} ({sweep['task']})", fontsize=10)
    return _save(fig, path)


def mds_figure(mds: dict, path: Path) -> Path:
    """The MDS points of one condition ({"task", "label", "points"})."""
    plt = pyplot()
    points = np.asarray(mds["points"])
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.scatter(points[:, 0], points[:, 1])
    for i, (a, b) in enumerate(points):
        ax.annotate(str(i), (a, b), fontsize=7)
    ax.set_title(f"DSA distances, MDS\n{mds['task']}, {mds['label']}", fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    return _save(fig, path)


def example_figure(examples: list[tuple[str, str, dict]], path: Path) -> Path:
    """One row per example (task, condition label, {inputs, targets, outputs} of two trials)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(examples), 2, figsize=(10, 2.4 * len(examples)), squeeze=False)
    for row, (task, label, example) in enumerate(examples):
        for trial in range(2):
            ax = axes[row, trial]
            targets, outputs = np.asarray(example["targets"][trial]), np.asarray(example["outputs"][trial])
            if task == "path-integration":
                ax.plot(targets[:, 0], targets[:, 1], "--", color="black", label="true path")
                ax.plot(outputs[:, 0], outputs[:, 1], color="C1", label="network")
                ax.set_aspect("equal", adjustable="datalim")
            else:
                for channel in range(targets.shape[1]):
                    ax.plot(targets[:, channel], "--", color=f"C{channel}", linewidth=1)
                    ax.plot(outputs[:, channel], color=f"C{channel}", linewidth=1.2)
                ax.set_xlabel("time step")
            ax.set_title(f"{task}, {label}, trial {trial}", fontsize=8)
    return _save(fig, path, dpi=100)


def _save(fig, path: Path, dpi: int = 110) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path
