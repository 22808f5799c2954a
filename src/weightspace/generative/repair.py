"""Repairing missing weights by rejection sampling (paper 004, section 4.3, algorithm 1).

A network W loses a fraction of its weights (set to zero: the Missing set; the rest is Existing).
The generative model proposes gamma = 200 networks; a criterion keeps the k = 10 closest:

- Missing criterion (equation 10): squared distance to W over the Existing weights only;
- Whole criterion (equation 11): squared distance over all weights, W's missing ones being 0,
  which favours candidates with small weights where W's are missing.

By default a kept candidate *is* the repaired network, as algorithm 1 states (``return C_i``
after testing ``ST(C_i)``); with ``fill_missing`` it only fills W's missing weights, keeping the
existing ones (the text's "candidates are found to fill out the missing weights").
The repair succeeds if some repaired network's survival time is within epsilon = 5 of the
original's. All repaired networks of all degradation levels and criteria are evaluated in one
batched rollout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from .. import counter_rng
from ..errors import ConfigError
from ..rl.cartpole import CARTPOLE_NET, PAPER_MAX_EPISODE_STEPS
from ..rl.evaluation import PAPER_TEST_EPISODES, survival_time
from .vae import WeightVAE

CRITERIA = ("missing", "whole")


@dataclass(frozen=True)
class RepairConfig:
    """Algorithm 1's budget and threshold (paper: gamma 200, k 10, epsilon 5)."""

    candidates: int = field(default=200, metadata={"help": "Networks sampled per degradation level (gamma)."})
    keep: int = field(default=10, metadata={"help": "Candidates kept by the criterion (k)."})
    threshold: float = field(
        default=5.0, metadata={"help": "Success: survival time within this many steps of the original (epsilon)."}
    )
    fill_missing: bool = field(
        default=False,
        metadata={
            "help": "false: algorithm 1's candidate replaces the network; true: it only fills the missing weights.",
            "flag": "--fill",
        },
    )

    def __post_init__(self):
        if self.candidates < 1 or not 1 <= self.keep <= self.candidates:
            raise ConfigError(f"need candidates >= 1 and 1 <= keep <= candidates (got {self.candidates}, {self.keep})")
        if self.threshold < 0:
            raise ConfigError(f"threshold must be >= 0 (got {self.threshold})")


def missing_mask(size: int, level: float, seed: int) -> torch.Tensor:
    """Which of ``size`` weights are missing at degradation ``level`` in [0, 1]: exactly
    round(level * size) of them, chosen at random (a pure function of ``seed`` and ``level``)."""
    if not 0.0 <= level <= 1.0:
        raise ConfigError(f"degradation levels lie in [0, 1] (got {level})")
    count = int(round(level * size))
    keys = counter_rng.uniform([seed], counter_rng.stream_id("missing", round(level, 6)), (size,))[0]
    mask = torch.zeros(size, dtype=torch.bool)
    mask[torch.argsort(keys)[:count]] = True
    return mask


def degrade(flat: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """``flat`` with its missing weights zeroed."""
    return torch.where(missing.to(flat.device), torch.zeros_like(flat), flat)


def criterion_distance(
    damaged: torch.Tensor, missing: torch.Tensor, candidates: torch.Tensor, criterion: str
) -> torch.Tensor:
    """Equation 10 ("missing": over Existing weights) or 11 ("whole": over all): (candidates,)."""
    if criterion not in CRITERIA:
        raise ConfigError(f"unknown criterion {criterion!r}; choose from {CRITERIA}")
    squared = (candidates - damaged) ** 2
    if criterion == "missing":
        squared = squared * (~missing).to(squared.dtype)
    return squared.sum(-1)


def select_candidates(damaged, missing, candidates, criterion: str, keep: int) -> torch.Tensor:
    """Indices of the ``keep`` candidates closest to ``damaged`` by ``criterion``, closest first."""
    distance = criterion_distance(damaged, missing, candidates, criterion)
    return torch.argsort(distance, stable=True)[:keep]


def repaired_networks(damaged, missing, candidates, config: RepairConfig) -> torch.Tensor:
    if not config.fill_missing:
        return candidates
    return torch.where(missing.to(candidates.device), candidates, damaged)


def repair_experiment(
    model: WeightVAE,
    network: torch.Tensor,
    levels,
    criteria=CRITERIA,
    config: RepairConfig = RepairConfig(),
    seed: int = 0,
    episodes: int = PAPER_TEST_EPISODES,
    max_episode_steps: int = PAPER_MAX_EPISODE_STEPS,
    architecture=CARTPOLE_NET,
    labels=None,
) -> pd.DataFrame:
    """Algorithm 1 at each degradation level with each criterion, for one flattened ``network``.

    Returns one row per (level, criterion, kept candidate rank) with the repaired network's
    survival time and its difference to the original's; column ``original_survival_time``.
    """
    levels = [float(v) for v in levels]
    generator = torch.Generator().manual_seed(seed)
    networks, rows = [network.unsqueeze(0)], []
    for level in levels:
        missing = missing_mask(network.numel(), level, seed)
        damaged = degrade(network, missing)
        candidates = model.sample(config.candidates, labels, generator).to(network.device)
        for criterion in criteria:
            kept = select_candidates(damaged, missing, candidates, criterion, config.keep)
            networks.append(repaired_networks(damaged, missing, candidates[kept], config))
            rows += [
                {
                    "level": level,
                    "criterion": criterion,
                    "rank": r,
                    "candidate": int(c),
                    "missing_weights": int(missing.sum()),
                }
                for r, c in enumerate(kept.tolist())
            ]
    survival = survival_time(architecture, model.population(torch.cat(networks)), episodes, max_episode_steps).numpy()
    table = pd.DataFrame(rows)
    table["survival_time"] = survival[1:]
    table["original_survival_time"] = survival[0]
    table["difference"] = (table["survival_time"] - survival[0]).abs()
    table["success"] = table["difference"] < config.threshold
    return table


def summarize_repair(table: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per level and criterion: the best kept candidate's difference, and whether algorithm 1
    succeeds (some kept candidate within the threshold; it returns the first such in rank order)."""
    best = (
        table.groupby(["level", "criterion"], sort=True)
        .agg(
            best_difference=("difference", "min"),
            success=("success", "any"),
            first_candidate_difference=("difference", "first"),
        )
        .reset_index()
    )
    best["threshold"] = threshold
    return best
