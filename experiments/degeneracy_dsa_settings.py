"""How much of a DSA distance is estimation noise, for a few DSA settings: on one condition's
converged networks, the mean distance between networks next to the same-network null (each
network's two halves of the trials against each other). The numbers behind the demo's
``[analysis]`` settings (docs/reproductions/degeneracy-demo.md).

    python experiments/degeneracy_dsa_settings.py results/degeneracy-demo/steps/zoo/flip-flop/channels=3/*/zoo
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from weightspace import counter_rng
from weightspace.analysis.dsa import DSASettings
from weightspace.experiments.degeneracy.family import _trajectories
from weightspace.zoo import load_zoo

#: (trials, n_delays, rank, restarts)
SETTINGS = [(32, 5, 20, 1), (64, 5, 20, 1), (64, 5, 20, 3), (128, 10, 20, 1), (64, 10, 10, 1)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo")
    parser.add_argument("--networks", type=int, default=6, help="the first N final networks")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    zoo = load_zoo(args.zoo)
    final = zoo.table[zoo.table["step"] == zoo.table["step"].max()]
    weights = zoo.weights(final.index.to_numpy()[: args.networks])
    pairs = np.triu_indices(args.networks, 1)
    print("trials  delays  rank  restarts  between networks  null (same network)  seconds")
    for trials, delays, rank, restarts in SETTINGS:
        hidden = _trajectories(zoo, weights, trials, counter_rng.stream_id("dsa-settings"))[0]
        dsa = DSASettings(n_delays=delays, rank=rank, restarts=restarts)
        start = time.perf_counter()
        between = dsa.pairwise(dsa.fit_operators(hidden)).numpy()[pairs].mean()
        half = trials // 2
        null = dsa.between(dsa.fit_operators(hidden[:, :half]), dsa.fit_operators(hidden[:, half:]), paired=True)
        print(
            f"{trials:6d}  {delays:6d}  {rank:4d}  {restarts:8d}  {between:16.3f}  {null.mean():19.3f}  "
            f"{time.perf_counter() - start:7.1f}"
        )


if __name__ == "__main__":
    main()
