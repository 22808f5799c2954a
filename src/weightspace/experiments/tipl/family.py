"""TIPL (papers 001/003) as an experiment family: PPO weight trajectories -> Temporal SVD -> a causal
transformer that predicts the next policy -> WPE and REPW against forecasters the paper lacks.

The TOML file (``experiments/tipl-*.toml``, ``family = "tipl"``) holds ``[base]`` (settings of every
environment's trajectory zoo: any field of ``weightspace zoo build ppo-trajectories``),
``[environments.NAME]`` (one environment's own settings), ``[svd]``, ``[model]`` (the transformer,
Decision-Transformer defaults) and ``[forecast]``. Its steps, per environment and seed::

    zoo/ENV                 K PPO trials, a policy snapshot every k updates          [base], [environments.ENV]
    tipl/ENV/seed-S         Temporal SVD of the training trials, the transformer     [svd], [model], S
    mlp/ENV/seed-S          the per-parameter MLP forecaster (WNN / Introspection)   [forecast], S
    forecast/ENV/seed-S     h = 1..H forecasts from start points of the test trials,  [forecast]
                            every predicted and true policy evaluated in one batched
                            rollout; WPE, REPW and the noise floor

The split is by trial: the last ``test_trials`` trials are never seen by the SVD (pooled mode),
the transformer or the MLP forecaster.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ... import config as typed
from ... import storage
from ...errors import ConfigError, ZooFormatError
from ...threads import intra_op_threads
from ...tipl import (
    Basis,
    CausalTransformer,
    ParameterMLPForecaster,
    TIPLConfig,
    copy_last,
    linear_extrapolation,
    per_run_bases,
    pooled_basis,
    rollout,
    svd_trimmed,
    train_tipl,
)
from ..config import library, per_step_problems
from ..family import Family
from ..steps import STEP_FILE, Finished, Step, StepContext
from ..zoo_step import open_zoo, zoo_step

FAMILY = "tipl"
BASELINES = ("copy_last", "linear", "mlp", "svd_trimmed")
#: seeds of the two episode sets: J is measured on the first, the noise floor compares it to the second
EPISODES_FIRST, EPISODES_SECOND = 1, 2


@dataclass(frozen=True, kw_only=True)
class SVDSettings:
    """One Temporal SVD variant: ``[phi_0 ... phi_n]^T = U S V^T``, tokens are rows of ``U[:, :d]``.
    Each variant trains its own transformer; all are evaluated side by side."""

    mode: str = field(
        default="per_run",
        metadata={
            "help": "per_run: one basis per trajectory, the paper's literal reading (a test trial's basis has seen "
            "its future); pooled: one basis from the training trials only (nothing leaks)."
        },
    )
    rank: int = field(default=32, metadata={"help": "d, the token size."})
    anchor: bool = field(
        default=False,
        metadata={
            "help": "Factor phi_t - phi_0 of each trial (its own initial policy, known at any point of its "
            "history): a new seed's initial weights otherwise lie outside a pooled basis."
        },
    )
    reconstruction: str = field(
        default="paper",
        metadata={
            "help": "paper: predicted phi = u S V^T (+ phi_0 if anchored); last: phi_t + (u - u_t) S V^T, the "
            "predicted move inside the basis added to the last known policy, whose part outside the "
            "basis is kept."
        },
    )

    target: str = field(
        default="",
        metadata={
            "help": "The transformer's target for this variant: next (the paper) or change (residual); "
            "empty: [model] target."
        },
    )

    def __post_init__(self):
        if self.target not in ("", "next", "change"):
            raise ValueError(f"[[svd]] target must be next or change (got {self.target!r})")
        if self.mode not in ("pooled", "per_run"):
            raise ValueError(f"[[svd]] mode must be pooled or per_run (got {self.mode!r})")
        if self.reconstruction not in ("paper", "last"):
            raise ValueError(f"[[svd]] reconstruction must be paper or last (got {self.reconstruction!r})")
        if self.rank < 1:
            raise ValueError(f"[[svd]] rank must be >= 1 (got {self.rank})")

    @property
    def label(self) -> str:
        return "-".join(
            [self.mode.replace("_", "-"), f"d{self.rank}"]
            + (["anchored"] if self.anchor else [])
            + (["from-last"] if self.reconstruction == "last" else [])
            + ([f"{self.target}"] if self.target else [])
        )

    def model(self, config: TIPLConfig, seed: int) -> TIPLConfig:
        """The transformer's settings for this variant and seed."""
        return dataclasses.replace(config, seed=seed, **({"target": self.target} if self.target else {}))


