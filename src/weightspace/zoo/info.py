"""A human-readable summary of a zoo (``weightspace zoo info``)."""

from __future__ import annotations

import numpy as np

from .reader import Zoo


def _size_on_disk(path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def zoo_summary(zoo: Zoo) -> str:
    table, manifest = zoo.table, zoo.manifest
    shards = manifest["shards"]
    lines = [
        f"zoo          {zoo.path}",
        f"kind         {zoo.kind}  ({zoo.spec.architecture}, {zoo.spec.num_parameters:,} parameters per network)",
        f"built with   weightspace {manifest['created_with']['weightspace']}, torch {manifest['created_with']['torch']}, "
        f"seed {manifest['seed']}",
        f"shards       {len(shards['completed'])} of {shards['total']} finished"
        + ("" if len(shards["completed"]) == shards["total"] else "  (incomplete: rerun the build command to resume)"),
        f"runs         {table['run_id'].nunique() if len(table) else 0} of {manifest['config']['models']}",
        f"checkpoints  {len(table)} rows; steps {_steps(sorted(table['step'].unique().tolist()) if len(table) else [])}",
        f"size         {_size_on_disk(zoo.path) / 2**20:.1f} MiB",
    ]
    if len(table):
        runs = table.drop_duplicates("run_id")
        counts = runs["split"].value_counts()
        lines.append("splits       " + ", ".join(f"{s}: {counts.get(s, 0)} runs" for s in ("train", "val", "ood")))
        quality = zoo.task.quality_column(zoo)  # the family's quality column, summarised by step
        if quality in table.columns:
            by_step = table.groupby("step")[quality].describe()[["mean", "50%", "min", "max"]]
            by_step.columns = ["mean", "median", "min", "max"]
            if len(by_step) > 12:  # a trajectory zoo: 11 evenly spaced snapshots and the last
                by_step = by_step.iloc[sorted(set(np.linspace(0, len(by_step) - 1, 12).round().astype(int)))]
            lines.append(f"\n{quality} by training step:")
            lines.append(by_step.to_string(float_format=lambda v: f"{v:.3f}"))
    return "\n".join(lines)


def _steps(steps: list[int]) -> str:
    """The checkpoint steps, abbreviated when there are many (a trajectory zoo has thousands)."""
    if len(steps) <= 12:
        return str(steps)
    return f"{len(steps)} from {steps[0]} to {steps[-1]} ({', '.join(map(str, steps[:4]))}, ..., {steps[-1]})"


__all__ = ["zoo_summary"]
