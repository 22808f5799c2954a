"""The TIPL report: figure 2 of papers 001/003 (WPE and REPW against forward steps, the scatter of
J(true) against J(predicted)) with the baselines on the same axes, the learning curves of all trials,
and a table at h = 1, 5, 10 beside the paper's qualitative findings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ...stats import bootstrap_interval
from ..report import markdown
from ..zoo_step import open_zoo
from .family import BASELINES, TIPLExperiment, _bases, _kept_energy, _split, _trajectories, step_names

BASELINE_LABELS = {
    "copy_last": "copy-last",
    "linear": "linear extrapolation",
    "mlp": "per-parameter MLP",
    "svd_trimmed": "SVD-trimmed last policy",
}
BASELINE_COLORS = {"copy_last": "tab:gray", "linear": "tab:orange", "mlp": "tab:purple", "svd_trimmed": "tab:brown"}
TIPL_COLORS = ("tab:blue", "tab:green", "tab:cyan", "tab:olive")


def _label(method: str) -> str:
    return BASELINE_LABELS.get(method) or f"TIPL ({method.removeprefix('tipl-')})"


def _color(method: str, methods: list[str]) -> str:
    return BASELINE_COLORS.get(method) or TIPL_COLORS[methods.index(method) % len(TIPL_COLORS)]


TABLE_HORIZONS = (1, 5, 10)


def _per_trial(values, pairs) -> np.ndarray:
    """(B, H) values of the (trial, start) pairs -> (trials, H): each test trial's mean over its starts."""
    values = np.asarray(values, dtype=np.float64)
    trials = sorted({p["trial"] for p in pairs})
    index = np.array([p["trial"] for p in pairs])
    return np.stack([values[index == t].mean(0) for t in trials])


def _summary(per_trial: np.ndarray) -> dict:
    """Mean over test trials per h, with a bootstrap 95% interval over trials."""
    out = {"mean": [], "low": [], "high": []}
    for column in per_trial.T:
        _, low, high = bootstrap_interval(column)
        out["mean"].append(float(column.mean()))
        out["low"].append(float(low))
        out["high"].append(float(high))
    return out


def _interval(difference: np.ndarray) -> dict:
    """The mean of per-trial differences with a bootstrap interval over trials."""
    _, low, high = bootstrap_interval(difference)
    return {"mean": float(difference.mean()), "low": float(low), "high": float(high)}


def _paired(first: np.ndarray, second: np.ndarray) -> dict:
    """first - second per test trial, averaged over h, with a bootstrap interval over trials."""
    return _interval((first - second).mean(1))


def _paired_at(first: np.ndarray, second: np.ndarray) -> dict:
    """At each h of :data:`TABLE_HORIZONS` (keyed by str(h), as JSON keeps it): first - second per test trial, its mean with a bootstrap
    interval over trials, and the two-sided Wilcoxon signed-rank p-value of the paired trials
    (``scipy.stats.wilcoxon``; none when every difference is zero)."""
    from scipy import stats

    out = {}
    for h in TABLE_HORIZONS:
        if h > first.shape[1]:
            continue
        difference = first[:, h - 1] - second[:, h - 1]
        p = float(stats.wilcoxon(difference).pvalue) if np.any(difference != 0) else None
        out[str(h)] = _interval(difference) | {"p": p}
    return out


def _movement_kept(config: TIPLExperiment, zoo, directories: dict) -> dict:
    """What a forecaster inside each variant's basis can express: the share of the test trials'
    snapshot-to-snapshot changes (their squared norm, summed) that lies inside the basis each test
    trial is encoded with, and the same for the training trials. Copy-last's h = 1 error is the
    changes' mean square, so a forecaster that moves only inside the basis keeps at least
    (1 - share) of it as error. Variants that share their bases (per-run ones of one rank and
    anchor) share one computation."""
    train_runs, test_runs = _split(zoo, config.test_trials)
    train, test = _trajectories(zoo, train_runs), _trajectories(zoo, test_runs)
    changes = {"train": [torch.diff(t, dim=0) for t in train], "test": [torch.diff(t, dim=0) for t in test]}
    out, shared = {}, {}
    for svd in config.svd:
        label = f"tipl-{svd.label}"
        same_bases = (svd.mode, svd.rank, svd.anchor) if svd.mode == "per_run" else label
        if same_bases not in shared:
            saved = load_file(directories[label] / "basis.safetensors") if svd.mode == "pooled" else None
            bases = dict(zip(("train", "test"), _bases(train, test, svd, saved)))
            unanchored = dataclasses.replace(svd, anchor=False)  # a change has no anchor
            shared[same_bases] = {part: _kept_energy(changes[part], bases[part], unanchored) for part in bases}
        out[label] = shared[same_bases]
    return out


