"""Paper 002 (solution degeneracy across task-trained RNNs) as an experiment family.

The TOML file (``experiments/degeneracy-*.toml``, ``family = "degeneracy"``) holds ``[base]``
(settings every condition shares: any field of the task families' configs), ``[tasks.TASK]``
(one task's own settings), ``[analysis]`` (how the three levels are measured) and
``[[sweeps]]``: each sweep moves one knob of paper 002's table 1 (task complexity, feature
learning, width, regularisation) over a few conditions of one task. Its steps::

    zoo/TASK/LABEL              one condition: its networks trained to threshold     [base], sweep
    measure/TASK/LABEL/seed-S   behaviour, dynamics (DSA) and weight degeneracy,      [analysis], S
                                the DSA null and the diagnostics, of its converged networks

A condition shared by two sweeps (the same task and settings) is one zoo and one measure step.
``seeds`` seed the analyses (trial draws for DSA, the DSA and QAP searches, the bootstraps);
the report shows the first seed. The networks of a condition are fixed by the zoo's own ``seed``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from ... import config as typed
from ... import counter_rng, storage
from ...errors import ConfigError
from ..family import Family
from ..steps import Finished, Step, StepContext
from ..zoo_step import open_zoo, zoo_step

FAMILY = "degeneracy"
#: paper 002's table 1: the direction each knob moves the degeneracy of each level, as the knob grows
PAPER_DIRECTIONS = {
    "complexity": {"behaviour": "mixed", "dynamics": "down", "weights": "up"},
    "feature learning": {"behaviour": "mixed", "dynamics": "down", "weights": "up"},
    "width": {"behaviour": "down", "dynamics": "down", "weights": "down"},
    "regularization": {"behaviour": "down", "dynamics": "down", "weights": "down"},
}
for _directions in PAPER_DIRECTIONS.values():  # the second dynamics measure tests the same claim
    _directions["shape"] = _directions["dynamics"]
#: the levels measured: "shape" is the dynamics again, by a closed-form measure (1 - linear CKA)
LEVELS = ("behaviour", "dynamics", "shape", "weights")


@dataclass(frozen=True, kw_only=True)
class Sweep:
    """One knob moved over a few conditions of one task (a row of paper 002's table 1)."""

    name: str = field(metadata={"help": "A name for the report."})
    knob: str = field(metadata={"help": f"Which knob of paper 002's table 1: {', '.join(PAPER_DIRECTIONS)}."})
    task: str = field(
        metadata={"help": "The task family (flip-flop, delayed-discrimination, sine-generation, path-integration)."}
    )
    settings: dict = field(default_factory=dict, metadata={"help": "This sweep's settings on top of [base]."})
    vary: str = field(default="", metadata={"help": "The setting that changes (with values)."})
    values: tuple[int | float, ...] = field(default=(), metadata={"help": "Its values, one condition each."})
    conditions: tuple[dict, ...] = field(
        default=(), metadata={"help": "Or: each condition's settings, when more than one setting changes."}
    )
    levels: tuple[float, ...] = field(
        default=(), metadata={"help": "The knob's size at each condition, for the trend (default: values)."}
    )

    def __post_init__(self):
        if self.knob not in PAPER_DIRECTIONS:
            raise ValueError(f"sweep {self.name!r}: knob must be one of {list(PAPER_DIRECTIONS)} (got {self.knob!r})")
        if bool(self.vary) == bool(self.conditions):
            raise ValueError(f"sweep {self.name!r}: give either vary and values or conditions")
        if len(self.expanded()) < 2:
            raise ValueError(f"sweep {self.name!r}: a trend needs at least two conditions")
        if len(self.knob_levels()) != len(self.expanded()):
            raise ValueError(f"sweep {self.name!r}: give one level per condition")

    def expanded(self) -> list[dict]:
        """Each condition's own settings (on top of [base] and the sweep's settings)."""
        return [{self.vary: v} for v in self.values] if self.vary else [dict(c) for c in self.conditions]

    def knob_levels(self) -> list[float]:
        return [float(v) for v in (self.levels or self.values)]


@dataclass(frozen=True, kw_only=True)
class AnalysisSettings:
    """How the three levels are measured on each condition's converged networks."""

    trials: int = field(
        default=32, metadata={"help": "Trials whose hidden states DSA compares (each half for the null)."}
    )
    n_delays: int = field(default=10, metadata={"help": "DSA: delays of the HAVOK embedding."})
    rank: int = field(default=30, metadata={"help": "DSA: rank of the DMD operator."})
    restarts: int = field(
        default=10,
        metadata={
            "help": "DSA: random starts of each pair's Procrustes search (the best of 2 x restarts searches). "
            "Measured by experiments/dsa_restarts.py on 8 demo flip-flop networks, 4 seeds of the starts: "
            "one start left a pair's distance 18% apart over seeds (median; 90th percentile 73%) with 1 "
            "channel, 10 starts 0.4% (7.1%); with 3 channels 2 starts were enough."
        },
    )
    spread_pairs: int = field(
        default=10,
        metadata={"help": "DSA: pairs measured again from other random starts, for the spread beside each value."},
    )
    tasks: dict = field(
        default_factory=dict,
        metadata={"help": "Per-task DSA overrides, e.g. { flip-flop = { n_delays = 5, rank = 20 } }."},
    )
    grid: tuple[dict, ...] = field(
        default=(),
        metadata={
            "help": "More DSA settings to measure each condition under, each with its own null, e.g. "
            "[{ rank = 5 }, { rank = 20 }, { variance = 0.9 }, { n_delays = 5 }]: overrides of the DSA "
            "settings above; variance: the rank whose Hankel modes explain that share of the variance "
            "(one rank per condition, the mean share over its networks)."
        },
    )
    cka_every: int = field(
        default=10, metadata={"help": "Shape (1 - linear CKA): reads the hidden states at every n-th time step."}
    )
    weight_restarts: int = field(default=3, metadata={"help": "Random QAP starts besides the barycentre."})
    ntk_trials: int = field(default=4, metadata={"help": "Probe trials of the NTK alignment."})
    ntk_every: int = field(default=10, metadata={"help": "The NTK reads the outputs at every n-th time step."})

    def __post_init__(self):
        if self.trials < 2 or min(self.ntk_trials, self.ntk_every, self.cka_every, self.restarts) < 1:
            raise ValueError(
                "[analysis] needs trials >= 2 (two halves for the DSA null), ntk_trials >= 1, "
                "ntk_every >= 1, cka_every >= 1, restarts >= 1, spread_pairs >= 0 and weight_restarts >= 0"
            )
        if min(self.weight_restarts, self.spread_pairs) < 0:
            raise ValueError("[analysis] needs spread_pairs >= 0 and weight_restarts >= 0")
        from ...analysis.dsa import DSASettings

        known = {f.name for f in dataclasses.fields(DSASettings)} - {"seed"} | {"variance"}
        for entry in self.grid:
            if not isinstance(entry, dict) or not entry or set(entry) - known:
                raise ValueError(f"[analysis] grid entries are tables of {sorted(known)}, got {entry!r}")
            if "variance" in entry and not 0 < entry["variance"] <= 1:
                raise ValueError(f"[analysis] grid: variance must be in (0, 1], got {entry['variance']}")

    def dsa(self, task: str) -> dict:
        return {
            "n_delays": self.n_delays,
            "rank": self.rank,
            "restarts": self.restarts,
            **dict(self.tasks.get(task, {})),
        }


@dataclass(frozen=True, kw_only=True)
class DegeneracyExperiment:
    """Paper 002: conditions of task-trained RNNs -> degeneracy at three levels -> table 1."""

    family: str = field(default=FAMILY, metadata={"help": "The experiment family (paper 002)."})
    name: str = field(metadata={"help": "Results go to RESULTS_DIR/NAME."})
    description: str = field(default="", metadata={"help": "A line for the report."})
    seeds: tuple[int, ...] = field(default=(0,), metadata={"help": "Seeds of the analyses; one measure step per seed."})
    results_dir: str = field(default="results", metadata={"help": "Where results go (RESULTS_DIR/NAME)."})
    base: dict = field(default_factory=dict, metadata={"help": "Settings every condition shares."})
    tasks: dict = field(
        default_factory=dict,
        metadata={"help": "Each task's own settings on top of base, e.g. [tasks.flip-flop] trial_steps = 50."},
    )
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    sweeps: tuple[Sweep, ...] = field(default=(), metadata={"help": "The knobs and their conditions."})

    def __post_init__(self):
        if self.family != FAMILY:
            raise ValueError(f"family must be {FAMILY!r}")
        if not self.seeds or not self.sweeps:
            raise ValueError("give at least one seed and one sweep")
        names = [s.name for s in self.sweeps]
        if len(set(names)) != len(names):
            raise ValueError(f"sweep names must differ (got {names})")
        from ...analysis.dsa import DSASettings

        for task in {s.task for s in self.sweeps} | set(self.analysis.tasks):
            try:  # at load time, not when the first measure step starts
                DSASettings(**self.analysis.dsa(task))
            except TypeError as error:
                raise ValueError(f"[analysis] DSA settings of {task}: {error}") from None

    def conditions(self) -> list[tuple[Sweep, list]]:
        """Each sweep with its conditions as (label, task config, level); checks every setting."""
        from ...tasks import get_task

        out = []
        for sweep in self.sweeps:
            task = get_task(sweep.task)
            items = []
            for own, level in zip(sweep.expanded(), sweep.knob_levels()):
                values = {**self.base, **dict(self.tasks.get(sweep.task, {})), **sweep.settings, **own}
                config = task.config(values, f"sweep {sweep.name!r}, condition {own}")
                label = ",".join(f"{k}={v}" for k, v in sorted({**sweep.settings, **own}.items()))
                items.append((label, config, level))
            out.append((sweep, items))
        return out


# ---- one condition's measures -------------------------------------------------------------------
def _trajectories(zoo, weights, trials: int, stream: int):
    """Hidden states (M, trials, T, N) of the networks on fixed in-distribution trials."""
    keys = np.arange(1)  # the same trials for every network: the networks are compared, not the data
    t = zoo.task.trials(zoo.config, keys, stream, trials)
    inputs = t.inputs.expand(weights.size, *t.inputs.shape[1:])
    with torch.no_grad():
        outputs, _, hidden = zoo.architecture.forward(weights, inputs, return_hidden=True)
    return hidden, outputs, t


def _dsa(dsa, hidden: torch.Tensor):
    """One condition's DSA under ``dsa``: the networks' operators, their pairwise distances and the
    null, each network's two halves of the trials against each other."""
    operators = dsa.fit_operators(hidden)
    half = hidden.shape[1] // 2
    null = dsa.between(dsa.fit_operators(hidden[:, :half]), dsa.fit_operators(hidden[:, half:]), paired=True)
    return operators, dsa.pairwise(operators), null


def _grid_point(entry: dict, base: dict, seed: int, hidden: torch.Tensor) -> dict:
    """The pairwise DSA distances and the same-network null of one condition under one entry of
    ``[analysis] grid``."""
    from ...analysis import degeneracy as measures
    from ...analysis import dsa as dsa_module

    values = {**base, **{k: v for k, v in entry.items() if k != "variance"}, "seed": seed}
    explained = None
    if "variance" in entry:
        values["rank"], explained = dsa_module.rank_for_variance(hidden, values["n_delays"], entry["variance"])
    dsa = dsa_module.DSASettings(**values)
    _, distances, null = _dsa(dsa, hidden)
    return {
        "entry": dict(entry),
        "dsa": dsa.to_json(),
        "explained": explained,
        "dynamics_values": measures.upper_triangle(np.asarray(distances)).tolist(),
        "dsa_null_values": np.asarray(null).reshape(-1).tolist(),
    }


def measure(context: StepContext, step_settings: dict) -> dict:
    """Behaviour, dynamics and weight degeneracy of one condition's converged networks, the DSA
    null, and the diagnostics; raw per-network and per-pair values go to the result (the report
    bootstraps its differences from them). A module-level function of (context, settings): it
    reads only the settings its key hashes (weightspace.experiments.steps)."""
    from ...analysis import degeneracy as measures
    from ...analysis.dsa import DSASettings

    seed = step_settings["seed"]
    settings = typed.from_dict(AnalysisSettings, step_settings, "[analysis]", ignore=("seed",))
    zoo = open_zoo(context.input("zoo"))
    table = zoo.table
    final_step = int(table["step"].max())
    final = table[table["step"] == final_step]
    initial = table[table["step"] == 0]
    converged = final["converged"].to_numpy() > 0.5
    result = {
        "networks": int(len(final)),
        "converged": int(converged.sum()),
        # met the threshold in training, but the stored network misses it on held-out trials
        "missed_held_out": int((final.get("converged_in_training", final["converged"]).to_numpy() > 0.5).sum())
        - int(converged.sum()),
        "stop_step": final["stop_step"].tolist(),
        "test_mse": final["test_mse"].tolist(),
        "ood_mse_all": final["ood_mse"].tolist(),
    }
    if converged.sum() < 2:
        return {**result, "measured": False}
    rows, first = final.index.to_numpy()[converged], initial.index.to_numpy()[converged]
    weights, initial_weights = zoo.weights(rows), zoo.weights(first)
    dsa = DSASettings(**{**settings.dsa(zoo.kind), "seed": seed})
    stream = counter_rng.stream_id("degeneracy", "dsa", seed)
    hidden, outputs, trials = _trajectories(zoo, weights, settings.trials, stream)
    operators, dynamics, null = _dsa(dsa, hidden)
    # the search's noise: the first pairs again, from other random starts
    first, second = (i[: settings.spread_pairs] for i in np.triu_indices(weights.size, 1))
    again = dataclasses.replace(dsa, seed=dsa.seed + 1).between(operators[first], operators[second], paired=True)
    spread = (again - dynamics[first, second]).abs() / ((again + dynamics[first, second]) / 2)
    shape = measures.cka_distances(hidden, settings.cka_every)
    grid = [_grid_point(entry, settings.dsa(zoo.kind), seed, hidden) for entry in settings.grid]
    recurrent = weights["rnn.weight_hh_l0"]
    weight_distances = measures.pairwise_weight_distances(recurrent, settings.weight_restarts, seed)
    probe = zoo.task.trials(
        zoo.config, np.arange(1), counter_rng.stream_id("degeneracy", "ntk", seed), settings.ntk_trials
    ).inputs.expand(weights.size, -1, -1, -1)
    alignment = measures.kernel_alignment(
        measures.tangent_kernels(zoo.architecture, initial_weights, probe, settings.ntk_every),
        measures.tangent_kernels(zoo.architecture, weights, probe, settings.ntk_every),
    )
    storage.write_tensors(
        context.directory / "distances.safetensors",
        {
            "dynamics": torch.as_tensor(dynamics, dtype=torch.float32),
            "shape": shape,
            "weights": torch.as_tensor(weight_distances, dtype=torch.float32),
        },
    )
    ood = final["ood_mse"].to_numpy()[converged]
    example = {
        "inputs": trials.inputs[0, :2].tolist(),
        "targets": trials.targets[0, :2].tolist(),
        "outputs": outputs[0, :2].tolist(),
    }
    return {
        **result,
        "measured": True,
        "dsa": dsa.to_json(),
        "behaviour_values": ood.tolist(),
        "dynamics_values": measures.upper_triangle(np.asarray(dynamics)).tolist(),
        "shape_values": measures.upper_triangle(shape.numpy()).tolist(),
        "weights_values": measures.upper_triangle(weight_distances).tolist(),
        "dsa_null_values": np.asarray(null).reshape(-1).tolist(),
        "dsa_spread_values": spread.tolist(),
        "dsa_grid": grid,
        "weight_change": measures.weight_change(initial_weights, weights).tolist(),
        "kernel_alignment": alignment.tolist(),
        "example": example,
        "distances": "distances.safetensors",
    }


# ---- the pipeline ---------------------------------------------------------------------------------
def zoo_name(task: str, label: str) -> str:
    return f"zoo/{task}/{label or 'base'}"


def measure_name(zoo_step: str, seed: int) -> str:
    """The measure step of the condition built by ``zoo_step`` (``zoo/TASK/LABEL``)."""
    return f"measure/{zoo_step.removeprefix('zoo/')}/seed-{seed}"


def condition_steps(config: DegeneracyExperiment) -> dict[tuple[str, str], tuple[str, str, object]]:
    """{(sweep name, label): (zoo step name, task, task config)}. A condition two sweeps share
    (the same task and settings) gets the zoo step of its first appearance."""
    made, out = {}, {}
    for sweep, items in config.conditions():
        for label, task_config, _ in items:
            key = json.dumps([sweep.task, task_config.to_json()], sort_keys=True)
            made.setdefault(key, zoo_name(sweep.task, label))
            out[(sweep.name, label)] = (made[key], sweep.task, task_config)
    return out


def experiment_steps(config: DegeneracyExperiment):
    yielded = set()
    for name, task, task_config in condition_steps(config).values():
        if name in yielded:
            continue
        yielded.add(name)
        yield zoo_step(name, task, task_config)
        for seed in config.seeds:
            yield Step(
                measure_name(name, seed),
                "degeneracy-measure",
                {**dataclasses.asdict(config.analysis), "seed": seed},
                measure,
                {"zoo": name},
            )


class Degeneracy(Family):
    name = FAMILY
    summary = "paper 002: solution degeneracy of task-trained RNNs at behaviour, dynamics and weight level"
    report_module = "degeneracy.report"
    # small per-step matrices; with another process on one core, 2 threads made the batched DSA
    # search 4x slower than 1 (measured with benchmarks/degeneracy.py --threads)
    cpu_threads = 1

    def config(self, data: dict, where: str) -> DegeneracyExperiment:
        try:
            config = typed.from_dict(DegeneracyExperiment, data, where)
            config.conditions()
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
        return config

    def steps(self, config, finished: dict[str, Finished]):
        return experiment_steps(config)
