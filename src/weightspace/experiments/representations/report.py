"""Paper 000's report template: per zoo and target the table of encoders, pretrained next to
supervised (figure 8 next to it), the analyses' figures, and table 11 (pretraining loss vs
downstream loss). Everything comes from results.json, gathered from the steps' results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ... import storage
from ...plotting import pyplot
from ...stats import bootstrap_interval
from ..report import markdown

SPLITS = {"val": "validation", "ood_test": "OOD test"}


def _over_seeds(values) -> dict:
    """A cell's numbers: the mean over seeds with its bootstrapped 95% interval."""
    mean, low, high = bootstrap_interval(values)
    return {"mean": mean, "low": low, "high": high, "seeds": len(values)}


def aggregate(results: dict) -> list[dict]:
    """One row per (zoo, encoder, mode, target, split, metric): bootstrapped mean and 95% interval
    over seeds."""
    rows = []
    for zoo, record in results["zoos"].items():
        for encoder, seeds in record["encoders"].items():
            keys = sorted({k for s in seeds for k in s["predictions"]})
            for key in keys:
                mode, target = key.split("/")
                for split in SPLITS:
                    metrics = sorted({m for s in seeds for m in s["predictions"].get(key, {}).get(split, {})})
                    for metric in metrics:
                        values = [
                            s["predictions"][key][split][metric]
                            for s in seeds
                            if split in s["predictions"].get(key, {})
                        ]
                        rows.append(
                            {
                                "zoo": zoo,
                                "encoder": encoder,
                                "mode": mode,
                                "target": target,
                                "split": split,
                                "metric": metric,
                                **_over_seeds(values),
                            }
                        )
    return rows


def _cell(row, digits: int = 3) -> str:
    if row is None:
        return "-"
    if row["seeds"] > 1:
        return f"{row['mean']:.{digits}f} [{row['low']:.{digits}f}, {row['high']:.{digits}f}]"
    return f"{row['mean']:.{digits}f}"


