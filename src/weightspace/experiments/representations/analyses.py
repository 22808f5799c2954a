"""Paper 000's analyses, one experiment step each: every function takes a zoo, what the step
reads (pretraining runs or embeddings, by encoder name), its settings, and the step's directory;
it writes its figures there and returns JSON-able numbers (which the runner stores).

The figure and statistics modules (matplotlib, scipy.stats: 0.8 s) are imported by the analysis that
draws, not with the family, which every ``weightspace run`` of it loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...encoders import ENCODER_NAMES, build_encoder, encoder_class


def probing_encoders() -> tuple[str, ...]:
    """The probing encoders: the ones with learned probes to draw and ablate."""
    return tuple(name for name in ENCODER_NAMES if encoder_class(name).probing)


#: networks (from the last checkpoint step) whose embeddings the invariance analysis perturbs
INVARIANCE_NETWORKS = 32


def _number(value) -> float | None:
    return None if value != value else float(value)


def invariance(zoo, runs: dict, encoder_options: dict, directory: Path, title: str) -> dict:
    """Figures 17 (untrained encoders) and 18 (trained): change under each permutation variant
    relative to the change to a different network."""
    from ...analysis.invariance import invariance_matrix, plot_invariance

    last = np.flatnonzero((zoo.table["step"] == zoo.table["step"].max()).to_numpy())[:INVARIANCE_NETWORKS]
    weights = zoo.weights(last)
    others = zoo.weights(np.roll(last, 1))  # each network's "other network" is its neighbour
    task = zoo.task.task_io(zoo)
    torch.manual_seed(0)
    untrained = {e: build_encoder(e, zoo.architecture, task, **options) for e, options in encoder_options.items()}
    trained = {e: run.encoder.cpu() for e, run in runs.items()}
    result = {}
    for label, encoders in (("untrained", untrained), ("trained", trained)):
        matrix = invariance_matrix(zoo.architecture, weights, others, encoders, task, torch.Generator().manual_seed(0))
        plot_invariance(
            matrix,
            directory / f"invariance-{label}.png",
            f"{title}: {label} encoders (figure {17 if label == 'untrained' else 18})",
        )
        result[label] = {
            "figure": f"invariance-{label}.png",
            "matrix": {r: {c: _number(v) for c, v in row.items()} for r, row in matrix.iterrows()},
        }
    return result


def embeddings(zoo, embedding_files: dict[str, Path], directory: Path, title: str) -> dict:
    """Figures 6/7 and 21-23: PCA and t-SNE of validation embeddings, coloured by task and quality."""
    from ...analysis.embedding import plot_embedding_figure

    rows = np.flatnonzero((zoo.table["split"] == "val").to_numpy())
    if len(rows) < 5:
        rows = np.arange(len(zoo.table))  # too few validation networks to plot: use all
    context = zoo.table.iloc[rows].reset_index(drop=True)
    result = {}
    for encoder, file in embedding_files.items():
        z = pd.read_parquet(file).filter(like="z_").to_numpy()[rows]
        figure = f"embedding-{encoder}.png"
        plot_embedding_figure(
            z, context, directory / figure, color_by=zoo.task.plot_columns, title=f"{title}: {encoder}"
        )
        result[encoder] = {"figure": figure, "points": int(len(rows))}
    return result


def fidelity(zoo, runs: dict, samples: int, directory: Path, title: str) -> dict:
    """Figure 5: original vs emulated performance of validation networks, and their correlation."""
    from ...emulation.fidelity import emulated_performance, plot_fidelity

    rows = zoo.indices("val")
    if len(rows) == 0:
        return {}
    result = {}
    for encoder, run in runs.items():
        scores = emulated_performance(run, zoo, rows, samples=samples)
        r = plot_fidelity(scores, directory / f"fidelity-{encoder}.png", f"{title}: {encoder}")
        result[encoder] = {
            "pearson_r": _number(r),
            "networks": int(len(scores)),
            "figure": f"fidelity-{encoder}.png",
            "mean_abs_error": float((scores["original"] - scores["emulated"]).abs().mean()),
        }
    return result


def probes(zoo, runs: dict, directory: Path) -> dict:
    """Figure 16: the learned probes of the probing encoders for one validation network."""
    from ...analysis.probes import plot_probes

    rows = zoo.indices("val")
    rows = rows if len(rows) else np.arange(len(zoo))
    one = zoo.weights(rows[-1:])
    result = {}
    for encoder, run in runs.items():
        figure = f"probes-{encoder}.png"
        plot_probes(run.encoder.cpu(), one, directory / figure)
        result[encoder] = {"figure": figure, "model_id": int(rows[-1])}
    return result


#: ablated encoder option -> (the figure's axis label, the [analyses.probing_ablation] key of its values)
ABLATIONS = {"probes": ("number of parallel probes", "probes"), "probe_length": ("probe length", "lengths")}


def probing_ablation(records: list[dict], directory: Path) -> dict:
    """Figures 13-15: validation emulation loss against the number of parallel probes and the
    probe length. ``records``: one per ablation run, ``{option, value, seed, val_loss}``."""
    from ...analysis.probes import plot_ablation

    result = {}
    for option, (label, _) in ABLATIONS.items():
        rows = [{k: r[k] for k in ("value", "seed", "val_loss")} for r in records if r["option"] == option]
        if rows:
            figure = f"ablation-{option}.png"
            plot_ablation(pd.DataFrame(rows), directory / figure, label)
            result[option] = {"figure": figure, "results": rows}
    return result
