"""How many random starts a DSA distance needs to be stable (issue: paper 002's dynamics direction).

DSA's Procrustes search is a local optimisation from a random start. On one condition's final
networks, every pair's distance is computed with ``n`` starts (the best of 2n searches: each start
searches twice, see ``weightspace.analysis.dsa``) under several seeds of the starts; the spread of a
pair's distance over those seeds, relative to its mean, says how much of it is the search's noise.
Prints, for each n, the median and the 90th percentile of that spread over pairs, the mean distance
and the seconds per seed (of the searches; the DMD fit is shared), and, as its last line, the smallest n whose median spread is at most 2%
and whose 90th percentile is at most 5% (``stable restarts: n``)::

    python experiments/dsa_restarts.py results/degeneracy-demo/steps/zoo/flip-flop/channels=3/*/zoo
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from weightspace import counter_rng
from weightspace.analysis.dsa import DSASettings
from weightspace.experiments.degeneracy.family import _trajectories
from weightspace.zoo import load_zoo

MEDIAN_SPREAD, HIGH_SPREAD = 0.02, 0.05


def spreads(distances: np.ndarray) -> np.ndarray:
    """(seeds, pairs) distances -> each pair's (max - min) / mean over the seeds."""
    return (distances.max(0) - distances.min(0)) / distances.mean(0)


def stable_restarts(table: dict[int, np.ndarray]) -> int | None:
    """The smallest n of ``{n: per-pair spreads}`` within both bounds, or None."""
    for n in sorted(table):
        if np.median(table[n]) <= MEDIAN_SPREAD and np.quantile(table[n], 0.9) <= HIGH_SPREAD:
            return n
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo", type=Path)
    parser.add_argument("--networks", type=int, default=8, help="the first N final networks (N(N-1)/2 pairs)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds of the random starts per n")
    parser.add_argument("--restarts", default="1,2,3,5", help="the numbers of starts n to try")
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--delays", type=int, default=10)
    parser.add_argument("--rank", type=int, default=10)
    args = parser.parse_args(argv)
    if not (args.zoo / "manifest.json").is_file():
        print(f"dsa_restarts.py: error: {args.zoo} is not a zoo (no manifest.json)", file=sys.stderr)
        return 2
    try:
        counts = sorted({int(n) for n in args.restarts.split(",")})
    except ValueError:
        print(
            f"dsa_restarts.py: error: --restarts takes numbers separated by commas, got {args.restarts!r}",
            file=sys.stderr,
        )
        return 2
    if args.networks < 2 or args.seeds < 2 or min(counts) < 1:
        print("dsa_restarts.py: error: --networks and --seeds must be >= 2 and every n >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    zoo = load_zoo(args.zoo)
    final = zoo.table[zoo.table["step"] == zoo.table["step"].max()]
    weights = zoo.weights(final.index.to_numpy()[: args.networks])
    hidden = _trajectories(zoo, weights, args.trials, counter_rng.stream_id("dsa-restarts"))[0]
    pairs = np.triu_indices(weights.size, 1)
    print(
        f"{zoo.kind}, {weights.size} networks ({len(pairs[0])} pairs), {args.trials} trials, "
        f"{args.delays} delays, rank {args.rank}; {args.seeds} seeds of the starts per n"
    )
    print("starts n  median spread  90th pct spread  mean distance  seconds per seed")
    table = {}
    settings = DSASettings(n_delays=args.delays, rank=args.rank)
    operators = settings.fit_operators(hidden)  # the fit has no random start: one for every n and seed
    for n in counts:
        start = time.perf_counter()
        distances = []
        for seed in range(args.seeds):
            dsa = dataclasses.replace(settings, restarts=n, seed=seed)
            distances.append(dsa.pairwise(operators).numpy()[pairs])
        distances = np.stack(distances)
        table[n] = spreads(distances)
        seconds = (time.perf_counter() - start) / args.seeds
        print(
            f"{n:8d}  {np.median(table[n]):12.1%}  {np.quantile(table[n], 0.9):15.1%}  "
            f"{distances.mean():13.4f}  {seconds:16.1f}"
        )
    print(f"stable restarts: {stable_restarts(table) or f'none of {counts}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