def main_metric_table(rows: pd.DataFrame, zoo: str, target: str, metric: str) -> str:
    """Markdown: encoders x (pretrained, supervised) x (validation, OOD test) for one target."""
    sub = rows[(rows["zoo"] == zoo) & (rows["target"] == target) & (rows["metric"] == metric)]
    columns = [
        (mode, split)
        for mode in ("pretrained", "supervised")
        for split in SPLITS
        if len(sub[(sub["mode"] == mode) & (sub["split"] == split)])
    ]
    header = "| encoder | " + " | ".join(f"{mode} {SPLITS[split]}" for mode, split in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for encoder in dict.fromkeys(sub["encoder"]):
        cells = []
        for mode, split in columns:
            match = sub[(sub["encoder"] == encoder) & (sub["mode"] == mode) & (sub["split"] == split)]
            cells.append(_cell(match.iloc[0] if len(match) else None))
        lines.append(f"| {encoder} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_target(rows: pd.DataFrame, zoo: str, target: str, metric: str, split: str, path) -> None:
    """Figure 8: the metric per encoder, pretrained next to supervised, with 95% intervals."""
    plt = pyplot()

    sub = rows[
        (rows["zoo"] == zoo) & (rows["target"] == target) & (rows["metric"] == metric) & (rows["split"] == split)
    ]
    encoders = list(dict.fromkeys(sub["encoder"]))
    fig, ax = plt.subplots(figsize=(1.1 * len(encoders) + 2, 3.6))
    width = 0.38
    for i, mode in enumerate(("pretrained", "supervised")):
        part = sub[sub["mode"] == mode].set_index("encoder").reindex(encoders)
        x = np.arange(len(encoders)) + (i - 0.5) * width
        error = np.stack([part["mean"] - part["low"], part["high"] - part["mean"]]).clip(min=0)
        ax.bar(x, part["mean"], width, yerr=error, capsize=3, label=mode)
    ax.set_xticks(np.arange(len(encoders)), encoders, rotation=20)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{zoo}: {target} ({SPLITS[split]})")
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


LOSS_UNITS = {
    "mean": "reverse KL averaged over the output classes (the paper's and the authors' units)",
    "sum": "reverse KL summed over the output classes (the paper's units times the number of classes)",
}


#: Paper 000's Table 2 (self-supervised validation losses, mean over 15 seeds, the authors' units), by
#: zoo kind: its formal-language zoo (1,000 LSTMs) and its tiled sequential MNIST zoo, which our
#: 8x8 rotated-digits zoo stands in for.
PAPER_TABLE2 = {
    "formal-languages": (
        "formal languages",
        {
            "statistics": 0.051,
            "flattened": 0.045,
            "transformer": 0.043,
            "dwsnet": 0.046,
            "probing": 0.023,
            "interactive": 0.015,
        },
    ),
    "digits": (
        "sequential MNIST",
        {
            "statistics": 0.039,
            "flattened": 0.024,
            "transformer": 0.067,
            "dwsnet": 0.024,
            "probing": 0.017,
            "interactive": 0.017,
        },
    ),
}


def emulation_section(zoo: str, record: dict, out: Path) -> list[str]:
    """Each encoder's best validation emulation loss against the constant floor and the oracle
    ceiling (same zoo, split and budget), as a table and a figure: did the encoder learn?"""
    references = record.get("references")
    if not references:
        return []
    encoders = {e: _over_seeds([s["pretrain_val_loss"] for s in seeds]) for e, seeds in record["encoders"].items()}
    floor, ceiling = (_over_seeds(references[r]) for r in ("constant", "oracle"))
    lines = [
        f"### Emulation: did the encoders learn? ({zoo})",
        "",
        f"Best validation emulation loss ({LOSS_UNITS.get(record.get('loss_units', 'mean'), '')}; lower is "
        "better), next to two references trained with the same emulator, data and budget: the **constant "
        "floor** (one learned embedding for every network: what an encoder that learned nothing reaches) and "
        "the **oracle ceiling** (an MLP embedding of the table's task and performance columns). The ceiling is "
        "a reference, not a bound: the weights say more than the task and the performance (the training "
        "stage, the seed's quirks), so an encoder can pass it.",
        "",
    ]
    paper_zoo, paper = PAPER_TABLE2.get(record.get("kind"), (None, {}))
    if paper and record.get("loss_units", "mean") == "mean":
        lines += [
            f"The last column is paper 000's Table 2 ({paper_zoo}: 1,000 networks trained 20,000 steps, 100k "
            "pretraining steps, full-size encoders, 15 seeds), in the same units: a scale reference, not a "
            "measurement on this zoo.",
            "",
        ]
    else:
        paper = {}
    lines += [
        "| encoder | best validation loss | below the floor | share of the floor-to-ceiling gap closed |"
        + (" paper, Table 2 |" if paper else ""),
        "|---|---|---|---|" + ("---|" if paper else ""),
    ]
    gap = floor["mean"] - ceiling["mean"]
    for encoder, row in encoders.items():
        mean = row["mean"]
        below = f"{100 * (1 - mean / floor['mean']):.0f}%" if floor["mean"] > 0 else "-"
        if gap <= 0:
            closed = "- (the oracle did not beat the floor)"
        elif mean < ceiling["mean"]:
            closed = "beyond the ceiling"
        else:
            closed = f"{100 * (floor['mean'] - mean) / gap:.0f}%"
        lines.append(
            f"| {encoder} | {_cell(row, 4)} | {below} | {closed} |"
            + (f" {paper[encoder]:.3f} |" if encoder in paper else (" - |" if paper else ""))
        )
    for label, row in (("constant floor", floor), ("oracle ceiling", ceiling)):
        lines.append(f"| *{label}* | {_cell(row, 4)} | | |" + (" |" if paper else ""))
    figure = f"figures/{zoo}/emulation.png"
    plot_emulation(encoders, floor, ceiling, out / figure, zoo)
    return lines + ["", f"![emulation losses]({figure})", ""]


def plot_emulation(encoders: dict[str, dict], floor: dict, ceiling: dict, path, title: str) -> None:
    """Bars: each encoder's loss (mean and interval over seeds); bands: the two references."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(1.0 * len(encoders) + 2.5, 3.4))
    part = pd.DataFrame(list(encoders.values()))
    error = np.stack([part["mean"] - part["low"], part["high"] - part["mean"]]).clip(min=0)
    ax.bar(np.arange(len(encoders)), part["mean"], 0.6, yerr=error, capsize=3, color="tab:blue")
    for row, label, color in ((floor, "constant floor", "tab:red"), (ceiling, "oracle ceiling", "tab:green")):
        ax.axhline(row["mean"], color=color, linestyle="--", label=label)
        ax.axhspan(row["low"], row["high"], color=color, alpha=0.15)
    ax.set_xticks(np.arange(len(encoders)), list(encoders), rotation=20)
    ax.set_ylabel("best validation emulation loss")
    ax.set_title(f"{title}: emulation against the references")
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def loss_correlation_rows(results: dict) -> pd.DataFrame:
    """Per (zoo, encoder, seed): pretraining validation loss and each downstream validation loss."""
    records = []
    for zoo, record in results["zoos"].items():
        for encoder, seeds in record["encoders"].items():
            for s in seeds:
                if s["pretrain_val_loss"] is None:  # a zoo without emulation
                    continue
                row = {"zoo": zoo, "encoder": encoder, "seed": s["seed"], "pretrain_val_loss": s["pretrain_val_loss"]}
                for key, value in s["predictions"].items():
                    if key.startswith("pretrained/") and "val" in value:
                        row[key.split("/")[1]] = value["val"]["loss"]
                records.append(row)
    return pd.DataFrame(records)


def report_lines(config, results: dict, out: Path) -> list[str]:
    """The report's Markdown; also (re)writes table.csv, table.md and figures/ZOO/prediction-*.png."""
    from ...analysis.correlation import loss_correlations

    rows = pd.DataFrame(results["rows"])
    storage.write_text(out / "table.csv", rows.to_csv(index=False))
    lines = [
        f"# Experiment `{results['name']}`",
        "",
        f"Seeds: {list(config.seeds)}; encoders: {', '.join(config.encoders)}. Values are means over seeds with "
        "bootstrapped 95% intervals in brackets (one seed: no interval). Regression targets are standardised "
        "with the predictor's training rows, so their MSE is in units of the target's variance.",
        "",
    ]
    tables = []
    for zoo, record in results["zoos"].items():
        lines += [f"## {zoo} ({record['kind']}, {record['checkpoints']} checkpoints)", ""]
        if not record.get("emulation", True):
            lines += [
                f"The {record['kind']} zoo's networks store no rollouts, so emulation pretraining does not "
                "apply: no pretrained column, embeddings or analyses; each encoder was trained end to end with "
                "the predictor on each target (supervised).",
                "",
            ]
        lines += emulation_section(zoo, record, out)
        lines += [f"Predictor rows: {record['split_sizes']} (train includes half of the OOD tasks).", ""]
        for target, info in record["targets"].items():
            metric = info["main_metric"]
            if not len(rows) or not len(rows[(rows["zoo"] == zoo) & (rows["target"] == target)]):
                continue
            better = "higher" if info["higher_is_better"] else "lower"
            table = main_metric_table(rows, zoo, target, metric)
            tables.append(f"### {zoo}: {target} ({metric}, {better} is better)\n\n{table}\n")
            lines += [f"### {target}: {metric.replace('_', ' ')} ({better} is better)", "", table, ""]
            figure = f"figures/{zoo}/prediction-{target}.png"
            plot_target(
                rows, zoo, target, metric, "ood_test" if "ood_test" in set(rows["split"]) else "val", out / figure
            )
            lines += [f"![{target}]({figure})", ""]
            if info["kind"] == "regression":
                for metric, label in (("r2", "R^2"), ("kendall_tau", "Kendall's tau")):
                    if len(rows[(rows["zoo"] == zoo) & (rows["target"] == target) & (rows["metric"] == metric)]):
                        lines += [f"{label} (higher is better):", "", main_metric_table(rows, zoo, target, metric), ""]
            if info["kind"] == "three_hot":
                chance = info.get("chance", {})
                exact, parameter = (
                    chance.get("exact_accuracy", float("nan")),
                    chance.get("parameter_accuracy", float("nan")),
                )
                lines += [
                    f"Chance: exact accuracy {exact:.4f} (1 of {1 / exact:.0f} languages), per-parameter "
                    f"accuracy {parameter:.3f}. Validation and OOD-test "
                    "languages never occur in the predictor's training rows, so this measures generalisation "
                    "to unseen languages.",
                    "",
                    "Per-parameter accuracy:",
                    "",
                    main_metric_table(rows, zoo, target, "parameter_accuracy"),
                    "",
                ]
        lines += _analysis_section(record.get("analyses", {}), record.get("figures", {}))
    pretrained = loss_correlation_rows(results)
    if len(pretrained):
        correlations = loss_correlations(pretrained.drop(columns=["zoo"])).reset_index()
        lines += [
            "## Pretraining loss vs downstream loss (table 11)",
            "",
            "Pearson correlation, across encoders and seeds, of the best pretraining validation loss with each "
            "downstream validation loss (frozen embeddings).",
            "",
            markdown(correlations),
            "",
        ]
    storage.write_text(out / "table.md", "\n".join(tables))
    return lines


def _analysis_section(analyses: dict, figures: dict) -> list[str]:
    """The analyses' figures (each in its step's directory) and numbers."""

    def image(label, analysis, item):
        return f"![{label}]({figures[analysis]}/{item['figure']})"

    lines = []
    if "invariance" in analyses:
        lines += [
            "### Permutation invariance (figures 17, 18)",
            "",
            "`|E(permuted) - E(original)| / |E(other network) - E(original)|` (norms): 0 = unchanged, 1 = as "
            "different as another network.",
            "",
        ]
        for label, item in analyses["invariance"].items():
            lines += [image(f"invariance {label}", "invariance", item), ""]
    if analyses.get("fidelity"):
        lines += [
            "### Emulation fidelity (figure 5)",
            "",
            "| encoder | Pearson r | mean abs. error | networks |",
            "|---|---|---|---|",
        ]
        for encoder, item in analyses["fidelity"].items():
            r = "undefined" if item["pearson_r"] is None else f"{item['pearson_r']:.3f}"
            lines.append(f"| {encoder} | {r} | {item['mean_abs_error']:.3f} | {item['networks']} |")
        lines.append("")
        lines += [" ".join(image(e, "fidelity", item) for e, item in analyses["fidelity"].items()), ""]
    if analyses.get("embeddings"):
        lines += ["### Embeddings: PCA (top) and t-SNE (bottom) (figures 6, 7, 21-23)", ""]
        for encoder, item in analyses["embeddings"].items():
            lines += [image(encoder, "embeddings", item), ""]
    if analyses.get("probes"):
        lines += ["### Learned probes (figure 16)", ""]
        lines += [" ".join(image(e, "probes", item) for e, item in analyses["probes"].items()), ""]
    if analyses.get("probing_ablation"):
        lines += ["### Probing ablations (figures 13-15)", ""]
        lines += [" ".join(image(k, "probing_ablation", item) for k, item in analyses["probing_ablation"].items()), ""]
    return lines