@dataclass(frozen=True, kw_only=True)
class ForecastSettings:
    """Where forecasts start, how far they go, and how returns are measured."""

    horizon: int = field(default=10, metadata={"help": "Forward steps h = 1..horizon (paper: 10)."})
    starts: int = field(default=5, metadata={"help": "Start points per test trial, evenly spaced."})
    episodes: int = field(default=5, metadata={"help": "Fixed evaluation episodes per policy (J)."})
    mlp_window: int = field(default=5, metadata={"help": "Snapshots the MLP forecaster reads."})
    mlp_hidden: int = field(default=32, metadata={"help": "Hidden units of the MLP forecaster."})
    mlp_steps: int = field(default=2000, metadata={"help": "Training steps of the MLP forecaster."})
    trim_rank: int = field(
        default=8,
        metadata={
            "help": "k of the svd_trimmed baseline: the last policy projected on the top-k temporal-SVD "
            "directions of its own trial's history (Ladder in Chaos's policy-path trimming)."
        },
    )

    def __post_init__(self):
        for name in ("horizon", "starts", "episodes", "mlp_hidden", "mlp_steps", "trim_rank"):
            if getattr(self, name) < 1:
                raise ValueError(f"[forecast] {name} must be >= 1 (got {getattr(self, name)})")
        if self.mlp_window < 2:
            raise ValueError(f"[forecast] mlp_window must be >= 2 (got {self.mlp_window})")


@dataclass(frozen=True, kw_only=True)
class TIPLExperiment:
    """Papers 001/003: PPO trajectories -> Temporal SVD -> causal transformer -> WPE / REPW."""

    family: str = field(default=FAMILY, metadata={"help": "The experiment family (papers 001/003)."})
    name: str = field(metadata={"help": "Results go to RESULTS_DIR/NAME."})
    description: str = field(default="", metadata={"help": "A line for the report."})
    seeds: tuple[int, ...] = field(
        default=(0,), metadata={"help": "Seeds of the transformer and the MLP forecaster; one set of steps per seed."}
    )
    results_dir: str = field(default="results", metadata={"help": "Where results go (RESULTS_DIR/NAME)."})
    base: dict = field(default_factory=dict, metadata={"help": "Settings of every environment's trajectory zoo."})
    environments: dict = field(
        default_factory=dict,
        metadata={"help": "Each environment's own settings on top of base, e.g. [environments.InvertedPendulum]."},
    )
    test_trials: int = field(default=4, metadata={"help": "The last trials of each zoo, held out."})
    svd: tuple[SVDSettings, ...] = field(
        default=(SVDSettings(),),
        metadata={"help": "Temporal SVD variants ([[svd]] tables), one transformer each, evaluated side by side."},
    )
    model: TIPLConfig = library(
        TIPLConfig,
        per_step=("seed",),
        help=("The causal transformer (the transformer's and the forecaster's seeds are the experiment's seeds)."),
    )
    forecast: ForecastSettings = field(default_factory=ForecastSettings)

    def __post_init__(self):
        if self.family != FAMILY:
            raise ValueError(f"family must be {FAMILY!r}")
        if not self.seeds or not self.environments:
            raise ValueError("give at least one seed and one [environments.NAME] table")
        if self.test_trials < 1:
            raise ValueError(f"test_trials must be >= 1 (got {self.test_trials})")
        problems = per_step_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        labels = [v.label for v in self.svd]
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"give one or more different [[svd]] variants (got {labels})")

    def methods(self) -> list[str]:
        """The forecasters compared: a TIPL per SVD variant, then the baselines."""
        return [f"tipl-{v.label}" for v in self.svd] + list(BASELINES)

    def zoo_configs(self) -> dict:
        """Each environment's trajectory-zoo config (checked: unknown keys and bad values are errors)."""
        from ...tasks import get_task

        task = get_task("ppo-trajectories")
        out = {}
        for name, own in self.environments.items():
            values = {"env": name, **self.base, **dict(own)}
            config = task.config(values, f"[environments.{name}]")
            if config.models <= self.test_trials:
                raise ValueError(
                    f"[environments.{name}]: {config.models} trials leave none to train on with "
                    f"test_trials = {self.test_trials}"
                )
            out[name] = config
        return out


