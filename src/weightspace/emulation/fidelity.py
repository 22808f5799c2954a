"""Emulation fidelity (paper 000 figure 5): score the emulator's behaviour, conditioned on a
network's embedding, with the task's own metric, next to the network's own score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..plotting import pyplot
from ..stats import pearson
from ..zoo.reader import Zoo
from .embed import embeddings
from .pretrain import Run


@torch.no_grad()
def emulated_performance(run: Run, zoo: Zoo, indices, samples: int = 100, seed: int = 0) -> pd.DataFrame:
    """Per checkpoint: ``original`` (the network's score) and ``emulated`` (the emulator's score,
    conditioned on the network's embedding), both by the task family's own metric."""
    indices = np.asarray(indices)
    z = torch.as_tensor(embeddings(run, zoo, indices))
    original, emulated = zoo.task.emulated_performance(run, zoo, indices, z, samples, seed)
    return pd.DataFrame(
        {"model_id": zoo.table["model_id"].to_numpy()[indices], "original": original, "emulated": emulated}
    )


def binned(scores: pd.DataFrame, bins: int = 16, per_bin: int = 15) -> pd.DataFrame:
    """Figure 5's summary: for equally spaced target scores between the worst and the best
    network, the ``per_bin`` networks closest to each target: mean original, mean emulated and a
    95% interval of the emulated mean."""
    targets = np.linspace(scores["original"].min(), scores["original"].max(), bins)
    rows = []
    for target in targets:
        chosen = scores.iloc[np.argsort(np.abs(scores["original"].to_numpy() - target))[:per_bin]]
        emulated = chosen["emulated"].to_numpy()
        half = 1.96 * emulated.std(ddof=1) / np.sqrt(len(emulated)) if len(emulated) > 1 else 0.0
        rows.append(
            {
                "target": target,
                "original": chosen["original"].mean(),
                "emulated": emulated.mean(),
                "low": emulated.mean() - half,
                "high": emulated.mean() + half,
            }
        )
    return pd.DataFrame(rows)


def plot_fidelity(scores: pd.DataFrame, path, title: str) -> float:
    """Save figure 5 for ``scores``; returns the Pearson correlation of original and emulated."""
    plt = pyplot()

    summary = binned(scores)
    correlation = pearson(scores["original"].to_numpy(), scores["emulated"].to_numpy())
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    low, high = scores["original"].min(), scores["original"].max()
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="identity")
    ax.fill_between(summary["original"], summary["low"], summary["high"], alpha=0.3)
    ax.plot(summary["original"], summary["emulated"], marker="o", label="emulated")
    ax.set_xlabel("original performance")
    ax.set_ylabel("emulated performance")
    ax.set_title(f"{title}\nPearson r = {correlation:.2f}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return correlation
