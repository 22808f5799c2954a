"""Tables, figure 8 and report.md from an experiment's results.json (``weightspace report``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..downstream.bootstrap import bootstrap_interval
from ..errors import ConfigError
from ..plotting import pyplot
from ..zoo import storage

SPLITS = {"val": "validation", "ood_test": "OOD test"}


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
                    metrics = sorted({m for s in seeds for m in s["predictions"][key].get(split, {})})
                    for metric in metrics:
                        values = [s["predictions"][key][split][metric] for s in seeds if split in s["predictions"][key]]
                        mean, low, high = bootstrap_interval(values)
                        rows.append({"zoo": zoo, "encoder": encoder, "mode": mode, "target": target, "split": split,
                                     "metric": metric, "mean": mean, "low": low, "high": high, "seeds": len(values)})
    return rows


def _cell(row) -> str:
    if row is None:
        return "-"
    if row["seeds"] > 1:
        return f"{row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"
    return f"{row['mean']:.3f}"


def main_metric_table(rows: pd.DataFrame, zoo: str, target: str, metric: str) -> str:
    """Markdown: encoders x (pretrained, supervised) x (validation, OOD test) for one target."""
    sub = rows[(rows["zoo"] == zoo) & (rows["target"] == target) & (rows["metric"] == metric)]
    columns = [(mode, split) for mode in ("pretrained", "supervised") for split in SPLITS
               if len(sub[(sub["mode"] == mode) & (sub["split"] == split)])]
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

    sub = rows[(rows["zoo"] == zoo) & (rows["target"] == target) & (rows["metric"] == metric) & (rows["split"] == split)]
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
    fig.savefig(path, dpi=120)
    plt.close(fig)


def loss_correlation_rows(results: dict) -> pd.DataFrame:
    """Per (zoo, encoder, seed): pretraining validation loss and each downstream validation loss."""
    records = []
    for zoo, record in results["zoos"].items():
        for encoder, seeds in record["encoders"].items():
            for s in seeds:
                row = {"zoo": zoo, "encoder": encoder, "seed": s["seed"], "pretrain_val_loss": s["pretrain_val_loss"]}
                for key, value in s["predictions"].items():
                    if key.startswith("pretrained/") and "val" in value:
                        row[key.split("/")[1]] = value["val"]["loss"]
                records.append(row)
    return pd.DataFrame(records)


def write_report(out) -> Path:
    """(Re)write table.csv, table.md, figures/ZOO/prediction-*.png and report.md from results.json."""
    from ..analysis.correlation import loss_correlations

    out = Path(out)
    file = out / "results.json"
    if not file.exists():
        raise ConfigError(f"{out} has no results.json: run the experiment first (weightspace run CONFIG)")
    results = json.loads(file.read_text())
    rows = pd.DataFrame(results["rows"])
    storage.write_text(out / "table.csv", rows.to_csv(index=False))
    config = json.loads((out / "config.json").read_text())
    lines = [f"# Experiment `{results['name']}`", "",
             f"Seeds: {config['seeds']}; encoders: {', '.join(config['encoders'])}; "
             f"run time {results.get('seconds', 0) / 60:.1f} min. Values are means over seeds with bootstrapped "
             "95% intervals in brackets (one seed: no interval). Regression targets are standardised with the "
             "predictor's training rows, so their MSE is in units of the target's variance.", ""]
    tables = []
    for zoo, record in results["zoos"].items():
        lines += [f"## {zoo} ({record['kind']}, {record['checkpoints']} checkpoints)", "",
                  f"Predictor rows: {record['split_sizes']} (train includes half of the OOD tasks).", ""]
        for target, info in record["targets"].items():
            metric = info["main_metric"]
            if not len(rows) or not len(rows[(rows["zoo"] == zoo) & (rows["target"] == target)]):
                continue
            better = "higher" if info["higher_is_better"] else "lower"
            table = main_metric_table(rows, zoo, target, metric)
            tables.append(f"### {zoo}: {target} ({metric}, {better} is better)\n\n{table}\n")
            lines += [f"### {target}: {metric.replace('_', ' ')} ({better} is better)", "", table, ""]
            figure = f"figures/{zoo}/prediction-{target}.png"
            plot_target(rows, zoo, target, metric, "ood_test" if "ood_test" in set(rows["split"]) else "val",
                        out / figure)
            lines += [f"![{target}]({figure})", ""]
            if info["kind"] == "three_hot":
                lines += [f"Chance: exact accuracy {1 / 216:.4f} (1 of 216 languages), per-parameter accuracy "
                          f"{1 / 6:.3f}. Validation and OOD-test languages never occur in the predictor's "
                          "training rows, so this measures generalisation to unseen languages.", "",
                          "Per-parameter accuracy:", "", main_metric_table(rows, zoo, target, "parameter_accuracy"), ""]
        lines += _analysis_section(zoo, record.get("analyses", {}))
    correlations = loss_correlations(loss_correlation_rows(results).drop(columns=["zoo"])).reset_index()
    lines += ["## Pretraining loss vs downstream loss (table 11)", "",
              "Pearson correlation, across encoders and seeds, of the best pretraining validation loss with each "
              "downstream validation loss (frozen embeddings).", "", markdown(correlations), ""]
    storage.write_text(out / "table.md", "\n".join(tables))
    storage.write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"


def markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (floats to 3 decimals, NaN as "undefined")."""
    def text(value):
        if isinstance(value, float):
            return "undefined" if value != value else f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(text(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _analysis_section(zoo: str, analyses: dict) -> list[str]:
    lines = []
    if "invariance" in analyses:
        lines += ["### Permutation invariance (figures 17, 18)", "",
                  "`|E(permuted) - E(original)| / |E(other network) - E(original)|` (norms): 0 = unchanged, 1 = as "
                  "different as another network.", ""]
        for label, item in analyses["invariance"].items():
            lines += [f"![invariance {label}](figures/{zoo}/{item['figure']})", ""]
    if analyses.get("fidelity"):
        lines += ["### Emulation fidelity (figure 5)", "", "| encoder | Pearson r | mean abs. error | networks |",
                  "|---|---|---|---|"]
        for encoder, item in analyses["fidelity"].items():
            r = "undefined" if item["pearson_r"] is None else f"{item['pearson_r']:.3f}"
            lines.append(f"| {encoder} | {r} | {item['mean_abs_error']:.3f} | {item['networks']} |")
        lines.append("")
        lines += [" ".join(f"![{e}](figures/{zoo}/{item['figure']})" for e, item in analyses["fidelity"].items()), ""]
    if analyses.get("embeddings"):
        lines += ["### Embeddings: PCA (top) and t-SNE (bottom) (figures 6, 7, 21-23)", ""]
        for encoder, item in analyses["embeddings"].items():
            lines += [f"![{encoder}](figures/{zoo}/{item['figure']})", ""]
    if analyses.get("probes"):
        lines += ["### Learned probes (figure 16)", ""]
        lines += [" ".join(f"![{e}](figures/{zoo}/{item['figure']})" for e, item in analyses["probes"].items()), ""]
    if analyses.get("probing_ablation"):
        lines += ["### Probing ablations (figures 13-15)", ""]
        lines += [" ".join(f"![{k}](figures/{zoo}/{item['figure']})" for k, item in analyses["probing_ablation"].items()), ""]
    return lines
