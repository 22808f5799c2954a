"""Emulation fidelity (paper 000 figure 5): score the emulator's behaviour, conditioned on a
network's embedding, with the task's own metric, next to the network's own score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..analysis.correlation import pearson
from ..plotting import pyplot
from ..tasks import formal_languages as fl
from ..zoo.reader import Zoo
from .embed import embeddings
from .pretrain import Run


@torch.no_grad()
def emulated_performance(run: Run, zoo: Zoo, indices, samples: int = 100, seed: int = 0) -> pd.DataFrame:
    """Per checkpoint: ``original`` (the network's score) and ``emulated`` (the emulator's score)."""
    indices = np.asarray(indices)
    z = torch.as_tensor(embeddings(run, zoo, indices))
    table = zoo.table.iloc[indices]
    if zoo.kind == "formal-languages":
        generator = torch.Generator().manual_seed(seed)
        tokens = run.emulator.sample_tokens(z, fl.BOS, fl.SEQUENCE_LENGTH - 1, samples, generator)
        params = torch.tensor(table[["m_b", "m_c", "m_d"]].to_numpy(copy=True))
        emulated = fl.is_member(params, tokens).float().mean(1).numpy()
        original = table["performance"].to_numpy()
    elif zoo.kind == "digits":
        from ..tasks import digits

        data = digits.load_digits(zoo.manifest["config"]["data_dir"])
        rollouts = zoo.rollout_batch(indices)
        labels = data.val_labels[: rollouts["inputs"].shape[1]]
        emulated_logp = run.emulator(z, rollouts["inputs"])
        emulated = (emulated_logp[:, :, -1].argmax(-1) == labels).float().mean(1).numpy()
        original = (rollouts["logprobs"][:, :, -1].argmax(-1) == labels).float().mean(1).numpy()
    else:
        raise ValueError(f"no emulation metric for {zoo.kind!r} zoos")
    return pd.DataFrame({"model_id": table["model_id"].to_numpy(), "original": original, "emulated": emulated})


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
        rows.append({"target": target, "original": chosen["original"].mean(), "emulated": emulated.mean(),
                     "low": emulated.mean() - half, "high": emulated.mean() + half})
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
