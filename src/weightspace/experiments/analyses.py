"""The paper's analyses as experiment steps: each takes the experiment, one zoo and its seed-0
pretraining runs (loaded :class:`~weightspace.emulation.Run` objects by encoder name), writes
figures and returns JSON-able numbers (stored by the runner)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..analysis.embedding import plot_embedding_figure
from ..analysis.invariance import invariance_matrix, plot_invariance
from ..analysis.probes import plot_ablation, plot_probes
from ..emulation import pretrain
from ..emulation.pretrain import best_validation_loss
from ..emulation.fidelity import emulated_performance, plot_fidelity
from ..encoders import build_encoder, task_io

PROBING = ("probing", "interactive")


def _task_column(zoo) -> str:
    return "task_id" if zoo.kind == "formal-languages" else "angle"


def _quality_column(zoo) -> str:
    return "performance" if zoo.kind == "formal-languages" else "accuracy"


def _last_step_rows(zoo, count: int) -> np.ndarray:
    rows = np.flatnonzero((zoo.table["step"] == zoo.table["step"].max()).to_numpy())
    return rows[:count]


def invariance(config, name, zoo, runs, figures: Path, out, device) -> dict:
    """Figures 17 (untrained encoders) and 18 (trained): change under each permutation variant
    relative to the change to a different network."""
    rows = _last_step_rows(zoo, 32)
    weights = zoo.weights(rows)
    others = zoo.weights(np.roll(rows, 1))  # each network's "other network" is its neighbour
    task = task_io(zoo)
    torch.manual_seed(0)
    untrained = {e: build_encoder(e, zoo.architecture, task, **config.encoder_options.get(e, {}))
                 for e in config.encoders}
    trained = {e: run.encoder.cpu() for e, run in runs.items()}
    result = {}
    for label, encoders in (("untrained", untrained), ("trained", trained)):
        matrix = invariance_matrix(zoo.architecture, weights, others, encoders, task,
                                   torch.Generator().manual_seed(0))
        plot_invariance(matrix, figures / f"invariance-{label}.png",
                        f"{name}: {label} encoders (figure {17 if label == 'untrained' else 18})")
        result[label] = {"figure": f"invariance-{label}.png",
                         "matrix": {r: {c: _number(v) for c, v in row.items()} for r, row in matrix.iterrows()}}
    return result


def _number(value) -> float | None:
    return None if value != value else float(value)


def embeddings(config, name, zoo, runs, figures: Path, out, device) -> dict:
    """Figures 6/7 and 21-23: PCA and t-SNE of validation embeddings, coloured by task and quality."""
    seed = config.seeds[0]
    result = {}
    for encoder in config.encoders:
        table = pd.read_parquet(out / "embeddings" / name / encoder / f"seed-{seed}.parquet")
        rows = np.flatnonzero((zoo.table["split"] == "val").to_numpy())
        if len(rows) < 5:
            rows = np.arange(len(zoo.table))  # too few validation networks to plot: use all
        z = table.filter(like="z_").to_numpy()[rows]
        context = zoo.table.iloc[rows].reset_index(drop=True)
        file = f"embedding-{encoder}.png"
        plot_embedding_figure(z, context, figures / file, color_by=(_task_column(zoo), _quality_column(zoo)),
                              title=f"{name}: {encoder}")
        result[encoder] = {"figure": file, "points": int(len(rows))}
    return result


def fidelity(config, name, zoo, runs, figures: Path, out, device) -> dict:
    """Figure 5: original vs emulated performance of validation networks, and their correlation."""
    rows = zoo.indices("val")
    if len(rows) == 0:
        return {}
    samples = int(config.analyses.get("fidelity_samples", 100))
    result = {}
    for encoder, run in runs.items():
        scores = emulated_performance(run, zoo, rows, samples=samples)
        r = plot_fidelity(scores, figures / f"fidelity-{encoder}.png", f"{name}: {encoder}")
        result[encoder] = {"pearson_r": _number(r), "networks": int(len(scores)), "figure": f"fidelity-{encoder}.png",
                           "mean_abs_error": float((scores["original"] - scores["emulated"]).abs().mean())}
    return result


def probes(config, name, zoo, runs, figures: Path, out, device) -> dict:
    """Figure 16: the learned probes of the probing encoders for one validation network."""
    rows = zoo.indices("val")
    rows = rows if len(rows) else np.arange(len(zoo))
    one = zoo.weights(rows[-1:])
    result = {}
    for encoder in [e for e in PROBING if e in runs]:
        file = f"probes-{encoder}.png"
        plot_probes(runs[encoder].encoder.cpu(), one, figures / file)
        result[encoder] = {"figure": file, "model_id": int(rows[-1])}
    return result


def probing_ablation(config, name, zoo, runs, figures: Path, out, device) -> dict:
    """Figures 13-15: validation emulation loss against the number of parallel probes and the
    probe length, for the encoder named in ``[analyses.probing_ablation]`` (default interactive)."""
    settings = dict(config.analyses.get("probing_ablation", {}))
    encoder = settings.pop("encoder", "interactive")
    pretrain_overrides = {k: settings.pop(k) for k in ("steps", "eval_every") if k in settings}
    result = {}
    for option, label in (("probes", "number of parallel probes"), ("probe_length", "probe length")):
        values = settings.get(option if option == "probes" else "lengths", [])
        records = []
        for value in values:
            for seed in config.seeds:
                run_dir = out / "ablation" / name / f"{encoder}-{option}-{value}" / f"seed-{seed}"
                base = config.pretrain_config(encoder, seed, **{option: value})
                run_config = type(base)(**{**base.to_json(), **pretrain_overrides})
                pretrain(zoo.path, run_dir, run_config, device=device, progress=False)
                records.append({"value": value, "seed": seed, "val_loss": best_validation_loss(run_dir)})
        if records:
            frame = pd.DataFrame(records)
            file = f"ablation-{option}.png"
            plot_ablation(frame, figures / file, label)
            result[option] = {"figure": file, "results": records}
    return result
