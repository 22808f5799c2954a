"""Probing encoders up close: the probe inputs they send (paper 000, figure 16) and how the
validation loss depends on the number and length of the probes (figures 13-15).

The probe inputs come from the encoders themselves: :meth:`NonInteractiveProbing.probe_inputs`
(the same learned sequences for every network) and :meth:`InteractiveProbing.interrogate`
(sequences generated step by step from the reader's state, so they depend on the network).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..networks.weights import Population
from ..plotting import pyplot
from ..stats import bootstrap_interval


@torch.no_grad()
def probe_sequences(encoder, weights: Population | None = None) -> torch.Tensor:
    """The probes (M, L, X) ``encoder`` sends: M parallel sequences of L steps in the subject's
    input space. The interactive encoder needs the one network ``weights`` it interrogates."""
    was_training = encoder.training
    encoder.eval()
    try:
        if hasattr(encoder, "interrogate"):
            if weights is None or weights.size != 1:
                got = "none" if weights is None else f"{weights.size} networks"
                raise ValueError(
                    "interactive probes depend on the network: pass the weights of exactly "
                    f"one network (e.g. population.select(k)), got {got}"
                )
            return encoder.interrogate(weights)[1][0]
        if hasattr(encoder, "probe_inputs"):
            return encoder.probe_inputs()
    finally:
        encoder.train(was_training)
    raise TypeError(f"{type(encoder).__name__} is not a probing encoder (no probe_inputs or interrogate)")


def plot_probes(
    encoder,
    weights: Population | None,
    path,
    title: str = "",
    token_names: Sequence[str] | None = None,
    max_probes: int = 8,
) -> torch.Tensor:
    """Save a heat map per parallel probe (input dimension x probing step) and return the probes
    (M, L, X).

    Categorical inputs (formal languages) show each step's token distribution, with the most
    likely token under every step; ``token_names`` labels the tokens (e.g.
    ``list(formal_languages.VOCABULARY)``). Continuous inputs (digit tiles) show the values on the
    encoder's probe range. At most ``max_probes`` of the M probes are drawn."""
    plt = pyplot()

    probes = probe_sequences(encoder, weights).float().cpu()
    M, L, X = probes.shape
    categorical = encoder.task.input_kind == "categorical"
    names = [str(i) for i in range(X)] if token_names is None else [str(t) for t in token_names]
    if len(names) != X:
        raise ValueError(f"{len(names)} token names for {X} input dimensions")
    if categorical:
        low, high, cmap, label = 0.0, 1.0, "magma", "token probability"
    else:
        value_range = getattr(encoder, "continuous_range", None)
        low, high = value_range if value_range is not None else (probes.min().item(), probes.max().item())
        cmap, label = "viridis", "input value"

    shown = min(M, max_probes)
    panel_height = min(max(0.22 * X, 0.9), 2.6) + 0.5
    fig, axes = plt.subplots(
        shown,
        1,
        figsize=(min(max(0.28 * L + 2.0, 5.0), 18.0), panel_height * shown + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for probe, ax in enumerate(axes[:, 0]):
        image = ax.imshow(
            probes[probe].T.numpy(), cmap=cmap, vmin=low, vmax=high, aspect="auto", interpolation="nearest"
        )
        ax.set_ylabel(f"probe {probe + 1}", fontsize=8)
        ax.set_yticks(range(X), names if X <= 16 else [""] * X, fontsize=6)
        if categorical:
            likely = probes[probe].argmax(-1).tolist()
            ax.set_xticks(range(L), [names[t] for t in likely], fontsize=6)
        else:
            ax.set_xticks(range(0, L, 5), [str(step + 1) for step in range(0, L, 5)], fontsize=6)
    axes[-1, 0].set_xlabel("probing step" + (" (most likely token below each step)" if categorical else ""))
    fig.colorbar(image, ax=axes[:, 0].tolist(), label=label, shrink=0.8)
    suffix = f" (first {shown} of {M} probes)" if shown < M else ""
    fig.suptitle((title or f"{type(encoder).__name__} probes") + suffix, fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return probes


def ablation_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per ablation ``value``: mean validation loss, its 95% bootstrap interval over seeds and the
    number of seeds (non-finite losses, e.g. diverged runs, are left out and not counted)."""
    missing = {"value", "seed", "val_loss"} - set(results.columns)
    if missing:
        raise ValueError(f"ablation results need columns value, seed, val_loss; missing {sorted(missing)}")
    finite = results[np.isfinite(results["val_loss"].to_numpy(dtype=float))]
    rows = []
    for value, group in finite.groupby("value", sort=True):
        losses = group["val_loss"].to_numpy(dtype=float)
        _, low, high = bootstrap_interval(losses)
        rows.append({"value": value, "mean": losses.mean(), "low": low, "high": high, "seeds": len(losses)})
    return pd.DataFrame(rows, columns=["value", "mean", "low", "high", "seeds"])


def plot_ablation(results: pd.DataFrame, path, xlabel: str, title: str = "", log_x: bool = False) -> pd.DataFrame:
    """Figures 13-15: validation loss against an ablated setting (number of probes, probe
    length): the mean over seeds with its 95% bootstrap interval, every seed as a dot. Returns
    :func:`ablation_summary`."""
    plt = pyplot()

    summary = ablation_summary(results)
    if summary.empty:
        raise ValueError("no finite validation losses to plot")
    finite = results[np.isfinite(results["val_loss"].to_numpy(dtype=float))]
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    ax.scatter(finite["value"], finite["val_loss"], s=12, color="grey", alpha=0.6, label="seeds", zorder=2)
    ax.fill_between(summary["value"], summary["low"], summary["high"], alpha=0.3, label="95% CI", zorder=1)
    ax.plot(summary["value"], summary["mean"], marker="o", label="mean", zorder=3)
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_xticks(summary["value"], [str(v) for v in summary["value"]])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation loss")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return summary