def gather_results(config: TIPLExperiment, finished: dict, out: Path) -> dict:
    seed = config.seeds[0]
    methods = config.methods()
    environments = {}
    for env, zoo_config in config.zoo_configs().items():
        names = step_names(config, env, seed)
        zoo = open_zoo(finished[names["zoo"]])
        table = zoo.table
        curves = {
            int(run): {"env_step": rows["env_step"].tolist(), "train_return": rows["train_return"].tolist()}
            for run, rows in table.sort_values("step").groupby("run_id")
        }
        final = table[table["step"] == table["step"].max()]
        variants = [finished[names[m]].result for m in methods if m not in BASELINES]
        forecast = finished[names["forecast"]].result
        pairs = forecast["pairs"]
        wpe = {m: _per_trial(forecast["wpe"][m], pairs) for m in methods}
        repw = {m: _per_trial(forecast["repw"][m], pairs) for m in methods}
        floor = _per_trial(forecast["noise_floor"], pairs)
        environments[env] = {
            "environment": zoo.manifest["task"]["environment"],
            "trials": int(zoo_config.models),
            "env_steps": int(zoo_config.env_steps),
            "snapshots": variants[0]["snapshots"],
            "snapshot_every": int(zoo_config.snapshot_every),
            "num_parameters": variants[0]["num_parameters"],
            "policy": list(zoo.architecture.sizes),
            "final_eval_return": {
                "mean": float(final["eval_return"].mean()),
                "min": float(final["eval_return"].min()),
                "max": float(final["eval_return"].max()),
                "reached_cap": int((final["eval_return"] >= zoo.task.max_episode_steps(zoo.config) - 1e-9).sum()),
            },
            "curves": curves,
            "test_trials": variants[0]["test_trials"],
            "methods": methods,
            "variants": {
                f"tipl-{v['label']}": {
                    k: v[k] for k in ("energy_train", "energy_test", "final_loss", "copy_last_train_error", "losses")
                }
                | {"steps": config.model.steps, "continued_from": v.get("continued_from")}
                for v in variants
            },
            "movement_kept": _movement_kept(
                config, zoo, {m: finished[names[m]].directory for m in methods if m not in BASELINES}
            ),
            "wpe": {m: _summary(v) for m, v in wpe.items()},
            "repw": {m: _summary(v) for m, v in repw.items()},
            "noise_floor": _summary(floor),
            "minus_copy_last": {
                m: {"wpe": _paired(wpe[m], wpe["copy_last"]), "repw": _paired(repw[m], repw["copy_last"])}
                for m in methods
                if m != "copy_last"
            },
            "minus_copy_last_at": {
                m: {"wpe": _paired_at(wpe[m], wpe["copy_last"]), "repw": _paired_at(repw[m], repw["copy_last"])}
                for m in methods
                if m != "copy_last"
            },
            "scatter": {"j_true": forecast["j_true"], "j_predicted": forecast["j_predicted"]},
            "pairs": len(pairs),
            "episodes": forecast["episodes"],
            "horizon": forecast["horizon"],
        }
    return {"seed": seed, "environments": environments}


