"""What storing TIPL's snapshots as float16 costs in weight prediction error, measured on a float32 zoo.

A PPO-trajectory zoo built with ``weights_dtype = "float16"`` holds every snapshot rounded to 11
significant bits. This script takes a zoo stored as float32 and, for the experiment's test trials
and start points (the last ``--test-trials`` trials; ``--starts`` evenly spaced points after a
context of ``--context``), forecasts h = 1..``--horizon`` snapshots ahead with the training-free
forecasters (copy-last, linear extrapolation, the SVD-trimmed last policy) twice: from the float32
histories and from the same histories rounded to float16. Both are scored against the float32
truth (WPE: mean squared error per parameter), and so is the float16-rounded truth itself (what
rounding alone adds to a perfect forecast). Prints a table per h and, as its last line, the
largest relative change of any forecaster's mean WPE::

    python experiments/tipl_storage_precision.py --zoo ZOO [--test-trials 10 --starts 20 --horizon 10]
    python experiments/tipl_storage_precision.py --zoo ZOO --json out.json

The transformer is not rerun: its input is the same rounded history, its output the same kind of
policy, so the forecasters above bound what rounding does to the inputs; a TIPL run on a float16
zoo gives its own numbers.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from weightspace.errors import WeightspaceError
from weightspace.experiments.tipl.family import _split, _starts, _trajectories
from weightspace.tipl import copy_last, linear_extrapolation, svd_trimmed
from weightspace.zoo import load_zoo


def measure(zoo_path, test_trials: int, starts: int, horizon: int, context: int, trim_rank: int) -> dict:
    """WPE (h = 1..horizon, mean over every test trial and start) of each forecaster from float32
    and from float16-rounded histories, and of the rounded truth."""
    zoo = load_zoo(zoo_path)
    stored = getattr(zoo.config, "weights_dtype", None)
    if stored != "float32":
        raise WeightspaceError(f"{zoo_path} is not a PPO-trajectory zoo stored as float32 (it stores {stored})")
    _, test_runs = _split(zoo, test_trials)
    errors: dict[str, list[torch.Tensor]] = {}
    for trajectory in _trajectories(zoo, test_runs):  # a trial with non-finite weights is a clear error
        rounded = trajectory.half().double()
        points = _starts(len(trajectory), context - 1, horizon, starts)
        truth = torch.stack([trajectory[t + 1 : t + 1 + horizon] for t in points])  # (S, H, P)
        for precision, source in (("float32", trajectory), ("float16", rounded)):
            histories = torch.stack([source[t + 1 - context : t + 1] for t in points])
            forecasts = {
                "copy_last": copy_last(histories, horizon),
                "linear": linear_extrapolation(histories, horizon),
                "svd_trimmed": svd_trimmed(source, points, horizon, trim_rank),
            }
            for name, forecast in forecasts.items():
                errors.setdefault(f"{name}/{precision}", []).append(((forecast - truth) ** 2).mean(-1))
        rounded_truth = torch.stack([rounded[t + 1 : t + 1 + horizon] for t in points])
        errors.setdefault("rounded truth/float16", []).append(((rounded_truth - truth) ** 2).mean(-1))
    wpe = {key: torch.cat(values).mean(0).tolist() for key, values in errors.items()}
    return {
        "zoo": str(zoo_path),
        "test_trials": [int(r) for r in test_runs],
        "parameters": zoo.spec.num_parameters,
        "horizon": horizon,
        "wpe": wpe,
    }


def relative_changes(result: dict) -> dict[str, list[float]]:
    """(float16 - float32) / float32 of each forecaster's WPE, per h."""
    wpe = result["wpe"]
    return {
        name.split("/")[0]: [
            (b - a) / a if a else float("nan") for a, b in zip(wpe[name], wpe[name.replace("32", "16")])
        ]
        for name in wpe
        if name.endswith("/float32")
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", required=True, help="a PPO-trajectory zoo stored as float32")
    parser.add_argument("--test-trials", type=int, default=10)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--context", type=int, default=20, help="history length (the transformer's context)")
    parser.add_argument("--trim-rank", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    try:
        result = measure(args.zoo, args.test_trials, args.starts, args.horizon, args.context, args.trim_rank)
    except WeightspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    wpe, changes = result["wpe"], relative_changes(result)
    print(f"{result['zoo']}: test trials {result['test_trials']}, {result['parameters']:,} parameters")
    print("h   " + "  ".join(f"{name:>24s}" for name in wpe))
    for h in range(result["horizon"]):
        print(f"{h + 1:<3d} " + "  ".join(f"{values[h]:24.4e}" for values in wpe.values()))
    for name, values in changes.items():
        print(f"{name}: float16 histories change WPE by {min(values):+.2%} to {max(values):+.2%} over h")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**result, "relative_change": changes}, f, indent=1)
    largest = max(abs(v) for values in changes.values() for v in values if np.isfinite(v))
    print(f"largest relative WPE change: {largest:.3%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
