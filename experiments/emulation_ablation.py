"""Why the encoders stalled, and what each fix does: pretraining runs on one zoo, side by side.

The setup of the issue "Make the encoders learn": a formal-language zoo of 216 LSTMs trained 600
steps (checkpoints 0/300/600); pretraining 1,500 steps, batch 32 networks, 4 rollouts each,
lr 1e-3, emulator hidden 128. For the statistics encoder, every change on its own and all
together; for every encoder, the new defaults; against the constant floor and the oracle ceiling trained
under the same settings (for the old and the new settings; the single changes are read against
those two). Losses are printed in the paper's units (reverse KL,
mean over the 6 classes) and, for comparison with the issue's table, in our old units (sum).

    .venv/bin/weightspace zoo build formal-languages --out zoos/ablation-fl --models 216 --steps 600 \\
        --checkpoints 0,300,600 --population 72
    .venv/bin/python experiments/emulation_ablation.py --zoo zoos/ablation-fl --out runs/ablation

Every run is a resumable pretraining run directory under --out: rerun to continue.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from weightspace import storage
from weightspace.emulation import PretrainConfig, pretrain, run_summary

OLD = dict(normalize_embedding=False, separate_clipping=False, condition_at_width=False)
VARIANTS = {  # name -> (the settings that differ from the new defaults, train its own references)
    "all three (the new defaults)": ({}, True),
    "as it was (none of the three)": (OLD, True),
    "+ z normalised": ({**OLD, "normalize_embedding": True}, False),
    "+ encoder and emulator clipped separately": ({**OLD, "separate_clipping": True}, False),
    "+ conditioned at the emulator's width": ({**OLD, "condition_at_width": True}, False),
    "+ z normalised + conditioned at width": ({**OLD, "normalize_embedding": True, "condition_at_width": True}, False),
    "as it was, loss summed over classes (the old code exactly)": ({**OLD, "loss_reduction": "sum"}, False),
}
#: reduced encoders (the CPU scale); the paper's sizes are the library defaults
ENCODER_OPTIONS = {
    "statistics": {},
    "flattened": {"hidden": 64},
    "transformer": {"width": 64, "layers": 2, "heads": 4, "mlp_hidden": 128},
    "dwsnet": {"channels": 16, "layers": 2},
    "probing": {"probes": 8},
    "interactive": {"probes": 8},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--encoders", default=",".join(ENCODER_OPTIONS))
    parser.add_argument("--variants", default="all", help="'all' or 'none' (only the new defaults per encoder)")
    parser.add_argument("--table-only", action="store_true", help="rewrite table.md from the finished runs")
    args = parser.parse_args()
    out = Path(args.out)
    if args.table_only:
        rows = json.loads((out / "results.json").read_text())
        for row in rows:  # the train loss at the best step, from each run's metrics
            directory = (
                out / "statistics" / _slug(row["run"]) if row["encoder"] == "statistics" else out / row["encoder"]
            )
            metrics = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
            row["train_loss"] = next(m for m in metrics if m["step"] == row["step"])["train_loss"]
        storage.write_text(out / "table.md", table(rows))
        print(table(rows))
        return
    base = PretrainConfig(
        encoder="statistics",
        steps=args.steps,
        batch_size=32,
        rollouts_per_network=4,
        val_rollouts=20,
        learning_rate=1e-3,
        emulator_hidden=128,
        eval_every=100,
        patience=args.steps,
    )  # no early stopping within the budget
    rows = []

    def run(label, encoder, settings, directory, references):
        config = replace(base, encoder=encoder, encoder_options=ENCODER_OPTIONS.get(encoder, {}), **settings)
        started = time.perf_counter()
        pretrain(args.zoo, directory, config, progress=False, references=references)
        seconds = time.perf_counter() - started
        summary = run_summary(directory)
        metrics = [json.loads(line) for line in (Path(directory) / "metrics.jsonl").read_text().splitlines()]
        at_best = next(m for m in metrics if m["step"] == summary["step"])
        row = {
            "run": label,
            "encoder": encoder,
            **summary,
            "train_loss": at_best["train_loss"],
            "seconds": round(seconds, 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
        storage.write_json(out / "results.json", rows)
        return row

    variants = VARIANTS if args.variants == "all" else {"all three (the new defaults)": ({}, True)}
    shared = {
        name: out / "statistics" / "all-three-the-new-defaults" / "references" / name for name in ("constant", "oracle")
    }
    for label, (settings, own_references) in variants.items():
        run(label, "statistics", settings, out / "statistics" / _slug(label), True if own_references else False)
    for encoder in [e for e in args.encoders.split(",") if e != "statistics"]:
        run("all three (the new defaults)", encoder, {}, out / encoder, shared)
    print(table(rows))
    storage.write_text(out / "table.md", table(rows))


def _slug(label: str) -> str:
    return label.replace(" ", "-").replace("(", "").replace(")", "").replace("+", "plus").replace("'", "")


def table(rows) -> str:
    lines = [
        "| run | encoder | best val. loss (mean over classes) | x6 (sum, the issue's units) | train loss there | "
        "constant floor | oracle ceiling | below the floor | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        floor, ceiling = row.get("constant"), row.get("oracle")
        scale = 1 / 6 if "summed" in row["run"] else 1  # that run trained in sum units: shown in mean units
        train = f"{scale * row['train_loss']:.4f}" if "train_loss" in row else "-"
        references = (
            f"{floor:.4f} | {ceiling:.4f} | {100 * (1 - row['val_loss'] / floor):.0f}%" if floor else "- | - | -"
        )
        mean = scale * row["val_loss"]
        lines.append(
            f"| {row['run']} | {row['encoder']} | {mean:.4f} | {6 * mean:.3f} | "
            f"{train} | {references} | {row['seconds']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