def _figure(env: str, result: dict, out: Path) -> tuple[str, str]:
    from ...plotting import pyplot

    plt = pyplot()
    H, methods = result["horizon"], result["methods"]
    h = np.arange(1, H + 1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for metric, ax in zip(("wpe", "repw"), axes[:2]):
        for m in methods:
            s = result[metric][m]
            tipl = m not in BASELINES
            ax.plot(h, s["mean"], marker="o", ms=3, color=_color(m, methods), label=_label(m), lw=2 if tipl else 1)
            ax.fill_between(h, s["low"], s["high"], color=_color(m, methods), alpha=0.15)
        if metric == "repw":
            s = result["noise_floor"]
            ax.plot(h, s["mean"], color="k", ls="--", lw=1, label="noise floor (same policy, other episodes)")
            ax.set_ylabel("REPW = |J(true) - J(predicted)|")
        else:
            ax.set_yscale("log")
            ax.set_ylabel("WPE = MSE(phi, predicted phi)")
        ax.set_xlabel("forward prediction steps h")
        ax.legend(fontsize=7)
    ax = axes[2]
    j_true = np.asarray(result["scatter"]["j_true"]).ravel()
    for m in methods:
        j_pred = np.asarray(result["scatter"]["j_predicted"][m]).ravel()
        tipl = m not in BASELINES
        ax.scatter(
            j_true,
            j_pred,
            s=14 if tipl else 8,
            alpha=0.7 if tipl else 0.35,
            color=_color(m, methods),
            label=_label(m),
            marker="o" if tipl else "x",
        )
    top = max(1.0, float(np.max(j_true)))
    ax.plot([0, top], [0, top], color="k", lw=1)
    ax.set_xlabel("J(true policy)")
    ax.set_ylabel("J(predicted policy)")
    ax.set_title(f"h = 1..{H}, {result['pairs']} start points")
    ax.legend(fontsize=7)
    fig.suptitle(
        f"{result['environment']}: {len(result['test_trials'])} test trials (intervals: bootstrap 95% over trials)"
    )
    fig.tight_layout()
    path = out / "figures" / f"tipl-{env}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for run, curve in result["curves"].items():
        test = int(run) in result["test_trials"]
        ax.plot(
            np.asarray(curve["env_step"]) / 1e3,
            curve["train_return"],
            lw=0.8,
            color="tab:red" if test else "tab:blue",
            alpha=0.8,
        )
    ax.set_xlabel("environment steps (thousands)")
    ax.set_ylabel("training return (last 10 episodes)")
    ax.set_title(f"{result['environment']}: {result['trials']} PPO trials (red: test trials)")
    fig.tight_layout()
    curves = out / "figures" / f"learning-curves-{env}.png"
    fig.savefig(curves, dpi=110)
    plt.close(fig)

    variants = result["variants"]
    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 3.6), squeeze=False, sharey=True)
    for ax, (method, v) in zip(axes[0], variants.items()):
        losses = np.asarray(v["losses"], dtype=np.float64)
        every = max(1, v["steps"] // 200)
        step = np.arange(len(losses)) * every + 1
        window = min(10, len(losses))
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        color = _color(method, result["methods"])
        ax.plot(step, losses, lw=0.5, alpha=0.35, color=color)
        ax.plot(step[window - 1 :], smooth, lw=1.5, color=color, label=f"training loss (mean of {window} samples)")
        ax.axhline(v["copy_last_train_error"], color="tab:gray", ls="--", lw=1, label="copy-last on the same tokens")
        ax.set_yscale("log")
        ax.set_xlabel("transformer step")
        ax.set_title(_label(method), fontsize=9)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("weight-space MSE per parameter")
    fig.suptitle(f"{result['environment']}: the transformers' training loss (a sample of the steps)")
    fig.tight_layout()
    training = out / "figures" / f"tipl-training-{env}.png"
    fig.savefig(training, dpi=110)
    plt.close(fig)
    return f"figures/{path.name}", f"figures/{curves.name}", f"figures/{training.name}"


def _cell(summary: dict, h: int) -> str:
    i = h - 1
    if i >= len(summary["mean"]):
        return "-"
    return f"{summary['mean'][i]:.3g} [{summary['low'][i]:.3g}, {summary['high'][i]:.3g}]"


def _paired_cell(d: dict | None) -> str:
    if d is None:
        return "-"
    p = "-" if d["p"] is None else f"{d['p']:.2g}"
    return f"{d['mean']:.3g} [{d['low']:.3g}, {d['high']:.3g}] p={p}"


def report_lines(config: TIPLExperiment, results: dict, out: Path) -> list[str]:
    import pandas as pd

    lines = [
        f"# TIPL: {config.name}",
        "",
        config.description,
        "",
        "Papers 001/003 (*Can We Optimize Deep RL Policy Weights as Trajectory Modeling?*): PPO policy-weight "
        "trajectories, Temporal SVD, a causal transformer that predicts the next policy. TIPL variants "
        "(one transformer each):",
        "",
    ]
    for v in config.svd:
        basis = (
            "one basis per trajectory (the paper; a test trial's basis has seen its future)"
            if v.mode == "per_run"
            else "one basis fitted on the training trials only"
        )
        lines.append(
            f"- **{v.label}**: {basis}"
            f", d = {v.rank}"
            + (", each trial anchored at its initial policy" if v.anchor else "")
            + (
                ", predicted move added to the last known policy"
                if v.reconstruction == "last"
                else ", reconstruction u S V^T as the paper"
            )
            + (
                ", the transformer predicts the change from the current token"
                if (v.target or config.model.target) == "change"
                else ", the transformer predicts the next token (the paper)"
            )
            + "."
        )
    lines.append("")
    for env, r in results["environments"].items():
        figure, curves, training = _figure(env, r, out)
        f = r["final_eval_return"]
        lines += [
            f"## {r['environment']}",
            "",
            f"{r['trials']} PPO trials of {r['env_steps']:,} environment steps, policy {r['policy']} "
            f"({r['num_parameters']} parameters), {r['snapshots']} snapshots per trial (one every "
            f"{r['snapshot_every']} updates). Final policies: mean evaluation return {f['mean']:.1f} "
            f"(min {f['min']:.1f}, max {f['max']:.1f}); {f['reached_cap']} of {r['trials']} at the episode cap.",
            "",
            f"![learning curves]({curves})",
            "",
        ]
        for method, v in r["variants"].items():
            moved = r["movement_kept"][method]
            lines.append(
                f"- {_label(method)}, {v['steps']:,} transformer steps"
                + (f" (continuing step `{v['continued_from']}`)" if v.get("continued_from") else "")
                + f": the SVD keeps {v['energy_train']:.4f} of the training trajectories' "
                f"energy and {v['energy_test']:.4f} of the test trajectories', but {moved['train']:.4f} and "
                f"{moved['test']:.4f} of their snapshot-to-snapshot changes; final training loss "
                f"{v['final_loss']:.3g} against copy-last's {v['copy_last_train_error']:.3g} on the same "
                "tokens (weight-space MSE per parameter, mean of the last 5% of steps)."
            )
        lines += [
            "",
            f"![TIPL training]({training})",
            "",
            f"![figure 2]({figure})",
            "",
            f"WPE and REPW over {len(r['test_trials'])} test trials ({r['pairs']} start points, J over "
            f"{r['episodes']} fixed episodes with the mean action); mean [bootstrap 95% interval over trials]:",
            "",
        ]
        rows = [
            {
                "method": _label(m),
                **{f"WPE h={h}": _cell(r["wpe"][m], h) for h in TABLE_HORIZONS},
                **{f"REPW h={h}": _cell(r["repw"][m], h) for h in TABLE_HORIZONS},
            }
            for m in r["methods"]
        ]
        rows.append(
            {
                "method": "noise floor",
                **{f"WPE h={h}": "-" for h in TABLE_HORIZONS},
                **{f"REPW h={h}": _cell(r["noise_floor"], h) for h in TABLE_HORIZONS},
            }
        )
        lines += [
            markdown(pd.DataFrame(rows)),
            "",
            "Each forecaster minus copy-last, paired by test trial (negative: better than copy-last); mean "
            "[bootstrap 95% interval over trials], and the two-sided Wilcoxon signed-rank p over trials:",
            "",
        ]
        paired_rows = [
            {
                "method": _label(m),
                **{
                    f"{metric.upper()} h={h}": _paired_cell(r["minus_copy_last_at"][m][metric].get(str(h)))
                    for metric in ("wpe", "repw")
                    for h in TABLE_HORIZONS
                },
            }
            for m in r["methods"]
            if m != "copy_last"
        ]
        lines += [markdown(pd.DataFrame(paired_rows)), "", "Against the paper's findings:", ""]
        for m in r["methods"]:
            if m in BASELINES:
                continue
            wpe, repw, d = r["wpe"][m]["mean"], r["repw"][m]["mean"], r["minus_copy_last"][m]
            verdict = {
                k: (
                    "TIPL is better"
                    if d[k]["high"] < 0
                    else "copy-last is better"
                    if d[k]["low"] > 0
                    else "no clear difference"
                )
                for k in ("wpe", "repw")
            }
            lines += [
                f"- {_label(m)}: *WPE grows with h*: WPE at h = {r['horizon']} is {wpe[-1] / max(wpe[0], 1e-30):.2f}x "
                f"its value at h = 1. *REPW stays about flat*: {repw[0]:.3g} at h = 1, {repw[-1]:.3g} at "
                f"h = {r['horizon']} (noise floor {np.mean(r['noise_floor']['mean']):.3g} on average). "
                f"*Against copy-last* (never checked by the paper), TIPL minus copy-last averaged over h: WPE "
                f"{d['wpe']['mean']:.3g} [{d['wpe']['low']:.3g}, {d['wpe']['high']:.3g}]: {verdict['wpe']}; REPW "
                f"{d['repw']['mean']:.3g} [{d['repw']['low']:.3g}, {d['repw']['high']:.3g}]: {verdict['repw']}."
            ]
        lines += [
            "- The scatter of J(true) against J(predicted) (right panel) shows how near the diagonal each "
            "forecaster's policies lie.",
            "",
        ]
    return lines
