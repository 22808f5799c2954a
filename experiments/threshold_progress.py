"""Where a threshold-trained zoo build stands (paper 002's protocol), read from its progress saves.

A zoo build of the neuroscience tasks saves its whole trainer state every ``save_every`` steps
(``zoo/progress/shard-*.safetensors``); this prints, for each save, the step, the training MSE of
the last epoch (median and worst over the shard's networks), how many networks have met the
threshold and how many still train. With ``--follow`` it watches the saves and prints each new one
as a JSON line, which is how the note on the degeneracy-direction sweep measured its curves::

    python experiments/threshold_progress.py results/degeneracy-direction-complexity --follow
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from safetensors import safe_open


def progress_rows(root: Path) -> list[tuple[Path, dict]]:
    """(save file, its row) for every progress save under ``root`` (an experiment's results or a zoo)."""
    rows = []
    for file in sorted(root.rglob("progress/shard-*.safetensors")):
        try:
            with safe_open(file, framework="pt") as f:
                step = int(f.metadata()["step"])
                loss, converged, active = (
                    f.get_tensor(k) for k in ("last_loss", "state.converged_epoch", "state.active")
                )
        except Exception:  # a save being replaced, or not a threshold trainer's
            continue
        rows.append(
            (
                file,
                {
                    "zoo": str(file.parents[1].relative_to(root)),  # e.g. steps/zoo/flip-flop/channels=3/KEY/zoo
                    "shard": file.stem,
                    "saved": time.strftime("%H:%M:%S", time.localtime(file.stat().st_mtime)),
                    "step": step,
                    "loss_median": float(loss.median()),
                    "loss_max": float(loss.max()),
                    "converged": int((converged >= 0).sum()),
                    "training": int(active.sum()),
                    "networks": len(loss),
                },
            )
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="an experiment's results directory, or a zoo being built")
    parser.add_argument("--follow", action="store_true", help="watch the saves; print each new one")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"error: {args.root} is not a directory", file=sys.stderr)
        return 2
    seen: dict[Path, int] = {}
    while True:
        for file, row in progress_rows(args.root):
            if seen.get(file) != row["step"]:
                seen[file] = row["step"]
                print(json.dumps(row), flush=True)
        if not args.follow:
            return 0
        time.sleep(60)


if __name__ == "__main__":
    sys.exit(main())
