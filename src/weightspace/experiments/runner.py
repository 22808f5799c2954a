"""Run an experiment end to end: zoo -> pretraining -> embeddings -> property prediction ->
analyses -> report. Every step writes its outputs atomically and is skipped when they exist, so a
killed experiment continues where it stopped.

RESULTS/NAME/
  config.json                                   the experiment as run
  zoos/ZOO/                                     zoos built here (unless a zoo section gives a path)
  runs/ZOO/ENCODER/seed-S/                      pretraining runs
  embeddings/ZOO/ENCODER/seed-S.parquet         embeddings of every checkpoint
  predictions/ZOO/ENCODER/seed-S/MODE-TARGET.json   metrics of one predictor (MODE: pretrained, supervised)
  figures/ZOO/*.png                             plots
  analyses/ZOO/*.json                           analysis numbers
  results.json, table.csv, table.md, report.md
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..downstream import downstream_splits, evaluate_frozen, evaluate_supervised, zoo_targets
from ..emulation import load_run, pretrain
from ..emulation.pretrain import best_validation_loss
from ..emulation.embed import embed_zoo
from ..encoders import build_encoder, task_io
from ..zoo import KINDS, build_zoo, storage
from ..zoo.reader import Zoo
from .config import ExperimentConfig
from .report import aggregate, write_report


def _json(path: Path, compute):
    """Read ``path`` if it exists, else compute, write atomically and return."""
    if path.exists():
        return json.loads(path.read_text())
    value = compute()
    storage.write_json(path, value)
    return value


def run_experiment(config: ExperimentConfig, device: str = "cpu", progress: bool = True) -> Path:
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    storage.write_json(out / "config.json", config.to_json())
    started = time.time()
    results = {"name": config.name, "zoos": {}}
    for section in config.zoos:
        zoo_dir = Path(section.path) if section.path else out / "zoos" / section.name
        _say(progress, f"[{section.name}] zoo {zoo_dir}")
        build_zoo(zoo_dir, KINDS[section.kind], section.zoo_config(), device=device, progress=progress)
        zoo = Zoo(zoo_dir)
        results["zoos"][section.name] = _run_zoo(config, section.name, zoo, out, device, progress)
    results["seconds"] = round(time.time() - started, 1)
    results["rows"] = aggregate(results)
    storage.write_json(out / "results.json", results)
    write_report(out)
    return out


def _say(progress: bool, message: str) -> None:
    if progress:
        tqdm.write(message)


def _run_zoo(config: ExperimentConfig, name: str, zoo: Zoo, out: Path, device, progress) -> dict:
    task = task_io(zoo)
    splits = downstream_splits(zoo)
    targets = zoo_targets(zoo.kind, zoo.table)
    supervised_targets = config.supervised_targets([t.name for t in targets])
    record = {"kind": zoo.kind, "path": str(zoo.path), "checkpoints": len(zoo),
              "split_sizes": {k: int(len(v)) for k, v in splits.items()},
              "targets": {t.name: {"kind": t.kind, "main_metric": t.main_metric,
                                   "higher_is_better": t.higher_is_better} for t in targets},
              "encoders": {}}
    for encoder_name in config.encoders:
        per_seed = []
        for seed in config.seeds:
            base = f"{name}/{encoder_name}/seed-{seed}"
            run_dir = out / "runs" / base
            _say(progress, f"[{name}] pretrain {encoder_name} seed {seed}")
            pretrain(zoo.path, run_dir, config.pretrain_config(encoder_name, seed), device=device, progress=progress)
            z_file = out / "embeddings" / f"{base}.parquet"
            if not z_file.exists():
                embed_zoo(load_run(run_dir, device), zoo, z_file, device=device, progress=False)
            z = pd.read_parquet(z_file).filter(like="z_").to_numpy()
            predictions = {}
            for target in targets:
                predictions[f"pretrained/{target.name}"] = _json(
                    out / "predictions" / base / f"pretrained-{target.name}.json",
                    lambda target=target: evaluate_frozen(z, zoo.table, splits, target, config.predictor_config(), seed))
            for target in [t for t in targets if t.name in supervised_targets]:
                _say(progress, f"[{name}] supervised {encoder_name} -> {target.name} seed {seed}")

                def supervised(target=target):
                    torch.manual_seed(seed)
                    encoder = build_encoder(encoder_name, zoo.architecture, task,
                                            **config.encoder_options.get(encoder_name, {}))
                    return evaluate_supervised(encoder, zoo, splits, target, config.supervised_config(), seed, device)

                predictions[f"supervised/{target.name}"] = _json(
                    out / "predictions" / base / f"supervised-{target.name}.json", supervised)
            per_seed.append({"seed": seed, "pretrain_val_loss": best_validation_loss(run_dir), "predictions": predictions})
        record["encoders"][encoder_name] = per_seed
    record["analyses"] = _analyses(config, name, zoo, out, device, progress)
    return record


def _analyses(config: ExperimentConfig, name: str, zoo: Zoo, out: Path, device, progress) -> dict:
    """The paper's analyses for one zoo; each is skipped when its outputs exist."""
    from . import analyses

    wanted = config.analyses
    figures = out / "figures" / name
    numbers = out / "analyses" / name
    figures.mkdir(parents=True, exist_ok=True)
    seed = config.seeds[0]
    runs = {e: load_run(out / "runs" / name / e / f"seed-{seed}", device) for e in config.encoders}
    done = {}
    steps = [("invariance", analyses.invariance), ("embeddings", analyses.embeddings),
             ("fidelity", analyses.fidelity), ("probes", analyses.probes),
             ("probing_ablation", analyses.probing_ablation)]
    for key, function in steps:
        if wanted.get(key, key != "probing_ablation"):
            _say(progress, f"[{name}] analysis: {key}")
            done[key] = _json(numbers / f"{key}.json",
                              lambda function=function: function(config, name, zoo, runs, figures, out, device))
    return done