# ---- the steps ----------------------------------------------------------------------------------
def _split(zoo, test_trials: int) -> tuple[list[int], list[int]]:
    runs = sorted(int(r) for r in zoo.table["run_id"].unique())
    return runs[:-test_trials], runs[-test_trials:]


def _trajectories(zoo, runs) -> list[torch.Tensor]:
    """The trials' weight histories (T, P) in float64; a trial whose weights went non-finite is a
    clear error, not a NaN forecast error (a diverged PPO trial stores NaN from then on)."""
    trajectories = [zoo.trajectory(run).double() for run in runs]
    broken = {}
    for run, trajectory in zip(runs, trajectories):
        bad = (~torch.isfinite(trajectory)).any(1).nonzero()
        if len(bad):
            broken[run] = int(zoo.table.loc[zoo.trajectory_indices(run)[int(bad[0])], "step"])
    if broken:
        where = ", ".join(f"trial {run} from step {step}" for run, step in list(broken.items())[:5])
        raise ZooFormatError(
            f"{zoo.path}: {len(broken)} trial(s) hold non-finite weights ({where}); a diverged trial "
            "cannot be forecast: rebuild the zoo (weightspace before 2026-12-07 could draw an infinite "
            "PPO action)"
        )
    return trajectories


def _anchor(trajectory: torch.Tensor, settings: SVDSettings) -> torch.Tensor:
    return trajectory[0] if settings.anchor else torch.zeros_like(trajectory[0])


def _bases(train, test, settings: SVDSettings, saved: dict | None = None):
    """(train bases, test bases): the pooled one (fitted on the training trials) for all, or one per trajectory."""
    anchored = lambda trajectories: [(t - _anchor(t, settings)).float() for t in trajectories]  # noqa: E731
    if settings.mode == "per_run":
        return per_run_bases(anchored(train), settings.rank), per_run_bases(anchored(test), settings.rank)
    basis = Basis.from_tensors(saved) if saved is not None else pooled_basis(anchored(train), settings.rank)
    return [basis] * len(train), [basis] * len(test)


def _encode(trajectory, basis, settings) -> torch.Tensor:
    return basis.encode((trajectory - _anchor(trajectory, settings)).float())


def _kept_energy(trajectories, bases, settings) -> float:
    """Fraction of the (anchored) trajectories' squared norm inside their bases."""
    kept = total = 0.0
    for trajectory, basis in zip(trajectories, bases):
        rows = (trajectory - _anchor(trajectory, settings)).float()
        kept += float(basis.decode(basis.encode(rows)).square().sum())
        total += float(rows.square().sum())
    return kept / total if total else 1.0


# Each step's compute function is a module-level function of (context, settings): the settings are
# what its key hashes, so it can read nothing else (weightspace.experiments.steps).
def _svd(values: dict) -> SVDSettings:
    return typed.from_dict(SVDSettings, values, "[[svd]]")


def _model(values: dict) -> TIPLConfig:
    return typed.from_dict(TIPLConfig, values, "[model]")


def train_step(context: StepContext, settings: dict) -> dict:
    zoo = open_zoo(context.input("zoo"))
    svd = _svd(settings["svd"])
    train_runs, test_runs = _split(zoo, settings["test_trials"])
    train, test = _trajectories(zoo, train_runs), _trajectories(zoo, test_runs)
    train_bases, test_bases = _bases(train, test, svd)
    sequences = [_encode(t, b, svd) for t, b in zip(train, train_bases)]
    model_config = svd.model(_model(settings["model"]), settings["model"]["seed"])
    checkpoint = context.directory / CHECKPOINT
    continued_from = None if checkpoint.exists() else _continue_shorter_run(context.directory, model_config.steps)
    model, losses = train_tipl(
        sequences,
        [b.singular_values for b in train_bases],
        zoo.spec.num_parameters,
        model_config,
        progress=context.progress,
        device=context.device,
        checkpoint=checkpoint,
    )
    storage.write_tensors(
        context.directory / "model.safetensors",
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    )
    if svd.mode == "pooled":
        storage.write_tensors(context.directory / "basis.safetensors", train_bases[0].to_tensors())
    from ...tipl.model import copy_last_error

    every = max(1, len(losses) // 200)
    return {
        "train_trials": train_runs,
        "test_trials": test_runs,
        "snapshots": len(train[0]),
        "num_parameters": zoo.spec.num_parameters,
        "rank": svd.rank,
        "label": svd.label,
        "energy_train": _kept_energy(train, train_bases, svd),
        "energy_test": _kept_energy(test, test_bases, svd),
        "copy_last_train_error": copy_last_error(
            sequences, [b.singular_values for b in train_bases], zoo.spec.num_parameters
        ),
        "final_loss": float(np.mean(losses[-max(1, len(losses) // 20) :])) if losses else None,
        "losses": losses[::every],
        "continued_from": continued_from,
    }


#: the transformer's training state in its step's folder: a killed run resumes from it
CHECKPOINT = "training.safetensors"


def _continue_shorter_run(directory: Path, steps: int) -> str | None:
    """Copy into ``directory`` the training checkpoint of the step beside it (same name, another
    key) that differs from it only in the number of transformer steps, the longest one not past
    ``steps``: asking for more steps continues the training done, and ends where a run that never
    stopped would. Returns that step's key, or None."""
    mine = json.loads((directory / STEP_FILE).read_text())

    def without_steps(record: dict) -> dict:
        settings = json.loads(json.dumps(record.get("settings", {})))
        settings.get("model", {}).pop("steps", None)
        return {k: record.get(k) for k in ("kind", "inputs", "code")} | {"settings": settings}

    candidates = []
    for other in directory.parent.glob(f"*/{CHECKPOINT}"):
        if other.parent == directory:
            continue
        try:
            record = json.loads((other.parent / STEP_FILE).read_text())
            with safe_open(other, "pt") as f:
                done = f.get_slice("losses").get_shape()[0]
        except (OSError, ValueError, KeyError):
            continue
        if without_steps(record) == without_steps(mine) and done <= steps:
            candidates.append((done, other))
    if not candidates:
        return None
    _, source = max(candidates)
    temporary = directory / f".{CHECKPOINT}.copy.tmp"
    shutil.copyfile(source, temporary)
    os.replace(temporary, directory / CHECKPOINT)
    return source.parent.name


def mlp_step(context: StepContext, settings: dict) -> dict:
    zoo = open_zoo(context.input("zoo"))
    train_runs, _ = _split(zoo, settings["test_trials"])
    forecaster = ParameterMLPForecaster(window=settings["mlp_window"], hidden=settings["mlp_hidden"])
    losses = forecaster.fit(
        [t.float() for t in _trajectories(zoo, train_runs)], steps=settings["mlp_steps"], seed=settings["seed"]
    )
    storage.write_tensors(context.directory / "forecaster.safetensors", forecaster.to_tensors())
    return {"final_loss": float(np.mean(losses[-max(1, len(losses) // 20) :]))}


def _starts(length: int, first: int, horizon: int, count: int) -> list[int]:
    """``count`` evenly spaced snapshot indices t with t >= first and t + horizon < length."""
    last = length - 1 - horizon
    if last < first:
        raise ConfigError(
            f"trajectories of {length} snapshots leave no start point for a context of {first + 1} "
            f"and a horizon of {horizon}; store more snapshots or shorten them"
        )
    return sorted(set(np.linspace(first, last, count).round().astype(int).tolist()))


def _tipl_forecasts(
    directory, svd: SVDSettings, model_config: TIPLConfig, horizon: int, seed: int, test, starts
) -> torch.Tensor:
    """(B, H, P) forecasts of one TIPL variant from every (test trial, start) pair."""
    saved = load_file(directory / "basis.safetensors") if svd.mode == "pooled" else None
    _, bases = _bases([], test, svd, saved)
    model = CausalTransformer(svd.rank, svd.model(model_config, seed))
    model.load_state_dict(load_file(directory / "model.safetensors"))
    model.eval()
    H, C, out = horizon, model_config.context, []
    for trajectory, basis, trial_starts in zip(test, bases, starts):
        tokens = _encode(trajectory, basis, svd)
        anchor = _anchor(trajectory, svd).float()
        histories = torch.stack([tokens[t + 1 - C : t + 1] for t in trial_starts])
        predicted = rollout(model, histories, H)  # (starts, H, d)
        if svd.reconstruction == "last":
            last = torch.stack([tokens[t] for t in trial_starts])[:, None]
            phi_t = torch.stack([trajectory[t].float() for t in trial_starts])[:, None]
            out.append(phi_t + basis.decode(predicted - last))
        else:
            out.append(basis.decode(predicted) + anchor)
    return torch.cat(out)


def forecast_step(context: StepContext, settings: dict) -> dict:
    """Forecasts h = 1..H from start points of every test trial by each TIPL variant and the
    baselines; WPE; then every true and predicted policy (with the true snapshot's observation
    statistics) and the true policies again on a second episode set (the noise floor), in one
    batched rollout."""
    from ...networks import Population
    from ...rl.mujoco import evaluate_policies

    zoo = open_zoo(context.input("zoo"))
    _, test_runs = _split(zoo, settings["test_trials"])
    test = _trajectories(zoo, test_runs)
    forecaster = ParameterMLPForecaster.from_tensors(
        load_file(context.input("mlp").directory / "forecaster.safetensors")
    )
    f = typed.from_dict(ForecastSettings, settings, "[forecast]", ignore=("test_trials", "svd", "model", "seed"))
    model_config, svds, seed = _model(settings["model"]), [_svd(v) for v in settings["svd"]], settings["seed"]
    H, C = f.horizon, model_config.context
    first = max(C, f.mlp_window) - 1
    starts = [_starts(len(trajectory), first, H, f.starts) for trajectory in test]
    pairs, histories, truths = [], [], []
    for trial, trajectory, trial_starts in zip(test_runs, test, starts):
        indices = zoo.trajectory_indices(trial)
        for t in trial_starts:
            pairs.append({"trial": trial, "start": t, "rows": indices[t + 1 : t + 1 + H].tolist()})
            truths.append(trajectory[t + 1 : t + 1 + H].float())
            histories.append(trajectory[t + 1 - C : t + 1].float())
    predictions = {
        f"tipl-{svd.label}": _tipl_forecasts(
            context.input(f"tipl-{svd.label}").directory, svd, model_config, H, seed, test, starts
        )
        for svd in svds
    }
    histories = torch.stack(histories)
    predictions["copy_last"] = copy_last(histories, H)
    predictions["linear"] = linear_extrapolation(histories, H)
    predictions["mlp"] = forecaster.forecast(histories, H)
    predictions["svd_trimmed"] = torch.cat(
        [svd_trimmed(trajectory, s, H, f.trim_rank).float() for trajectory, s in zip(test, starts)]
    )
    truth = torch.stack(truths)  # (B, H, P)
    wpe = {m: ((p - truth) ** 2).mean(-1) for m, p in predictions.items()}  # (B, H)

    B, P = truth.shape[0], truth.shape[2]
    rows = np.array([r for pair in pairs for r in pair["rows"]])
    statistics = zoo.rollout_batch(rows)
    methods = [f"tipl-{v.label}" for v in svds] + list(BASELINES)
    policies = torch.cat(
        [truth.reshape(B * H, P)] + [predictions[m].reshape(B * H, P) for m in methods] + [truth.reshape(B * H, P)]
    )
    groups = 2 + len(methods)
    seeds = np.concatenate([np.full(B * H * (groups - 1), EPISODES_FIRST), np.full(B * H, EPISODES_SECOND)])
    with intra_op_threads(1):
        returns = (
            evaluate_policies(
                zoo.task.env_id(zoo.config),
                zoo.architecture,
                Population.unflatten(zoo.spec, policies),
                statistics["obs_mean"].repeat(groups, 1),
                statistics["obs_var"].repeat(groups, 1),
                f.episodes,
                seeds,
                zoo.task.max_episode_steps(zoo.config),
                progress=context.progress,
            )
            .mean(1)
            .reshape(groups, B, H)
        )
    storage.write_tensors(
        context.directory / "forecasts.safetensors",
        {
            **{f"prediction.{m}": p.contiguous() for m, p in predictions.items()},
            "truth": truth.contiguous(),
            "returns": returns.float(),
        },
    )
    j_true = returns[0]
    return {
        "pairs": [{"trial": p["trial"], "start": p["start"]} for p in pairs],
        "horizon": H,
        "wpe": {m: w.tolist() for m, w in wpe.items()},
        "j_true": j_true.tolist(),
        "j_predicted": {m: returns[1 + i].tolist() for i, m in enumerate(methods)},
        "repw": {m: (returns[1 + i] - j_true).abs().tolist() for i, m in enumerate(methods)},
        "noise_floor": (returns[-1] - j_true).abs().tolist(),
        "episodes": f.episodes,
        "forecasts": "forecasts.safetensors",
    }


# ---- the pipeline ---------------------------------------------------------------------------------
def step_names(config: TIPLExperiment, env: str, seed: int) -> dict[str, str]:
    return {
        "zoo": f"zoo/{env}",
        "mlp": f"mlp/{env}/seed-{seed}",
        "forecast": f"forecast/{env}/seed-{seed}",
        **{f"tipl-{v.label}": f"tipl/{env}/{v.label}/seed-{seed}" for v in config.svd},
    }


def experiment_steps(config: TIPLExperiment):
    model, forecast = (dataclasses.asdict(x) for x in (config.model, config.forecast))
    split = {"test_trials": config.test_trials}
    for env, zoo_config in config.zoo_configs().items():
        yield zoo_step(f"zoo/{env}", "ppo-trajectories", zoo_config)
        for seed in config.seeds:
            n = step_names(config, env, seed)
            for svd in config.svd:
                yield Step(
                    n[f"tipl-{svd.label}"],
                    "tipl-train",
                    {**split, "svd": dataclasses.asdict(svd), "model": {**model, "seed": seed}},
                    train_step,
                    {"zoo": n["zoo"]},
                )
            yield Step(
                n["mlp"],
                "tipl-mlp-forecaster",
                {**split, **{k: v for k, v in forecast.items() if k.startswith("mlp_")}, "seed": seed},
                mlp_step,
                {"zoo": n["zoo"]},
            )
            yield Step(
                n["forecast"],
                "tipl-forecast",
                {**split, **forecast, "svd": [dataclasses.asdict(v) for v in config.svd], "model": model, "seed": seed},
                forecast_step,
                {role: n[role] for role in ("zoo", "mlp", *(f"tipl-{v.label}" for v in config.svd))},
            )


class TIPL(Family):
    name = FAMILY
    summary = "papers 001/003: PPO policy-weight trajectories, Temporal SVD, a causal transformer (TIPL)"
    report_module = "tipl.report"

    def config(self, data: dict, where: str) -> TIPLExperiment:
        try:
            config = typed.from_dict(TIPLExperiment, data, where)
            config.zoo_configs()
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
        return config

    def steps(self, config, finished: dict[str, Finished]):
        return experiment_steps(config)


__all__ = ["BASELINES", "ForecastSettings", "SVDSettings", "TIPL", "TIPLExperiment", "experiment_steps"]
